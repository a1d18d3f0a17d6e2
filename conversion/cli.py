"""The converter's Python API and the ``rosettazoo`` command line.

    rosettazoo convert SRC DST [--format safetensors|pytorch|tf|flax] [--dtype float32|bfloat16|float16]
                               [--max-shard-size 2GB] [--overwrite]
    rosettazoo info SRC
    rosettazoo generate MODEL PROMPT... [--framework pt|tf|flax] [generation settings]
    rosettazoo fill-mask MODEL "text with <mask>" [--framework pt|tf|flax] [--top-k 5]
    rosettazoo demo [--frameworks pt,tf,flax]

``convert_checkpoint`` rewrites a model folder or hub id (config.json, weights in any layout we read, and its
generation config and tokenizer files) in another layout or dtype; tensors pass through one at a time as numpy,
so no framework is needed except torch for pytorch_model.bin. ``checkpoint_info`` describes a checkpoint.
``python -m rosettazoo.conversion SRC DST ...`` (no subcommand) is the older spelling of ``convert``. The
generate, fill-mask and demo commands live in ``rosettazoo.commands``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
from tqdm.auto import tqdm

from ..bundled import is_bundled_id, local_folder, model_card_summary
from ..commands import COMMANDS, add_parsers
from ..commands import run as run_command
from ..common.checkpoint import open_checkpoint, parse_size, stage_weights
from ..common.config import CONFIG_NAME, read_json_object
from ..common.formats import FORMATS, checkpoint_format
from ..common.hub import is_offline, resolve_file, resolve_optional_file
from ..common.io import FolderSave
from ..common.pretrained import is_checkpoint_file
from ..common.tokenization import (
    MERGES_NAME,
    SPECIAL_TOKENS_MAP_NAME,
    TOKENIZER_CONFIG_NAME,
    TOKENIZER_NAME,
    VOCAB_NAME,
)
from ..generation.config import GENERATION_CONFIG_NAME
from .families import weights_spec_for
from .rules import StoredTensors

DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
_FLOATS = {np.dtype(np.float64), *(np.dtype(t) for t in DTYPES.values())}
TOKENIZER_FILES = (TOKENIZER_NAME, VOCAB_NAME, MERGES_NAME, TOKENIZER_CONFIG_NAME, SPECIAL_TOKENS_MAP_NAME,
                   "added_tokens.json")
# What a conversion copies besides config.json and the weights, when the source has them: the destination is
# then a whole model folder (weights, settings, tokenizer) in the new layout.
COPIED_FILES = (GENERATION_CONFIG_NAME, *TOKENIZER_FILES)
_FLOAT16_MAX = float(np.finfo(np.float16).max)


class Float16OverflowError(ValueError):
    """A cast to float16 that would turn finite values into infinities."""


# ---------------------------------------------------------------------------------------------------- convert


class _LazyView(Mapping):
    """A lazy mapping over another (a checkpoint reader or view) that passes names, shapes and dtypes through;
    subclasses change what reading a tensor does."""

    def __init__(self, tensors):
        self._tensors = tensors

    def __getitem__(self, name: str) -> np.ndarray:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._tensors.shape(name)

    def dtype(self, name: str) -> np.dtype:
        return self._tensors.dtype(name)


class _Cast(_LazyView):
    """A lazy view of a checkpoint with its floating-point tensors cast to ``dtype`` (integers kept).

    A cast to float16 refuses a tensor with finite values beyond float16's range (they would become inf), or, with
    ``clip``, clips them to +-65504 and counts them in ``clipped``.
    """

    def __init__(self, tensors, dtype, clip: bool):
        super().__init__(tensors)
        self._dtype = np.dtype(dtype)
        self._clip = clip
        self.clipped: Counter[str] = Counter()  # tensor name -> values clipped

    def _target(self, stored: np.dtype) -> np.dtype:
        return self._dtype if stored in _FLOATS else stored

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._tensors[name]
        target = self._target(array.dtype)
        if target == array.dtype:
            return array
        return self._to_float16(name, array) if target == np.float16 else array.astype(target)

    def _to_float16(self, name: str, array: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # overflow is counted below, and refused or clipped
            cast = array.astype(np.float16)
        overflowed = int(np.count_nonzero(np.isinf(cast))) - int(np.count_nonzero(np.isinf(array)))
        if overflowed == 0:
            return cast
        if not self._clip:
            raise Float16OverflowError(
                f"{name} holds {overflowed} finite value(s) beyond float16's range (+-{_FLOAT16_MAX:g}), which would "
                f"become inf; convert to bfloat16 instead, or clip them with --clip-float16 (clip_float16=True)"
            )
        self.clipped[name] = overflowed
        # Infinities the checkpoint already held stay infinite; only the finite values that overflow are clipped.
        return np.where(np.isfinite(array), np.clip(array, -_FLOAT16_MAX, _FLOAT16_MAX), array).astype(np.float16)

    def dtype(self, name: str) -> np.dtype:
        return self._target(self._tensors.dtype(name))


class _Progress(_LazyView):
    """A lazy view that advances a tqdm bar (bytes, with the count of tensors) as each tensor is read."""

    def __init__(self, tensors, bar: tqdm):
        super().__init__(tensors)
        self._bar = bar
        self._seen: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._tensors[name]
        if name not in self._seen:
            self._seen.add(name)
            self._bar.update(array.nbytes)
            self._bar.set_postfix_str(f"{len(self._seen)}/{len(self._tensors)} tensors", refresh=False)
        return array


def _nbytes(tensors, name: str) -> int:
    return math.prod(tensors.shape(name)) * np.dtype(tensors.dtype(name)).itemsize


@dataclass
class ConversionReport:
    """What ``convert_checkpoint`` wrote."""

    destination: str
    format: str
    tensors: int
    bytes: int
    copied: list[str] = field(default_factory=list)  # files copied besides config.json and the weights
    clipped: dict[str, int] = field(default_factory=dict)  # float16 casts: tensor -> values clipped to +-65504

    def summary(self) -> str:
        size = tqdm.format_sizeof(self.bytes, "B", 1024)
        lines = [f"wrote {self.destination}: {self.tensors} tensors, {size} as {self.format}"
                 + (f", with {', '.join(self.copied)}" if self.copied else "")]
        if self.clipped:
            worst = ", ".join(f"{name} ({count})" for name, count in sorted(self.clipped.items()))
            lines.append(f"clipped {sum(self.clipped.values())} value(s) beyond float16's range to +-{_FLOAT16_MAX:g} "
                         f"in {len(self.clipped)} tensor(s): {worst}")
        return "\n".join(lines)


def config_with_dtype(values: dict[str, Any], dtype: str) -> dict[str, Any]:
    """config.json's values saying the weights are now ``dtype``: "dtype", as transformers 4.57 writes it, and
    "torch_dtype" too when the file had it (older transformers read only that)."""
    updated = {**values, "dtype": dtype}
    if "torch_dtype" in values:
        updated["torch_dtype"] = dtype
    return updated


def convert_checkpoint(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    format: str = "safetensors",  # noqa: A002 (the name users know from the command line and save_pretrained)
    dtype: str | None = None,
    max_shard_size: int | str | None = None,
    overwrite: bool = False,
    clip_float16: bool = False,
    progress: bool = False,
    **hub_kwargs: Any,
) -> ConversionReport:
    """Rewrite the model at ``source`` (a folder or hub id) in ``destination`` as ``format``.

    Writes config.json (its ``dtype`` updated when ``dtype`` casts the floating-point weights), the weights
    (sharded past ``max_shard_size``), and copies of the source's generation_config.json and tokenizer files
    (``COPIED_FILES``). The weights pass one tensor at a time. The destination changes all at once (see
    ``common.io.FolderSave``): a failure or a kill at any point leaves it as it was, or wholly converted. An
    existing checkpoint, config or copied file there is replaced only with ``overwrite``. A cast to float16
    refuses values that would overflow to inf unless ``clip_float16``. ``progress`` shows a tqdm bar.
    ``hub_kwargs``: ``revision``, ``cache_dir``, ``local_files_only``, ``token``.
    """
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    checkpoint_format(format)  # a bad format or size fails before anything is read or written
    parse_size(max_shard_size)
    config_path = resolve_optional_file(source, CONFIG_NAME, **hub_kwargs)
    if config_path is None:
        raise FileNotFoundError(
            f"{os.fspath(source)} has no {CONFIG_NAME}; the converter copies whole models (config and weights), "
            f"so add the model's {CONFIG_NAME} to the source"
        )
    config = read_json_object(config_path)
    copies = {name: path for name in COPIED_FILES
              if (path := resolve_optional_file(source, name, **hub_kwargs)) is not None}
    copies = {CONFIG_NAME: config_path, **copies} if dtype is None else copies  # unchanged: copied byte for byte

    def owns(name: str) -> bool:  # what the conversion replaces: the checkpoint and the files it copies
        return is_checkpoint_file(name) or name in copies

    hint = "pass overwrite=True (--overwrite) to replace them"
    with open_checkpoint(source, **hub_kwargs) as checkpoint, FolderSave(destination, owns, overwrite=overwrite,
                                                                         hint=hint) as save:
        cast = _Cast(checkpoint, DTYPES[dtype], clip_float16) if dtype is not None else None
        tensors = cast if cast is not None else checkpoint
        total = sum(_nbytes(tensors, name) for name in tensors)
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"converting to {format}",
                  disable=not progress, file=sys.stderr) as bar:
            fmt, weights = checkpoint_format(format), _Progress(tensors, bar)
            if fmt.naming != "pt":  # tf_model.h5 / flax_model.msgpack name tensors as the family's TF / Flax classes
                weights = StoredTensors(weights, weights_spec_for(config), fmt.naming)
            stage_weights(save, weights, fmt, parse_size(max_shard_size))
        if dtype is not None:
            save.stage_text(CONFIG_NAME, json.dumps(config_with_dtype(config, dtype), indent=2) + "\n")
        for name, path in copies.items():
            save.stage(name, lambda tmp, path=path: shutil.copyfile(path, tmp))
        count = len(checkpoint)
    copied = [name for name in copies if name != CONFIG_NAME]
    return ConversionReport(os.fspath(destination), format, count, total, copied, dict(cast.clipped) if cast else {})


# ---------------------------------------------------------------------------------------------------- info


@dataclass
class CheckpointInfo:
    """What ``rosettazoo info`` shows about a model folder or hub repository."""

    source: str
    model_type: Any
    family: str | None  # the class-name prefix ("RobertaPreLayerNorm"), None for a model_type rosettazoo lacks
    architectures: list[str]
    config_dtype: Any
    checkpoint: str  # the files the counts come from (the layout loading reads)
    parameters: dict[str, int]  # dtype name -> parameter count
    formats: dict[str, list[str]]  # format name -> its files (the index and shards of a sharded checkpoint)
    heads: list[str]  # classes whose weights the checkpoint holds
    tokenizer_files: list[str]
    unexplained: list[str]  # tensors the config does not account for, each with the reason
    bundled_folder: str | None = None  # the package folder of a model bundled with rosettazoo
    model_card: list[str] = field(default_factory=list)  # the first lines of the model card (README.md), if any

    def describe(self) -> str:
        params = ", ".join(f"{count:,} {dtype}" for dtype, count in self.parameters.items()) or "none"
        formats = "; ".join(f"{name}: {', '.join(files)}" for name, files in self.formats.items())
        rows = [
            ("source", self.source),
            ("family", f"{self.family} (model_type {self.model_type!r})" if self.family
             else f"model_type {self.model_type!r}, which rosettazoo does not support"),
            ("architectures", ", ".join(self.architectures) or "not given"),
            ("config dtype", str(self.config_dtype) if self.config_dtype is not None else "not given"),
            ("parameters", f"{sum(self.parameters.values()):,} ({params}), from {self.checkpoint}"),
            ("formats", formats),
            ("heads", ", ".join(self.heads) if self.heads else "none (the family is not supported)"),
            ("tokenizer", ", ".join(self.tokenizer_files) or "no tokenizer files"),
            ("unexplained", "\n  ".join(["", *self.unexplained]) if self.unexplained else "none"),
        ]
        if self.bundled_folder is not None:
            rows.append(("bundled", f"yes, in {self.bundled_folder}"))
        if self.model_card:
            rows.append(("model card", "\n  ".join(["", *self.model_card])))
        return "\n".join(f"{key + ':':15}{value}" for key, value in rows)


def _repository_files(source: str | os.PathLike, hub_kwargs: dict[str, Any]) -> list[str]:
    """The file names of a folder, of a hub repository, or (offline) of its snapshot in the cache."""
    name = local_folder(source)
    if os.path.isdir(name):
        return sorted(os.listdir(name))
    if is_offline(hub_kwargs.get("local_files_only", False)):
        return sorted(os.listdir(os.path.dirname(resolve_file(name, CONFIG_NAME, **hub_kwargs))))
    from huggingface_hub import HfApi

    return sorted(HfApi().list_repo_files(name, revision=hub_kwargs.get("revision"), token=hub_kwargs.get("token")))


def _formats_present(source, files: list[str], hub_kwargs: dict[str, Any]) -> dict[str, list[str]]:
    present = {}
    for fmt in FORMATS.values():
        if fmt.single_name in files:
            present[fmt.name] = [fmt.single_name]
        elif fmt.index_name in files:
            index = read_json_object(resolve_file(source, fmt.index_name, **hub_kwargs))
            shards = sorted(set((index.get("weight_map") or {}).values()))
            present[fmt.name] = [f"{fmt.index_name} ({len(shards)} shards)", *shards]
    return present


def _servable_heads(family, names: set[str], shapes: Mapping[str, tuple[int, ...]], config: dict[str, Any]) -> list[str]:
    """The family's classes whose head tensors the checkpoint holds (with the labels the config gives)."""
    base = family.base_prefix + "."
    outside = {name.removeprefix(base) for name in names}
    num_labels = len(config.get("id2label") or {}) or config.get("num_labels") or 2
    heads = []
    for head in family.heads():
        needed = list(family.head_tensors.get(head, ()))
        if head in ("ForMaskedLM", "ForCausalLM", "ForConditionalGeneration") and not config.get(
                "tie_word_embeddings", True):
            needed.append(family.untied_output)
        if not all(name in outside for name in needed):
            continue
        rows = shapes.get("classifier.weight", (None,))[0]
        if head == "ForMultipleChoice" and rows != 1 or head == "ForTokenClassification" and rows != num_labels:
            continue  # both use classifier.weight: one row is a multiple-choice scorer, num_labels rows a tagger
        heads.append(family.prefix + head)
    return heads


