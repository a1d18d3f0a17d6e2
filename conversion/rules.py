"""Generic naming rules between canonical weight names and each framework's parameter tree.

Canonical names are Hugging Face PyTorch state-dict names. The three modeling files of a family use the same
attribute names, so a framework's parameter path differs from the canonical name only in its leaf:

    PyTorch  Linear.weight [out, in]   LayerNorm.weight / .bias   Embedding.weight
    Keras    Dense.kernel  [in, out]   LayerNormalization.gamma / .beta   Embedding.embeddings
    Flax     Dense.kernel  [in, out]   LayerNorm.scale / .bias    Embed.embedding

A family's ``weights.py`` adds only what these rules cannot infer (a ``WeightsSpec``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FRAMEWORKS = ("pt", "tf", "flax")

# framework leaf name -> canonical leaf name
_LEAF_RENAMES = {
    "pt": {},
    "tf": {"kernel": "weight", "gamma": "weight", "beta": "bias", "embeddings": "weight"},
    "flax": {"kernel": "weight", "scale": "weight", "embedding": "weight"},
}


def to_canonical(path: str, framework: str) -> tuple[str, bool]:
    """Map a framework parameter path (dot separated) to ``(canonical name, transpose)``.

    ``transpose`` is true for dense kernels, stored [in, out] in Keras and Flax and [out, in] in PyTorch.
    """
    if framework not in _LEAF_RENAMES:
        raise ValueError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")
    prefix, _, leaf = path.rpartition(".")
    canonical_leaf = _LEAF_RENAMES[framework].get(leaf, leaf)
    name = f"{prefix}.{canonical_leaf}" if prefix else canonical_leaf
    return name, leaf == "kernel"


@dataclass(frozen=True)
class WeightsSpec:
    """What a family's checkpoints hold beyond the generic rules.

    base_model_prefix: the attribute under which head models hold the base model (``"roberta"``); a base-model
        checkpoint loads into a head model and the reverse.
    tied: canonical name -> the canonical name it shares storage with (the LM decoder and the word embeddings).
        Only one of each pair is saved; either one in a checkpoint fills both.
    ignored: regular expressions of checkpoint names that are buffers, not weights (``position_ids``).
    new_heads: regular expressions of base-model names that, like every name outside the base model, may be
        initialized randomly when the caller allows new heads (the pooler).
    optional: regular expressions of names a checkpoint may lack; the model keeps their initial value (BART's
        all-zero final_logits_bias, which older checkpoints do not store).
    """

    base_model_prefix: str
    tied: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    new_heads: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def tie_groups(self) -> list[list[str]]:
        """Names that share storage, each group led by its origin (several copies may share one origin)."""
        groups: dict[str, list[str]] = {}
        for derived, origin in self.tied.items():
            groups.setdefault(origin, [origin]).append(derived)
        return list(groups.values())

    def aliases(self) -> dict[str, list[str]]:
        """For each tied name, the other names of its group, origin first."""
        return {name: [other for other in group if other != name] for group in self.tie_groups() for name in group}

    def is_optional(self, name: str) -> bool:
        return any(re.search(pattern, name) for pattern in self.optional)

    def is_ignored(self, name: str) -> bool:
        return any(re.search(pattern, name) for pattern in self.ignored)

    def may_be_new(self, name: str) -> bool:
        prefix = self.base_model_prefix + "."
        if not name.startswith(prefix):
            return True
        return any(re.search(pattern, name[len(prefix):]) for pattern in self.new_heads)
