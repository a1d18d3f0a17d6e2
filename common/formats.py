"""The checkpoint file formats of the Hugging Face layout, each a reader and a writer of one file of {name: array}.

    safetensors  model.safetensors       memory-mapped, read one tensor at a time
    pytorch      pytorch_model.bin       torch.load(weights_only=True, mmap=True): tensors only, needs torch
    tf           tf_model.h5             Keras 2 save_weights HDF5 as transformers' TF classes write it (h5py)
    flax         flax_model.msgpack      flax.serialization's msgpack of the params tree (read without JAX)

A format knows file names and bytes only. The names a file stores are canonical (PyTorch) names for safetensors
and pytorch, and transformers' TF / Flax names for tf and flax (a reader's ``naming`` says which);
``rosettazoo.conversion.rules`` translates (``canonical_name``, ``StoredTensors``).
bfloat16 tensors come back as ``ml_dtypes.bfloat16`` arrays.
"""

from __future__ import annotations

import importlib.util
import json
import math
import mmap
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open

from ..conversion.rules import keras_layer


class CheckpointError(OSError):
    """A checkpoint file that cannot be read, naming the file and what to do about it."""


_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}


# safetensors metadata "format" -> the naming of the tensors (canonical PyTorch names, or TF / Flax names).
_SAFETENSORS_NAMINGS = {"pt": "pt", "tf": "tf", "flax": "flax"}


def numpy_dtype(name: str) -> np.dtype:
    """A numpy dtype from its name, ml_dtypes' names (bfloat16, float8_*) included."""
    return np.dtype(getattr(ml_dtypes, name, name))


# ---------------------------------------------------------------------------------------------------- safetensors


class SafetensorsShard:
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
        # transformers' TF and Flax classes write their own names, and say so in the metadata.
        self.naming = _SAFETENSORS_NAMINGS.get((self._file.metadata() or {}).get("format"), "pt")

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


def _metadata(tensors: Mapping[str, np.ndarray], name: str) -> tuple[tuple[int, ...], np.dtype]:
    """A tensor's shape and dtype, from a lazy mapping's metadata when it has some (without reading the tensor)."""
    if callable(getattr(tensors, "shape", None)) and callable(getattr(tensors, "dtype", None)):
        return tuple(tensors.shape(name)), np.dtype(tensors.dtype(name))
    array = np.asarray(tensors[name])
    return array.shape, array.dtype


_SAFETENSORS_CODES = {np.dtype(numpy_type): code for code, numpy_type in _SAFETENSORS_DTYPES.items()}


def _write_safetensors(path: str, tensors: Mapping[str, np.ndarray], sharded: bool) -> None:
    # Streamed: the header from the tensors' metadata, then each tensor's bytes as it is read, so one tensor is in
    # memory at a time (safetensors' own writer builds the whole file in memory: twice a file's size at the peak).
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}  # transformers refuses files without it
    offset = 0
    for name in tensors:
        shape, dtype = _metadata(tensors, name)
        if dtype not in _SAFETENSORS_CODES:
            raise ValueError(f"{name} has dtype {dtype.name}, which safetensors cannot store")
        size = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": _SAFETENSORS_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for name in tensors:
            array = np.asarray(tensors[name], order="C")  # keeps 0-d shapes
            entry = header[name]
            if list(array.shape) != entry["shape"] or _SAFETENSORS_CODES.get(array.dtype) != entry["dtype"]:
                raise ValueError(f"{name} was announced as {entry['dtype']} {entry['shape']} but read as "
                                 f"{array.dtype.name} {list(array.shape)}")
            f.write(array.reshape(-1).view(np.uint8).data)


# ---------------------------------------------------------------------------------------------------- pytorch


def _import_torch(path: str, instead: str):
    try:
        import torch
    except ModuleNotFoundError as err:
        raise ImportError(
            f"{path} is a PyTorch pickle, which needs torch, and torch is not installed: "
            f"pip install \"rosettazoo[torch]\", or {instead}"
        ) from err
    return torch


