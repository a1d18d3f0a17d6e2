"""TensorFlow/Keras-only helpers: the backend check, static and dynamic dimensions, Keras parameter layers built
as Hugging Face initializes them, the tied-logits kernel layout, embedding gathers guarded for XLA (which clamps bad
indices), gradient checkpointing of a layer, and the tree registrations of outputs and caches. (``layers_tf`` holds
the vocabulary every framework shares.)"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import optree
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

from .cache import StaticCache
from .kernels import table_on_left
from .outputs import OUTPUT_CLASSES
from .validation import check_index_range, check_sequence_length, check_shape, check_token_ids

# ---------------------------------------------------------------- backend

def require_tensorflow_backend() -> None:
    """Our TF classes are written against Keras 3 on TensorFlow; other backends would fail deep inside a call."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"rosettazoo's TF models need Keras on the TensorFlow backend, but Keras is set to {backend!r}; "
            f"set the environment variable KERAS_BACKEND=tensorflow before importing keras"
        )

require_tensorflow_backend()


# ---------------------------------------------------------------- dimensions, static or dynamic

def static_shape(tensor) -> list[int | None]:
    return list(tensor.shape)


def dim(tensor, axis: int):
    """A dimension as a Python int when static, else as a scalar tensor."""
    value = tensor.shape[axis]
    return value if value is not None else tf.shape(tensor)[axis]


def known(value):
    """A dimension given as a Python int, or None for one known only when the graph runs (a scalar tensor)."""
    return value if isinstance(value, int) else None


def check_shape_compatible(name: str, tensor, expected: Sequence[int | None], meaning: str = "") -> None:
    """``validation.check_shape`` that lets unknown (graph-mode) dimensions pass."""
    shape = static_shape(tensor)
    fits = len(shape) == len(expected) and all(
        a is None or b is None or a == b for a, b in zip(shape, expected))
    if not fits:
        check_shape(name, shape, expected, meaning)


def check_length(length, limit: int, what: str = "max_position_embeddings") -> None:
    """``validation.check_sequence_length`` for a length that is a Python int or, in a graph, a tensor."""
    if isinstance(length, int):
        check_sequence_length(length, limit, what)
    else:
        tf.debugging.assert_less_equal(
            length, limit, message=f"sequence length exceeds the {limit} positions the model allows ({what})")


# ---------------------------------------------------------------- parameter layers, built from the config's sizes

def dense(units: int, input_dim: int, std: float, name: str, dtype, use_bias: bool = True) -> keras.layers.Dense:
    """A Dense layer initialized as Hugging Face does (normal(0, std) kernel, zero bias), already built."""
    layer = keras.layers.Dense(
        units, use_bias=use_bias, kernel_initializer=keras.initializers.RandomNormal(stddev=std),
        bias_initializer="zeros", name=name, dtype=dtype,
    )
    layer.build((input_dim,))
    return layer


def layer_norm(size: int, eps: float, name: str, dtype, affine: bool = True) -> keras.layers.LayerNormalization:
    """``affine=False``: no weight and bias (PyTorch's ``elementwise_affine=False``)."""
    layer = keras.layers.LayerNormalization(epsilon=eps, name=name, dtype=dtype, center=affine, scale=affine)
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


# ---------------------------------------------------------------- tied LM heads

@tf.custom_gradient
def _optimization_barrier(x):
    """XLA's optimization barrier, with the identity's gradient (the op has none of its own)."""
    return xla.optimization_barrier(x)[0], lambda upstream: upstream


def tied_logits(hidden_states, table):
    """``hidden_states @ table.T``: scores of every row [..., hidden] against a token table [vocab, hidden], with
    few rows in the faster layout ``kernels.table_on_left`` picks (static shapes only)."""
    table = tf.cast(table, hidden_states.dtype)
    leading = hidden_states.shape[:-1]
    if not leading.is_fully_defined() or not table_on_left(leading.num_elements()):
        return tf.matmul(hidden_states, table, transpose_b=True)
    rows = tf.reshape(hidden_states, (leading.num_elements(), -1))
    by_vocab = _optimization_barrier(tf.matmul(table, rows, transpose_b=True))
    return tf.reshape(tf.transpose(by_vocab), (*leading, table.shape[0]))


# ---------------------------------------------------------------- embedding lookups

def after_layer_drop(dropped, layer_input, layer_output):
    """The hidden states after a layer that LayerDrop may have skipped (``layers_tf.layer_dropped``): its input
    where it was dropped, else its output; without a select when nothing can be dropped (inference)."""
    return layer_output if dropped is False else tf.where(dropped, layer_input, layer_output)


@tf.custom_gradient
def dense_gradient(table):
    """``table`` unchanged, with a dense gradient, as PyTorch's embeddings give: Keras 3's Adam-family optimizers
    square a sparse (IndexedSlices) gradient before summing the slices of repeated ids, so a row looked up k times
    in a batch would step sqrt(k) times too far."""
    return tf.identity(table), tf.convert_to_tensor


def gather(table, ids):
    """``tf.gather`` of embedding rows, with the table's gradient dense (``dense_gradient``)."""
    return tf.gather(dense_gradient(tf.convert_to_tensor(table)), ids)


def checked_token_ids(ids, vocab_size: int, name: str = "input_ids"):
    """Token ids checked against the vocabulary before a gather, which TensorFlow does not check on every device:
    eagerly with the shared ValueError, in a graph with an assert that runs before the ids are used."""
    if tf.executing_eagerly():
        check_token_ids(np.asarray(ids), vocab_size, name)
        return ids
    return _asserted_in_range(ids, 0, vocab_size, f"{name} holds a token id outside the vocabulary [0, {vocab_size})")


