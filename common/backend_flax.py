"""Flax/JAX-only helpers: concrete vs traced values, guarded embedding lookups (XLA clamps bad indices), the linen
parameter layers built as Hugging Face initializes them, the tied-logits kernel layout, dropout of a raw array,
layer rematerialization, and the pytree registrations of outputs and caches. (``layers_flax`` holds the vocabulary
every framework shares.)"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from .cache import StaticCache
from .kernels import table_on_left
from .outputs import OUTPUT_CLASSES
from .validation import check_index_range, check_token_ids, index_error, token_id_error

Array = Any
Dtype = Any


# ---------------------------------------------------------------------------------------------------------------
# Concrete values vs traced values, guarded lookups


def concrete(x: Array | None) -> np.ndarray | None:
    """``x`` as a numpy array when its value is known now (eager call), ``None`` under jit/pmap/vmap tracing."""
    if x is None or isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def given_dtype(x) -> np.dtype:
    """The dtype the caller gave (jnp.asarray turns int64 into int32 without x64, which would change errors)."""
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


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


# ---------------------------------------------------------------------------------------------------------------
# Parameter layers, kernels


def dense(features: int, std: float, dtype: Dtype, param_dtype: Dtype, *, use_bias: bool = True, name=None):
    """A Dense layer initialized as Hugging Face does: normal(0, std) kernel, zero bias."""
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                    kernel_init=jax.nn.initializers.normal(std), name=name)


def layer_norm(eps: float, dtype: Dtype, param_dtype: Dtype, *, affine: bool = True, name=None):
    """``affine=False``: no scale and bias (PyTorch's ``elementwise_affine=False``)."""
    # The two-pass variance, as PyTorch computes it; the fast E[x^2] - E[x]^2 form loses digits.
    return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=param_dtype, use_fast_variance=False,
                        use_bias=affine, use_scale=affine, name=name)


def tied_logits(hidden_states: Array, table: Array) -> Array:
    """``hidden_states @ table.T``: scores of every row [..., hidden] against a token table [vocab, hidden], with
    few rows in the faster layout ``kernels.table_on_left`` picks."""
    table = table.astype(hidden_states.dtype)
    rows = math.prod(hidden_states.shape[:-1])
    if not table_on_left(rows):
        return hidden_states @ table.T
    by_vocab = jax.lax.optimization_barrier(table @ hidden_states.reshape(rows, -1).T)
    return by_vocab.T.reshape(*hidden_states.shape[:-1], table.shape[0])


def after_layer_drop(dropped, layer_input: Array, layer_output: Array) -> Array:
    """The hidden states after a layer that LayerDrop may have skipped (``layers_flax.layer_dropped``): its input
    where it was dropped, else its output; without a select when nothing can be dropped (inference)."""
    return layer_output if dropped is False else jnp.where(dropped, layer_input, layer_output)


def inverted_dropout(x: Array, rate: float, rng: Array | None) -> Array:
    """Inverted dropout (as torch.nn.Dropout); identity without an rng or with rate 0."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def checkpointed(layer: type[nn.Module], gradient_checkpointing: bool, static_argnums: tuple[int, ...]):
    """``layer``'s class, or with ``gradient_checkpointing`` its ``nn.remat``: the layer keeps no activations for
    the backward pass and recomputes them there (same parameters, same dropout draws). ``static_argnums``: the
    positions in ``__call__`` (``self`` is 0) of the Python flags, such as ``deterministic``."""
    return nn.remat(layer, static_argnums=static_argnums) if gradient_checkpointing else layer


# ---------------------------------------------------------------------------------------------------------------
# Outputs and caches as pytrees

_REGISTERED: set[type] = set()


def _register_outputs() -> None:
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

_register_outputs()


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