class TorchShard:
    def __init__(self, path: str):
        torch = _import_torch(path, "convert the checkpoint once to safetensors where torch is installed: "
                                    "python -m rosettazoo.conversion SOURCE DESTINATION")
        self._torch = torch
        self._tensors = _torch_load(torch, path)
        self.path = path
        self.names = list(self._tensors)
        self.naming = "pt"

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def dtype(self, name: str) -> np.dtype:
        return _torch_numpy_dtype(self._tensors[name].dtype)

    def read(self, name: str) -> np.ndarray:
        tensor = self._tensors[name].detach()
        dtype = _torch_numpy_dtype(tensor.dtype)
        if dtype.kind == "V":  # an ml_dtypes type (bfloat16, float8): torch cannot export it, so pass the bits
            bits = getattr(self._torch, f"int{tensor.element_size() * 8}")
            return tensor.view(bits).numpy().view(dtype)
        return tensor.numpy()

    def close(self) -> None:
        self._tensors = {}


def _torch_numpy_dtype(torch_dtype) -> np.dtype:
    return numpy_dtype(str(torch_dtype).removeprefix("torch."))


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


def _torch_tensor(torch, array: np.ndarray):
    array = np.asarray(array)
    if array.dtype.kind == "V" or array.dtype.name not in _TORCH_NATIVE:  # ml_dtypes: pass the bits
        bits = {1: np.uint8, 2: np.int16, 4: np.int32}[array.dtype.itemsize]
        return torch.from_numpy(np.ascontiguousarray(array).view(bits)).view(getattr(torch, array.dtype.name))
    return torch.from_numpy(np.ascontiguousarray(array))


_TORCH_NATIVE = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


class _StreamedStorages:
    """The zip writer torch.save writes to, given placeholder tensors (allocated, never touched, so never
    resident): each placeholder's storage record is written from the real tensor, read only then."""

    def __init__(self, torch, writer, tensors: Mapping[str, np.ndarray], names_by_pointer: dict[int, str]):
        self._torch, self._writer, self._tensors, self._names = torch, writer, tensors, names_by_pointer

    def write_record(self, record: str, data, size: int) -> None:
        name = self._names.get(data.data_ptr()) if record.startswith("data/") else None
        if name is None:
            self._writer.write_record(record, data, size)
            return
        real = _torch_tensor(self._torch, self._tensors[name]).contiguous()
        if real.untyped_storage().nbytes() != size:
            raise ValueError(f"{name} holds {real.untyped_storage().nbytes()} bytes, but its metadata said {size}")
        self._writer.write_record(record, real.untyped_storage(), size)


def _write_torch(path: str, tensors: Mapping[str, np.ndarray], sharded: bool) -> None:
    torch = _import_torch(path, "save in another format (safetensors needs no framework)")
    # torch.save pickles the whole state dict, then writes each tensor's bytes: the pickle is made of placeholders
    # and each tensor is read as its bytes are written, so one tensor is in memory at a time, not the whole file.
    placeholders = {}
    for name in tensors:
        shape, dtype = _metadata(tensors, name)
        placeholders[name] = torch.empty(shape, dtype=getattr(torch, dtype.name))
    names = {tensor.untyped_storage().data_ptr(): name for name, tensor in placeholders.items() if tensor.numel()}
    with torch.serialization._open_zipfile_writer(path) as writer:
        torch.serialization._save(placeholders, _StreamedStorages(torch, writer, tensors, names), pickle, 2, False)


# ---------------------------------------------------------------------------------------------------- tf_model.h5
# Keras 2 save_weights, as transformers' TF classes write a single file: a group per top-level layer, listing its
# weights' names (which begin with the Keras model's name) in a "weight_names" attribute, the root listing the
# layers in "layer_names". A shard of a sharded checkpoint instead holds one dataset per weight, named without the
# model's name, all listed in the root's "layer_names". Either list is split into name0, name1, ... past HDF5's
# attribute size limit. bfloat16 is stored as 2-byte opaque data with a "dtype" attribute, as Keras 3 does.

_H5_ATTRIBUTE_LIMIT = 64512
# The Keras model name written before each weight name; transformers' TF classes ignore it when loading.
_TF_SCOPE = "tf_model"


def _import_h5py(path: str):
    try:
        import h5py
    except ModuleNotFoundError as err:
        raise ImportError(
            f"{path} is a TensorFlow HDF5 checkpoint, and reading or writing it needs h5py, which is not installed: "
            f"pip install \"rosettazoo[formats]\""
        ) from err
    return h5py


def _strip_tf_scope(name: str) -> str:
    """A Keras weight name without the model's name, as transformers strips it: every name but top-level ones (a
    single component, or under a layer named with a dot such as BART's ``model.shared``) starts with it."""
    if "model." in name or "/" not in name:
        return name
    return name.split("/", 1)[1]


