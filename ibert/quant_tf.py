"""I-BERT's quantization blocks in TensorFlow / Keras 3: the TensorFlow backend of ``quant.py`` and the layers that
hold the weights and the range statistics.

The layers port ``quant_pt.py`` one to one (class names, constructor parameters, call signatures, the three paths).
Hugging Face's buffers are non-trainable float32 variables under their names, so the attribute walk of
``TFPreTrainedModel`` saves and loads them with the weights; they are assigned only in training calls. The path
follows ``training``: float without ``quant_mode``, simulated fake quantization while training, integer tensors in
inference.
"""

from __future__ import annotations

import math
import numbers
import weakref

import keras
import tensorflow as tf

from ..common.backend_tf import gather_rows, require_tensorflow_backend
from . import quant

require_tensorflow_backend()


_GRAPH_CONSTANTS = weakref.WeakKeyDictionary()  # graph -> {number: its Const op}, gone with the graph


def _constant(value, dtype) -> tf.Tensor:
    """``tf.constant(value, dtype)``, made once per graph: the integer path names the same few numbers thousands of
    times, and a traced graph otherwise holds a Const op for each (a third of its ops, each slowing tracing)."""
    if tf.executing_eagerly() or not isinstance(value, (numbers.Number, bool)):
        return tf.constant(value, dtype)
    cache = _GRAPH_CONSTANTS.setdefault(tf.compat.v1.get_default_graph(), {})
    key = (type(value).__name__, repr(value), tf.as_dtype(dtype).name)  # repr keeps -0.0 apart from 0.0
    if key not in cache:
        cache[key] = tf.constant(value, dtype)
    return cache[key]


def _tensor(value, dtype) -> tf.Tensor:
    return _constant(value, dtype) if isinstance(value, numbers.Number) else tf.convert_to_tensor(value)


def _pair(a, b):
    """Two operands of one dtype: a Python number takes the dtype of the other operand."""
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
        raise TypeError("TFOps needs at least one tensor operand")
    if isinstance(a, numbers.Number):
        b = tf.convert_to_tensor(b)
        return _tensor(a, b.dtype), b
    a = tf.convert_to_tensor(a)
    return a, _tensor(b, a.dtype)


_EXPONENT_FIELD = 0x7FF << 52  # the exponent bits of a float64
_HALF_EXPONENT = 1022 << 52  # the exponent bits of a float64 in [0.5, 1)
_SIGN_AND_FRACTION = ~_EXPONENT_FIELD
# dtype -> (integer dtype of its bits, fraction bits, exponent bias)
_FLOAT_LAYOUT = {tf.float32: (tf.int32, 23, 127), tf.float64: (tf.int64, 52, 1023)}


