"""Flax (linen) building blocks shared by the families: the vocabulary ``layers_pt`` and ``layers_tf`` share (same
names, parameters and layouts: attention in [batch, heads, sequence, head_dim]; framework-only helpers live in
``backend_flax``, which also registers the output classes and the StaticCache as pytree nodes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from . import activations
from .backend_flax import concrete, dense, given_dtype, inverted_dropout, layer_norm, tied_logits
from .cache import StaticCache
from .outputs import QuestionAnsweringModelOutput
from .validation import (
    cache_overflow_error,
    check_cache_room,
    check_index_range,
    check_mask_shape,
    check_sequence_classification_labels,
    check_shape,
    check_span_positions,
    check_token_labels,
    infer_problem_type,
    input_shape,
)

__all__ = [
    "ACTIVATIONS", "activation",
    "input_shape", "layer_dropped",
    "additive_mask", "padding_keep_mask", "causal_keep_mask", "head_mask_per_layer",
    "split_heads", "merge_heads", "eager_attention", "keys_and_values", "ProjectedAttention",
    "new_static_cache", "static_cache_slots", "static_cache_update", "check_static_cache_room",
    "static_cache_keep_mask",
    "token_loss", "causal_lm_loss", "sequence_classification_loss", "span_loss", "question_answering_output",
    "Pooler", "LMHead", "ClassificationHead",
]

Array = Any
Dtype = Any


# ---------------------------------------------------------------------------------------------------------------
# Activations: one per name in common/activations.py.


def _gelu_fast(x: Array) -> Array:
    # HF's "gelu_fast": the tanh approximation with its constants folded in this order.
    return 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _quick_gelu(x: Array) -> Array:
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
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
assert set(ACTIVATIONS) == set(activations.ACTIVATIONS), "every name in common/activations.py needs a Flax implementation"


def activation(name: str) -> Callable[[Array], Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


# ---------------------------------------------------------------------------------------------------------------
# LayerDrop


def layer_dropped(layerdrop: float, rng: Array | None):
    """LayerDrop: in training (``rng``, a PRNG key for the draw; None otherwise) a layer is skipped with
    probability ``layerdrop`` (one draw for the batch): a scalar bool for ``jnp.where(dropped, layer input,
    layer output)``, so the program is the same for every draw; False when nothing can be dropped."""
    if rng is None or layerdrop == 0.0:
        return False
    return jax.random.uniform(rng) < layerdrop


# ---------------------------------------------------------------------------------------------------------------
# Float heads of the RoBERTa-style encoders (RoBERTa, RoBERTa-PreLayerNorm, I-BERT). Attribute names are Hugging
# Face's, so parameter paths flatten to the checkpoint names (pooler.dense.kernel, lm_head.bias, ...).


class _ConfigBlock(nn.Module):
    """Fields of the heads below: the family's config, the compute and parameter dtypes."""

    config: Any
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def _dense(self, features: int, use_bias: bool = True) -> nn.Dense:
        return dense(features, self.config.initializer_range, self.dtype, self.param_dtype, use_bias=use_bias)


class Pooler(_ConfigBlock):
    """tanh(dense(first token)): the sentence vector of the bare model."""

    def setup(self):
        self.dense = self._dense(self.config.hidden_size)

    def __call__(self, hidden_states: Array) -> Array:
        return jnp.tanh(self.dense(hidden_states[:, 0]))


class LMHead(_ConfigBlock):
    """dense, exact GELU, LayerNorm, then the vocabulary projection: the word embeddings when tied (the default),
    else ``decoder``; plus ``bias``."""

    def setup(self):
        c = self.config
        self.dense = self._dense(c.hidden_size)
        self.layer_norm = layer_norm(c.layer_norm_eps, self.dtype, self.param_dtype)
        if not c.tie_word_embeddings:
            self.decoder = self._dense(c.vocab_size, use_bias=False)
        self.bias = self.param("bias", jax.nn.initializers.zeros, (c.vocab_size,), self.param_dtype)

    def __call__(self, hidden_states: Array, word_embeddings: Array) -> Array:
        x = self.layer_norm(activation("gelu")(self.dense(hidden_states)))
        if self.config.tie_word_embeddings:
            x = tied_logits(x, word_embeddings)
        else:
            x = self.decoder(x)
        return x + self.bias.astype(self.dtype)


