"""Find a model's files: in a local folder, or in a Hugging Face hub repository through the shared HF cache.

Offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) and the cache location (``cache_dir``,
``HF_HUB_CACHE``, ``HF_HOME``) are read at each call rather than when huggingface_hub is imported, so setting
them in a running process takes effect.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..bundled import is_bundled_id, local_folder
from .io import visible_file

HUB_ARGUMENTS = ("revision", "cache_dir", "local_files_only", "token")

_TRUE = {"1", "on", "yes", "true"}


def is_offline(local_files_only: bool = False) -> bool:
    """Whether the hub may not be contacted: ``local_files_only``, or HF_HUB_OFFLINE as set now or at import."""
    env = os.environ
    from_env = (env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").strip().lower() in _TRUE
    return local_files_only or from_env or constants.HF_HUB_OFFLINE


def cache_folder(cache_dir: str | os.PathLike | None = None) -> str:
    """The hub cache in use, with huggingface_hub's precedence of settings."""
    if cache_dir is not None:
        return os.fspath(cache_dir)
    env = os.environ
    hf_home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    hub_cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(hf_home, "hub")
    return os.path.expanduser(hub_cache)


def resolve_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> str:
    """The local path of ``filename`` in a model folder or hub repository; FileNotFoundError when it has none."""
    hub_kwargs = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
    path = resolve_optional_file(name_or_path, filename, **hub_kwargs)
    if path is None:
        raise missing_files_error(name_or_path, [filename], **hub_kwargs)
    return path


def resolve_optional_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> str | None:
    """Like ``resolve_file``, but None when the file is absent (offline: absent from the cache).

    A repository or revision that does not exist is still an error. An id of a model bundled with the package
    (``rosettazoo/opt-wordnet``) reads its package folder, offline.
    """
    name = local_folder(name_or_path)
    if os.path.isdir(name):
        return visible_file(name, filename)  # through an unfinished save's journal, if there is one
    if os.path.exists(name):
        raise NotADirectoryError(f"{name} is a file; pass the folder that holds the model's files")
    try:
        return hf_hub_download(
            name, filename, revision=revision, cache_dir=cache_folder(cache_dir),
            local_files_only=is_offline(local_files_only), token=token, library_name="rosettazoo",
        )
    except EntryNotFoundError:  # also raised, as LocalEntryNotFoundError, for "offline and not cached"
        return None
    except HFValidationError as err:
        raise FileNotFoundError(f"{name} is neither a local folder nor a valid hub id ({err})") from err
    except RevisionNotFoundError as err:
        raise FileNotFoundError(f"the hub repository {name} has no revision {revision!r}") from err
    except RepositoryNotFoundError as err:
        raise FileNotFoundError(
            f"{name} is not a local folder, and the hub has no repository {name} that you can access "
            f"(check the name; for a private or gated repository pass token= or log in with `hf auth login`)"
        ) from err


def missing_files_error(
    name_or_path: str | os.PathLike,
    filenames: Sequence[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> FileNotFoundError:
    """The error for a folder or hub repository that has none of ``filenames``, saying how to fix it.

    Takes every hub argument (``token`` unused) so that callers can pass theirs through unchanged.
    """
    name = os.fspath(name_or_path)
    wanted = " or ".join(filenames)
    if is_bundled_id(name):
        return FileNotFoundError(f"the bundled model {name} ({local_folder(name)}) has no {wanted}; reinstall rosettazoo")
    if os.path.isdir(name):
        return FileNotFoundError(f"the folder {name} has no {wanted}")
    at = f" at revision {revision}" if revision else ""
    cache = cache_folder(cache_dir)
    if is_offline(local_files_only):
        return FileNotFoundError(
            f"{name} is not a local folder, and the hub repository {name}{at} has no {wanted} in the Hugging Face "
            f"cache {cache}, while offline mode (HF_HUB_OFFLINE=1 or local_files_only=True) forbids downloading: "
            f"download it while online (`hf download {name}`), or pass a local folder that holds the files"
        )
    return FileNotFoundError(
        f"{name} is not a local folder, and neither the hub repository {name}{at} nor the Hugging Face cache {cache} "
        f"has {wanted} (the repository lacks it, or the hub could not be reached: then download it while online, "
        f"or pass a local folder that holds the files)"
    )
