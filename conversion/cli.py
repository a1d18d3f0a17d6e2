"""``python -m rosettazoo.conversion SRC DST``: rewrite a checkpoint as config.json + model.safetensors.

The source is any model folder or hub id (safetensors or pytorch_model.bin, sharded or not); tensors pass
through one at a time as numpy, so no framework is needed except torch for reading a .bin.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator, Mapping

import ml_dtypes
import numpy as np

from ..common.checkpoint import open_checkpoint, parse_size, save_checkpoint
from ..common.config import CONFIG_NAME
from ..common.hub import resolve_optional_file
from ..common.io import atomic_write

DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
_FLOATS = {np.dtype(np.float64), *(np.dtype(t) for t in DTYPES.values())}


class _Cast(Mapping):
    """A lazy view of a checkpoint with its floating-point tensors cast to ``dtype`` (integers kept)."""

    def __init__(self, tensors, dtype):
        self._tensors = tensors
        self._dtype = np.dtype(dtype)

    def _target(self, stored: np.dtype) -> np.dtype:
        return self._dtype if stored in _FLOATS else stored

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._tensors[name]
        return array.astype(self._target(array.dtype), copy=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._tensors.shape(name)

    def dtype(self, name: str) -> np.dtype:
        return self._target(self._tensors.dtype(name))


def convert_checkpoint(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    dtype: str | None = None,
    max_shard_size: int | str | None = None,
    overwrite: bool = False,
    **hub_kwargs,
) -> None:
    """Write ``source``'s config.json (unchanged) and weights (as safetensors, cast to ``dtype``) to ``destination``."""
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    parse_size(max_shard_size)  # a bad size fails before anything is read or written
    config_path = resolve_optional_file(source, CONFIG_NAME, **hub_kwargs)
    config_target = os.path.join(os.fspath(destination), CONFIG_NAME)
    if config_path is not None and os.path.exists(config_target) and not overwrite:
        raise FileExistsError(f"{config_target} already exists; pass overwrite=True (--overwrite) to replace it")
    with open_checkpoint(source, **hub_kwargs) as checkpoint:
        tensors = checkpoint if dtype is None else _Cast(checkpoint, DTYPES[dtype])
        save_checkpoint(destination, tensors, overwrite=overwrite, max_shard_size=max_shard_size)
    if config_path is not None:
        atomic_write(config_target, lambda tmp: shutil.copyfile(config_path, tmp), overwrite=overwrite)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rosettazoo.conversion",
        description="Rewrite a Hugging Face checkpoint (folder or hub id; safetensors or pytorch_model.bin, sharded "
                    "or not) as config.json + model.safetensors, tensor by tensor.",
    )
    parser.add_argument("source", help="a model folder or a hub id")
    parser.add_argument("destination", help="the folder to write")
    parser.add_argument("--dtype", choices=list(DTYPES), help="cast floating-point tensors (default: keep each dtype)")
    parser.add_argument("--max-shard-size", help="split the weights into shards of at most this size, e.g. 2GB")
    parser.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in the destination")
    parser.add_argument("--revision", help="hub branch, tag or commit")
    parser.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE or HF_HOME/hub)")
    parser.add_argument("--local-files-only", action="store_true", help="use only the cache, never the network")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        convert_checkpoint(
            args.source, args.destination, dtype=args.dtype, overwrite=args.overwrite, max_shard_size=args.max_shard_size,
            revision=args.revision, cache_dir=args.cache_dir, local_files_only=args.local_files_only,
        )
    except (OSError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.destination}")
    return 0