class ClassificationHead(_ConfigBlock):
    """Sentence classification from the first token (<s>): dropout, dense, tanh, dropout, projection. ``rate`` is
    the family's dropout, ``config.hidden_dropout_prob`` when None (RoBERTa passes classifier_dropout; I-BERT
    always hidden_dropout_prob)."""

    rate: float | None = None

    def setup(self):
        c = self.config
        self.dense = self._dense(c.hidden_size)
        self.dropout = nn.Dropout(c.hidden_dropout_prob if self.rate is None else self.rate)
        self.out_proj = self._dense(c.num_labels)

    def __call__(self, hidden_states: Array, deterministic: bool) -> Array:
        x = self.dropout(hidden_states[:, 0], deterministic=deterministic)
        x = jnp.tanh(self.dense(x))
        return self.out_proj(self.dropout(x, deterministic=deterministic))


# ---------------------------------------------------------------------------------------------------------------
# Masks. A "keep" mask holds 1 where attention is allowed; the additive form holds 0 there and the dtype's most
# negative finite value elsewhere, as Hugging Face builds it, so fully masked rows (uniform softmax) agree too.


def additive_mask(keep: Array, dtype: Dtype) -> Array:
    return (1.0 - jnp.asarray(keep, dtype)) * jnp.finfo(dtype).min


def padding_keep_mask(mask: Array, batch: int, query_length: int, key_length: int, name: str) -> Array:
    """A 2D [batch, keys] or 3D [batch, queries, keys] mask as a [batch, 1, queries or 1, keys] keep mask."""
    check_mask_shape(name, tuple(np.shape(mask)), batch, query_length, key_length)
    mask = jnp.asarray(mask)
    return mask[:, None, None, :] if mask.ndim == 2 else mask[:, None, :, :]


def causal_keep_mask(mask: Array, query_length: int) -> Array:
    """Combine a 2D padding mask [batch, past + queries] with the causal mask: [batch, 1, queries, past + queries].

    The queries are the last ``query_length`` positions; every cached position before them stays visible.
    """
    mask = jnp.asarray(mask)
    key_length = mask.shape[1]
    query_positions = jnp.arange(key_length - query_length, key_length)
    causal = (jnp.arange(key_length)[None, :] <= query_positions[:, None]).astype(mask.dtype)
    return causal[None, None, :, :] * mask[:, None, None, :]


def head_mask_per_layer(head_mask: Array | None, num_layers: int, num_heads: int,
                        name: str = "head_mask") -> list[Array | None]:
    """Per-layer multipliers [1, heads, 1, 1] of the attention probabilities from a [heads] or [layers, heads] mask;
    ``name``: the argument's name, for errors."""
    if head_mask is None:
        return [None] * num_layers
    head_mask = jnp.asarray(head_mask)
    if head_mask.ndim == 1:
        check_shape(name, head_mask.shape, (num_heads,), "[heads], or [layers, heads]")
        head_mask = jnp.broadcast_to(head_mask, (num_layers, num_heads))
    check_shape(name, head_mask.shape, (num_layers, num_heads), "[heads], or [layers, heads]")
    return [head_mask[i][None, :, None, None] for i in range(num_layers)]


# ---------------------------------------------------------------------------------------------------------------
# Attention


def split_heads(x: Array, num_heads: int) -> Array:
    """[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim]."""
    return jnp.swapaxes(x.reshape(x.shape[:2] + (num_heads, -1)), 1, 2)


def merge_heads(x: Array) -> Array:
    """[batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim]."""
    batch, heads, seq, head_dim = x.shape
    return jnp.swapaxes(x, 1, 2).reshape(batch, seq, heads * head_dim)


