"""Weight checkpoints in the Hugging Face layout, read and written as numpy without any framework.

Reading is lazy: safetensors files are memory-mapped and read one tensor at a time, and of a sharded checkpoint
one shard is open at a time. ``pytorch_model.bin`` files are read with ``torch.load(weights_only=True,
mmap=True)``, which unpickles tensors only. bfloat16 tensors come back as ``ml_dtypes.bfloat16`` arrays.
Writing produces safetensors only, atomically, sharded like Hugging Face's ``save_pretrained``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .hub import missing_files_error, resolve_file, resolve_optional_file
from .io import atomic_write, atomic_write_text

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
# Other frameworks' checkpoints a hub repository may hold: named in errors, since they are not read yet.
UNREAD_NAMES = ("tf_model.h5", "flax_model.msgpack")

_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
# Hugging Face's convention: "GB" is decimal, "GiB" binary.
_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SAFE_METADATA = {"format": "pt"}  # transformers refuses safetensors files without it


class CheckpointError(OSError):
    """A checkpoint file that cannot be read, naming the file and what to do about it."""


# ---------------------------------------------------------------------------------------------------- reading


class _SafetensorsShard:
    def __init__(self, path: str):
        self._stack = ExitStack()
        try:
            self._file = self._stack.enter_context(safe_open(path, framework="numpy"))
        except SafetensorError as err:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({err}); it is probably truncated or corrupt: "
                f"re-download or re-save it"
            ) from err
        self.path = path
        self.names = list(self._file.keys())

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._file.get_slice(name).get_shape())

    def dtype(self, name: str) -> np.dtype:
        stored = self._file.get_slice(name).get_dtype()
        if stored not in _SAFETENSORS_DTYPES:
            raise CheckpointError(f"{self.path}: tensor {name} has dtype {stored}, which rosettazoo cannot read")
        return np.dtype(_SAFETENSORS_DTYPES[stored])

    def read(self, name: str) -> np.ndarray:
        self.dtype(name)  # the clear error for a dtype numpy lacks, before safetensors fails on it
        return self._file.get_tensor(name)

    def close(self) -> None:
        self._stack.close()


class _TorchShard:
    def __init__(self, path: str):
        try:
            import torch
        except ModuleNotFoundError as err:
            raise ImportError(
                f"{path} is a PyTorch pickle, and reading it needs torch, which is not installed: "
                f"pip install \"rosettazoo[torch]\", or convert the checkpoint once to safetensors where torch is "
                f"installed: python -m rosettazoo.conversion SOURCE DESTINATION"
            ) from err
        self._torch = torch
        self._tensors = _torch_load(torch, path)
        self.path = path
        self.names = list(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def dtype(self, name: str) -> np.dtype:
        return _numpy_dtype(self._tensors[name].dtype)

    def read(self, name: str) -> np.ndarray:
        tensor = self._tensors[name].detach()
        dtype = _numpy_dtype(tensor.dtype)
        if dtype.kind == "V":  # an ml_dtypes type (bfloat16, float8): torch cannot export it, so pass the bits
            bits = getattr(self._torch, f"int{tensor.element_size() * 8}")
            return tensor.view(bits).numpy().view(dtype)
        return tensor.numpy()

    def close(self) -> None:
        self._tensors = {}


def _numpy_dtype(torch_dtype) -> np.dtype:
    name = str(torch_dtype).removeprefix("torch.")
    return np.dtype(getattr(ml_dtypes, name, name))


def _torch_load(torch, path: str) -> dict:
    try:
        # Files from torch < 1.6 are not zip archives and cannot be memory-mapped.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects other than tensors, or is corrupt; rosettazoo unpickles tensors only "
            f"(torch.load(weights_only=True)): re-save the state dict alone, or as safetensors"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({err}); re-download or re-save it") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict (a mapping of names to tensors)")
    return dict(state)


class CheckpointReader(Mapping):
    """{canonical name: numpy array} over one checkpoint, read lazily with at most one shard open.

    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, weight_map: dict[str, str], open_shard: Callable[[str], object], description: str, shard=None):
        self._weight_map = weight_map  # name -> path of the shard that holds it
        self._open_shard = open_shard
        self._shard = shard  # the one open shard, if any
        self.description = description

    def _shard_of(self, name: str):
        if name not in self._weight_map:
            raise KeyError(f"{name!r} is not in {self.description}")
        path = self._weight_map[name]
        if self._shard is None or self._shard.path != path:
            self.close()
            self._shard = self._open_shard(path)
        if name not in self._shard.names:
            raise CheckpointError(
                f"{self.description} says {path} holds {name}, but it does not; re-download or re-save the checkpoint"
            )
        return self._shard

    def __getitem__(self, name: str) -> np.ndarray:
        return self._shard_of(name).read(name)

    def __contains__(self, name: object) -> bool:
        return name in self._weight_map

    def __iter__(self) -> Iterator[str]:
        return iter(self._weight_map)

    def __len__(self) -> int:
        return len(self._weight_map)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shard_of(name).shape(name)

    def dtype(self, name: str) -> np.dtype:
        return self._shard_of(name).dtype(name)

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


