"""Keras 3 (TensorFlow backend) building blocks shared by every family's ``modeling_tf.py``: the vocabulary
``layers_pt`` and ``layers_flax`` share (same names, parameters and layouts; framework-only helpers live in
``backend_tf``).

Parameters live in Keras layers (Dense, LayerNormalization, Embedding) built at construction from the config's
sizes, so a model has all its variables before its first call; the computations use TensorFlow ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf

from . import activations, validation
from .backend_tf import Block, dense, dim, known, layer_norm, static_shape, tied_logits
from .cache import StaticCache
from .outputs import QuestionAnsweringModelOutput
from .training_tf import global_mean
from .validation import (
    cache_overflow_error,
    check_cache_room,
    check_mask_shape,
    check_sequence_classification_labels,
    check_shape,
    check_span_positions,
    check_token_labels,
    infer_problem_type,
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


# ---------------------------------------------------------------- activations

def _gelu_tanh(x):
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3.0))))


def _gelu_fast(x):
    return 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


ACTIVATIONS = {
    "gelu": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_python": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "quick_gelu": lambda x: x * tf.sigmoid(1.702 * x),
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "tanh": tf.tanh,
}
assert set(ACTIVATIONS) == set(activations.ACTIVATIONS), "layers_tf must implement every name in activations.py"


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


# ---------------------------------------------------------------- inputs and LayerDrop

def input_shape(ids, embeds, ids_name: str = "input_ids", embeds_name: str = "inputs_embeds"):
    """(batch, sequence) of exactly one of token ids [batch, seq] or embeddings [batch, seq, hidden]: Python ints,
    or in a graph scalar tensors for the dimensions not known yet."""
    validation.input_shape(ids, embeds, ids_name, embeds_name)
    given = tf.convert_to_tensor(ids if ids is not None else embeds)
    return dim(given, 0), dim(given, 1)


def layer_dropped(layerdrop: float, training: bool):
    """LayerDrop: in training a layer is skipped with probability ``layerdrop`` (one draw for the batch): a scalar
    bool tensor for ``tf.where(dropped, layer input, layer output)``, so the graph is the same for every draw;
    False when nothing can be dropped."""
    if not training or layerdrop == 0:
        return False
    return tf.random.uniform([]) < layerdrop


# ---------------------------------------------------------------- float heads of RoBERTa-style encoders
# RoBERTa, RoBERTa-PreLayerNorm and I-BERT. Attribute names are Hugging Face's, so variable paths map to the
# checkpoint names (pooler.dense.weight, lm_head.bias, classifier.out_proj.weight, ...).


class Pooler(Block):
    """tanh(dense(first token)): the sentence vector of the bare model."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense(config.hidden_size, config.hidden_size, config.initializer_range, "dense",
                           self.dtype_policy)
        self.built = True

    def call(self, hidden_states):
        return tf.tanh(self.dense(hidden_states[:, 0]))