def _unexplained(family, names: list[str], shapes: Mapping[str, tuple[int, ...]], config: dict[str, Any]) -> list[str]:
    """Tensors the config does not account for: layers beyond its depth, embeddings of another vocabulary size,
    and modules no class of the family has."""
    known_modules = {family.base_prefix, *family.base_modules, "final_logits_bias",
                     *(name.split(".")[0] for tensors in family.head_tensors.values() for name in tensors),
                     family.untied_output.split(".")[0]}
    found = []
    for name in names:
        if name.split(".")[0] not in known_modules:
            found.append(f"{name}: no {family.prefix} class has a module {name.split('.')[0]!r}")
            continue
        layer = re.search(r"(?:^|\.)(encoder|decoder)\.layers?\.(\d+)\.", name)
        if layer:
            side, index = layer.group(1), int(layer.group(2))
            depth = config.get(f"{side}_layers", config.get("num_hidden_layers"))
            if isinstance(depth, int) and index >= depth:
                found.append(f"{name}: layer {index}, but the config has {depth} {side} layers")
                continue
        if re.search(r"(word_embeddings|embed_tokens|shared)\.weight$", name):
            rows = shapes[name][0]
            if rows != config.get("vocab_size", rows):
                found.append(f"{name}: {rows} rows, but the config's vocab_size is {config['vocab_size']}")
    return found