def eager_attention(query: Array, key: Array, value: Array, mask: Array | None = None, *, dropout: float = 0.0,
                    head_mask: Array | None = None, extra_scores: Sequence[Array] = (), scale: float | None = None,
                    dropout_rng: Array | None = None) -> tuple[Array, Array]:
    """Attention written out (XLA fuses it under jit, and drops the probabilities when unused); returns (context
    [batch, heads, q, head_dim], probabilities [batch, heads, q, k], after dropout and head mask as Hugging Face
    returns them).

    query [batch, heads, q, head_dim], key / value [batch, heads, k, head_dim]; ``mask`` additive, broadcastable
    to [batch, heads, q, k]. ``extra_scores`` (relative position scores) are added to the raw scores before the
    division by sqrt(head_dim), in Hugging Face's order; a ``scale`` given multiplies the scores instead (BART's
    order; 1.0 when the query was scaled already, as in OPT). Dropout needs ``dropout_rng``.
    """
    scores = jnp.einsum("bhqd,bhkd->bhqk", query, key, preferred_element_type=jnp.float32)
    for extra in extra_scores:
        scores = scores + extra
    scores = scores / math.sqrt(query.shape[-1]) if scale is None else scores * scale
    if mask is not None:
        scores = scores + mask.astype(query.dtype)
    probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(query.dtype)
    probs = inverted_dropout(probs, dropout, dropout_rng)
    if head_mask is not None:
        probs = probs * jnp.asarray(head_mask, probs.dtype)
    return jnp.einsum("bhqk,bhkd->bhqd", probs, value), probs


def keys_and_values(project_key_value, hidden_states: Array, key_value_states: Array | None, past_key_value,
                    cache_index: Array | None) -> tuple[Array, Array]:
    """An attention layer's keys and values with its cache entry: cross-attention reuses a cached entry as is (the
    encoder's keys do not change while decoding); self-attention appends to a dynamic entry or, with
    ``cache_index``, writes into a StaticCache's slots."""
    if key_value_states is not None and past_key_value is not None:
        return tuple(jnp.asarray(t) for t in past_key_value)
    key, value = project_key_value(hidden_states if key_value_states is None else key_value_states)
    if past_key_value is None:
        return key, value
    if cache_index is not None:
        return static_cache_update(past_key_value[0], past_key_value[1], key, value, cache_index)
    return (jnp.concatenate([jnp.asarray(past_key_value[0], key.dtype), key], axis=2),
            jnp.concatenate([jnp.asarray(past_key_value[1], value.dtype), value], axis=2))


# ---------------------------------------------------------------------------------------------------------------
# Losses, computed as Hugging Face's PyTorch models compute them (float32, mean over counted items)


def token_loss(logits: Array, labels: Array, *, ignore_index: int = -100) -> Array:
    """torch.nn.CrossEntropyLoss(ignore_index=...) on [..., classes] logits: the mean over labels not ignored.

    All labels ignored gives NaN, as in PyTorch. A label outside [0, classes) raises when known now and gives NaN
    under tracing.
    """
    num_classes = logits.shape[-1]
    check_token_labels(np.shape(labels), given_dtype(labels), logits.shape)
    labels = jnp.asarray(labels)
    logits = logits.reshape(-1, num_classes).astype(jnp.float32)
    labels = labels.reshape(-1)
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


def _mse(predictions: Array, targets: Array) -> Array:
    """torch.nn.MSELoss (mean; shapes broadcast as PyTorch does)."""
    diff = predictions.astype(jnp.float32) - jnp.asarray(targets, jnp.float32)
    return jnp.mean(jnp.square(diff))


def _bce_with_logits(logits: Array, targets: Array) -> Array:
    """torch.nn.BCEWithLogitsLoss (mean), in the overflow-free form."""
    x = logits.astype(jnp.float32)
    y = jnp.asarray(targets, jnp.float32)
    return jnp.mean(jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x))))


def causal_lm_loss(logits: Array, labels: Array) -> Array:
    """Next-token cross entropy: position t predicts label t + 1 (-100 ignored)."""
    check_token_labels(np.shape(labels), given_dtype(labels), logits.shape)
    return token_loss(logits[:, :-1], jnp.asarray(labels)[:, 1:])


def sequence_classification_loss(config, logits: Array, labels: Array) -> Array:
    """Regression (MSE), single-label (cross entropy) or multi-label (BCE with logits) by ``config.problem_type``;
    when unset it is inferred and recorded on the config, as Hugging Face does."""
    if config.problem_type is None:
        config.problem_type = infer_problem_type(config.num_labels, given_dtype(labels))
    check_sequence_classification_labels(config.problem_type, np.shape(labels), given_dtype(labels), logits.shape)
    labels = jnp.asarray(labels)
    if config.problem_type == "regression":
        return _mse(jnp.squeeze(logits), jnp.squeeze(labels)) if config.num_labels == 1 else _mse(logits, labels)
    if config.problem_type == "single_label_classification":
        return token_loss(logits, labels)
    return _bce_with_logits(logits, labels)


