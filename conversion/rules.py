"""Generic naming rules between canonical weight names and each framework's parameter tree.

Canonical names are Hugging Face PyTorch state-dict names. The three modeling files of a family use the same
attribute names, so a framework's parameter path differs from the canonical name only in its leaf:

    PyTorch  Linear.weight [out, in]   LayerNorm.weight / .bias   Embedding.weight
    Keras    Dense.kernel  [in, out]   LayerNormalization.gamma / .beta   Embedding.embeddings
    Flax     Dense.kernel  [in, out]   LayerNorm.scale / .bias    Embed.embedding

A family's ``weights.py`` adds only what these rules cannot infer (a ``WeightsSpec``).

Checkpoint files name tensors in one of three ways (a "naming"): "pt", the canonical names (model.safetensors,
pytorch_model.bin); "tf", transformers' TF variable names without the Keras model's name
(``roberta/encoder/layer_._0/attention/self/query/kernel:0``; tf_model.h5, and safetensors written by the TF
classes); "flax", transformers' Flax param paths (``roberta/encoder/layer/0/attention/self/query/kernel``;
flax_model.msgpack, and dotted in safetensors written by the Flax classes). ``canonical_name`` reads any of them
with generic rules; ``stored_names`` writes them, with each family's ``tf_renames`` for what TF classes name
their own way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

FRAMEWORKS = ("pt", "tf", "flax")
NAMINGS = ("pt", "tf", "flax")

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
    tf_renames: (regular expression, replacement) pairs applied to the generic TF name of a tensor (without
        ":0") where transformers' TF classes name a variable their own way (RoBERTa's ``layer_._0``, the legacy
        ``weight`` of a word embedding). ``canonical_name``'s generic rules must read the result back.
    tf_layer_links: top-level Keras layer -> regular expression of the TF names of other layers' variables it
        also holds (RoBERTa's LM head holds the embeddings layer it is tied to). tf_model.h5 lists them under that
        layer too, as Keras does, or transformers reports them as newly initialized.
    """

    base_model_prefix: str
    tied: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    new_heads: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    tf_renames: tuple[tuple[str, str], ...] = ()
    tf_layer_links: dict[str, str] = field(default_factory=dict)

    def tie_groups(self) -> list[list[str]]:
        """Names that share storage, each group led by its origin (several copies may share one origin)."""
        groups: dict[str, list[str]] = {}
        for derived, origin in self.tied.items():
            groups.setdefault(origin, [origin]).append(derived)
        return list(groups.values())

    def aliases(self) -> dict[str, list[str]]:
        """For each tied name, the other names of its group, origin first."""
        return {name: [other for other in group if other != name] for group in self.tie_groups() for name in group}

    def tied_copies(self, names) -> set[str]:
        """The names that repeat a tied tensor another of ``names`` holds (all but the first of each tie group,
        origin first); ``names`` may lack the base-model prefix, as a base model's checkpoint does."""
        names = set(names)
        prefix = self.base_model_prefix + "."

        def held(name: str) -> str | None:
            unprefixed = name.removeprefix(prefix)
            return name if name in names else unprefixed if unprefixed in names else None

        copies = set()
        for group in self.tie_groups():
            present = [name for name in map(held, group) if name is not None]
            copies.update(present[1:])
        return copies

    def is_optional(self, name: str) -> bool:
        return any(re.search(pattern, name) for pattern in self.optional)

    def is_ignored(self, name: str) -> bool:
        return any(re.search(pattern, name) for pattern in self.ignored)

    def may_be_new(self, name: str) -> bool:
        prefix = self.base_model_prefix + "."
        if not name.startswith(prefix):
            return True
        return any(re.search(pattern, name[len(prefix):]) for pattern in self.new_heads)


# ---------------------------------------------------------------------------------------------------- checkpoint names

# The modules whose "weight" is an embedding table in Hugging Face's models (not a kernel to transpose).
_EMBEDDING_MODULE = re.compile(r"(^|\.)(\w*_embeddings|embed_\w+|shared)$")
_NORM_LEAVES = {"tf": ("gamma", "beta"), "flax": ("scale", "bias")}
_EMBEDDING_LEAF = {"tf": "embeddings", "flax": "embedding"}


def _check_naming(naming: str) -> None:
    if naming not in NAMINGS:
        raise ValueError(f"unknown checkpoint naming {naming!r}; expected one of {NAMINGS}")


def canonical_name(stored: str, naming: str) -> tuple[str, bool]:
    """``(canonical name, transpose)`` of a tensor named ``stored`` in a checkpoint file of ``naming``."""
    _check_naming(naming)
    if naming == "pt":
        return stored, False
    if naming == "flax":
        return to_canonical(stored.replace("/", "."), "flax")
    parts = stored.removesuffix(":0").split("/")
    # A layer named with a dot at the top (BART's model.shared) repeats its name as its variables' scope.
    parts = [part for i, part in enumerate(parts) if i == 0 or part != parts[i - 1]]
    return to_canonical(".".join(parts).replace("_._", "."), "tf")


