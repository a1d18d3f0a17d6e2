"""Keras 3 (TensorFlow backend) building blocks shared by every family's ``modeling_tf.py``.

Parameters live in Keras layers (Dense, LayerNormalization, Embedding) built at construction from the config's
sizes, so a model has all its variables before its first call; the computations use TensorFlow ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import optree
import tensorflow as tf

from .activations import ACTIVATIONS
from .outputs import OUTPUT_CLASSES
from .validation import check_index_range, check_sequence_length, check_shape, check_token_ids


def require_tensorflow_backend() -> None:
    """Our TF classes are written against Keras 3 on TensorFlow; other backends would fail deep inside a call."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"rosettazoo's TF models need Keras on the TensorFlow backend, but Keras is set to {backend!r}; "
            f"set the environment variable KERAS_BACKEND=tensorflow before importing keras"
        )


require_tensorflow_backend()


# ---------------------------------------------------------------- activations

def _gelu_tanh(x):
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3.0))))


def _gelu_fast(x):
    return 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


_ACTIVATION_FUNCTIONS = {
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
assert set(_ACTIVATION_FUNCTIONS) == set(ACTIVATIONS), "layers_tf must implement every name in ACTIVATIONS"


def activation(name: str):
    if name not in _ACTIVATION_FUNCTIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATION_FUNCTIONS)}")
    return _ACTIVATION_FUNCTIONS[name]


# ---------------------------------------------------------------- parameter layers, built from the config's sizes

def dense(units: int, input_dim: int, std: float, name: str, dtype, use_bias: bool = True) -> keras.layers.Dense:
    """A Dense layer initialized as Hugging Face does (normal(0, std) kernel, zero bias), already built."""
    layer = keras.layers.Dense(
        units, use_bias=use_bias, kernel_initializer=keras.initializers.RandomNormal(stddev=std),
        bias_initializer="zeros", name=name, dtype=dtype,
    )
    layer.build((input_dim,))
    return layer


def layer_norm(size: int, eps: float, name: str, dtype) -> keras.layers.LayerNormalization:
    layer = keras.layers.LayerNormalization(epsilon=eps, name=name, dtype=dtype)
    layer.build((size,))
    return layer


def embedding(count: int, width: int, std: float, name: str, dtype, padding_idx: int | None = None):
    """An embedding table; the padding row starts at zero, as PyTorch's ``padding_idx`` makes it."""
    layer = keras.layers.Embedding(
        count, width, embeddings_initializer=keras.initializers.RandomNormal(stddev=std), name=name, dtype=dtype,
    )
    layer.build()
    if padding_idx is not None:
        table = layer.embeddings
        table.assign(tf.tensor_scatter_nd_update(
            tf.convert_to_tensor(table), [[padding_idx]], tf.zeros([1, width], table.dtype)))
    return layer


class Block(keras.layers.Layer):
    """Base of our composite layers.

    Keras layers have a read-only ``output`` property, and Hugging Face names sublayers ``output``; our attribute
    names must equal theirs, so the class attribute here lets an instance attribute of that name exist.
    """

    output = None

    @property
    def output_sublayer(self):
        """The ``output`` sublayer under a name Keras' saving visits (it skips ``output``, a name of its own), so
        ``save_weights`` / ``model.save`` keep its weights."""
        return self.__dict__.get("output")


# ---------------------------------------------------------------- input checks

def static_shape(tensor) -> list[int | None]:
    return list(tensor.shape)


def check_shape_compatible(name: str, tensor, expected: Sequence[int | None], meaning: str = "") -> None:
    """``validation.check_shape`` that lets unknown (graph-mode) dimensions pass."""
    shape = static_shape(tensor)
    fits = len(shape) == len(expected) and all(
        a is None or b is None or a == b for a, b in zip(shape, expected))
    if not fits:
        check_shape(name, shape, expected, meaning)


def lookup_token_ids(table, ids, vocab_size: int, name: str = "input_ids"):
    """``tf.gather(table, ids)`` for token ids, checked against the vocabulary (see ``_guarded_gather``)."""
    if tf.executing_eagerly():
        check_token_ids(np.asarray(ids), vocab_size, name)
        return tf.gather(table, ids)
    return _guarded_gather(table, ids, vocab_size, f"{name} holds a token id outside the vocabulary [0, {vocab_size})")


def lookup_indices(table, ids, size: int, name: str, what: str):
    """``tf.gather(table, ids)`` for other indices (positions, token types), checked against ``size``."""
    if tf.executing_eagerly():
        check_index_range(np.asarray(ids), size, name, what)
        return tf.gather(table, ids)
    return _guarded_gather(table, ids, size, f"{name} holds an index outside [0, {size}) allowed by {what}")


def _guarded_gather(table, ids, size: int, message: str):
    """A gather for graph mode, where the ids are not known yet.

    TensorFlow's gather clamps bad indices under XLA, so: an assert (InvalidArgumentError) runs before the
    gather; and, because XLA drops asserts, rows of out-of-range ids are set to NaN, so a bad id poisons the
    output instead of silently reading another row. (Eagerly the callers raise the shared ValueError first.)
    """
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(ids, tf.cast(0, ids.dtype), message=message),
        tf.debugging.assert_less(ids, tf.cast(size, ids.dtype), message=message),
    ]):
        ids = tf.identity(ids)
    rows = tf.gather(table, ids)
    valid = tf.logical_and(ids >= 0, ids < size)[..., None]
    return tf.where(valid, rows, tf.cast(float("nan"), rows.dtype))


