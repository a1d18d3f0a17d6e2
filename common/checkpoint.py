"""Weight checkpoints in the Hugging Face layout, read and written as numpy without any framework.

Reading is lazy and takes every layout (``common.formats``: safetensors, pytorch_model.bin, tf_model.h5,
flax_model.msgpack, single or sharded): one tensor is read at a time, and of a sharded checkpoint one shard is
open at a time. Whatever names a file stores (transformers' TF and Flax classes write their own), tensors come
back under canonical names, kernels transposed. ``pytorch_model.bin`` files are read with
``torch.load(weights_only=True, mmap=True)``, which unpickles tensors only. bfloat16 tensors come back as
``ml_dtypes.bfloat16`` arrays.
Writing takes any format of ``common.formats``, sharded like Hugging Face's ``save_pretrained``, and replaces
the whole checkpoint atomically (``common.io.FolderSave``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from ..conversion.rules import canonical_name
from .formats import READ_ORDER, CheckpointError, CheckpointFormat, checkpoint_format
from .hub import missing_files_error, resolve_file, resolve_optional_file
from .io import FolderSave

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"

# Hugging Face's convention: "GB" is decimal, "GiB" binary.
_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


# ---------------------------------------------------------------------------------------------------- reading


class CheckpointReader(Mapping):
    """{canonical name: numpy array} over one checkpoint, read lazily with at most one shard open.

    Files that store transformers' TF or Flax names are read under canonical names, kernels transposed (as
    views). Use it as a context manager, or call ``close()``.
    """

    def __init__(self, entries: dict[str, tuple[str, str, bool]], open_shard: Callable[[str], object],
                 description: str, shard=None):
        self._entries = entries  # canonical name -> (path of the shard that holds it, its name there, transpose)
        self._open_shard = open_shard
        self._shard = shard  # the one open shard, if any
        self.description = description

    def _locate(self, name: str) -> tuple[object, str, bool]:
        if name not in self._entries:
            raise KeyError(f"{name!r} is not in {self.description}")
        path, stored, transpose = self._entries[name]
        if self._shard is None or self._shard.path != path:
            self.close()
            self._shard = self._open_shard(path)
        if stored not in self._shard.names:
            raise CheckpointError(
                f"{self.description} says {path} holds {stored}, but it does not; re-download or re-save the checkpoint"
            )
        return self._shard, stored, transpose

    def __getitem__(self, name: str) -> np.ndarray:
        shard, stored, transpose = self._locate(name)
        array = shard.read(stored)
        return array.T if transpose else array

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        shard, stored, transpose = self._locate(name)
        shape = tuple(shard.shape(stored))
        return tuple(reversed(shape)) if transpose else shape

    def dtype(self, name: str) -> np.dtype:
        shard, stored, _ = self._locate(name)
        return shard.dtype(stored)

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointReader({self.description}, {len(self)} tensors)"


def _canonical_entries(names_by_path: dict[str, list[str]], naming: str, source: str) -> dict:
    """{canonical name: (path, stored name, transpose)} for the tensors each file holds."""
    entries: dict[str, tuple[str, str, bool]] = {}
    for path, names in names_by_path.items():
        for stored in names:
            canonical, transpose = canonical_name(stored, naming)
            if canonical in entries:
                raise CheckpointError(f"{source} holds both {entries[canonical][1]} and {stored}, two copies of "
                                      f"{canonical}; re-save the checkpoint")
            entries[canonical] = (path, stored, transpose)
    return entries


def _single(path: str, fmt: CheckpointFormat) -> CheckpointReader:
    shard = fmt.open(path)  # opened to list its names, and kept open for reading them
    description = f"checkpoint {path}"
    try:
        entries = _canonical_entries({path: shard.names}, shard.naming, description)
    except BaseException:
        shard.close()
        raise
    return CheckpointReader(entries, fmt.open, description, shard)


def _index_weight_map(index_path: str) -> dict[str, str]:
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (ValueError, KeyError, TypeError) as err:
        weight_map = err
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(
            f"{index_path} is not a checkpoint index (JSON with a \"weight_map\" of tensor names to shard files); "
            f"re-download or re-save it"
        )
    return weight_map


def _check_shard_name(index_path: str, shard: str) -> None:
    """Refuse shard names that leave the checkpoint's folder: an index must not make us read other files."""
    parts = shard.replace("\\", "/").split("/")
    if not shard or os.path.isabs(shard) or shard.startswith(("/", "\\")) or ".." in parts or ":" in shard:
        raise CheckpointError(
            f"{index_path} names the shard {shard!r}, a path outside the checkpoint's folder; shards must be files "
            f"inside it (re-download or re-save the checkpoint)"
        )


