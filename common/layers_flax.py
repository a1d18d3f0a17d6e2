"""Flax (linen) building blocks shared by the families: activations, embeddings, masks, attention, losses.

Also registers the output classes of ``common/outputs.py`` as JAX pytree nodes, so model outputs pass through
``jax.jit``, ``jax.grad`` and ``jax.pmap``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .activations import ACTIVATIONS
from .outputs import OUTPUT_CLASSES
from .validation import check_index_range, check_shape

Array = Any
Dtype = Any


def _gelu_fast(x: Array) -> Array:
    # HF's "gelu_fast": the tanh approximation with its constants folded in this order.
    return 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _quick_gelu(x: Array) -> Array:
    return x * jax.nn.sigmoid(1.702 * x)


ACT2FN: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_python": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": _gelu_fast,
    "quick_gelu": _quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}
assert set(ACT2FN) == set(ACTIVATIONS), "every name in common/activations.py needs a Flax implementation"


def activation(name: str) -> Callable[[Array], Array]:
    if name not in ACT2FN:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACT2FN)}")
    return ACT2FN[name]


# ---------------------------------------------------------------------------------------------------------------
# Concrete values vs traced values


def concrete(x: Array | None) -> np.ndarray | None:
    """``x`` as a numpy array when its value is known now (eager call), ``None`` under jit/pmap/vmap tracing."""
    if x is None or isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def take_rows(table: Array, ids: Array) -> Array:
    """``table[ids]`` where ids outside [0, len(table)) give NaN rows instead of being clamped or wrapped.

    Eager calls validate ids beforehand; under tracing this is what makes bad ids visible in the output.
    """
    ids = jnp.asarray(ids)
    ids = jnp.where(ids < 0, table.shape[0], ids)  # jnp.take wraps negative ids even in "fill" mode
    return jnp.take(table, ids, axis=0, mode="fill", fill_value=jnp.nan)


# ---------------------------------------------------------------------------------------------------------------
# Layers


def dense(features: int, std: float, dtype: Dtype, param_dtype: Dtype, *, use_bias: bool = True, name=None):
    """A Dense layer initialized as Hugging Face does: normal(0, std) kernel, zero bias."""
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                    kernel_init=jax.nn.initializers.normal(std), name=name)


def layer_norm(eps: float, dtype: Dtype, param_dtype: Dtype, *, name=None):
    # The two-pass variance, as PyTorch computes it; the fast E[x^2] - E[x]^2 form loses digits.
    return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=param_dtype, use_fast_variance=False, name=name)


class Embed(nn.Module):
    """An embedding table (param ``embedding``, as ``nn.Embed``) whose lookup never clamps bad ids."""

    num_embeddings: int
    features: int
    std: float
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self):
        self.embedding = self.param("embedding", jax.nn.initializers.normal(self.std),
                                    (self.num_embeddings, self.features), self.param_dtype)

    def __call__(self, ids: Array) -> Array:
        return take_rows(self.embedding, ids).astype(self.dtype)

    def check(self, ids: Array, name: str, what: str) -> None:
        """Raise a clear ValueError for out-of-range ids when their values are known (eager calls)."""
        values = concrete(ids)
        if values is not None:
            check_index_range(values, self.num_embeddings, name, what)


# ---------------------------------------------------------------------------------------------------------------
# Masks


def additive_mask(mask: Array, dtype: Dtype) -> Array:
    """1 = attend, 0 = ignore  ->  0 / the dtype's most negative finite value, as Hugging Face builds it.

    With a finite value a fully masked row stays finite (uniform attention), the same in every framework.
    """
    mask = jnp.asarray(mask, dtype)
    return (1.0 - mask) * jnp.finfo(dtype).min


def causal_mask(query_length: int, key_length: int) -> Array:
    """[query, key] of 0/1: query i (the last ``query_length`` positions) sees keys up to its own position."""
    past = key_length - query_length
    return (jnp.arange(key_length)[None, :] <= jnp.arange(query_length)[:, None] + past).astype(jnp.int32)


def attention_bias(mask: Array | None, batch: int, query_length: int, key_length: int, *, causal: bool,
                   dtype: Dtype, name: str = "attention_mask") -> Array:
    """An additive attention bias [batch, 1, query | 1, key] from a 2D [batch, key] or 3D [batch, query, key] mask.

    ``causal`` combines a 2D mask with the causal mask (a decoder); a 3D mask is used as given, as in Hugging Face.
    """
    if mask is None:
        mask = jnp.ones((batch, key_length), jnp.int32)
    shape = tuple(np.shape(mask))
    if len(shape) == 3:
        check_shape(name, shape, (batch, query_length, key_length), "[batch, query length, key length]")
        return additive_mask(jnp.asarray(mask)[:, None, :, :], dtype)
    if len(shape) != 2:
        raise ValueError(f"{name} must have 2 dimensions [batch, key length] or 3 [batch, query length, key length], "
                         f"got shape {list(shape)}")
    check_shape(name, shape, (batch, key_length), "[batch, key length], key length counting cached positions")
    mask = jnp.asarray(mask)[:, None, None, :]
    if causal:
        mask = mask * causal_mask(query_length, key_length)[None, None, :, :]
    return additive_mask(mask, dtype)


# ---------------------------------------------------------------------------------------------------------------
# Attention


def layer_head_masks(head_mask: Array | None, num_layers: int, num_heads: int) -> list[Array | None]:
    """Per-layer multipliers [1, heads, 1, 1] of the attention probabilities from a [heads] or [layers, heads] mask."""
    if head_mask is None:
        return [None] * num_layers
    head_mask = jnp.asarray(head_mask)
    if head_mask.ndim == 1:
        check_shape("head_mask", head_mask.shape, (num_heads,), "[heads], or [layers, heads]")
        head_mask = jnp.broadcast_to(head_mask, (num_layers, num_heads))
    check_shape("head_mask", head_mask.shape, (num_layers, num_heads), "[heads], or [layers, heads]")
    return [head_mask[i][None, :, None, None] for i in range(num_layers)]


def dropout(x: Array, rate: float, rng: Array | None) -> Array:
    """Inverted dropout (as torch.nn.Dropout); identity without an rng or with rate 0."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def attention(query: Array, key: Array, value: Array, bias: Array | None, *, score_offset: Array | None = None,
              head_mask: Array | None = None, dropout_rate: float = 0.0, dropout_rng: Array | None = None,
              output_attentions: bool = False) -> tuple[Array, Array | None]:
    """Scaled dot-product attention over heads.

    query [batch, q, heads, head_dim], key / value [batch, k, heads, head_dim]; ``bias`` additive, broadcastable to
    [batch, heads, q, k]; ``score_offset`` (relative positions) is added to the raw scores before scaling, as in
    Hugging Face. Returns the context [batch, q, heads, head_dim] and the probabilities [batch, heads, q, k] when
    ``output_attentions`` (after dropout and head mask, as Hugging Face returns them).

    Uses the fused ``jax.nn.dot_product_attention`` unless probabilities, a score offset, a head mask or dropout
    are needed; both paths agree to float32 rounding, fully masked rows included (uniform weights).
    """
    use_dropout = dropout_rng is not None and dropout_rate > 0.0
    if bias is not None:
        bias = bias.astype(query.dtype)
    if not (output_attentions or score_offset is not None or head_mask is not None or use_dropout):
        return jax.nn.dot_product_attention(query, key, value, bias=bias), None
    scores = jnp.einsum("bqnd,bknd->bnqk", query, key, preferred_element_type=jnp.float32)
    if score_offset is not None:
        scores = scores + score_offset
    scores = scores / math.sqrt(query.shape[-1])
    if bias is not None:
        scores = scores + bias
    probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(query.dtype)
    probs = dropout(probs, dropout_rate, dropout_rng if use_dropout else None)
    if head_mask is not None:
        probs = probs * jnp.asarray(head_mask, probs.dtype)
    context = jnp.einsum("bnqk,bknd->bqnd", probs, value)
    return context, (probs if output_attentions else None)


