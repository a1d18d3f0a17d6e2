"""``decoding.py``'s backend for TensorFlow: graph ops that XLA compiles, the loop a ``tf.while_loop``."""

from __future__ import annotations

import numbers

import tensorflow as tf


def _like(value, other):
    return tf.constant(value, other.dtype) if isinstance(value, numbers.Number) else value


class TFOps:
    int32, float32, bool = tf.int32, tf.float32, tf.bool

    constant = staticmethod(lambda value, dtype: tf.constant(value, dtype))
    arange = staticmethod(lambda n: tf.range(n, dtype=tf.int32))
    full = staticmethod(lambda shape, value, dtype: tf.fill(shape, tf.constant(value, dtype)))
    cast = staticmethod(tf.cast)
    maximum = staticmethod(lambda x, y: tf.maximum(x, _like(y, x)))
    log = staticmethod(tf.math.log)
    log_softmax = staticmethod(lambda x: tf.nn.log_softmax(x, axis=-1))
    softmax = staticmethod(lambda x: tf.nn.softmax(x, axis=-1))
    cumsum = staticmethod(lambda x, axis: tf.cumsum(x, axis=axis))
    reshape = staticmethod(tf.reshape)
    concat = staticmethod(lambda xs, axis: tf.concat(xs, axis=axis))
    bitwise_xor = staticmethod(tf.bitwise.bitwise_xor)

    @staticmethod
    def where(condition, x, y):
        if isinstance(x, numbers.Number) and isinstance(y, numbers.Number):
            x, y = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
        return tf.where(condition, _like(x, y), _like(y, x))

    sum = staticmethod(lambda x, axis=None, keepdims=False: tf.reduce_sum(x, axis=axis, keepdims=keepdims))
    any = staticmethod(lambda x, axis=None, keepdims=False: tf.reduce_any(x, axis=axis, keepdims=keepdims))
    all = staticmethod(lambda x, axis=None, keepdims=False: tf.reduce_all(x, axis=axis, keepdims=keepdims))
    min = staticmethod(lambda x, axis=None, keepdims=False: tf.reduce_min(x, axis=axis, keepdims=keepdims))

    @staticmethod
    def argmax(x):
        return tf.argmax(x, axis=-1, output_type=tf.int32)

    @staticmethod
    def top_k(x, k):
        values, indices = tf.math.top_k(x, k, sorted=True)
        return values, tf.cast(indices, tf.int32)

    @staticmethod
    def take(x, indices, axis):
        return tf.gather(x, indices, axis=axis)

    @staticmethod
    def take_per_row(x, indices):
        return tf.gather(x, indices, axis=1, batch_dims=1)

    @staticmethod
    def count_into(indices, size):
        return tf.tensor_scatter_nd_add(tf.zeros([size], tf.int32), indices[:, None], tf.ones_like(indices))

    @staticmethod
    def isin_any(x, values):
        found = tf.zeros_like(x, tf.bool)
        for value in values:
            found = found | tf.equal(x, value)
        return found

    @staticmethod
    def shift_right_logical(x, bits):
        return tf.bitwise.bitwise_and(tf.bitwise.right_shift(x, bits), (1 << (32 - bits)) - 1)

    @staticmethod
    def set_column(x, column, values):
        chosen = tf.range(tf.shape(x)[1])[None, :] == column
        return tf.where(chosen, tf.cast(values, x.dtype)[:, None], x)

    @staticmethod
    def set_step(buffer, step, scores):
        chosen = tf.range(tf.shape(buffer)[1])[None, :, None] == step
        return tf.where(chosen, tf.cast(scores, buffer.dtype)[:, None, :], buffer)

    @staticmethod
    def while_loop(cond, body, state):
        return tf.while_loop(lambda s: cond(s), lambda s: (body(s),), (state,))[0]