class LMHead(Block):
    """dense, exact GELU, LayerNorm, then the vocabulary projection: by the word embeddings when tied (the
    default, so no decoder kernel of its own), else by ``decoder``; plus ``bias``."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        std, dtype, hidden = config.initializer_range, self.dtype_policy, config.hidden_size
        self.dense = dense(hidden, hidden, std, "dense", dtype)
        self.layer_norm = layer_norm(hidden, config.layer_norm_eps, "layer_norm", dtype)
        if not config.tie_word_embeddings:
            self.decoder = dense(config.vocab_size, hidden, std, "decoder", dtype, use_bias=False)
        self.bias = self.add_weight(name="bias", shape=(config.vocab_size,), initializer="zeros")
        self.tied = config.tie_word_embeddings
        self.built = True

    def call(self, features, word_embeddings=None):
        x = self.layer_norm(tf.nn.gelu(self.dense(features), approximate=False))
        logits = tied_logits(x, word_embeddings) if self.tied else self.decoder(x)
        return logits + self.bias


class ClassificationHead(Block):
    """Sentence classification from the first token (<s>): dropout, dense, tanh, dropout, projection.
    ``dropout`` is the family's rate (RoBERTa: classifier_dropout, else hidden_dropout_prob; I-BERT: always
    hidden_dropout_prob)."""

    def __init__(self, config, dropout: float, **kwargs):
        super().__init__(**kwargs)
        std, dtype, hidden = config.initializer_range, self.dtype_policy, config.hidden_size
        self.dense = dense(hidden, hidden, std, "dense", dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)
        self.out_proj = dense(config.num_labels, hidden, std, "out_proj", dtype)
        self.built = True

    def call(self, features, training=False):
        x = self.dropout(features[:, 0, :], training=training)
        x = self.dropout(tf.tanh(self.dense(x)), training=training)
        return self.out_proj(x)


# ---------------------------------------------------------------- attention masks
# A "keep" mask holds 1 where attention is allowed; the additive form holds 0 there and the dtype's most negative
# finite value elsewhere, as Hugging Face builds it, so fully masked rows (uniform softmax) agree too.

def additive_mask(keep, dtype):
    return (1.0 - tf.cast(keep, dtype)) * tf.as_dtype(dtype).min


def padding_keep_mask(mask, batch, query_length, key_length, name: str):
    """A 2D [batch, keys] or 3D [batch, queries, keys] mask as a [batch, 1, queries or 1, keys] keep mask."""
    mask = tf.convert_to_tensor(mask)
    check_mask_shape(name, static_shape(mask), known(batch), known(query_length), known(key_length))
    return mask[:, None, None, :] if mask.shape.rank == 2 else mask[:, None, :, :]


def causal_keep_mask(mask, query_length):
    """Combine a 2D padding mask [batch, past + queries] with the causal mask: [batch, 1, queries, past + queries].

    The queries are the last ``query_length`` positions; every cached position before them stays visible.
    """
    key_length = dim(mask, 1)
    query_positions = tf.range(key_length - query_length, key_length)
    causal = tf.range(key_length)[None, :] <= query_positions[:, None]
    return tf.cast(causal, mask.dtype)[None, None, :, :] * mask[:, None, None, :]


def head_mask_per_layer(head_mask, num_layers: int, num_heads: int, dtype, name: str = "head_mask"):
    """[heads] or [layers, heads] (1 keeps a head, 0 silences it) -> per layer [1, heads, 1, 1], or Nones."""
    if head_mask is None:
        return [None] * num_layers
    head_mask = tf.cast(head_mask, dtype)
    if head_mask.shape.rank == 1:
        check_shape(name, static_shape(head_mask), (num_heads,), "heads")
        head_mask = tf.broadcast_to(head_mask[None, :], [num_layers, num_heads])
    elif head_mask.shape.rank == 2:
        check_shape(name, static_shape(head_mask), (num_layers, num_heads), "layers, heads")
    else:
        raise ValueError(f"{name} must have shape [heads] or [layers, heads], got {static_shape(head_mask)}")
    return [head_mask[i][None, :, None, None] for i in range(num_layers)]


# ---------------------------------------------------------------- attention

def split_heads(x, num_heads: int):
    """[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim]."""
    x = tf.reshape(x, [tf.shape(x)[0], -1, num_heads, x.shape[-1] // num_heads])
    return tf.transpose(x, [0, 2, 1, 3])


def merge_heads(x):
    """[batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim]."""
    x = tf.transpose(x, [0, 2, 1, 3])
    return tf.reshape(x, [tf.shape(x)[0], -1, x.shape[2] * x.shape[3]])


def eager_attention(query, key, value, mask=None, *, dropout: keras.layers.Dropout, training: bool = False,
                    head_mask=None, extra_scores: Sequence = (), scale: float | None = None):
    """Attention written out (XLA fuses it under ``jit_compile``); returns (context, probabilities).

    ``extra_scores`` (relative position scores) are added to the raw scores before the division by
    sqrt(head_dim), in Hugging Face's order, so float32 results match PyTorch's to rounding. A ``scale`` given
    multiplies the scores instead (BART's order; 1.0 when the query was scaled already, as in OPT).
    """
    scores = tf.matmul(query, key, transpose_b=True)
    for extra in extra_scores:
        scores = scores + extra
    scores = scores / math.sqrt(query.shape[-1]) if scale is None else scores * scale
    if mask is not None:
        scores = scores + tf.cast(mask, scores.dtype)
    probs = tf.nn.softmax(scores, axis=-1)
    probs = dropout(probs, training=training)
    if head_mask is not None:
        probs = probs * tf.cast(head_mask, probs.dtype)
    return tf.matmul(probs, value), probs


# ---------------------------------------------------------------- losses, as Hugging Face computes them (in float32)

def token_loss(logits, labels, ignore_index=-100):
    """Cross entropy over every position; labels equal to ``ignore_index`` are left out of the mean
    (NaN when all are, as in PyTorch)."""
    labels = tf.convert_to_tensor(labels)
    check_token_labels(static_shape(labels), labels.dtype, static_shape(logits))
    logits = tf.cast(tf.reshape(logits, [-1, logits.shape[-1]]), tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    keep = labels != tf.cast(ignore_index, tf.int32)
    safe = tf.where(keep, labels, tf.zeros_like(labels))
    per_item = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    keep = tf.cast(keep, tf.float32)
    return global_mean(tf.reduce_sum(per_item * keep), tf.reduce_sum(keep))


def causal_lm_loss(logits, labels):
    """Next-token cross entropy: position i predicts label i + 1."""
    labels = tf.convert_to_tensor(labels)
    check_token_labels(static_shape(labels), labels.dtype, static_shape(logits))
    return token_loss(logits[:, :-1], labels[:, 1:])


def _mse(predictions, targets):
    return _elementwise_mean(tf.square(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32)))


def _elementwise_mean(values):
    return global_mean(tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32))


def sequence_classification_loss(config, logits, labels):
    """Regression (MSE), single-label (cross entropy) or multi-label (BCE with logits) by ``config.problem_type``.

    When the problem type is unset it is inferred as Hugging Face does and written to the config.
    """
    labels = tf.convert_to_tensor(labels)
    num_labels = config.num_labels
    if config.problem_type is None:
        config.problem_type = infer_problem_type(num_labels, labels.dtype)
    check_sequence_classification_labels(config.problem_type, static_shape(labels), labels.dtype, static_shape(logits))
    if config.problem_type == "regression":
        if num_labels == 1:
            return _mse(tf.squeeze(logits), tf.squeeze(labels))
        return _mse(logits, labels)
    if config.problem_type == "single_label_classification":
        return token_loss(logits, labels)
    logits = tf.cast(logits, tf.float32)
    return _elementwise_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits))


def span_loss(start_logits, end_logits, start_positions, end_positions):
    """Question answering: mean of start and end cross entropy; positions past the input are ignored."""
    ignored = dim(start_logits, 1)
    for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
        positions = tf.convert_to_tensor(positions)
        check_span_positions(name, static_shape(positions), positions.dtype, start_logits.shape[0])

    def loss(logits, positions):
        positions = tf.clip_by_value(tf.reshape(tf.cast(positions, tf.int32), [-1]), 0, ignored)
        return token_loss(logits, positions, ignore_index=ignored)

    return (loss(start_logits, start_positions) + loss(end_logits, end_positions)) / 2


def question_answering_output(logits, outputs, start_positions=None,
                              end_positions=None) -> QuestionAnsweringModelOutput:
    """An encoder or decoder-only model's question-answering output from its head's [batch, seq, 2] logits; the
    loss needs both positions."""
    start_logits, end_logits = tf.unstack(logits, num=2, axis=-1)
    loss = None
    if start_positions is not None and end_positions is not None:
        loss = span_loss(start_logits, end_logits, start_positions, end_positions)
    return QuestionAnsweringModelOutput(
        loss=loss, start_logits=start_logits, end_logits=end_logits, hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
    )


# ---------------------------------------------------------------- static cache, for compiled generation
# A StaticCache holds max_length preallocated slots per layer and the count already written (``index``), so
# every generation step has the same shapes and a jit-compiled step function traces once.

def new_static_cache(num_layers: int, batch: int, num_heads: int, max_length: int, head_dim: int, dtype,
                     cross_key_values=None) -> StaticCache:
    """Zeros [batch, heads, max_length, head_dim] per layer and index 0; ``cross_key_values`` (one (key, value)
    per layer, computed once from the encoder output) become each layer's 3rd and 4th entries."""
    zeros = tf.zeros([batch, num_heads, max_length, head_dim], dtype)
    cross = cross_key_values if cross_key_values is not None else [()] * num_layers
    return StaticCache(tuple((zeros, zeros, *kv) for kv in cross), tf.constant(0, tf.int32))


def static_cache_slots(index, new: int):
    """The slots ``index ... index + new - 1`` that ``new`` tokens written at ``index`` occupy."""
    return tf.cast(index, tf.int32) + tf.range(new)


def static_cache_update(cache_key, cache_value, key, value, index):
    """Write ``key``/``value`` [batch, heads, new, head_dim] into slots ``index ... index + new - 1`` of the
    cache tensors [batch, heads, max_length, head_dim]; returns the updated (cache_key, cache_value).

    A scatter of the new slots only, which XLA performs in place (a select over every slot would rewrite the
    whole cache at each step). Overflowing the cache raises eagerly; in a graph the slots past the end are
    clamped to the last one and the written keys and values become NaN, so the outputs show it: every later
    query sees the last slot, and a NaN score stays NaN whatever the mask adds.
    """
    max_length, new = cache_key.shape[2], key.shape[2]
    overflow = check_static_cache_room(index, new, max_length)
    slots = tf.minimum(static_cache_slots(index, new), max_length - 1)
    shape = tf.shape(key)
    rows, heads, slots = tf.meshgrid(tf.range(shape[0]), tf.range(shape[1]), slots, indexing="ij")
    positions = tf.stack([rows, heads, slots], axis=-1)  # [batch, heads, new, 3]

    def write(cache, update):
        update = tf.cast(update, cache.dtype)
        if overflow is not None:
            update = tf.where(overflow, tf.cast(float("nan"), cache.dtype), update)
        return tf.tensor_scatter_nd_update(cache, positions, update)

    return write(cache_key, key), write(cache_value, value)


def check_static_cache_room(index, new: int, max_length: int):
    """Raise when writing ``new`` slots from a known ``index`` overflows; in a graph, an assert (dropped by XLA)
    and the overflow flag."""
    if tf.executing_eagerly():
        check_cache_room(int(index), new, max_length)
        return None
    filled = tf.cast(index, tf.int32)
    tf.debugging.assert_less_equal(filled + new, max_length, message=cache_overflow_error(new, max_length))
    return filled + new > max_length


def static_cache_keep_mask(attention_mask, index, query_length: int, max_length: int, batch, dtype):
    """The [batch, 1, queries, max_length] keep mask of queries written at slots ``index ...``.

    Query i (slot index + i) sees slot j when j <= index + i (causal order; slots not yet written lie beyond) and
    ``attention_mask[:, j]`` is 1. ``attention_mask`` [batch, max_length] covers every slot (padding 0; what it
    says of future slots does not matter); None keeps them all.
    """
    if attention_mask is None:
        attention_mask = tf.ones([batch, max_length], dtype)
    attention_mask = tf.cast(attention_mask, dtype)
    shape = static_shape(attention_mask)
    if len(shape) != 2 or shape[1] != max_length or (isinstance(batch, int) and shape[0] not in (None, batch)):
        raise ValueError(
            f"with a StaticCache, attention_mask must cover all {max_length} cache slots: shape "
            f"[batch={batch}, {max_length}] (0 for padding), got {shape}"
        )
    causal = tf.range(max_length)[None, :] <= static_cache_slots(index, query_length)[:, None]
    return tf.cast(causal, dtype)[None, None, :, :] * attention_mask[:, None, None, :]


def keys_and_values(project_key_value, hidden_states, key_value_states, past_key_value, cache_index):
    """An attention layer's keys and values with its cache entry: cross-attention reuses a cached entry as is (the
    encoder's keys do not change while decoding); self-attention appends to a dynamic entry or, with
    ``cache_index``, writes into a StaticCache's slots."""
    if key_value_states is not None and past_key_value is not None:
        return tuple(past_key_value)
    key, value = project_key_value(hidden_states if key_value_states is None else key_value_states)
    if past_key_value is None:
        return key, value
    if cache_index is not None:
        return static_cache_update(past_key_value[0], past_key_value[1], key, value, cache_index)
    return tf.concat([past_key_value[0], key], axis=2), tf.concat([past_key_value[1], value], axis=2)


# ---------------------------------------------------------------- attention with k/v/q/out projections (BART, OPT)

class ProjectedAttention(Block):
    """Multi-head attention with ``k_proj``, ``v_proj``, ``q_proj`` and ``out_proj`` (BART, OPT).

    Self-attention, or cross-attention when ``key_value_states`` (the encoder output) is given. The cache entry
    ``past_key_value`` is (key, value) [batch, heads, keys, head_dim]: self-attention appends the new keys to it,
    or, with ``cache_index`` (a StaticCache's), writes them into its preallocated slots from that index;
    cross-attention reuses it as is (the encoder's keys do not change while decoding). ``scale_query`` scales
    the query before the product, as fairseq's OPT does; otherwise the scores are scaled, as BART does.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, std: float, use_bias: bool = True,
                 scale_query: bool = False, **kwargs):
        super().__init__(**kwargs)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads})")
        dtype = self.dtype_policy
        self.num_heads = num_heads
        self.scaling = (embed_dim // num_heads) ** -0.5
        self.scale_query = scale_query
        self.k_proj = dense(embed_dim, embed_dim, std, "k_proj", dtype, use_bias)
        self.v_proj = dense(embed_dim, embed_dim, std, "v_proj", dtype, use_bias)
        self.q_proj = dense(embed_dim, embed_dim, std, "q_proj", dtype, use_bias)
        self.out_proj = dense(embed_dim, embed_dim, std, "out_proj", dtype, use_bias)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)
        self.built = True

    def call(self, hidden_states, attention_mask=None, head_mask=None, key_value_states=None, past_key_value=None,
             cache_index=None, training=False):
        """Returns (output [batch, queries, embed_dim], probabilities, this layer's (key, value))."""
        query = self.q_proj(hidden_states)
        scale = self.scaling
        if self.scale_query:
            query, scale = query * self.scaling, 1.0
        query = split_heads(query, self.num_heads)
        key, value = keys_and_values(self.project_key_value, hidden_states, key_value_states, past_key_value,
                                     cache_index)
        context, probs = eager_attention(query, key, value, attention_mask, dropout=self.dropout, training=training,
                                         head_mask=head_mask, scale=scale)
        return self.out_proj(merge_heads(context)), probs, (key, value)

    def project_key_value(self, source):
        """Keys and values [batch, heads, len, head_dim] of ``source`` (the encoder output, for a cache)."""
        return split_heads(self.k_proj(source), self.num_heads), split_heads(self.v_proj(source), self.num_heads)