def checked_indices(ids, size: int, name: str, what: str, low: int = 0):
    """Other indices (positions, token types) checked against [``low``, ``size``), as ``checked_token_ids``."""
    if tf.executing_eagerly():
        check_index_range(np.asarray(ids), size, name, what, low)
        return ids
    return _asserted_in_range(ids, low, size, f"{name} holds an index outside [{low}, {size}) allowed by {what}")


def _asserted_in_range(ids, low: int, high: int, message: str):
    """``ids`` behind an assert (InvalidArgumentError in a plain graph) that they lie in [low, high)."""
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(ids, tf.cast(low, ids.dtype), message=message),
        tf.debugging.assert_less(ids, tf.cast(high, ids.dtype), message=message),
    ]):
        return tf.identity(ids)


def lookup_token_ids(table, ids, vocab_size: int, name: str = "input_ids"):
    """``tf.gather(table, ids)`` for checked token ids; in a graph, XLA drops asserts, so the rows of bad ids are
    also NaN (``gather_rows``)."""
    ids = checked_token_ids(ids, vocab_size, name)
    return gather(table, ids) if tf.executing_eagerly() else gather_rows(table, ids, 0, vocab_size)


def lookup_indices(table, ids, size: int, name: str, what: str, low: int = 0, offset: int = 0):
    """Rows ``ids + offset`` of ``table`` for other checked indices in [``low``, ``size``) (OPT: positions from -1,
    at rows from 1)."""
    ids = checked_indices(ids, size, name, what, low)
    return gather(table, ids + offset) if tf.executing_eagerly() else gather_rows(table, ids, low, size, offset)


def gather_rows(table, ids, low: int, high: int, offset: int = 0):
    """Rows ``ids + offset`` of ``table``, NaN where an id lies outside [low, high): XLA's gather clamps a bad index
    to a real row, which would give a plausible, wrong answer."""
    valid = indices_in_range(ids, low, high)
    rows = gather(table, tf.where(valid, ids + tf.cast(offset, ids.dtype), tf.zeros_like(ids)))
    return tf.where(valid[..., None], rows, tf.cast(float("nan"), rows.dtype))


def indices_in_range(ids, low: int, high: int):
    return tf.logical_and(ids >= tf.cast(low, ids.dtype), ids < tf.cast(high, ids.dtype))


# ---------------------------------------------------------------- gradient checkpointing

def run_layer(stack, layer, *args, training: bool = False, **kwargs):
    """``layer(*args, training=training, **kwargs)``. With gradient checkpointing on for ``stack``
    (``gradient_checkpointing_enable()``) in training, the layer keeps no activations for the backward pass and
    recomputes them there (``tf.recompute_grad``); the float tensors among the arguments get gradients."""
    if not (stack.gradient_checkpointing and training):
        return layer(*args, training=training, **kwargs)
    leaves, treedef = optree.tree_flatten((args, kwargs), none_is_leaf=True)
    inputs = [i for i, leaf in enumerate(leaves) if _is_float_tensor(leaf)]
    # The layer's non-trainable state (dropout seed counters, I-BERT's ranges) as the forward pass finds it:
    # the recomputation starts from it again, so it draws the same dropout masks, then leaves the state as the
    # forward pass left it.
    state = [v for v in layer.variables if not v.trainable]
    before = [tf.identity(v.value) for v in state]
    outputs = {}

    def call(*tensors):
        filled = list(leaves)
        for i, tensor in zip(inputs, tensors):
            filled[i] = tensor
        call_args, call_kwargs = optree.tree_unflatten(treedef, filled)
        recomputing = "leaves" in outputs
        if recomputing:
            after = [tf.identity(v.value) for v in state]
            for variable, value in zip(state, before):
                variable.assign(value)
        out_leaves, out_treedef = optree.tree_flatten(layer(*call_args, training=True, **call_kwargs),
                                                      none_is_leaf=True)
        if recomputing:
            for variable, value in zip(state, after):
                variable.assign(value)
        else:
            outputs.update(leaves=out_leaves, treedef=out_treedef)
        # tf.recompute_grad passes gradients through tensors only: the float outputs go through it, the rest
        # (None fields) is put back around them.
        return [leaf for leaf in out_leaves if _is_float_tensor(leaf)]

    flat = iter(tf.recompute_grad(call)(*(leaves[i] for i in inputs)))
    out_leaves = [next(flat) if _is_float_tensor(leaf) else leaf for leaf in outputs["leaves"]]
    return optree.tree_unflatten(outputs["treedef"], out_leaves)


def _is_float_tensor(value) -> bool:
    return isinstance(value, (tf.Tensor, tf.Variable)) and value.dtype.is_floating


# ---------------------------------------------------------------- outputs and caches as Keras / tf.nest tree nodes

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


def _register_static_cache() -> None:
    """StaticCache as a tree node for Keras (optree) and for tf.nest / tf.function (its custom nest protocol),
    so a cache passes into and out of compiled functions and Keras' predict."""
    try:
        optree.register_pytree_node(
            StaticCache, lambda c: ([c.layers, c.index], None, ["layers", "index"]),
            lambda _, children: StaticCache(*children), namespace="keras",
        )
    except ValueError:  # already registered (module reloaded)
        pass
    StaticCache.__len__ = lambda self: len(self.layers)  # Keras sizes every nested call argument
    StaticCache.__tf_flatten__ = lambda self: (None, (self.layers, self.index))
    StaticCache.__tf_unflatten__ = classmethod(lambda cls, _, components: cls(*components))


_register_static_cache()