def _single(path: str, shard_class) -> CheckpointReader:
    shard = shard_class(path)  # opened to list its names, and kept open for reading them
    return CheckpointReader(dict.fromkeys(shard.names, path), shard_class, f"checkpoint {path}", shard)


def _sharded(index_path: str, name_or_path, hub_kwargs: dict, shard_class) -> CheckpointReader:
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
    # Grouped by shard, so reading in order opens each shard once.
    weight_map = dict(sorted(weight_map.items(), key=lambda item: item[1]))
    paths = {}
    for shard in dict.fromkeys(weight_map.values()):
        try:
            paths[shard] = resolve_file(name_or_path, shard, **hub_kwargs)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{index_path} names the shard {shard}, which is missing: {err}") from err
    return CheckpointReader(
        {name: paths[shard] for name, shard in weight_map.items()}, shard_class,
        f"checkpoint {index_path} ({len(paths)} shards)",
    )


_FORMATS = (
    (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, _SafetensorsShard),
    (WEIGHTS_NAME, WEIGHTS_INDEX_NAME, _TorchShard),
)


def open_checkpoint(name_or_path: str | os.PathLike, **hub_kwargs) -> CheckpointReader:
    """Open the weights of a model folder or hub repository: safetensors if present, else pytorch_model.bin.

    ``hub_kwargs`` are ``revision``, ``cache_dir``, ``local_files_only`` and ``token``.
    """
    for single_name, index_name, shard_class in _FORMATS:
        path = resolve_optional_file(name_or_path, single_name, **hub_kwargs)
        if path is not None:
            return _single(path, shard_class)
        path = resolve_optional_file(name_or_path, index_name, **hub_kwargs)
        if path is not None:
            return _sharded(path, name_or_path, hub_kwargs, shard_class)
    looked_for = [name for names in _FORMATS for name in names[:2]]
    error = missing_files_error(name_or_path, looked_for, **hub_kwargs)
    unread = [name for name in UNREAD_NAMES if resolve_optional_file(name_or_path, name, **hub_kwargs)]
    if unread:
        raise FileNotFoundError(
            f"{error}; it holds {' and '.join(unread)}, which rosettazoo does not read yet: convert it with "
            f"transformers 4.x (from_pretrained with from_tf=True or from_flax=True, then save_pretrained)"
        )
    raise error


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


def _shard_file_names(count: int) -> list[str]:
    if count == 1:
        return [SAFE_WEIGHTS_NAME]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def _existing_checkpoint_files(folder: str) -> list[str]:
    """The safetensors checkpoint files in ``folder``: the single file, the index and the shards it names."""
    names = [SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME]
    try:
        with open(os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME), encoding="utf-8") as f:
            names += sorted(set(json.load(f)["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no index, or one too broken to name its shards
    # Plain file names only: an index naming "../x" must not make us delete files outside the folder.
    return [n for n in names if os.path.basename(n) == n and os.path.isfile(os.path.join(folder, n))]


def _write_safetensors(path: str, tensors: dict[str, np.ndarray], overwrite: bool) -> None:
    arrays = {name: np.asarray(array, order="C") for name, array in tensors.items()}  # keeps 0-d shapes
    atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata=_SAFE_METADATA), overwrite=overwrite)


def save_checkpoint(
    folder: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    *,
    overwrite: bool = False,
    max_shard_size: int | str | None = None,
) -> None:
    """Write ``tensors`` to ``folder`` as model.safetensors, or as shards with an index past ``max_shard_size``.

    Each file is written atomically, and ``tensors`` (which may be a lazy mapping such as a
    ``CheckpointReader``) is read one shard at a time. Refuses to replace an existing checkpoint unless
    ``overwrite``; then the old checkpoint's files that the new one does not reuse are removed once the new
    one is complete.
    """
    folder = os.fspath(folder)
    limit = parse_size(max_shard_size)
    if not tensors:
        raise ValueError("there are no tensors to save")
    sizes = {name: _nbytes(tensors, name) for name in tensors}
    shards = _plan_shards(sizes, limit)
    files = _shard_file_names(len(shards))
    new_files = files + ([SAFE_WEIGHTS_INDEX_NAME] if len(files) > 1 else [])
    old_files = _existing_checkpoint_files(folder)
    if not overwrite:
        clashes = [n for n in dict.fromkeys(old_files + new_files) if os.path.exists(os.path.join(folder, n))]
        if clashes:
            raise FileExistsError(f"{folder} already holds {', '.join(clashes)}; pass overwrite=True to replace it")
    for file, names in zip(files, shards):
        _write_safetensors(os.path.join(folder, file), {name: tensors[name] for name in names}, overwrite)
    if len(files) > 1:
        index = {
            "metadata": {"total_size": sum(sizes.values())},
            "weight_map": {name: file for file, names in zip(files, shards) for name in names},
        }
        atomic_write_text(os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME),
                          json.dumps(index, indent=2, sort_keys=True) + "\n", overwrite=overwrite)
    for stale in old_files:
        if stale not in new_files:
            os.remove(os.path.join(folder, stale))