# ---------------------------------------------------------------------------------------------------------------
# Losses, computed as Hugging Face's PyTorch models compute them (float32, mean over counted items)


def cross_entropy(logits: Array, labels: Array, *, ignore_index: int = -100) -> Array:
    """torch.nn.CrossEntropyLoss(ignore_index=...) on [..., classes] logits: the mean over labels not ignored.

    All labels ignored gives NaN, as in PyTorch. A label outside [0, classes) raises when known now and gives NaN
    under tracing.
    """
    num_classes = logits.shape[-1]
    logits = logits.reshape(-1, num_classes).astype(jnp.float32)
    labels = jnp.asarray(labels).reshape(-1)
    values = concrete(labels)
    if values is not None:
        check_index_range(values[values != ignore_index], num_classes, "labels", f"the {num_classes} classes")
    counted = labels != ignore_index
    safe = jnp.where(counted, labels, 0)
    safe = jnp.where(safe < 0, num_classes, safe)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probs, safe[:, None], axis=-1, mode="fill", fill_value=jnp.nan)[:, 0]
    total = jnp.sum(jnp.where(counted, -picked, 0.0))
    return total / jnp.sum(counted).astype(jnp.float32)


def mse(predictions: Array, targets: Array) -> Array:
    """torch.nn.MSELoss (mean; shapes broadcast as PyTorch does)."""
    diff = predictions.astype(jnp.float32) - jnp.asarray(targets, jnp.float32)
    return jnp.mean(jnp.square(diff))


def bce_with_logits(logits: Array, targets: Array) -> Array:
    """torch.nn.BCEWithLogitsLoss (mean), in the overflow-free form."""
    x = logits.astype(jnp.float32)
    y = jnp.asarray(targets, jnp.float32)
    return jnp.mean(jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x))))


# ---------------------------------------------------------------------------------------------------------------
# Outputs as pytrees

_REGISTERED: set[type] = set()


def register_outputs() -> None:
    """Register every output class of ``common/outputs.py`` not yet registered as a JAX pytree node.

    Children are the fields in declaration order (``None`` fields are empty subtrees), so the class and the
    ``None``-ness of each field survive jit, grad and pmap.
    """
    for cls in OUTPUT_CLASSES:
        if cls in _REGISTERED:
            continue
        names = cls.field_names()
        jax.tree_util.register_pytree_with_keys(
            cls,
            lambda out, names=names: (tuple((jax.tree_util.GetAttrKey(n), getattr(out, n)) for n in names), None),
            lambda _, children, cls=cls: cls(*children),
            flatten_func=lambda out, names=names: (tuple(getattr(out, n) for n in names), None),
        )
        _REGISTERED.add(cls)


register_outputs()