def _shard_names(fmt: CheckpointFormat, path: str) -> tuple[list[str], str]:
    """The names a shard holds and its naming, from the shard itself."""
    shard = fmt.open(path)
    try:
        return list(shard.names), shard.naming
    finally:
        shard.close()


def _sharded(index_path: str, name_or_path, hub_kwargs: dict, fmt: CheckpointFormat) -> CheckpointReader:
    weight_map = _index_weight_map(index_path)
    by_shard: dict[str, list[str]] = {}  # sorted by shard, so reading in order opens each shard once
    for name, shard in sorted(weight_map.items(), key=lambda item: item[1]):
        by_shard.setdefault(shard, []).append(name)
    paths = {}
    for shard, names in by_shard.items():
        _check_shard_name(index_path, shard)
        try:
            paths[shard] = resolve_file(name_or_path, shard, **hub_kwargs)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{index_path} names the shard {shard} (holding {names[0]} and {len(names) - 1} more), which is "
                f"missing: {err}"
            ) from err
    naming = _shard_names(fmt, next(iter(paths.values())))[1]  # safetensors' metadata may name TF or Flax names
    if naming == "tf":
        # transformers' TF indexes name each weight with the Keras model's name, which the shards' names lack:
        # the shards list their own.
        names_by_path = {path: _shard_names(fmt, path)[0] for path in paths.values()}
    else:
        names_by_path = {paths[shard]: names for shard, names in by_shard.items()}
    description = f"checkpoint {index_path} ({len(paths)} shards)"
    return CheckpointReader(_canonical_entries(names_by_path, naming, description), fmt.open, description)


def open_checkpoint(name_or_path: str | os.PathLike, **hub_kwargs) -> CheckpointReader:
    """Open the weights of a model folder or hub repository: the first layout of ``READ_ORDER`` it holds
    (safetensors, pytorch_model.bin, tf_model.h5, flax_model.msgpack; single or sharded), preferring layouts
    whose reader is installed. Tensors come back under canonical names whatever the layout.

    ``hub_kwargs`` are ``revision``, ``cache_dir``, ``local_files_only`` and ``token``.
    """
    formats = sorted(READ_ORDER, key=lambda fmt: not fmt.available())  # stable: READ_ORDER within each group
    for fmt in formats:
        path = resolve_optional_file(name_or_path, fmt.single_name, **hub_kwargs)
        if path is not None:
            return _single(path, fmt)
        path = resolve_optional_file(name_or_path, fmt.index_name, **hub_kwargs)
        if path is not None:
            return _sharded(path, name_or_path, hub_kwargs, fmt)
    looked_for = [name for fmt in READ_ORDER for name in (fmt.single_name, fmt.index_name)]
    raise missing_files_error(name_or_path, looked_for, **hub_kwargs)


# ---------------------------------------------------------------------------------------------------- writing


def parse_size(size: int | str | None) -> int | None:
    """A shard size in bytes from an int or a string such as "500MB" or "2GiB"; None means unlimited."""
    if size is None:
        return None
    if isinstance(size, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", size)
        unit = match.group(2).upper() if match else None
        if unit not in _SIZE_UNITS:
            raise ValueError(f"max_shard_size must be a number of bytes or a size like \"2GB\", got {size!r}")
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"max_shard_size must be a positive number of bytes, got {size!r}")
    return size