def checkpoint_info(source: str | os.PathLike, **hub_kwargs: Any) -> CheckpointInfo:
    """Describe the model at ``source`` (a folder or hub id) from its config.json and its tensors' metadata
    (no tensor is read). See ``CheckpointInfo``."""
    from rosettazoo.auto import FAMILIES, read_config_dict

    config = read_config_dict(source, hub_kwargs)
    files = _repository_files(source, hub_kwargs)
    family = FAMILIES.get(config["model_type"])
    with open_checkpoint(source, **hub_kwargs) as checkpoint:
        shapes = {name: tuple(checkpoint.shape(name)) for name in checkpoint}
        parameters = Counter()
        for name, shape in shapes.items():
            parameters[np.dtype(checkpoint.dtype(name)).name] += math.prod(shape)
        description = checkpoint.description
    names = list(shapes)
    unprefixed = {name.removeprefix(family.base_prefix + "."): shape for name, shape in shapes.items()} if family else {}
    return CheckpointInfo(
        source=os.fspath(source),
        model_type=config["model_type"],
        family=family.prefix if family else None,
        architectures=list(config.get("architectures") or []),
        config_dtype=config.get("dtype", config.get("torch_dtype")),
        checkpoint=description,
        parameters=dict(parameters.most_common()),
        formats=_formats_present(source, files, hub_kwargs),
        heads=_servable_heads(family, set(names), unprefixed, config) if family else [],
        tokenizer_files=[name for name in TOKENIZER_FILES if name in files],
        unexplained=_unexplained(family, names, shapes, config) if family else [],
        bundled_folder=local_folder(source) if is_bundled_id(source) else None,
        model_card=model_card_summary(local_folder(source)) if os.path.isdir(local_folder(source)) else [],
    )


