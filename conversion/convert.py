"""Load a checkpoint's canonical tensors into a framework's parameter tree, and export a tree back.

Both directions work on plain mappings, so the same code serves PyTorch state dicts, Keras variables and Flax
param pytrees: the framework base classes flatten their tree to ``{dotted path: shape}`` and assign the arrays
this module returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .rules import WeightsSpec, to_canonical


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
    head and ``allow_new_heads`` is set) or misshapen (unless ``ignore_mismatched_sizes``).
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
        array = np.asarray(checkpoint[available[found]])
        loaded[path] = np.ascontiguousarray(array.T) if transpose else array

    def tied_copy(name: str) -> bool:
        """A checkpoint's copy of a tied tensor the model loaded under its partner's name, in a module it has."""
        return name.split(".", 1)[0] in roots and any(a in consumed for a in aliases.get(name, []))

    report.unexpected = sorted(
        available[n] for n in available if n not in consumed and not spec.is_ignored(n) and not tied_copy(n)
    )
    problems = []
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
    return loaded, report


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