def check_length(length, limit: int, what: str = "max_position_embeddings") -> None:
    """``validation.check_sequence_length`` for a length that is a Python int or, in a graph, a tensor."""
    if isinstance(length, int):
        check_sequence_length(length, limit, what)
    else:
        tf.debugging.assert_less_equal(
            length, limit, message=f"sequence length exceeds the {limit} positions the model allows ({what})")


def dim(tensor, axis: int):
    """A dimension as a Python int when static, else as a scalar tensor."""
    value = tensor.shape[axis]
    return value if value is not None else tf.shape(tensor)[axis]


# ---------------------------------------------------------------- attention masks
# A "keep" mask holds 1 where attention is allowed; the additive form holds 0 there and the dtype's most negative
# finite value elsewhere, as Hugging Face builds it, so fully masked rows (uniform softmax) agree too.

def additive_mask(keep, dtype):
    return (1.0 - tf.cast(keep, dtype)) * tf.as_dtype(dtype).min


def _known(value):
    return value if isinstance(value, int) else None


def padding_keep_mask(mask, batch, query_length, key_length, name: str):
    """A 2D [batch, keys] or 3D [batch, queries, keys] mask as a [batch, 1, queries or 1, keys] keep mask."""
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank == 2:
        check_shape_compatible(name, mask, [_known(batch), _known(key_length)], "batch, key length")
        return mask[:, None, None, :]
    if mask.shape.rank == 3:
        check_shape_compatible(name, mask, [_known(batch), _known(query_length), _known(key_length)],
                               "batch, query length, key length")
        return mask[:, None, :, :]
    raise ValueError(f"{name} must have 2 or 3 dimensions, got shape {static_shape(mask)}")


def causal_keep_mask(mask, query_length):
    """Combine a 2D padding mask [batch, past + queries] with the causal mask: [batch, 1, queries, past + queries].

    The queries are the last ``query_length`` positions; every cached position before them stays visible.
    """
    key_length = dim(mask, 1)
    query_positions = tf.range(key_length - query_length, key_length)
    causal = tf.range(key_length)[None, :] <= query_positions[:, None]
    return tf.cast(causal, mask.dtype)[None, None, :, :] * mask[:, None, None, :]


def head_mask_per_layer(head_mask, num_layers: int, num_heads: int, dtype):
    """[heads] or [layers, heads] (1 keeps a head, 0 silences it) -> per layer [1, heads, 1, 1], or Nones."""
    if head_mask is None:
        return [None] * num_layers
    head_mask = tf.cast(head_mask, dtype)
    if head_mask.shape.rank == 1:
        check_shape("head_mask", static_shape(head_mask), (num_heads,), "heads")
        head_mask = tf.broadcast_to(head_mask[None, :], [num_layers, num_heads])
    elif head_mask.shape.rank == 2:
        check_shape("head_mask", static_shape(head_mask), (num_layers, num_heads), "layers, heads")
    else:
        raise ValueError(f"head_mask must have shape [heads] or [layers, heads], got {static_shape(head_mask)}")
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
                    head_mask=None, extra_scores: Sequence = ()):
    """Attention written out (XLA fuses it under ``jit_compile``); returns (context, probabilities).

    ``extra_scores`` (relative position scores) are added to the raw scores before the division by
    sqrt(head_dim), in Hugging Face's order, so float32 results match PyTorch's to rounding.
    """
    scores = tf.matmul(query, key, transpose_b=True)
    for extra in extra_scores:
        scores = scores + extra
    scores = scores / math.sqrt(query.shape[-1])
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
    logits = tf.cast(tf.reshape(logits, [-1, logits.shape[-1]]), tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    keep = labels != tf.cast(ignore_index, tf.int32)
    safe = tf.where(keep, labels, tf.zeros_like(labels))
    per_item = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    keep = tf.cast(keep, tf.float32)
    return tf.reduce_sum(per_item * keep) / tf.reduce_sum(keep)


def causal_lm_loss(logits, labels):
    """Next-token cross entropy: position i predicts label i + 1."""
    return token_loss(logits[:, :-1], labels[:, 1:])


def _mse(predictions, targets):
    return tf.reduce_mean(tf.square(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32)))


def sequence_classification_loss(config, logits, labels):
    """Regression (MSE), single-label (cross entropy) or multi-label (BCE with logits) by ``config.problem_type``.

    When the problem type is unset it is inferred as Hugging Face does and written to the config.
    """
    labels = tf.convert_to_tensor(labels)
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype.is_integer:
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if num_labels == 1:
            return _mse(tf.squeeze(logits), tf.squeeze(labels))
        return _mse(logits, labels)
    if config.problem_type == "single_label_classification":
        return token_loss(logits, labels)
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits))


def span_loss(start_logits, end_logits, start_positions, end_positions):
    """Question answering: mean of start and end cross entropy; positions past the input are ignored."""
    ignored = dim(start_logits, 1)

    def loss(logits, positions):
        positions = tf.clip_by_value(tf.reshape(tf.cast(positions, tf.int32), [-1]), 0, ignored)
        return token_loss(logits, positions, ignore_index=ignored)

    return (loss(start_logits, start_positions) + loss(end_logits, end_positions)) / 2


# ---------------------------------------------------------------- outputs as Keras tree nodes

def _flatten_output(output):
    keys = sorted(output.keys())  # sorted like dicts, so Keras (optree) and tf.nest agree on leaf order
    return [output[k] for k in keys], keys, keys


def _register_outputs() -> None:
    """Make our output dataclasses Keras tree nodes, so fit/evaluate/predict can map over their tensors."""
    for cls in OUTPUT_CLASSES:
        try:
            optree.register_pytree_node(
                cls, _flatten_output, lambda keys, values, cls=cls: cls(**dict(zip(keys, values))),
                namespace="keras",
            )
        except ValueError:  # already registered (module reloaded)
            pass


_register_outputs()