def span_loss(start_logits: Array, end_logits: Array, start_positions: Array, end_positions: Array) -> Array:
    """Question answering: the mean of the start and end cross entropies; positions outside the input are clamped
    to seq_len and ignored, as Hugging Face does."""
    ignored = start_logits.shape[1]
    for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
        check_span_positions(name, np.shape(positions), given_dtype(positions), start_logits.shape[0])
    start = jnp.clip(jnp.asarray(start_positions).reshape(-1), 0, ignored)
    end = jnp.clip(jnp.asarray(end_positions).reshape(-1), 0, ignored)
    return (token_loss(start_logits, start, ignore_index=ignored)
            + token_loss(end_logits, end, ignore_index=ignored)) / 2


def question_answering_output(logits: Array, outputs, start_positions: Array | None = None,
                              end_positions: Array | None = None) -> QuestionAnsweringModelOutput:
    """An encoder or decoder-only model's question-answering output from its head's [batch, seq, 2] logits; the
    loss needs both positions."""
    start_logits, end_logits = logits[..., 0], logits[..., 1]
    loss = None
    if start_positions is not None and end_positions is not None:
        loss = span_loss(start_logits, end_logits, start_positions, end_positions)
    return QuestionAnsweringModelOutput(
        loss=loss, start_logits=start_logits, end_logits=end_logits,
        hidden_states=outputs.hidden_states, attentions=outputs.attentions,
    )


# ---------------------------------------------------------------------------------------------------------------
# Static cache, for compiled generation
# A StaticCache holds max_length preallocated slots per layer and the count already written (``index``), so every
# generation step has the same shapes and a jitted step function traces once.


def new_static_cache(num_layers: int, batch: int, num_heads: int, max_length: int, head_dim: int, dtype: Dtype,
                     cross_key_values=None) -> StaticCache:
    """Zeros [batch, heads, max_length, head_dim] per layer and index 0; ``cross_key_values`` (one (key, value)
    per layer, computed once from the encoder output) become each layer's 3rd and 4th entries.

    The cross entries are materialized in that layout (an optimization barrier): otherwise XLA folds their
    head transpose into the decoding loop, which then transposes every layer's keys and values at every step.
    """
    zeros = jnp.zeros((batch, num_heads, max_length, head_dim), dtype)
    cross = [()] * num_layers
    if cross_key_values is not None:
        cross = jax.lax.optimization_barrier([tuple(key_value) for key_value in cross_key_values])
    return StaticCache(tuple((zeros, zeros, *kv) for kv in cross), jnp.asarray(0, jnp.int32))


def static_cache_slots(index: Array, new: int) -> Array:
    """The slots ``index ... index + new - 1`` that ``new`` tokens written at ``index`` occupy."""
    return jnp.asarray(index, jnp.int32) + jnp.arange(new)


def static_cache_update(cache_key: Array, cache_value: Array, key: Array, value: Array,
                        index: Array) -> tuple[Array, Array]:
    """Write ``key``/``value`` [batch, heads, new, head_dim] into slots ``index ... index + new - 1`` of the cache
    arrays [batch, heads, max_length, head_dim]; returns the updated (cache_key, cache_value).

    Overflowing the cache raises when ``index`` is known now; under tracing (where dynamic_update_slice would
    silently move the write back) the written keys and values become NaN, so the outputs show it: every later
    query sees the last slots, and a NaN score stays NaN whatever the mask adds. Only the written slots are
    touched, so XLA updates the cache in place.
    """
    max_length, new = cache_key.shape[2], key.shape[2]
    overflow = check_static_cache_room(index, new, max_length)
    start = (0, 0, jnp.asarray(index, jnp.int32), 0)

    def write(cache, update):
        update = update.astype(cache.dtype)
        if overflow is not None:
            update = jnp.where(overflow, jnp.asarray(jnp.nan, cache.dtype), update)
        return jax.lax.dynamic_update_slice(cache, update, start)

    return write(cache_key, key), write(cache_value, value)


