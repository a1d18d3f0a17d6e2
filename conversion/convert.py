"""Load a checkpoint's canonical tensors into a framework's parameter tree, and export a tree back.

Both directions work on plain mappings, so the same code serves PyTorch state dicts, Keras variables and Flax
param pytrees: the framework base classes flatten their tree to ``{dotted path: shape}`` and assign the arrays
this module returns.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .rules import WeightsSpec, to_canonical

logger = logging.getLogger(__name__)


class WeightsError(ValueError):
    """A checkpoint that does not fit the model: missing, misshapen or unreadable tensors, named one by one."""


@dataclass
class LoadReport:
    """What loading found besides the weights it loaded (all names canonical)."""

    missing: list[str] = field(default_factory=list)  # left at their random initialization (allowed new heads)
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # (name, checkpoint, model)

    def as_dict(self) -> dict[str, list]:
        return {"missing_keys": self.missing, "unexpected_keys": self.unexpected, "mismatched_keys": self.mismatched}


def _with_prefix(names, prefix: str) -> bool:
    return any(name.startswith(prefix) for name in names)


def _shape_in_checkpoint(checkpoint: Mapping[str, Any], name: str) -> tuple[int, ...]:
    shape_of = getattr(checkpoint, "shape", None)
    if callable(shape_of):
        return tuple(shape_of(name))
    return tuple(np.shape(checkpoint[name]))


def _dtype_in_checkpoint(checkpoint: Mapping[str, Any], name: str) -> np.dtype:
    dtype_of = getattr(checkpoint, "dtype", None)
    if callable(dtype_of):
        return np.dtype(dtype_of(name))
    return np.asarray(checkpoint[name]).dtype


def _is_float(dtype: np.dtype) -> bool:
    # numpy's floats and ml_dtypes' (bfloat16, float8_*), whose numpy kind is "V"; ints, bools, complex are not.
    return dtype.name.startswith(("float", "bfloat"))


def _layer_pattern(name: str) -> str:
    """A canonical name with its layer numbers blanked: encoder.layer.3.output.dense.weight -> encoder.layer.#...."""
    return re.sub(r"\.\d+(?=\.)", ".#", name)


