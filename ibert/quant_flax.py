"""I-BERT's quantization blocks in Flax (linen): the JAX backend of ``quant.py`` and the modules that hold the
weights and the range statistics.

The blocks port ``quant_pt.py`` one to one (names, fields, call signatures, the three paths). Statistics and the
derived integers live in the variable collection ``"quant_stats"`` under Hugging Face's buffer names; they are
written only while training and when the caller made that collection mutable.

JAX computes in 32 bits unless told otherwise: the integer path (int64 products, float64 dyadic ratios) runs
inside ``jax.enable_x64(True)``. Scales leave the blocks in float32; QuantAct's integers in the dtype of their bit
width (int8, int16, int32), while QuantLinear, IntGELU and IntLayerNorm return int64 accumulators, which only an
x64 context can carry on to the next block (the model runs its whole integer encoder inside one).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from . import quant

Array = Any


class JaxOps:
    """``quant.py``'s backend for JAX (see its docstring for the contract)."""

    float32 = jnp.float32
    float64 = jnp.float64
    int8 = jnp.int8
    int16 = jnp.int16
    int32 = jnp.int32
    int64 = jnp.int64

    stop_gradient = staticmethod(jax.lax.stop_gradient)
    floor = staticmethod(jnp.floor)
    round = staticmethod(jnp.round)  # half to even, as torch.round
    abs = staticmethod(jnp.abs)
    sign = staticmethod(jnp.sign)
    sqrt = staticmethod(jnp.sqrt)
    log2 = staticmethod(jnp.log2)
    ceil = staticmethod(jnp.ceil)
    fmod = staticmethod(jnp.fmod)
    minimum = staticmethod(jnp.minimum)
    maximum = staticmethod(jnp.maximum)
    clip = staticmethod(jnp.clip)
    where = staticmethod(jnp.where)
    floor_divide = staticmethod(jnp.floor_divide)
    right_shift = staticmethod(jnp.right_shift)  # arithmetic on signed integers
    left_shift = staticmethod(jnp.left_shift)
    bitwise_and = staticmethod(jnp.bitwise_and)
    frexp = staticmethod(jnp.frexp)
    matmul = staticmethod(jnp.matmul)

    @staticmethod
    def materialize(x):
        """``x`` read through a gather of its own last axis: XLA's CPU fusion never duplicates a gather into several
        consumers, so ``x`` is computed once (an optimization barrier does not do it: the CPU pipeline removes it
        before fusing)."""
        return jnp.take(x, jnp.arange(x.shape[-1]), axis=-1)

    @staticmethod
    def cast(x, dtype):
        return jnp.asarray(x).astype(dtype)

    @staticmethod
    def constant(value, dtype):
        return jnp.asarray(value, dtype)

    @staticmethod
    def is_integer(x) -> bool:
        return jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)

    @staticmethod
    def reshape(x, shape):
        return jnp.reshape(x, shape)

    @staticmethod
    def transpose(x):
        return jnp.transpose(x)

    @staticmethod
    def swap_last(x):
        """The transpose is materialized: fused into the following dot, XLA sums the products in another order
        than PyTorch's matmul, and a last-bit difference in a float score can move a fake-quantized value by a
        whole step (the simulated path then no longer matches Hugging Face)."""
        return jax.lax.optimization_barrier(jnp.swapaxes(x, -1, -2))

    @staticmethod
    def reciprocal(x):
        """1 / x, rounded once. Behind the barrier: XLA rewrites 1 / (a / b) as b / a (one rounding where PyTorch
        has two; a weight scale is such a quotient, and one weight at base size then quantized differently)."""
        return 1.0 / jax.lax.optimization_barrier(x)

    @staticmethod
    def divide(a, b):
        """IEEE a / b, as PyTorch divides. XLA turns a division by a broadcast (or constant) divisor into a
        multiplication by its reciprocal, off by one ulp at times; a full-shape divisor behind a barrier is not
        rewritten."""
        shape = jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b))
        return a / jax.lax.optimization_barrier(jnp.broadcast_to(jnp.asarray(b, jnp.result_type(a, b)), shape))

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return jnp.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return jnp.max(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def min(x, axis=None, keepdims=False):
        return jnp.min(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def below_2_31(x) -> bool:
        """Known only for concrete arrays (eager calls); under tracing the answer is no (the exact long form)."""
        if isinstance(x, jax.core.Tracer):
            return False
        values = np.asarray(x, np.int64)
        return values.size == 0 or bool(np.abs(values).max() < 2**31)

    @staticmethod
    def inspectable(x) -> bool:
        return not isinstance(x, jax.core.Tracer)

    @staticmethod
    def pow2(n, dtype=jnp.float32):
        """Exactly 2**n for integer-valued ``n``, built from the exponent bits (a float pow may round).

        Exponents past the dtype's normal range saturate: below it gives 0, above it inf. float64 needs an
        x64 context.
        """
        if jnp.dtype(dtype) == jnp.float64:
            bias, mantissa_bits, max_biased, int_dtype = 1023, 52, 2047, jnp.int64
        else:
            bias, mantissa_bits, max_biased, int_dtype = 127, 23, 255, jnp.int32
        biased = jnp.clip(jnp.asarray(n).astype(int_dtype) + bias, 0, max_biased)
        return jax.lax.bitcast_convert_type(jnp.left_shift(biased, mantissa_bits), dtype)

    @staticmethod
    def int_matmul(a, b):
        """a [..., m, k] @ b [..., k, n] (or b [k, n]) for integer operands, accumulated and returned in int32."""
        dtype = jnp.promote_types(a.dtype, b.dtype)
        a, b = a.astype(dtype), b.astype(dtype)
        if b.ndim == 2:
            dims = (((a.ndim - 1,), (0,)), ((), ()))
        else:
            batch = tuple(range(a.ndim - 2))
            dims = (((a.ndim - 1,), (b.ndim - 2,)), (batch, batch))
        return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.int32)


OPS = JaxOps()


STATS = "quant_stats"  # the variable collection of range statistics and derived integers (HF's buffers)
_INITIAL_RANGE = 1e-5  # x_min / x_max start at -1e-5 / 1e-5, which quant.update_range reads as "not calibrated"


def _dequantized(quant_mode: bool, force_dequant: str, block: str) -> bool:
    """Whether a non-linear block runs in float: not quantized, or forced to float by ``force_dequant``."""
    return not quant_mode or force_dequant in ("nonlinear", block)


def _take(table, ids):
    """``table[ids]``; ids outside the table give NaN rows for float tables (eager calls validate ids first)."""
    ids = jnp.asarray(ids, jnp.int32)
    ids = jnp.where(ids < 0, table.shape[0], ids)  # jnp.take wraps negative ids even in "fill" mode
    fill = jnp.nan if jnp.issubdtype(table.dtype, jnp.floating) else 0
    return jnp.take(table, ids, axis=0, mode="fill", fill_value=fill)


class _Block(nn.Module):
    """State handling shared by the blocks: buffers in ``quant_stats``, written only in training when mutable."""

    def _buffer(self, name: str, shape: tuple[int, ...], value: float = 0.0):
        return self.variable(STATS, name, lambda: jnp.full(shape, value, jnp.float32))

    def _write(self, **values) -> None:
        if self.is_mutable_collection(STATS):
            for name, value in values.items():
                getattr(self, name).value = jax.lax.stop_gradient(jnp.asarray(value, jnp.float32))


class QuantEmbedding(_Block):
    """Embedding table quantized per tensor to ``weight_bit`` bits (int8 lookups in inference).

    ``std``: the normal initializer of the table (Hugging Face's ``initializer_range``).
    """

    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None = None
    weight_bit: int = 8
    momentum: float = 0.95
    quant_mode: bool = False
    std: float = 0.02

    def setup(self):
        shape = (self.num_embeddings, self.embedding_dim)
        self.embedding = self.param("embedding", jax.nn.initializers.normal(self.std), shape, jnp.float32)
        self.weight_scaling_factor = self._buffer("weight_scaling_factor", (1,))
        self.weight_integer = self._buffer("weight_integer", shape)

    def __call__(self, ids, *, train: bool = False):
        if not self.quant_mode:
            return self._lookup(self.embedding, ids), None
        scale = quant.weight_scale(OPS, self.embedding, self.weight_bit, per_channel=False)
        weight_int = quant.quantize(OPS, self.embedding, scale.reshape(-1, 1), self.weight_bit)
        if not train:
            table = jax.lax.stop_gradient(weight_int).astype(quant.integer_dtype(OPS, self.weight_bit))
            return _take(table, ids), scale
        self._write(weight_scaling_factor=scale, weight_integer=weight_int)
        return self._lookup(weight_int, ids) * scale, scale

    def _lookup(self, table, ids):
        """Rows of ``table``; as PyTorch's padding_idx, lookups of that id pass no gradient to its row."""
        rows = _take(table, ids)
        if self.padding_idx is None:
            return rows
        return jnp.where((jnp.asarray(ids, jnp.int32) == self.padding_idx)[..., None], jax.lax.stop_gradient(rows), rows)


class QuantAct(_Block):
    """Quantizes an activation (optionally plus a residual ``identity``) to ``activation_bit`` bits with a range
    calibrated by a running min/max; rescales quantized inputs by dyadic multiply-and-shift."""

    activation_bit: int
    act_range_momentum: float = 0.95
    per_channel: bool = False
    channel_len: int | None = None
    quant_mode: bool = False

    def setup(self):
        if self.per_channel:
            raise ValueError("QuantAct quantizes activations per tensor only (as transformers); use per_channel=False")
        self.x_min = self._buffer("x_min", (1,), -_INITIAL_RANGE)
        self.x_max = self._buffer("x_max", (1,), _INITIAL_RANGE)
        self.act_scaling_factor = self._buffer("act_scaling_factor", (1,))

    def __call__(self, x, pre_act_scaling_factor=None, identity=None, identity_scaling_factor=None,
                 specified_min=None, specified_max=None, *, train: bool = False):
        x_min, x_max = self.x_min.value, self.x_max.value
        with jax.enable_x64(True):  # requantization forms int64 products of float64 dyadic ratios
            if self.quant_mode and not train:
                scale = self._scale(x_min, x_max, specified_min, specified_max)
                x_int = quant.quantize_activation(OPS, x, pre_act_scaling_factor, self.activation_bit, scale, identity,
                                                  identity_scaling_factor)
                return x_int, scale
            x_act = x if identity is None else identity + x
            if train:
                x_min, x_max = quant.update_range(OPS, x_min, x_max, jax.lax.stop_gradient(x_act),
                                                  self.act_range_momentum)
                self._write(x_min=x_min, x_max=x_max)
            if not self.quant_mode:
                return x_act, None
            scale = self._scale(x_min, x_max, specified_min, specified_max)
            self._write(act_scaling_factor=scale)
            x = quant.simulate_activation(OPS, x, pre_act_scaling_factor, self.activation_bit, scale, identity,
                                          identity_scaling_factor)
            return x, scale

    def _scale(self, x_min, x_max, specified_min, specified_max):
        x_min = x_min if specified_min is None else specified_min
        x_max = x_max if specified_max is None else specified_max
        return quant.symmetric_scale(OPS, self.activation_bit, x_min, x_max)


class QuantLinear(_Block):
    """Linear layer with ``weight_bit``-bit weights (per output channel when ``per_channel``) and ``bias_bit``-bit
    biases in the scale of weight x input; in inference an int8 x int8 matmul accumulated in int32.

    The kernel is [in, out] (Flax's layout); the ``weight_integer`` buffer keeps Hugging Face's [out, in].
    Integer outputs are int64 accumulators: chain blocks inside ``jax.enable_x64(True)`` (the model does).
    """

    in_features: int
    out_features: int
    bias: bool = True
    weight_bit: int = 8
    bias_bit: int = 32
    per_channel: bool = False
    quant_mode: bool = False
    std: float = 0.02

    def setup(self):
        shape = (self.in_features, self.out_features)
        self.kernel = self.param("kernel", jax.nn.initializers.normal(self.std), shape, jnp.float32)
        self.bias_value = (self.param("bias", jax.nn.initializers.zeros, (self.out_features,), jnp.float32)
                           if self.bias else None)
        self.weight_integer = self._buffer("weight_integer", shape[::-1])
        self.fc_scaling_factor = self._buffer("fc_scaling_factor", (self.out_features,))
        if self.bias:
            self.bias_integer = self._buffer("bias_integer", (self.out_features,))

    def __call__(self, x, prev_act_scaling_factor=None, input_scaling_factor=None, *, train: bool = False):
        """``input_scaling_factor``: in integer inference, the scale ``x`` holds when it differs from the handed
        ``prev_act_scaling_factor`` (see ``quant.int_linear``); the simulated path holds values, not integers."""
        if not self.quant_mode:
            out = jnp.matmul(x, self.kernel)
            return (out if self.bias_value is None else out + self.bias_value), None
        if prev_act_scaling_factor is None or tuple(jnp.shape(prev_act_scaling_factor)) != (1,):
            raise ValueError("a quantized QuantLinear needs its input quantized per tensor: pass the scaling factor "
                             "of shape [1] that the preceding QuantAct returns")
        weight = self.kernel.T
        weight_scale = quant.weight_scale(OPS, weight, self.weight_bit, self.per_channel)
        weight_int = quant.quantize(OPS, weight, weight_scale.reshape(-1, 1), self.weight_bit)
        bias_scale = weight_scale * prev_act_scaling_factor
        bias_int = None if self.bias_value is None else quant.quantize(OPS, self.bias_value, bias_scale, self.bias_bit)
        if not train:
            bias_int = None if bias_int is None else jax.lax.stop_gradient(bias_int)
            weight_int = jax.lax.stop_gradient(weight_int).astype(jnp.int8)
            x_scale = prev_act_scaling_factor if input_scaling_factor is None else input_scaling_factor
            declared = None if input_scaling_factor is None else prev_act_scaling_factor
            with jax.enable_x64(True):
                return quant.int_linear(OPS, x, x_scale, weight_int, bias_int, weight_scale, declared)
        self._write(fc_scaling_factor=weight_scale, weight_integer=weight_int)
        if bias_int is not None:
            self._write(bias_integer=bias_int)
        out = jnp.matmul(OPS.divide(x, prev_act_scaling_factor.reshape(1, -1)), weight_int.T)
        return (out if bias_int is None else out + bias_int) * bias_scale, bias_scale


class IntGELU(nn.Module):
    """GELU with i-GELU's integer polynomial erf; float GELU when not quantized or force-dequantized."""

    quant_mode: bool = True
    force_dequant: str = "none"

    def __call__(self, x, scaling_factor=None):
        in_float = _dequantized(self.quant_mode, self.force_dequant, "gelu")
        if OPS.is_integer(x):
            if not in_float:
                with jax.enable_x64(True):
                    return quant.int_gelu(OPS, x, scaling_factor)
            x = quant.dequantize(OPS, x, scaling_factor)
        if in_float:
            return jax.nn.gelu(x, approximate=False), None
        return quant.simulated_gelu(OPS, x, scaling_factor)


class IntSoftmax(nn.Module):
    """Softmax over the last axis with i-exp, normalized to ``output_bit``-bit probabilities.

    Takes the additive attention mask itself (transformers adds it before the call): the integer path masks keys
    by integer arithmetic instead of adding a float.
    """

    output_bit: int
    quant_mode: bool = False
    force_dequant: str = "none"

    def setup(self):
        self.in_float = _dequantized(self.quant_mode, self.force_dequant, "softmax")
        self.act = QuantAct(quant.SOFTMAX_ACT_BIT, quant_mode=not self.in_float)

    def __call__(self, x, scaling_factor, attention_mask=None, *, train: bool = False):
        x_min, x_max = self.act.x_min.value, self.act.x_max.value  # also creates them where the float path skips act
        if OPS.is_integer(x):
            if not self.in_float:
                with jax.enable_x64(True):
                    masked = None if attention_mask is None else attention_mask < 0
                    act_scale = quant.symmetric_scale(OPS, quant.SOFTMAX_ACT_BIT, x_min, x_max)
                    return quant.int_softmax(OPS, x, scaling_factor, masked, act_scale, self.output_bit)
            x = quant.dequantize(OPS, x, scaling_factor)
        if attention_mask is not None:
            x = x + attention_mask
        if self.in_float:
            return jax.nn.softmax(x, axis=-1), None
        return quant.simulated_softmax(OPS, x, scaling_factor, lambda v, s: self.act(v, s, train=train),
                                       self.output_bit)


class IntLayerNorm(_Block):
    """Layer norm with integer mean, variance and Newton square root (I-LayerNorm); HF's float formula when not
    quantized. In training a variance past 2**32 raises the ``shift`` buffer."""

    normalized_shape: int
    eps: float
    output_bit: int = 8
    quant_mode: bool = False
    force_dequant: str = "none"

    def setup(self):
        self.in_float = _dequantized(self.quant_mode, self.force_dequant, "layernorm")
        self.scale = self.param("scale", jax.nn.initializers.ones, (self.normalized_shape,), jnp.float32)
        self.bias = self.param("bias", jax.nn.initializers.zeros, (self.normalized_shape,), jnp.float32)
        self.shift = self._buffer("shift", (1,))
        # transformers declares this activation (its buffers are in every checkpoint) but never calls it.
        self.activation = QuantAct(self.output_bit, quant_mode=not self.in_float)

    def __call__(self, x, scaling_factor=None, *, train: bool = False):
        _ = self.activation.x_min  # creates the unused activation's buffers
        if OPS.is_integer(x):
            if not self.in_float:
                with jax.enable_x64(True):
                    return quant.int_layer_norm(OPS, x, self.scale, self.bias, self.shift.value)
            x = quant.dequantize(OPS, x, scaling_factor)
        if self.in_float:
            return quant.float_layer_norm(OPS, x, self.scale, self.bias, self.eps), None
        with jax.enable_x64(True):  # the overflow test compares with the Python int 2**32
            out, out_scale, shift = quant.simulated_layer_norm(OPS, x, scaling_factor, self.scale, self.bias,
                                                               self.shift.value, train)
        if train:
            self._write(shift=shift)
        return out, out_scale