def check_static_cache_room(index: Array, new: int, max_length: int) -> Array | None:
    """Raise when writing ``new`` slots from a known ``index`` overflows; under tracing the overflow flag (and a
    ``checkify.debug_check``, see ``check_indices``)."""
    filled = concrete(index)
    if filled is not None:
        check_cache_room(int(filled), new, max_length)
        return None
    overflow = jnp.asarray(index, jnp.int32) + new > max_length
    checkify.debug_check(~overflow, f"{cache_overflow_error(new, max_length)}: {{}} are already filled", index)
    return overflow


def static_cache_keep_mask(attention_mask: Array | None, index: Array, query_length: int, max_length: int,
                           batch: int) -> Array:
    """The [batch, 1, queries, max_length] 0/1 keep mask of queries written at slots ``index ...``.

    Query i (slot index + i) sees slot j when j <= index + i (causal order; slots not yet written lie beyond) and
    ``attention_mask[:, j]`` is 1. ``attention_mask`` [batch, max_length] covers every slot (padding 0; what it
    says of future slots does not matter); None keeps them all.
    """
    if attention_mask is None:
        attention_mask = jnp.ones((batch, max_length), jnp.int32)
    shape = tuple(np.shape(attention_mask))
    if shape != (batch, max_length):
        raise ValueError(f"with a StaticCache, attention_mask must cover all {max_length} cache slots: shape "
                         f"[batch={batch}, {max_length}] (0 for padding), got {list(shape)}")
    causal = (jnp.arange(max_length)[None, :] <= static_cache_slots(index, query_length)[:, None]).astype(jnp.int32)
    return causal[None, None, :, :] * jnp.asarray(attention_mask, jnp.int32)[:, None, None, :]


# ---------------------------------------------------------------------------------------------------------------
# Attention with k/v/q/out projections (BART, OPT)


class ProjectedAttention(nn.Module):
    """Multi-head attention with ``k_proj``, ``v_proj``, ``q_proj`` and ``out_proj`` (BART, OPT).

    Self-attention, or cross-attention when ``key_value_states`` (the encoder output) is given. The cache entry
    ``past_key_value`` is (key, value) [batch, heads, keys, head_dim]: self-attention appends the new keys to it,
    or, with ``cache_index`` (a StaticCache's), writes them into its preallocated slots from that index;
    cross-attention reuses it as is (the encoder's keys do not change while decoding). ``scale_query`` scales the
    query before the product, as fairseq's OPT does; otherwise the scores are scaled, as BART does.
    """

    embed_dim: int
    num_heads: int
    std: float
    dropout: float = 0.0
    use_bias: bool = True
    scale_query: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be a multiple of num_heads ({self.num_heads})")
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (
            dense(self.embed_dim, self.std, self.dtype, self.param_dtype, use_bias=self.use_bias) for _ in range(4))

    def __call__(self, hidden_states: Array, mask: Array | None = None, head_mask: Array | None = None,
                 key_value_states: Array | None = None, past_key_value: tuple[Array, Array] | None = None,
                 cache_index: Array | None = None, deterministic: bool = True, output_attentions: bool = False):
        """Returns (output [batch, queries, embed_dim], probabilities or None, this layer's (key, value))."""
        query, scale = self.q_proj(hidden_states), self.scaling
        if self.scale_query:
            query, scale = query * self.scaling, 1.0
        query = split_heads(query, self.num_heads)
        key, value = keys_and_values(self.project_key_value, hidden_states, key_value_states, past_key_value,
                                     cache_index)
        use_dropout = not deterministic and self.dropout > 0.0
        context, probs = eager_attention(
            query, key, value, mask, dropout=self.dropout, head_mask=head_mask, scale=scale,
            dropout_rng=self.make_rng("dropout") if use_dropout else None,
        )
        return self.out_proj(merge_heads(context)), probs if output_attentions else None, (key, value)

    @property
    def scaling(self) -> float:
        return (self.embed_dim // self.num_heads) ** -0.5

    def project_key_value(self, source: Array) -> tuple[Array, Array]:
        """Keys and values [batch, heads, len, head_dim] of ``source`` (the encoder output, for a cache)."""
        return split_heads(self.k_proj(source), self.num_heads), split_heads(self.v_proj(source), self.num_heads)
