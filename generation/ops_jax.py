"""``decoding.py``'s backend for JAX: jnp ops under ``jax.jit``, the loop a ``lax.while_loop``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


class JaxOps:
    int32, float32, bool = jnp.int32, jnp.float32, jnp.bool_

    constant = staticmethod(lambda value, dtype: jnp.asarray(value, dtype))
    arange = staticmethod(lambda n: jnp.arange(n, dtype=jnp.int32))
    full = staticmethod(lambda shape, value, dtype: jnp.full(shape, value, dtype))
    cast = staticmethod(lambda x, dtype: jnp.asarray(x).astype(dtype))
    where = staticmethod(jnp.where)
    maximum = staticmethod(jnp.maximum)
    log = staticmethod(jnp.log)
    log_softmax = staticmethod(lambda x: jax.nn.log_softmax(x, axis=-1))
    softmax = staticmethod(lambda x: jax.nn.softmax(x, axis=-1))
    cumsum = staticmethod(lambda x, axis: jnp.cumsum(x, axis=axis))
    reshape = staticmethod(jnp.reshape)
    concat = staticmethod(lambda xs, axis: jnp.concatenate(xs, axis=axis))
    bitwise_xor = staticmethod(jnp.bitwise_xor)
    sum = staticmethod(lambda x, axis=None, keepdims=False: jnp.sum(x, axis=axis, keepdims=keepdims))
    any = staticmethod(lambda x, axis=None, keepdims=False: jnp.any(x, axis=axis, keepdims=keepdims))
    all = staticmethod(lambda x, axis=None, keepdims=False: jnp.all(x, axis=axis, keepdims=keepdims))
    min = staticmethod(lambda x, axis=None, keepdims=False: jnp.min(x, axis=axis, keepdims=keepdims))
    argmax = staticmethod(lambda x: jnp.argmax(x, axis=-1).astype(jnp.int32))
    take = staticmethod(lambda x, indices, axis: jnp.take(x, indices, axis=axis))
    shift_right_logical = staticmethod(lambda x, bits: jax.lax.shift_right_logical(x, jnp.int32(bits)))
    while_loop = staticmethod(jax.lax.while_loop)

    @staticmethod
    def top_k(x, k):
        values, indices = jax.lax.top_k(x, k)
        return values, indices.astype(jnp.int32)

    @staticmethod
    def take_per_row(x, indices):
        index = indices.reshape(indices.shape + (1,) * (x.ndim - 2))
        return jnp.take_along_axis(x, index, axis=1)

    @staticmethod
    def count_into(indices, size):
        return jnp.zeros((size,), jnp.int32).at[indices].add(1)

    @staticmethod
    def isin_any(x, values):
        found = jnp.zeros_like(x, jnp.bool_)
        for value in values:
            found = found | (x == value)
        return found

    @staticmethod
    def set_column(x, column, values):
        return jax.lax.dynamic_update_slice(x, values.astype(x.dtype)[:, None], (jnp.int32(0), column))

    @staticmethod
    def set_step(buffer, step, scores):
        return jax.lax.dynamic_update_slice(buffer, scores.astype(buffer.dtype)[:, None, :],
                                            (jnp.int32(0), step, jnp.int32(0)))