def _add_tf_scope(name: str) -> str:
    return name if "model." in name or "/" not in name else f"{_TF_SCOPE}/{name}"


def _h5_names(node, attribute: str) -> list[str]:
    if attribute in node.attrs:
        chunks = [node.attrs[attribute]]
    else:
        chunks = []
        while f"{attribute}{len(chunks)}" in node.attrs:
            chunks.append(node.attrs[f"{attribute}{len(chunks)}"])
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for chunk in chunks for n in chunk]


def _set_h5_names(node, attribute: str, names: list[str]) -> None:
    encoded = np.array([name.encode("utf8") for name in names])
    if encoded.itemsize > _H5_ATTRIBUTE_LIMIT:
        raise ValueError(f"a weight name longer than {_H5_ATTRIBUTE_LIMIT} bytes cannot be stored in HDF5")
    count = 1
    while encoded.nbytes > count * _H5_ATTRIBUTE_LIMIT:
        count += 1
    if count == 1:
        node.attrs[attribute] = encoded
        return
    for number, chunk in enumerate(np.array_split(encoded, count)):
        node.attrs[f"{attribute}{number}"] = chunk


class H5Shard:
    naming = "tf"

    def __init__(self, path: str):
        h5py = _import_h5py(path)
        self.path = path
        try:
            self._file = h5py.File(path, "r")
        except OSError as err:
            raise CheckpointError(
                f"{path} is not a readable HDF5 file ({err}); it is probably truncated or corrupt: re-download or "
                f"re-save it"
            ) from err
        try:
            self._datasets = self._list_datasets(h5py)
        except (OSError, KeyError, ValueError) as err:
            self._file.close()
            raise CheckpointError(
                f"{path} is not a TensorFlow checkpoint as transformers writes it ({err}); re-download or re-save it"
            ) from err
        self.names = list(self._datasets)

    def _list_datasets(self, h5py) -> dict[str, str]:
        """{weight name without the model's name: dataset path}."""
        layers = _h5_names(self._file, "layer_names")
        if not layers:
            raise ValueError("its root has no \"layer_names\" attribute")
        datasets = {}
        for layer in layers:
            node = self._file[layer]
            if isinstance(node, h5py.Dataset):  # a shard: the layer names are the weights' names
                datasets[layer] = layer
                continue
            for weight in _h5_names(node, "weight_names"):  # a tied weight is listed in each layer that uses it
                datasets.setdefault(_strip_tf_scope(weight), f"{layer}/{weight}")
        return datasets

    def _dataset(self, name: str):
        try:
            return self._file[self._datasets[name]]
        except (KeyError, OSError) as err:
            raise CheckpointError(
                f"{self.path}: tensor {name} cannot be read ({err}); the file is probably truncated or corrupt: "
                f"re-download or re-save it"
            ) from err

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._dataset(name).shape)

    def dtype(self, name: str) -> np.dtype:
        dataset = self._dataset(name)
        stored = dataset.attrs.get("dtype")
        if dataset.dtype.kind == "V" and stored is not None:
            return numpy_dtype(stored.decode() if isinstance(stored, bytes) else str(stored))
        if dataset.dtype.kind not in "biuf":
            raise CheckpointError(f"{self.path}: tensor {name} has HDF5 type {dataset.dtype}, which is not a number")
        return dataset.dtype

    def read(self, name: str) -> np.ndarray:
        dtype = self.dtype(name)
        try:
            array = np.asarray(self._dataset(name)[()])
        except OSError as err:
            raise CheckpointError(
                f"{self.path}: tensor {name} cannot be read ({err}); the file is probably truncated or corrupt: "
                f"re-download or re-save it"
            ) from err
        return array.view(dtype) if array.dtype != dtype else array

    def close(self) -> None:
        self._file.close()


def _h5_dataset(group, name: str, array: np.ndarray) -> None:
    array = np.asarray(array)
    if array.dtype.kind == "V":  # an ml_dtypes type (bfloat16): HDF5 has none, so store the bits and say so
        dataset = group.create_dataset(name, data=array.view(f"V{array.dtype.itemsize}"))
        dataset.attrs["dtype"] = array.dtype.name
    else:
        group.create_dataset(name, data=array)


