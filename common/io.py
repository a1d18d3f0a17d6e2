"""Atomic file writing: a temporary file in the target folder, then a rename, so a crash never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, overwrite: bool = False) -> None:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, then move it onto ``path``.

    Refuses to replace an existing file unless ``overwrite`` is true.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> None:
    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write, overwrite=overwrite)