def load_weights(
    target: Mapping[str, tuple[int, ...]],
    checkpoint: Mapping[str, Any],
    spec: WeightsSpec,
    framework: str,
    *,
    allow_new_heads: bool = False,
    ignore_mismatched_sizes: bool = False,
    source: str = "the checkpoint",
) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Read the tensors the model's ``target`` tree needs ({framework path: shape}) from ``checkpoint``.

    ``checkpoint`` maps canonical names to arrays and is read one tensor at a time (it may expose
    ``shape(name)`` to check shapes before reading). Returns {framework path: array in the framework's
    layout} and a report. Raises ``WeightsError`` naming every tensor that is missing (unless it belongs to a
    head and ``allow_new_heads`` is set), misshapen (unless ``ignore_mismatched_sizes``), stored as integers or
    bools where the model has float weights, or belonging to a layer the config does not have (a deeper
    checkpoint than the config says). Other tensors the model does not use are logged as a warning and reported.
    """
    prefix = spec.base_model_prefix + "."
    model_prefixed = _with_prefix(target, prefix)
    checkpoint_prefixed = _with_prefix(checkpoint.keys(), prefix)

    def full(name: str, prefixed: bool) -> str:
        return name if prefixed else prefix + name

    # Canonical names with the base-model prefix on both sides, so a base checkpoint fits a head model and back.
    available = {full(name, checkpoint_prefixed): name for name in checkpoint.keys()}
    aliases = spec.aliases()

    loaded: dict[str, np.ndarray] = {}
    consumed: set[str] = set()
    roots: set[str] = set()  # the model's top-level modules ("roberta", "lm_head")
    report = LoadReport()
    missing_required: list[str] = []
    not_float: list[str] = []
    for path, shape in target.items():
        canonical, transpose = to_canonical(path, framework)
        wanted = full(canonical, model_prefixed)
        roots.add(wanted.split(".", 1)[0])
        found = next((n for n in [wanted, *aliases.get(wanted, [])] if n in available), None)
        if found is None and spec.is_optional(canonical):
            continue
        if found is None:
            (report.missing if allow_new_heads and spec.may_be_new(wanted) else missing_required).append(canonical)
            continue
        consumed.add(found)
        expected = tuple(reversed(shape)) if transpose else tuple(shape)
        stored = _shape_in_checkpoint(checkpoint, available[found])
        if stored != expected:
            report.mismatched.append((canonical, stored, expected))
            continue
        dtype = _dtype_in_checkpoint(checkpoint, available[found])
        if not _is_float(dtype):
            not_float.append(f"{available[found]} ({dtype.name})")
            continue
        array = np.asarray(checkpoint[available[found]])
        loaded[path] = np.ascontiguousarray(array.T) if transpose else array

    def tied_copy(name: str) -> bool:
        """A checkpoint's copy of a tied tensor the model loaded under its partner's name, in a module it has."""
        return name.split(".", 1)[0] in roots and any(a in consumed for a in aliases.get(name, []))

    report.unexpected = sorted(
        available[n] for n in available if n not in consumed and not spec.is_ignored(n) and not tied_copy(n)
    )
    model_layers = {_layer_pattern(full(to_canonical(path, framework)[0], model_prefixed)) for path in target}
    extra_layers = [name for name in report.unexpected
                    if _layer_pattern(full(name, checkpoint_prefixed)) in model_layers]
    problems = []
    if extra_layers:
        problems.append(f"it holds {len(extra_layers)} tensor(s) for layers the config does not have, starting with "
                        f"{extra_layers[0]}: the checkpoint is deeper than the config says (check num_hidden_layers / "
                        f"encoder_layers / decoder_layers in config.json)")
    if not_float:
        problems.append(f"{len(not_float)} tensor(s) hold integers or bools where the model needs float weights "
                        f"(re-save the checkpoint with float weights): {', '.join(not_float)}")
    if missing_required:
        hint = " (pass allow_new_heads=True to initialize new heads randomly)" if any(
            spec.may_be_new(full(n, model_prefixed)) for n in missing_required) else ""
        problems.append(f"missing {len(missing_required)} tensor(s) the model needs{hint}: {', '.join(missing_required)}")
    if report.mismatched and not ignore_mismatched_sizes:
        shapes = ", ".join(f"{n} is {list(s)} but the model needs {list(e)}" for n, s, e in report.mismatched)
        problems.append(f"{len(report.mismatched)} tensor(s) of the wrong shape (pass ignore_mismatched_sizes=True to "
                        f"initialize them randomly instead): {shapes}")
    if problems:
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems))
    _log_report(report, source)
    return loaded, report


def _log_report(report: LoadReport, source: str) -> None:
    """Warn, as transformers does, about tensors left unused and weights left at their random initialization."""
    if report.unexpected:
        logger.warning("%s holds %d tensor(s) the model does not use, ignored: %s", source, len(report.unexpected),
                       ", ".join(report.unexpected))
    if report.missing:
        logger.warning("%s lacks %d tensor(s) of new heads, initialized randomly (train them before use): %s",
                       source, len(report.missing), ", ".join(report.missing))
    if report.mismatched:
        logger.warning("%s holds %d tensor(s) of the wrong shape, initialized randomly instead: %s", source,
                       len(report.mismatched), ", ".join(name for name, _, _ in report.mismatched))


def export_weights(tree: Mapping[str, Any], spec: WeightsSpec, framework: str) -> dict[str, np.ndarray]:
    """Turn {framework path: array} into {canonical name: array} as Hugging Face saves it.

    Tied copies whose origin is present and buffers that are not weights are left out.
    """
    out: dict[str, np.ndarray] = {}
    for path, value in tree.items():
        canonical, transpose = to_canonical(path, framework)
        array = np.asarray(value)
        out[canonical] = np.ascontiguousarray(array.T) if transpose else array
    prefix = spec.base_model_prefix + "."

    def as_saved(name: str) -> str | None:
        """The name under which this tree holds ``name`` (a base model holds it without the prefix)."""
        if name in out:
            return name
        unprefixed = name[len(prefix):] if name.startswith(prefix) else None
        return unprefixed if unprefixed in out else None

    for group in spec.tie_groups():
        held = [name for name in map(as_saved, group) if name is not None]
        for copy in held[1:]:  # keep the first of each group, origin first
            del out[copy]
    return {name: array for name, array in out.items() if not spec.is_ignored(name)}
