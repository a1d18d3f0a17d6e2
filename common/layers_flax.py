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
from jax.experimental import checkify

from .activations import ACTIVATIONS
from .cache import StaticCache
from .kernels import table_on_left
from .outputs import OUTPUT_CLASSES, QuestionAnsweringModelOutput
from .validation import (
    cache_overflow_error,
    check_cache_room,
    check_index_range,
    check_mask_shape,
    check_sequence_classification_labels,
    check_shape,
    check_span_positions,
    check_token_ids,
    check_token_labels,
    index_error,
    infer_problem_type,
    token_id_error,
)

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


def take_rows(table: Array, ids: Array, low: int = 0, offset: int = 0) -> Array:
    """Rows ``ids + offset`` of ``table``, where ids outside [low, len(table) - offset) give NaN rows instead of
    being clamped or wrapped.

    Eager calls validate ids beforehand; under tracing this is what makes bad ids visible in the output.
    """
    ids = jnp.asarray(ids)
    valid = (ids >= low) & (ids < table.shape[0] - offset)
    rows = jnp.where(valid, ids + offset, table.shape[0])  # jnp.take wraps negative ids even in "fill" mode
    return jnp.take(table, rows, axis=0, mode="fill", fill_value=jnp.nan)


def check_indices(ids: Array, size: int, name: str, what: str | None = None, low: int = 0) -> None:
    """Raise the shared ValueError for ids outside [low, size) when their values are known now (eager calls);
    ``what`` None: token ids, checked against the vocabulary of ``size`` tokens.

    Under tracing the same check is a ``checkify.debug_check``: a no-op, unless the caller runs the jitted function
    through ``jax.experimental.checkify.checkify``, which then returns this error instead of the NaN rows.
    """
    values = concrete(ids)
    if values is not None:
        if what is None:
            check_token_ids(values, size, name)
        else:
            check_index_range(values, size, name, what, low)
        return
    ids = jnp.asarray(ids)
    if ids.size:
        message = token_id_error("{}", size, name) if what is None else index_error("{}", size, name, what, low)
        bad = jnp.where(jnp.min(ids) < low, jnp.min(ids), jnp.max(ids))
        checkify.debug_check(jnp.all((ids >= low) & (ids < size)), message, bad)


# ---------------------------------------------------------------------------------------------------------------
# Layers


def dense(features: int, std: float, dtype: Dtype, param_dtype: Dtype, *, use_bias: bool = True, name=None):
    """A Dense layer initialized as Hugging Face does: normal(0, std) kernel, zero bias."""
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                    kernel_init=jax.nn.initializers.normal(std), name=name)


def layer_norm(eps: float, dtype: Dtype, param_dtype: Dtype, *, affine: bool = True, name=None):
    """``affine=False``: no scale and bias (PyTorch's ``elementwise_affine=False``)."""
    # The two-pass variance, as PyTorch computes it; the fast E[x^2] - E[x]^2 form loses digits.
    return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=param_dtype, use_fast_variance=False,
                        use_bias=affine, use_scale=affine, name=name)


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


def tied_logits(hidden_states: Array, table: Array) -> Array:
    """``hidden_states @ table.T``: scores of every row [..., hidden] against a token table [vocab, hidden], with
    few rows in the faster layout ``kernels.table_on_left`` picks."""
    table = table.astype(hidden_states.dtype)
    rows = math.prod(hidden_states.shape[:-1])
    if not table_on_left(rows):
        return hidden_states @ table.T
    by_vocab = jax.lax.optimization_barrier(table @ hidden_states.reshape(rows, -1).T)
    return by_vocab.T.reshape(*hidden_states.shape[:-1], table.shape[0])


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


class Embed(nn.Module):
    """An embedding table (param ``embedding``, as ``nn.Embed``) whose lookup never clamps bad ids.

    ``padding_idx``: as PyTorch's, the lookups of that id pass no gradient to its row. Id i is row i + ``offset``
    and ids below ``low`` are invalid (OPT's positions: from -1, at rows from 1; the table keeps a row before).
    """

    num_embeddings: int
    features: int
    std: float
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    padding_idx: int | None = None
    offset: int = 0
    low: int = 0

    def setup(self):
        self.embedding = self.param("embedding", jax.nn.initializers.normal(self.std),
                                    (self.num_embeddings, self.features), self.param_dtype)

    def __call__(self, ids: Array) -> Array:
        rows = take_rows(self.embedding, ids, self.low, self.offset).astype(self.dtype)
        if self.padding_idx is None:
            return rows
        return jnp.where((jnp.asarray(ids) == self.padding_idx)[..., None], jax.lax.stop_gradient(rows), rows)

    def check(self, ids: Array, name: str, what: str | None = None) -> None:
        """Raise a clear ValueError for out-of-range ids when their values are known (eager calls); see
        ``check_indices`` (``what`` None: token ids)."""
        check_indices(ids, self.num_embeddings - self.offset, name, what, self.low)