def _write_h5(path: str, tensors: Mapping[str, np.ndarray], sharded: bool) -> None:
    h5py = _import_h5py(path)
    with h5py.File(path, "w") as f:
        if sharded:
            for name in tensors:
                _h5_dataset(f, name, tensors[name])
            _set_h5_names(f, "layer_names", list(tensors))
            return
        layers: dict[str, list[str]] = {}  # top-level Keras layer -> its weights' full names
        for name in tensors:
            layer, weight = keras_layer(name), _add_tf_scope(name)
            _h5_dataset(f.require_group(layer), weight, tensors[name])
            layers.setdefault(layer, []).append(weight)
        # Variables a layer holds from another (a tied LM head's embeddings): listed under it too, as hard links.
        for layer, linked in getattr(tensors, "keras_layer_links", {}).items():
            for name in linked:
                weight = _add_tf_scope(name)
                f[layer][weight] = f[f"{keras_layer(name)}/{weight}"]
                layers[layer].append(weight)
        _set_h5_names(f, "layer_names", list(layers))
        for layer, weights in layers.items():
            _set_h5_names(f[layer], "weight_names", weights)


# ---------------------------------------------------------------------------------------------------- flax_model.msgpack
# flax.serialization's layout: a msgpack map per level of the params tree; each array an ext value (code 1, or 3
# for a numpy scalar) whose payload is the msgpack array [shape, dtype name, raw C-order bytes]; an array over
# 1 GiB is a map {"__msgpack_chunked_array__": true, "shape": {"0": ...}, "chunks": {"0": flat piece, ...}}.
# Parsed here from a memory map without msgpack or JAX, so a tensor's bytes are read only when it is.

_EXT_NDARRAY, _EXT_NPSCALAR = 1, 3
_CHUNKED = "__msgpack_chunked_array__"
_MAX_CHUNK_BYTES = 2**30  # flax's chunk size
_MP_SIZED = {0xC4: ("bin", 1), 0xC5: ("bin", 2), 0xC6: ("bin", 4), 0xD9: ("str", 1), 0xDA: ("str", 2),
             0xDB: ("str", 4), 0xDC: ("array", 2), 0xDD: ("array", 4), 0xDE: ("map", 2), 0xDF: ("map", 4),
             0xC7: ("ext", 1), 0xC8: ("ext", 2), 0xC9: ("ext", 4)}
_MP_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
_MP_NUMBERS = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
               0xCA: ">f", 0xCB: ">d"}
_MP_CONSTANTS = {0xC0: ("nil", None), 0xC2: ("bool", False), 0xC3: ("bool", True)}


class _Corrupt(Exception):
    """msgpack data that ends early or does not encode a params tree; ``where`` names the tensor or subtree."""

    where = ""


class _MsgpackParser:
    """Reads msgpack values from a buffer one header at a time; binary payloads are returned as (offset, length)."""

    def __init__(self, buffer, pos: int = 0, end: int | None = None):
        self.buffer = buffer
        self.pos = pos
        self.end = len(buffer) if end is None else end

    def _take(self, size: int) -> bytes:
        if self.pos + size > self.end:
            raise _Corrupt("the data ends early")
        data = self.buffer[self.pos:self.pos + size]
        self.pos += size
        return data

    def _payload(self, size: int) -> tuple[int, int]:
        if self.pos + size > self.end:
            raise _Corrupt("the data ends early")
        self.pos += size
        return self.pos - size, size

    def next(self):
        """(kind, value): "map"/"array" give their length, "str" its text, "bin" (offset, length), "ext"
        (code, offset, length), numbers, nil and bools their value."""
        first = self._take(1)[0]
        if first <= 0x7F or first >= 0xE0:
            return "int", first if first <= 0x7F else first - 0x100
        if first <= 0x8F:
            return "map", first & 0x0F
        if first <= 0x9F:
            return "array", first & 0x0F
        if first <= 0xBF:
            return "str", self._text(first & 0x1F)
        if first in _MP_CONSTANTS:
            return _MP_CONSTANTS[first]
        if first in _MP_NUMBERS:
            fmt = _MP_NUMBERS[first]
            (value,) = struct.unpack(fmt, self._take(struct.calcsize(fmt)))
            return ("float" if fmt[-1] in "fd" else "int"), value
        if first in _MP_FIXEXT:
            code = struct.unpack(">b", self._take(1))[0]
            return "ext", (code, *self._payload(_MP_FIXEXT[first]))
        if first not in _MP_SIZED:
            raise _Corrupt(f"byte 0x{first:02x} at offset {self.pos - 1} starts no msgpack value")
        kind, width = _MP_SIZED[first]
        size = int.from_bytes(self._take(width), "big")
        if kind in ("map", "array"):
            return kind, size
        if kind == "str":
            return kind, self._text(size)
        if kind == "bin":
            return kind, self._payload(size)
        code = struct.unpack(">b", self._take(1))[0]
        return kind, (code, *self._payload(size))

    def _text(self, size: int) -> str:
        try:
            return self._take(size).decode("utf8")
        except UnicodeDecodeError as err:
            raise _Corrupt(f"a string at offset {self.pos - size} is not UTF-8") from err

    def skip(self) -> None:
        kind, value = self.next()
        if kind in ("map", "array"):
            for _ in range(value * (2 if kind == "map" else 1)):
                self.skip()


