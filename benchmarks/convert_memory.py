"""Peak memory of ``rosettazoo convert`` between every pair of checkpoint formats, against the largest shard.

A synthetic float16 checkpoint shaped like OPT-1.3b (hidden 2048, 24 layers: 2.6 GB in one file) is written in
each source format; each conversion runs alone in a child process, whose peak resident set size (VmHWM of its own address space:
ru_maxrss would also count the parent's size at the fork) is compared with the largest weight file read or
written. The goal is <= 1.5x. "baseline" is the peak of
a child that imports the same modules and opens the source without reading a tensor (the interpreter, numpy and
the framework a format needs, e.g. torch for pytorch_model.bin). Files are deleted as soon as they are measured.

    python benchmarks/convert_memory.py [--folder DIR] [--hidden 2048] [--layers 24] [--sources safetensors ...]
                                        [--targets pytorch ...]
                                        [--max-shard-size 500MB]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping

import numpy as np

from rosettazoo.common.checkpoint import save_checkpoint
from rosettazoo.common.formats import FORMATS
from rosettazoo.opt import OPTConfig

# Each child prints its peak resident set size, in kB, as its last line.
PEAK = """
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""
CONVERT = """
import sys
from rosettazoo.conversion import convert_checkpoint
convert_checkpoint(sys.argv[1], sys.argv[2], format=sys.argv[3], max_shard_size=sys.argv[4] if len(sys.argv) > 4 else None)
""" + PEAK
OPEN_ONLY = """
import sys
from rosettazoo.common.checkpoint import open_checkpoint
import rosettazoo.conversion.cli
with open_checkpoint(sys.argv[1]) as checkpoint:
    checkpoint.shape(next(iter(checkpoint)))
if sys.argv[3] == "pytorch":
    import torch  # the writer's framework
""" + PEAK
GB = 1e9


def opt_config(hidden: int, layers: int) -> OPTConfig:
    return OPTConfig(vocab_size=50272, hidden_size=hidden, num_hidden_layers=layers, ffn_dim=4 * hidden,
                     num_attention_heads=hidden // 64, max_position_embeddings=2048, word_embed_proj_dim=hidden,
                     architectures=["OPTForCausalLM"])


def opt_shapes(config: OPTConfig) -> dict[str, tuple[int, ...]]:
    """The canonical tensors of OPTForCausalLM (lm_head tied to the token embeddings, so not stored)."""
    hidden, ffn = config.hidden_size, config.ffn_dim
    shapes = {"model.decoder.embed_tokens.weight": (config.vocab_size, hidden),
              "model.decoder.embed_positions.weight": (config.max_position_embeddings + 2, hidden)}
    for i in range(config.num_hidden_layers):
        layer = f"model.decoder.layers.{i}."
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{layer}self_attn.{projection}.weight"] = (hidden, hidden)
            shapes[f"{layer}self_attn.{projection}.bias"] = (hidden,)
        shapes[f"{layer}fc1.weight"], shapes[f"{layer}fc1.bias"] = (ffn, hidden), (ffn,)
        shapes[f"{layer}fc2.weight"], shapes[f"{layer}fc2.bias"] = (hidden, ffn), (hidden,)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            shapes[f"{layer}{norm}.weight"], shapes[f"{layer}{norm}.bias"] = (hidden,), (hidden,)
    shapes["model.decoder.final_layer_norm.weight"] = shapes["model.decoder.final_layer_norm.bias"] = (hidden,)
    return shapes


class Synthetic(Mapping):
    """Random float16 tensors of the given shapes, made one at a time when read."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self._shapes = shapes

    def __getitem__(self, name: str) -> np.ndarray:
        seed = sum(map(ord, name))
        return np.random.default_rng(seed).standard_normal(self._shapes[name], np.float32).astype(np.float16)

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def dtype(self, name: str) -> np.dtype:
        return np.dtype(np.float16)


def write_source(folder: str, config: OPTConfig, fmt: str, max_shard_size: str | None) -> None:
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump({**config.to_dict(), "dtype": "float16"}, f, indent=2)
    save_checkpoint(folder, Synthetic(opt_shapes(config)), format=fmt, max_shard_size=max_shard_size)


def peak_rss(code: str, *args: str) -> int:
    """The peak resident set size in bytes of ``python -c code *args``."""
    done = subprocess.run([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, check=True)
    return int(done.stdout.split()[-1]) * 1024


def largest_weight_file(folder: str) -> int:
    return max(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if not n.endswith(".json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where to write the checkpoints (default: a temporary folder)")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--sources", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--targets", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--max-shard-size", help="shard the source and the target, e.g. 500MB (default: one file)")
    args = parser.parse_args()
    config = opt_config(args.hidden, args.layers)
    size = sum(math.prod(shape) for shape in opt_shapes(config).values()) * 2
    print(f"synthetic OPT checkpoint: hidden {args.hidden}, {args.layers} layers, float16, {size / GB:.2f} GB")
    print(f"{'source':12} {'target':12} {'peak RSS':>9} {'baseline':>9} {'largest':>9} {'peak/largest':>13}")
    work = tempfile.mkdtemp(prefix="convert-memory-", dir=args.folder)
    try:
        for source_format in args.sources:
            source = os.path.join(work, "source")
            write_source(source, config, source_format, args.max_shard_size)
            for target_format in args.targets:
                target = os.path.join(work, "target")
                shards = [args.max_shard_size] if args.max_shard_size else []
                peak = peak_rss(CONVERT, source, target, target_format, *shards)
                baseline = peak_rss(OPEN_ONLY, source, target, target_format)
                largest = max(largest_weight_file(source), largest_weight_file(target))
                shutil.rmtree(target)
                print(f"{source_format:12} {target_format:12} {peak / GB:8.2f}G {baseline / GB:8.2f}G "
                      f"{largest / GB:8.2f}G {peak / largest:12.2f}x", flush=True)
            shutil.rmtree(source)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