def _stored_leaf(module: str, leaf: str, shape: tuple[int, ...], norms: set[str], naming: str) -> tuple[str, bool]:
    """A tensor's leaf name in ``naming`` and whether it is transposed, from its module, rank and siblings."""
    if module in norms and leaf in ("weight", "bias"):  # LayerNorm: Keras gamma/beta, Flax scale/bias
        return _NORM_LEAVES[naming][0 if leaf == "weight" else 1], False
    if leaf == "weight" and _EMBEDDING_MODULE.search(module):
        return _EMBEDDING_LEAF[naming], False
    if leaf == "weight" and len(shape) == 2:
        return "kernel", True
    return leaf, False


def _tf_path(module: str) -> str:
    """Keras scopes: one per module, a numbered module joined to its list's name (BART's layers.0)."""
    parts: list[str] = []
    for part in module.split(".") if module else []:
        if part.isdigit() and parts:
            parts[-1] += "." + part
        else:
            parts.append(part)
    return "/".join(parts)


def stored_names(shapes: Mapping[str, tuple[int, ...]], spec: WeightsSpec, naming: str) -> dict[str, tuple[str, bool]]:
    """{canonical name: (name in a checkpoint file of ``naming``, transpose)} for the tensors such a file holds.

    ``shapes`` maps canonical names to shapes (rank tells kernels from LayerNorm weights). TF and Flax classes
    hold one tensor per tie group and no buffers, so tied copies and ignored names are left out for them; TF
    classes always hold the base model under its prefix, so a base model's names get it.
    """
    _check_naming(naming)
    if naming == "pt":
        return {name: (name, False) for name in shapes}
    copies = spec.tied_copies(shapes)
    names = [name for name in shapes if name not in copies and not spec.is_ignored(name)]
    prefix = spec.base_model_prefix + "."
    add_prefix = naming == "tf" and not any(name.startswith(prefix) for name in names)
    norms = {name.rpartition(".")[0] for name in names if name.endswith(".weight") and len(shapes[name]) == 1}
    out = {}
    for name in names:
        module, _, leaf = name.rpartition(".")
        stored_leaf, transpose = _stored_leaf(module, leaf, tuple(shapes[name]), norms, naming)
        if naming == "flax":
            out[name] = ("/".join([*module.split("."), stored_leaf] if module else [stored_leaf]), transpose)
            continue
        path = "/".join(filter(None, [_tf_path(prefix + module if add_prefix else module), stored_leaf]))
        for pattern, replacement in spec.tf_renames:
            path = re.sub(pattern, replacement, path)
        out[name] = (path + ":0", transpose)
    return out


def keras_layer(stored: str) -> str:
    """The top-level Keras layer a TF name belongs to: BART's "model.shared/..." to "model", "final_logits_bias:0"
    to its own."""
    return re.split(r"[/.:]", stored, maxsplit=1)[0]


def _keras_layer_links(names, spec: WeightsSpec) -> dict[str, list[str]]:
    """{top-level layer: TF names of other layers' variables it holds}, for the layers these names have."""
    layers = {keras_layer(name) for name in names}
    links = {layer: [name for name in names if re.search(pattern, name) and keras_layer(name) != layer]
             for layer, pattern in spec.tf_layer_links.items() if layer in layers}
    return {layer: linked for layer, linked in links.items() if linked}


class StoredTensors(Mapping):
    """{stored name: array} of a checkpoint file of ``naming``, over {canonical name: array} read lazily.

    ``tensors`` may be a lazy mapping (a ``CheckpointReader``) exposing ``shape(name)`` and ``dtype(name)``;
    each tensor is read, and transposed when it is a kernel, only when asked for. ``keras_layer_links`` tells the
    tf_model.h5 writer which variables a layer also holds (``WeightsSpec.tf_layer_links``).
    """

    def __init__(self, tensors: Mapping[str, np.ndarray], spec: WeightsSpec, naming: str):
        self._tensors = tensors
        shapes = {name: self._canonical_shape(name) for name in tensors}
        self._sources = {}
        for name, (stored, transpose) in stored_names(shapes, spec, naming).items():
            if stored in self._sources:
                raise ValueError(f"{self._sources[stored][0]} and {name} would both be stored as {stored}")
            self._sources[stored] = (name, transpose)
        self.keras_layer_links = _keras_layer_links(self._sources, spec) if naming == "tf" else {}

    def _canonical_shape(self, name: str) -> tuple[int, ...]:
        shape_of = getattr(self._tensors, "shape", None)
        return tuple(shape_of(name)) if callable(shape_of) else np.shape(self._tensors[name])

    def __getitem__(self, stored: str) -> np.ndarray:
        name, transpose = self._sources[stored]
        array = np.asarray(self._tensors[name])
        return array.T if transpose else array

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def shape(self, stored: str) -> tuple[int, ...]:
        name, transpose = self._sources[stored]
        shape = self._canonical_shape(name)
        return tuple(reversed(shape)) if transpose else shape

    def dtype(self, stored: str) -> np.dtype:
        name, _ = self._sources[stored]
        dtype_of = getattr(self._tensors, "dtype", None)
        return np.dtype(dtype_of(name)) if callable(dtype_of) else np.asarray(self._tensors[name]).dtype