@dataclass(frozen=True)
class _FlaxTensor:
    shape: tuple[int, ...]
    dtype: np.dtype
    pieces: tuple[tuple[int, int], ...]  # (offset, length) of the raw bytes, one per chunk


class MsgpackShard:
    naming = "flax"

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            try:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as err:  # an empty file cannot be mapped
                raise CheckpointError(f"{path} is empty, not a flax_model.msgpack; re-download or re-save it") from err
        self._tensors: dict[str, _FlaxTensor] = {}
        parser = _MsgpackParser(self._map)
        try:
            self._read_tree(parser, [])
            if parser.pos != parser.end:
                raise _Corrupt(f"{parser.end - parser.pos} bytes follow the params tree")
        except _Corrupt as err:
            self.close()
            where = f" at {err.where}" if err.where else ""
            raise CheckpointError(
                f"{path} is not a readable flax_model.msgpack ({err}{where}); it is probably truncated or corrupt: "
                f"re-download or re-save it"
            ) from err
        self.names = list(self._tensors)

    def _read_tree(self, parser: _MsgpackParser, path: list[str]) -> None:
        name = "/".join(path)
        try:
            kind, value = parser.next()
            if kind == "ext":
                self._tensors[name] = self._array(name, *value)
                return
            if kind != "map":
                raise _Corrupt(f"a msgpack {kind} where a params tree holds a map or an array")
            for index in range(value):
                key = self._key(parser)
                if index == 0 and key == _CHUNKED:  # flax writes this marker first
                    self._tensors[name] = self._chunked(parser, name, value - 1)
                    return
                self._read_tree(parser, [*path, key])
        except _Corrupt as err:
            err.where = err.where or name or "the root"  # the innermost tree node names the place
            raise

    @staticmethod
    def _key(parser: _MsgpackParser) -> str:
        kind, key = parser.next()
        if kind != "str":
            raise _Corrupt(f"a msgpack {kind} where a params tree has a string key")
        return key

    def _array(self, name: str, code: int, offset: int, length: int) -> _FlaxTensor:
        """An ndarray ext value: its payload is [shape, dtype name, bytes]."""
        if code not in (_EXT_NDARRAY, _EXT_NPSCALAR):
            raise _Corrupt(f"msgpack extension type {code}, which is not a flax array")
        parser = _MsgpackParser(self._map, offset, offset + length)
        kind, count = parser.next()
        shape_kind, rank = parser.next()
        if kind != "array" or count != 3 or shape_kind != "array":
            raise _Corrupt("an array not encoded as [shape, dtype, bytes]")
        shape = tuple(self._size(parser) for _ in range(rank))
        dtype_kind, dtype_name = parser.next()
        data_kind, data = parser.next()
        if dtype_kind != "str" or data_kind != "bin":
            raise _Corrupt("an array not encoded as [shape, dtype, bytes]")
        try:
            dtype = numpy_dtype(dtype_name)
        except TypeError as err:
            raise _Corrupt(f"dtype {dtype_name!r}, which numpy lacks") from err
        expected = math.prod(shape) * dtype.itemsize
        if data[1] != expected:
            raise _Corrupt(f"{data[1]} bytes, where shape {list(shape)} and dtype {dtype.name} need {expected}")
        return _FlaxTensor(shape, dtype, (data,))

    @staticmethod
    def _size(parser: _MsgpackParser) -> int:
        kind, value = parser.next()
        if kind != "int" or value < 0:
            raise _Corrupt(f"a msgpack {kind} in a shape")
        return value

    def _chunked(self, parser: _MsgpackParser, name: str, remaining: int) -> _FlaxTensor:
        """flax's split form of an array over 1 GiB: {marker: true, "shape": {"0": size, ...}, "chunks": {"0":
        flat piece, ...}}, the marker already read."""
        parser.next()  # the marker's value
        parts = {}
        for _ in range(remaining):
            key = self._key(parser)
            kind, count = parser.next()
            if kind != "map" or key not in ("shape", "chunks"):
                raise _Corrupt(f"a chunked array with an unexpected entry {key!r}")
            read = self._size if key == "shape" else lambda p: self._array(name, *self._ext(p))
            values = {self._key(parser): read(parser) for _ in range(count)}
            if sorted(values) != sorted(map(str, range(count))):
                raise _Corrupt(f"a chunked array whose {key} are not numbered 0 to {count - 1}")
            parts[key] = [values[str(i)] for i in range(count)]
        shape, chunks = parts.get("shape"), parts.get("chunks")
        if shape is None or not chunks or any(c.dtype != chunks[0].dtype for c in chunks):
            raise _Corrupt("a chunked array without its shape, or with missing or mixed chunks")
        pieces = tuple(piece for chunk in chunks for piece in chunk.pieces)
        if sum(length for _, length in pieces) != math.prod(shape) * chunks[0].dtype.itemsize:
            raise _Corrupt(f"chunks that do not fill the shape {shape}")
        return _FlaxTensor(tuple(shape), chunks[0].dtype, pieces)

    @staticmethod
    def _ext(parser: _MsgpackParser) -> tuple[int, int, int]:
        kind, value = parser.next()
        if kind != "ext":
            raise _Corrupt(f"a msgpack {kind} where an array chunk belongs")
        return value

    def shape(self, name: str) -> tuple[int, ...]:
        return self._tensors[name].shape

    def dtype(self, name: str) -> np.dtype:
        return self._tensors[name].dtype

    def read(self, name: str) -> np.ndarray:
        tensor = self._tensors[name]
        out = np.empty(tensor.shape, tensor.dtype)
        flat = out.reshape(-1).view(np.uint8)
        filled = 0
        for offset, length in tensor.pieces:
            flat[filled:filled + length] = np.frombuffer(self._map, np.uint8, length, offset)
            filled += length
        return out

    def close(self) -> None:
        self._map.close()