# ---------------------------------------------------------------------------------------------------- command line


def _add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", help="hub branch, tag or commit")
    parser.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE or HF_HOME/hub)")
    parser.add_argument("--local-files-only", action="store_true", help="use only the cache, never the network")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Convert and inspect Hugging Face checkpoints of BART, "
                                     "RoBERTa, RoBERTa-PreLayerNorm, OPT and I-BERT, without any framework; generate "
                                     "text and fill masks in PyTorch, TensorFlow or Flax; run the bundled models.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help="rewrite a model in another layout or dtype",
        description="Rewrite a model folder or hub id (config.json + weights in any layout, sharded or not) in "
                    "DESTINATION, tensor by tensor; its generation_config.json and tokenizer files are copied.")
    convert.add_argument("source", help="a model folder or a hub id")
    convert.add_argument("destination", help="the folder to write")
    convert.add_argument("--format", choices=list(FORMATS), default="safetensors",
                         help="the weights' layout (default: safetensors)")
    convert.add_argument("--dtype", choices=list(DTYPES), help="cast floating-point tensors (default: keep each dtype)")
    convert.add_argument("--clip-float16", action="store_true",
                         help="with --dtype float16, clip values beyond +-65504 instead of refusing them")
    convert.add_argument("--max-shard-size", help="split the weights into shards of at most this size, e.g. 2GB")
    convert.add_argument("--overwrite", action="store_true", help="replace a model already in the destination")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_hub_arguments(convert)
    info = commands.add_parser("info", help="describe a model folder or hub id",
                               description="Show a model's family, parameters by dtype, checkpoint layouts, the "
                                           "heads its weights serve, its tokenizer files and unexplained tensors.")
    info.add_argument("source", help="a model folder or a hub id")
    _add_hub_arguments(info)
    add_parsers(commands, _add_hub_arguments)
    return parser


def _hub_arguments(args: argparse.Namespace) -> dict[str, Any]:
    return {"revision": args.revision, "cache_dir": args.cache_dir, "local_files_only": args.local_files_only}


def _run(args: argparse.Namespace) -> str | None:
    if args.command in COMMANDS:
        return run_command(args, _hub_arguments)
    if args.command == "info":
        return checkpoint_info(args.source, **_hub_arguments(args)).describe()
    report = convert_checkpoint(
        args.source, args.destination, format=args.format, dtype=args.dtype, max_shard_size=args.max_shard_size,
        overwrite=args.overwrite, clip_float16=args.clip_float16, progress=not args.quiet, **_hub_arguments(args),
    )
    return report.summary()


def main(argv: list[str] | None = None, prog: str = "rosettazoo") -> int:
    """The command line; returns the exit status (2 for bad input, with the reason on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("convert", "info", *COMMANDS, "-h", "--help"):
        argv.insert(0, "convert")  # the older `python -m rosettazoo.conversion SRC DST` spelling
    args = _parser(prog).parse_args(argv)
    try:
        output = _run(args)
        if output is not None:
            print(output)
    except (OSError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