def _nbytes(tensors: Mapping, name: str) -> int:
    """A tensor's size, from the metadata of a lazy mapping when it has some (without reading the tensor)."""
    if callable(getattr(tensors, "shape", None)) and callable(getattr(tensors, "dtype", None)):
        return math.prod(tensors.shape(name)) * np.dtype(tensors.dtype(name)).itemsize
    return np.asarray(tensors[name]).nbytes


def _plan_shards(sizes: dict[str, int], limit: int | None) -> list[list[str]]:
    """Group names in order into shards of at most ``limit`` bytes (a larger tensor gets a shard of its own)."""
    shards: list[list[str]] = [[]]
    used = 0
    for name, size in sizes.items():
        if limit is not None and shards[-1] and used + size > limit:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += size
    return shards


class _Subset(Mapping):
    """The tensors of one shard, still lazy: a format's writer reads them one at a time where it can."""

    def __init__(self, tensors: Mapping[str, np.ndarray], names: list[str]):
        self._tensors = tensors
        self._names = dict.fromkeys(names)  # ordered, with fast membership

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getattr__(self, name: str):
        # The whole mapping's metadata (shape, dtype, keras_layer_links) describes a shard's tensors too.
        return getattr(self._tensors, name)


def _is_shard_name(fmt: CheckpointFormat, name: str) -> bool:
    match = re.fullmatch(r".+-(\d{5,})-of-(\d{5,})\.[^.]+", name)
    return match is not None and fmt.shard_name(int(match.group(1)), int(match.group(2))) == name


def is_weights_file(name: str) -> bool:
    """Whether ``name`` is a weights file of some format: its single file, its index, or a shard named by its
    pattern. Saves replace and delete only such files (and config files), never a name an old index merely lists
    (README.md, vocab.json, ../x)."""
    return any(name in (fmt.single_name, fmt.index_name) or _is_shard_name(fmt, name) for fmt in READ_ORDER)


def stage_weights(save: FolderSave, tensors: Mapping[str, np.ndarray], fmt: CheckpointFormat, limit: int | None) -> None:
    """Stage ``tensors`` in ``save`` as ``fmt``'s single file, or as shards of at most ``limit`` bytes with an index.

    ``tensors`` (which may be a lazy mapping such as a ``CheckpointReader``) is read one shard at a time.
    """
    if not tensors:
        raise ValueError("there are no tensors to save")
    sizes = {name: _nbytes(tensors, name) for name in tensors}
    shards = _plan_shards(sizes, limit)
    if len(shards) == 1:
        save.stage(fmt.single_name, lambda path: fmt.write(path, _Subset(tensors, shards[0])))
        return
    files = [fmt.shard_name(number, len(shards)) for number in range(1, len(shards) + 1)]
    for file, names in zip(files, shards):
        save.stage(file, lambda path, names=names: fmt.write(path, _Subset(tensors, names), sharded=True))
    index = {
        "metadata": {"total_size": sum(sizes.values())},
        "weight_map": {name: file for file, names in zip(files, shards) for name in names},
    }
    save.stage_text(fmt.index_name, json.dumps(index, indent=2, sort_keys=True) + "\n")


def save_checkpoint(
    folder: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    *,
    format: str = "safetensors",
    overwrite: bool = False,
    max_shard_size: int | str | None = None,
) -> None:
    """Write ``tensors`` to ``folder`` in ``format`` (model.safetensors by default), as shards with an index past
    ``max_shard_size``.

    The save is atomic for the whole checkpoint (see ``common.io``): interrupted at any point, the folder holds
    the old checkpoint or the new one. Refuses to replace an existing checkpoint (weights in any format) unless
    ``overwrite``; then the old checkpoint's weights files that the new one does not reuse are removed.
    """
    fmt, limit = checkpoint_format(format), parse_size(max_shard_size)
    with FolderSave(folder, is_weights_file, overwrite=overwrite) as save:
        stage_weights(save, tensors, fmt, limit)