def checkpointed(layer: type[nn.Module], gradient_checkpointing: bool, static_argnums: tuple[int, ...]):
    """``layer``'s class, or with ``gradient_checkpointing`` its ``nn.remat``: the layer keeps no activations for
    the backward pass and recomputes them there (same parameters, same dropout draws). ``static_argnums``: the
    positions in ``__call__`` (``self`` is 0) of the Python flags, such as ``deterministic``."""
    return nn.remat(layer, static_argnums=static_argnums) if gradient_checkpointing else layer


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
    check_mask_shape(name, shape, batch, query_length, key_length)
    if len(shape) == 3:
        return additive_mask(jnp.asarray(mask)[:, None, :, :], dtype)
    mask = jnp.asarray(mask)[:, None, None, :]
    if causal:
        mask = mask * causal_mask(query_length, key_length)[None, None, :, :]
    return additive_mask(mask, dtype)


# ---------------------------------------------------------------------------------------------------------------
# Attention


def layer_head_masks(head_mask: Array | None, num_layers: int, num_heads: int,
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


def dropout(x: Array, rate: float, rng: Array | None) -> Array:
    """Inverted dropout (as torch.nn.Dropout); identity without an rng or with rate 0."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def attention(query: Array, key: Array, value: Array, bias: Array | None, *, score_offset: Array | None = None,
              head_mask: Array | None = None, dropout_rate: float = 0.0, dropout_rng: Array | None = None,
              output_attentions: bool = False, scale: float | None = None) -> tuple[Array, Array | None]:
    """Scaled dot-product attention over heads.

    query [batch, q, heads, head_dim], key / value [batch, k, heads, head_dim]; ``bias`` additive, broadcastable to
    [batch, heads, q, k]; ``score_offset`` (relative positions) is added to the raw scores before scaling, as in
    Hugging Face. Returns the context [batch, q, heads, head_dim] and the probabilities [batch, heads, q, k] when
    ``output_attentions`` (after dropout and head mask, as Hugging Face returns them). ``scale`` multiplies the
    scores instead of dividing them by sqrt(head_dim) (1.0 for queries scaled beforehand, as OPT's are).

    Uses the fused ``jax.nn.dot_product_attention`` unless probabilities, a score offset, a head mask or dropout
    are needed; both paths agree to float32 rounding, fully masked rows included (uniform weights).
    """
    use_dropout = dropout_rng is not None and dropout_rate > 0.0
    if bias is not None:
        bias = bias.astype(query.dtype)
    if not (output_attentions or score_offset is not None or head_mask is not None or use_dropout):
        return jax.nn.dot_product_attention(query, key, value, bias=bias, scale=scale), None
    scores = jnp.einsum("bqnd,bknd->bnqk", query, key, preferred_element_type=jnp.float32)
    if score_offset is not None:
        scores = scores + score_offset
    scores = scores / math.sqrt(query.shape[-1]) if scale is None else scores * scale
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


def given_dtype(x) -> np.dtype:
    """The dtype the caller gave (jnp.asarray turns int64 into int32 without x64, which would change errors)."""
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def cross_entropy(logits: Array, labels: Array, *, ignore_index: int = -100) -> Array:
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


def mse(predictions: Array, targets: Array) -> Array:
    """torch.nn.MSELoss (mean; shapes broadcast as PyTorch does)."""
    diff = predictions.astype(jnp.float32) - jnp.asarray(targets, jnp.float32)
    return jnp.mean(jnp.square(diff))


def bce_with_logits(logits: Array, targets: Array) -> Array:
    """torch.nn.BCEWithLogitsLoss (mean), in the overflow-free form."""
    x = logits.astype(jnp.float32)
    y = jnp.asarray(targets, jnp.float32)
    return jnp.mean(jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x))))


def causal_lm_loss(logits: Array, labels: Array) -> Array:
    """Next-token cross entropy: position t predicts label t + 1 (-100 ignored)."""
    check_token_labels(np.shape(labels), given_dtype(labels), logits.shape)
    return cross_entropy(logits[:, :-1], jnp.asarray(labels)[:, 1:])


def sequence_classification_loss(config, logits: Array, labels: Array) -> Array:
    """Regression (MSE), single-label (cross entropy) or multi-label (BCE with logits) by ``config.problem_type``;
    when unset it is inferred and recorded on the config, as Hugging Face does."""
    if config.problem_type is None:
        config.problem_type = infer_problem_type(config.num_labels, given_dtype(labels))
    check_sequence_classification_labels(config.problem_type, np.shape(labels), given_dtype(labels), logits.shape)
    labels = jnp.asarray(labels)
    if config.problem_type == "regression":
        return mse(jnp.squeeze(logits), jnp.squeeze(labels)) if config.num_labels == 1 else mse(logits, labels)
    if config.problem_type == "single_label_classification":
        return cross_entropy(logits, labels)
    return bce_with_logits(logits, labels)


def span_loss(start_logits: Array, end_logits: Array, start_positions: Array, end_positions: Array) -> Array:
    """Question answering: the mean of the start and end cross entropies; positions outside the input are clamped
    to seq_len and ignored, as Hugging Face does."""
    ignored = start_logits.shape[1]
    for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
        check_span_positions(name, np.shape(positions), given_dtype(positions), start_logits.shape[0])
    start = jnp.clip(jnp.asarray(start_positions).reshape(-1), 0, ignored)
    end = jnp.clip(jnp.asarray(end_positions).reshape(-1), 0, ignored)
    return (cross_entropy(start_logits, start, ignore_index=ignored)
            + cross_entropy(end_logits, end, ignore_index=ignored)) / 2


def span_logits_and_loss(logits: Array, start_positions: Array | None = None,
                         end_positions: Array | None = None) -> tuple[Array, Array, Array | None]:
    """(start logits, end logits, loss or None) from a question-answering head's [batch, seq, 2] output; the loss
    needs both positions."""
    start_logits, end_logits = logits[..., 0], logits[..., 1]
    loss = None
    if start_positions is not None and end_positions is not None:
        loss = span_loss(start_logits, end_logits, start_positions, end_positions)
    return start_logits, end_logits, loss


def question_answering_output(logits: Array, outputs, start_positions: Array | None = None,
                              end_positions: Array | None = None) -> QuestionAnsweringModelOutput:
    """An encoder or decoder-only model's question-answering output from its head's [batch, seq, 2] logits."""
    start_logits, end_logits, loss = span_logits_and_loss(logits, start_positions, end_positions)
    return QuestionAnsweringModelOutput(
        loss=loss, start_logits=start_logits, end_logits=end_logits,
        hidden_states=outputs.hidden_states, attentions=outputs.attentions,
    )


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
    query_slots = jnp.asarray(index, jnp.int32) + jnp.arange(query_length)
    causal = (jnp.arange(max_length)[None, :] <= query_slots[:, None]).astype(jnp.int32)
    return causal[None, None, :, :] * jnp.asarray(attention_mask, jnp.int32)[:, None, None, :]


def _register_static_cache() -> None:
    """StaticCache as a pytree node (children: the per-layer arrays, then ``index``), so a cache passes into and
    out of jit, and the index is an ordinary traced leaf: one compilation serves every step."""
    try:
        jax.tree_util.register_pytree_with_keys(
            StaticCache,
            lambda c: (((jax.tree_util.GetAttrKey("layers"), c.layers), (jax.tree_util.GetAttrKey("index"), c.index)),
                       None),
            lambda _, children: StaticCache(*children),
            flatten_func=lambda c: ((c.layers, c.index), None),
        )
    except ValueError:  # already registered (module reloaded)
        pass


_register_static_cache()


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

    def __call__(self, hidden_states: Array, bias: Array | None, head_mask: Array | None = None,
                 key_value_states: Array | None = None, past_key_value: tuple[Array, Array] | None = None,
                 cache_index: Array | None = None, deterministic: bool = True, output_attentions: bool = False):
        """Returns (output [batch, queries, embed_dim], probabilities or None, this layer's (key, value))."""
        head_dim = self.embed_dim // self.num_heads
        query, scale = self.q_proj(hidden_states), None
        if self.scale_query:
            query, scale = query * head_dim ** -0.5, 1.0
        key, value = self._keys_and_values(hidden_states, key_value_states, past_key_value, cache_index)
        use_dropout = not deterministic and self.dropout > 0.0
        context, probs = attention(
            self._split(query), jnp.swapaxes(key, 1, 2), jnp.swapaxes(value, 1, 2), bias, head_mask=head_mask,
            dropout_rate=self.dropout, dropout_rng=self.make_rng("dropout") if use_dropout else None,
            output_attentions=output_attentions, scale=scale,
        )
        return self.out_proj(context.reshape(context.shape[:2] + (-1,))), probs, (key, value)

    def project_key_value(self, source: Array) -> tuple[Array, Array]:
        """Keys and values [batch, heads, len, head_dim] of ``source`` (the encoder output, for a cache)."""
        return (jnp.swapaxes(self._split(self.k_proj(source)), 1, 2),
                jnp.swapaxes(self._split(self.v_proj(source)), 1, 2))

    def _split(self, x: Array) -> Array:
        """[batch, seq, embed_dim] -> [batch, seq, heads, head_dim]."""
        return x.reshape(x.shape[:2] + (self.num_heads, -1))

    def _keys_and_values(self, hidden_states, key_value_states, past_key_value, cache_index):
        if key_value_states is not None and past_key_value is not None:
            return tuple(jnp.asarray(t, self.dtype) for t in past_key_value)
        key, value = self.project_key_value(hidden_states if key_value_states is None else key_value_states)
        if past_key_value is None:
            return key, value
        if cache_index is not None:
            return static_cache_update(past_key_value[0], past_key_value[1], key, value, cache_index)
        return (jnp.concatenate([jnp.asarray(past_key_value[0], key.dtype), key], axis=2),
                jnp.concatenate([jnp.asarray(past_key_value[1], value.dtype), value], axis=2))


# ---------------------------------------------------------------------------------------------------------------
# Model plumbing