class TFOps:
    """``quant.py``'s backend for TensorFlow (see its docstring for the contract)."""

    float32, float64 = tf.float32, tf.float64
    int8, int16, int32, int64 = tf.int8, tf.int16, tf.int32, tf.int64

    cast = staticmethod(tf.cast)
    constant = staticmethod(_constant)
    stop_gradient = staticmethod(tf.stop_gradient)
    reshape = staticmethod(tf.reshape)
    transpose = staticmethod(tf.transpose)
    swap_last = staticmethod(tf.linalg.matrix_transpose)
    floor = staticmethod(tf.floor)
    round = staticmethod(tf.round)  # half to even, as torch.round
    abs = staticmethod(tf.abs)
    sign = staticmethod(tf.sign)
    sqrt = staticmethod(tf.sqrt)
    ceil = staticmethod(tf.math.ceil)
    matmul = staticmethod(tf.matmul)

    @staticmethod
    def is_integer(x) -> bool:
        return tf.as_dtype(x.dtype).is_integer

    @staticmethod
    def log2(x):
        """log2 in float64, rounded once to ``x``'s dtype: exact at powers of two (log(x) / log(2) in float32 is not)."""
        return tf.cast(tf.math.log(tf.cast(x, tf.float64)) / math.log(2.0), x.dtype)

    @staticmethod
    def fmod(a, b):
        return tf.truncatemod(*_pair(a, b))

    @staticmethod
    def divide(a, b):
        """IEEE a / b. Under XLA a constant divisor becomes a multiplication by its reciprocal (one ulp off at
        times); adding a zero computed from ``a`` makes it a runtime value, which XLA divides by (checked with
        jit_compile). The zero is selected, not a * 0, so infinite ``a`` (masked scores) stay infinite."""
        a, b = _pair(a, b)
        zero = tf.stop_gradient(tf.where(tf.math.is_finite(a), a * 0.0, tf.zeros_like(a)))
        return a / (b + zero)

    @staticmethod
    def reciprocal(x):
        """1 / x, rounded once. The divisor plus a zero computed from it: XLA rewrites 1 / (a / b) as b / a (one
        rounding where PyTorch has two; a weight scale is such a quotient, and one weight at base size then quantized
        differently). The zero is selected, not x * 0, so an infinite x stays infinite."""
        x = tf.convert_to_tensor(x)
        zero = tf.stop_gradient(tf.where(tf.math.is_finite(x), x * 0.0, tf.zeros_like(x)))
        return tf.math.reciprocal(x + zero)

    @staticmethod
    def materialize(x):
        """``x`` read through a gather of its own last axis: XLA's CPU fusion never duplicates a gather into several
        consumers, so ``x`` is computed once (an optimization barrier does not do it: the CPU pipeline removes it
        before fusing). Eagerly nothing fuses."""
        if tf.executing_eagerly():
            return x
        return tf.gather(x, tf.range(tf.shape(x)[-1]), axis=-1)

    @staticmethod
    def minimum(a, b):
        return tf.minimum(*_pair(a, b))

    @staticmethod
    def maximum(a, b):
        return tf.maximum(*_pair(a, b))

    @staticmethod
    def clip(x, low, high):
        x = tf.convert_to_tensor(x)
        return tf.clip_by_value(x, _tensor(low, x.dtype), _tensor(high, x.dtype))

    @staticmethod
    def where(condition, a, b):
        return tf.where(condition, *_pair(a, b))

    @staticmethod
    def floor_divide(a, b):
        return tf.math.floordiv(*_pair(a, b))

    @staticmethod
    def right_shift(a, b):
        return tf.bitwise.right_shift(*_pair(a, b))  # arithmetic on signed integers

    @staticmethod
    def left_shift(a, b):
        return tf.bitwise.left_shift(*_pair(a, b))

    @staticmethod
    def bitwise_and(a, b):
        return tf.bitwise.bitwise_and(*_pair(a, b))

    @staticmethod
    def pow2(n, dtype=tf.float32):
        """Exactly 2**n for integer-valued ``n``, built from the exponent bits of ``dtype`` (a float pow may round).

        Exponents past the dtype's normal range saturate: below it gives 0, above it inf.
        """
        if isinstance(n, numbers.Number):
            return 2.0 ** n
        bits, fraction_bits, bias = _FLOAT_LAYOUT[tf.as_dtype(dtype)]
        biased = tf.clip_by_value(tf.cast(n, bits) + bias, 0, 2 * bias + 1)
        return tf.bitcast(tf.bitwise.left_shift(biased, tf.cast(fraction_bits, bits)), dtype)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return tf.reduce_sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return tf.reduce_max(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def min(x, axis=None, keepdims=False):
        return tf.reduce_min(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def below_2_31(x) -> bool:
        """Eagerly TensorFlow can look (most requantized values are small); in a graph the values are unknown: no."""
        if not tf.executing_eagerly():
            return False
        return int(tf.size(x)) == 0 or bool(tf.reduce_max(tf.abs(x)) < 2 ** 31)

    @staticmethod
    def inspectable(x) -> bool:
        return tf.executing_eagerly()

    @staticmethod
    def frexp(x):
        """(mantissa, exponent) with x = mantissa * 2**exponent and |mantissa| in [0.5, 1), as numpy's, read from the
        float64 exponent bits. Exact for normal numbers; 0, inf, nan and subnormals (which TensorFlow flushes to zero
        on CPU anyway) give (x, 0)."""
        wide = tf.cast(x, tf.float64)
        bits = tf.bitcast(wide, tf.int64)
        field = tf.bitwise.right_shift(tf.bitwise.bitwise_and(bits, tf.constant(_EXPONENT_FIELD, tf.int64)), 52)
        regular = (field > 0) & (field < 0x7FF)
        mantissa_bits = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(bits, tf.constant(_SIGN_AND_FRACTION, tf.int64)),
                                              tf.constant(_HALF_EXPONENT, tf.int64))
        mantissa = tf.where(regular, tf.bitcast(mantissa_bits, tf.float64), wide)
        exponent = tf.where(regular, field - 1022, tf.zeros_like(field))
        return tf.cast(mantissa, x.dtype), tf.cast(exponent, tf.int32)

    @staticmethod
    def int_matmul(a, b):
        """Integer matmul accumulated and returned in int32: int8 x int8 by TensorFlow's int8 kernel, wider
        integers as int32."""
        if a.dtype == b.dtype == tf.int8:
            return tf.linalg.matmul(a, b, output_type=tf.int32)
        return tf.linalg.matmul(tf.cast(a, tf.int32), tf.cast(b, tf.int32))


OPS = TFOps()


def _buffer(layer: keras.layers.Layer, name: str, shape, value: float = 0.0) -> keras.Variable:
    """A quantization buffer: float32 (whatever the layer's dtype), not trained, saved under Hugging Face's name."""
    return layer.add_weight(name=name, shape=shape, initializer=keras.initializers.Constant(value), trainable=False,
                            dtype="float32", autocast=False)


def _integer_inference(layer: keras.layers.Layer, training) -> bool:
    return layer.quant_mode and not training


class QuantEmbedding(keras.layers.Layer):
    """Embedding table quantized per tensor to ``weight_bit`` bits (int8 lookups in inference).

    ``embeddings_initializer`` is Keras' usual argument (zeros by default, as in PyTorch before the model's init).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, weight_bit: int = 8,
                 momentum: float = 0.95, quant_mode: bool = False, embeddings_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight_bit, self.momentum, self.quant_mode = weight_bit, momentum, quant_mode
        self.embeddings = self.add_weight(name="embeddings", shape=(num_embeddings, embedding_dim),
                                          initializer=embeddings_initializer)
        if padding_idx is not None:  # the padding row starts at zero, as PyTorch's padding_idx makes it
            self.embeddings.assign(tf.tensor_scatter_nd_update(
                tf.convert_to_tensor(self.embeddings), [[padding_idx]], tf.zeros([1, embedding_dim], self.embeddings.dtype)))
        self.weight_scaling_factor = _buffer(self, "weight_scaling_factor", (1,))
        self.weight_integer = _buffer(self, "weight_integer", (num_embeddings, embedding_dim))
        self.built = True

    def call(self, ids, training=False):
        """``ids`` must be in range (the model checks them); float rows of ids outside the table are NaN, integer
        ones are whatever the gather gives (the model turns the float outputs of their rows NaN)."""
        weight = tf.convert_to_tensor(self.embeddings)
        if not self.quant_mode:
            return gather_rows(weight, ids, 0, self.num_embeddings), None
        scale = quant.weight_scale(OPS, weight, self.weight_bit, per_channel=False)
        weight_int = quant.quantize(OPS, weight, tf.reshape(scale, (-1, 1)), self.weight_bit)
        if not training:
            return tf.gather(tf.cast(tf.stop_gradient(weight_int), quant.integer_dtype(OPS, self.weight_bit)), ids), scale
        self.weight_scaling_factor.assign(scale)
        self.weight_integer.assign(tf.stop_gradient(weight_int))
        return gather_rows(weight_int, ids, 0, self.num_embeddings) * scale, scale


class QuantAct(keras.layers.Layer):
    """Quantizes an activation (optionally plus a residual ``identity``) to ``activation_bit`` bits with a range
    calibrated by a running min/max; rescales quantized inputs by dyadic multiply-and-shift."""

    def __init__(self, activation_bit: int, act_range_momentum: float = 0.95, per_channel: bool = False,
                 channel_len: int | None = None, quant_mode: bool = False, **kwargs):
        super().__init__(**kwargs)
        if per_channel:
            raise ValueError("QuantAct quantizes activations per tensor only (as transformers); use per_channel=False")
        self.activation_bit, self.act_range_momentum, self.quant_mode = activation_bit, act_range_momentum, quant_mode
        self.per_channel = per_channel
        self.x_min = _buffer(self, "x_min", (1,), -1e-5)
        self.x_max = _buffer(self, "x_max", (1,), 1e-5)
        self.act_scaling_factor = _buffer(self, "act_scaling_factor", (1,))
        self.built = True

    def call(self, x, pre_act_scaling_factor=None, identity=None, identity_scaling_factor=None, specified_min=None,
             specified_max=None, training=False):
        x_min, x_max = tf.convert_to_tensor(self.x_min), tf.convert_to_tensor(self.x_max)
        if _integer_inference(self, training):
            scale = self._scale(x_min, x_max, specified_min, specified_max)
            x_int = quant.quantize_activation(OPS, x, pre_act_scaling_factor, self.activation_bit, scale, identity,
                                              identity_scaling_factor)
            return x_int, scale
        x_act = x if identity is None else identity + x
        if training:
            # float32 statistics whatever the activation's dtype (a bfloat16 float-mode model trains too)
            batch = tf.cast(tf.stop_gradient(x_act), x_min.dtype)
            x_min, x_max = quant.update_range(OPS, x_min, x_max, batch, self.act_range_momentum)
            self.x_min.assign(x_min)
            self.x_max.assign(x_max)
        if not self.quant_mode:
            return x_act, None
        scale = self._scale(x_min, x_max, specified_min, specified_max)
        self.act_scaling_factor.assign(scale)
        x = quant.simulate_activation(OPS, x, pre_act_scaling_factor, self.activation_bit, scale, identity,
                                      identity_scaling_factor)
        return x, scale

    def _scale(self, x_min, x_max, specified_min, specified_max):
        x_min = x_min if specified_min is None else specified_min
        x_max = x_max if specified_max is None else specified_max
        return quant.symmetric_scale(OPS, self.activation_bit, x_min, x_max)


class QuantLinear(keras.layers.Layer):
    """Dense layer with ``weight_bit``-bit weights (per output channel when ``per_channel``) and ``bias_bit``-bit
    biases in the scale of weight x input; in inference an int8 x int8 matmul accumulated in int32.

    The kernel is Keras' [in, out]; the ``weight_integer`` buffer is [out, in], as Hugging Face saves it.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, weight_bit: int = 8, bias_bit: int = 32,
                 per_channel: bool = False, quant_mode: bool = False, kernel_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.in_features, self.out_features = in_features, out_features
        self.weight_bit, self.bias_bit, self.per_channel, self.quant_mode = weight_bit, bias_bit, per_channel, quant_mode
        self.kernel = self.add_weight(name="kernel", shape=(in_features, out_features), initializer=kernel_initializer)
        self.weight_integer = _buffer(self, "weight_integer", (out_features, in_features))
        self.fc_scaling_factor = _buffer(self, "fc_scaling_factor", (out_features,))
        self.bias = self.bias_integer = None
        if bias:
            self.bias = self.add_weight(name="bias", shape=(out_features,), initializer="zeros")
            self.bias_integer = _buffer(self, "bias_integer", (out_features,))
        self.built = True

    def call(self, x, prev_act_scaling_factor=None, input_scaling_factor=None, training=False):
        """``input_scaling_factor``: in integer inference, the scale ``x`` holds when it differs from the handed
        ``prev_act_scaling_factor`` (see ``quant.int_linear``); the simulated path holds values, not integers."""
        bias = None if self.bias is None else tf.convert_to_tensor(self.bias)
        if not self.quant_mode:
            out = tf.matmul(x, self.kernel)
            return (out if bias is None else out + bias), None
        if prev_act_scaling_factor is None or tuple(prev_act_scaling_factor.shape) != (1,):
            raise ValueError("a quantized QuantLinear needs its input quantized per tensor: pass the scaling factor "
                             "of shape [1] that the preceding QuantAct returns")
        weight = tf.transpose(self.kernel)
        weight_scale = quant.weight_scale(OPS, weight, self.weight_bit, self.per_channel)
        weight_int = quant.quantize(OPS, weight, tf.reshape(weight_scale, (-1, 1)), self.weight_bit)
        bias_scale = weight_scale * prev_act_scaling_factor
        bias_int = None if bias is None else quant.quantize(OPS, bias, bias_scale, self.bias_bit)
        if not training:
            bias_int = None if bias_int is None else tf.stop_gradient(bias_int)
            weight_int = tf.cast(tf.stop_gradient(weight_int), quant.integer_dtype(OPS, self.weight_bit))
            x_scale = prev_act_scaling_factor if input_scaling_factor is None else input_scaling_factor
            declared = None if input_scaling_factor is None else prev_act_scaling_factor
            return quant.int_linear(OPS, x, x_scale, weight_int, bias_int, weight_scale, declared)
        self.fc_scaling_factor.assign(weight_scale)
        self.weight_integer.assign(tf.stop_gradient(weight_int))
        if bias_int is not None:
            self.bias_integer.assign(tf.stop_gradient(bias_int))
        out = tf.matmul(x / tf.reshape(prev_act_scaling_factor, (1, -1)), weight_int, transpose_b=True)
        return (out if bias_int is None else out + bias_int) * bias_scale, bias_scale


class IntGELU(keras.layers.Layer):
    """GELU with i-GELU's integer polynomial erf; float GELU when not quantized or force-dequantized."""

    def __init__(self, quant_mode: bool = True, force_dequant: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.quant_mode = quant_mode and force_dequant not in ("nonlinear", "gelu")
        self.built = True

    def call(self, x, scaling_factor=None):
        if OPS.is_integer(x):
            if self.quant_mode:
                return quant.int_gelu(OPS, x, scaling_factor)
            x = quant.dequantize(OPS, x, scaling_factor)
        if not self.quant_mode:
            return tf.nn.gelu(x, approximate=False), None
        return quant.simulated_gelu(OPS, x, scaling_factor)


class IntSoftmax(keras.layers.Layer):
    """Softmax over the last axis with i-exp, normalized to ``output_bit``-bit probabilities.

    Takes the additive attention mask itself (transformers adds it before the call): the integer path masks keys
    by integer arithmetic instead of adding a float.
    """

    def __init__(self, output_bit: int, quant_mode: bool = False, force_dequant: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.output_bit = output_bit
        self.quant_mode = quant_mode and force_dequant not in ("nonlinear", "softmax")
        self.act = QuantAct(quant.SOFTMAX_ACT_BIT, quant_mode=self.quant_mode, name="act", dtype=self.dtype_policy)
        self.built = True

    def call(self, x, scaling_factor, attention_mask=None, training=False):
        if OPS.is_integer(x):
            if self.quant_mode:
                masked = None if attention_mask is None else attention_mask < 0
                act_scale = quant.symmetric_scale(OPS, quant.SOFTMAX_ACT_BIT, tf.convert_to_tensor(self.act.x_min),
                                                  tf.convert_to_tensor(self.act.x_max))
                return quant.int_softmax(OPS, x, scaling_factor, masked, act_scale, self.output_bit)
            x = quant.dequantize(OPS, x, scaling_factor)
        if attention_mask is not None:
            x = x + tf.cast(attention_mask, x.dtype)
        if not self.quant_mode:
            return tf.nn.softmax(x, axis=-1), None

        def exp_act(exp, exp_scale):
            return self.act(exp, exp_scale, training=training)

        return quant.simulated_softmax(OPS, x, scaling_factor, exp_act, self.output_bit)


class IntLayerNorm(keras.layers.Layer):
    """Layer norm with integer mean, variance and Newton square root (I-LayerNorm); HF's float formula when not
    quantized. In training a variance past 2**32 raises the ``shift`` buffer. Weights are Keras' gamma and beta."""

    def __init__(self, normalized_shape: int, eps: float, output_bit: int = 8, quant_mode: bool = False,
                 force_dequant: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.normalized_shape, self.eps, self.output_bit = normalized_shape, eps, output_bit
        self.quant_mode = quant_mode and force_dequant not in ("nonlinear", "layernorm")
        self.gamma = self.add_weight(name="gamma", shape=(normalized_shape,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(normalized_shape,), initializer="zeros")
        self.shift = _buffer(self, "shift", (1,))
        # transformers declares this activation (its buffers are in every checkpoint) but never calls it.
        self.activation = QuantAct(output_bit, quant_mode=self.quant_mode, name="activation", dtype=self.dtype_policy)
        self.built = True

    def call(self, x, scaling_factor=None, training=False):
        weight, bias, shift = (tf.convert_to_tensor(v) for v in (self.gamma, self.beta, self.shift))
        if OPS.is_integer(x):
            if self.quant_mode:
                return quant.int_layer_norm(OPS, x, weight, bias, shift)
            x = quant.dequantize(OPS, x, scaling_factor)
        if not self.quant_mode:
            return quant.float_layer_norm(OPS, x, weight, bias, self.eps), None
        out, scale, shift = quant.simulated_layer_norm(OPS, x, scaling_factor, weight, bias, shift, bool(training))
        if training:
            self.shift.assign(tf.stop_gradient(shift))
        return out, scale