def _msgpack_header(small: int, widths: tuple[tuple[int, int], ...], size: int, fix_limit: int) -> bytes:
    """The header of a msgpack str/bin/array/map/ext of ``size``: a fix form below ``fix_limit``, else the first
    (type byte, width) that holds it."""
    if size < fix_limit:
        return bytes([small | size])
    for type_byte, width in widths:
        if size < 1 << (8 * width):
            return bytes([type_byte]) + size.to_bytes(width, "big")
    raise ValueError(f"{size} is too large for msgpack")


def _pack_str(text: str) -> bytes:
    data = text.encode("utf8")
    return _msgpack_header(0xA0, ((0xD9, 1), (0xDA, 2), (0xDB, 4)), len(data), 32) + data


def _pack_map_header(size: int) -> bytes:
    return _msgpack_header(0x80, ((0xDE, 2), (0xDF, 4)), size, 16)


def _pack_uint(value: int) -> bytes:
    return _msgpack_header(0x00, ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)), value, 128)


def _pack_array_bytes(f, array: np.ndarray) -> None:
    """One ndarray ext value; the array's bytes are written from its memory, not copied into a payload."""
    array = np.asarray(array, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
    header = (_msgpack_header(0x90, ((0xDC, 2), (0xDD, 4)), array.ndim, 16)
              + b"".join(_pack_uint(size) for size in array.shape))
    header = b"\x93" + header + _pack_str(array.dtype.name)
    header += _msgpack_header(0, ((0xC4, 1), (0xC5, 2), (0xC6, 4)), array.nbytes, 0)
    ext = _msgpack_header(0, ((0xC7, 1), (0xC8, 2), (0xC9, 4)), len(header) + array.nbytes, 0)
    f.write(ext + bytes([_EXT_NDARRAY]) + header)
    f.write(array.reshape(-1).view(np.uint8).data)


def _pack_array(f, array: np.ndarray) -> None:
    if array.nbytes <= _MAX_CHUNK_BYTES:
        _pack_array_bytes(f, array)
        return
    flat = np.ascontiguousarray(array).reshape(-1)
    step = max(1, _MAX_CHUNK_BYTES // array.dtype.itemsize)
    starts = range(0, flat.size, step)
    f.write(_pack_map_header(3) + _pack_str(_CHUNKED) + b"\xc3" + _pack_str("shape")
            + _pack_map_header(array.ndim)
            + b"".join(_pack_str(str(i)) + _pack_uint(size) for i, size in enumerate(array.shape))
            + _pack_str("chunks") + _pack_map_header(len(starts)))
    for number, start in enumerate(starts):
        f.write(_pack_str(str(number)))
        _pack_array_bytes(f, flat[start:start + step])


def _nest(names) -> dict:
    """{"a/b/c": ...} names as a tree of dicts whose leaves are the names."""
    tree: dict = {}
    for name in names:
        *parents, leaf = name.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"the tensor names {name} and {'/'.join(parents)} clash in a params tree")
        if leaf in node:
            raise ValueError(f"the tensor name {name} clashes with another in a params tree")
        node[leaf] = name
    return tree


def _write_msgpack(path: str, tensors: Mapping[str, np.ndarray], sharded: bool) -> None:
    # A shard holds a nested tree as a single file does (transformers unflattens each shard before saving it).
    def write_tree(f, node: dict) -> None:
        f.write(_pack_map_header(len(node)))
        for key, child in node.items():
            f.write(_pack_str(key))
            if isinstance(child, dict):
                write_tree(f, child)
            else:
                _pack_array(f, np.asarray(tensors[child]))

    tree = _nest(tensors)
    with open(path, "wb") as f:
        write_tree(f, tree)


# ---------------------------------------------------------------------------------------------------- the formats


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint layout: its file names, a reader of one file and a writer of one file.

    ``naming`` says how the files it writes name tensors: "pt" (canonical), "tf" or "flax" (transformers' TF /
    Flax names); a reader says how its file does (safetensors written by transformers' TF or Flax classes use
    theirs). ``requires`` is the module reading and writing it needs, if any.
    """

    name: str
    single_name: str
    naming: str
    opener: Callable[[str], object] = field(repr=False)
    writer: Callable[[str, Mapping[str, np.ndarray], bool], None] = field(repr=False)
    requires: str | None = None

    @property
    def index_name(self) -> str:
        return self.single_name + ".index.json"

    def shard_name(self, number: int, count: int) -> str:
        """transformers' shard file names: model-00001-of-00002.safetensors, tf_model-00001-of-00002.h5, ..."""
        stem, _, extension = self.single_name.rpartition(".")
        return f"{stem}-{number:05d}-of-{count:05d}.{extension}"

    def write(self, path: str, tensors: Mapping[str, np.ndarray], *, sharded: bool = False) -> None:
        """Write one file at ``path`` holding ``tensors`` (keys are the names the file stores); ``sharded`` when the
        file is one shard of an indexed checkpoint."""
        self.writer(path, tensors, sharded)

    def open(self, path: str):
        """A reader of one file: ``names``, ``naming``, ``shape(name)``, ``dtype(name)``, ``read(name)``,
        ``close()``."""
        return self.opener(path)

    def available(self) -> bool:
        """Whether the module that reads this format is installed."""
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


SAFETENSORS = CheckpointFormat("safetensors", "model.safetensors", "pt", SafetensorsShard, _write_safetensors)
PYTORCH = CheckpointFormat("pytorch", "pytorch_model.bin", "pt", TorchShard, _write_torch, requires="torch")
TF = CheckpointFormat("tf", "tf_model.h5", "tf", H5Shard, _write_h5, requires="h5py")
FLAX = CheckpointFormat("flax", "flax_model.msgpack", "flax", MsgpackShard, _write_msgpack)

FORMATS = {fmt.name: fmt for fmt in (SAFETENSORS, PYTORCH, TF, FLAX)}
# The layout open_checkpoint reads when a folder holds several (transformers' order for PyTorch).
READ_ORDER: tuple[CheckpointFormat, ...] = (SAFETENSORS, PYTORCH, TF, FLAX)


def checkpoint_format(name: str) -> CheckpointFormat:
    """The format called ``name`` ("safetensors", "pytorch", "tf" or "flax")."""
    if name not in FORMATS:
        raise ValueError(f"unknown checkpoint format {name!r}; choose one of {', '.join(map(repr, FORMATS))}")
    return FORMATS[name]
