"""I-BERT's quantization arithmetic, written once for PyTorch, TensorFlow and JAX.

Every function takes ``ops``, a small backend (``quant_pt.TorchOps``, ``quant_tf.TFOps``, ``quant_flax.JaxOps``)
with numpy-like names, so the three frameworks run the same sequence of operations and their integer results
are bit-identical by construction. The framework files only hold state (weights, range statistics) and pick a path:

- float (``quant_mode=False``): plain float math.
- simulated (``quant_mode=True`` while training): Hugging Face's fake quantization. Values are floats that hold
  integers times a scaling factor; rounding passes gradients straight through (STE), so the model can be
  fine-tuned quantization-aware.
- integer (``quant_mode=True`` in inference): integer tensors from the embedding lookup to the last layer norm:
  int8 weights and activations, int32 matmul accumulation, int64 where a product needs it, requantization as
  multiply-and-shift by dyadic numbers, an integer Newton square root. Scaling factors stay float32 constants
  derived from the weights and the calibrated ranges; only they (never the data) go through float arithmetic.

The simulated path follows transformers 4.x ``quant_modules.py`` formula by formula (same float32 operations,
same order), so it matches Hugging Face; the integer path computes the same quantities exactly, so it matches
Hugging Face wherever HF's float32 arithmetic is exact (sums and products below 2**24).

A backend provides: dtypes ``float32 float64 int8 int16 int32 int64``; ``cast(x, dtype)``,
``constant(value, dtype)``, ``stop_gradient``, ``is_integer(x)``, ``reshape``, ``transpose`` (2-D),
``swap_last`` (the last two axes); elementwise ``floor round abs sign sqrt log2 ceil fmod minimum maximum clip
where floor_divide right_shift left_shift bitwise_and`` (Python numbers allowed as either operand); ``divide`` and
``reciprocal``, correctly rounded IEEE division even where a compiler would multiply by a reciprocal instead (XLA
does, for constant and broadcast divisors: one ulp off at times); Hugging Face's ``c / tensor`` is PyTorch's
``reciprocal(tensor) * c``, and is written so here;
``pow2(n, dtype=float32)`` (exactly 2**n, built from exponent bits); reductions ``sum max min`` with
``(x, axis=None, keepdims=False)``; ``frexp(x) -> (mantissa, exponent)``; ``int_matmul(a, b) -> int32`` for
integer ``a [..., m, k]`` and ``b [..., k, n]``; ``matmul`` for floats; ``below_2_31(x)``, True only if the backend
can tell that every |x| < 2**31 (a shortcut; False is always correct); ``inspectable(x)``, True when x holds
concrete values (eager calls) that Python may read to choose an exact shortcut (False is always correct);
``materialize(x)``, x computed once and stored: XLA may not fuse (and so recompute) its elementwise producers into
each of its consumers (identity where nothing fuses).
"""

from __future__ import annotations

import math

# Bit widths of transformers 4.x I-BERT (fixed there, fixed here).
WEIGHT_BIT = 8
BIAS_BIT = 32
ACT_BIT = 8
EMBEDDING_ACT_BIT = 16
LN_INPUT_BIT = 22
LN_OUTPUT_BIT = 32
SOFTMAX_ACT_BIT = 16
MAX_BIT = 32  # LayerNorm's variance and Softmax's normalization work within 32 bits

# Polynomial approximations of the I-BERT paper (erf for GELU, exp for Softmax), as transformers 4.x writes them.
GELU_K = 1.4142
GELU_CONST = 14
GELU_COEFF = (-0.2888, -1.769, 1 / -0.2888)  # a (x + b)**2 + c, with c already divided by a
SOFTMAX_X0 = -0.6931  # -ln 2
SOFTMAX_CONST = 30
SOFTMAX_COEF = (0.35815147, 0.96963238 / 0.35815147, 1.0 / 0.35815147)  # a (x**2 + b x + c)

_LOW31 = (1 << 31) - 1
_MASKED_SCORE = -(1 << 40)  # below any clamp of the integer exponential: a masked key contributes exp(-30 ln 2)


def signed_range(bits: int) -> tuple[int, int]:
    """The output range of a requantization to ``bits`` (HF's FixedPointMul clamps to [-2**(b-1), 2**(b-1) - 1])."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def integer_dtype(ops, bits: int):
    """The narrowest integer dtype that holds a ``bits``-bit requantized value."""
    if bits <= 8:
        return ops.int8
    if bits <= 16:
        return ops.int16
    return ops.int32 if bits <= 32 else ops.int64


# -- straight-through estimators ------------------------------------------------------------------------------

def with_gradient(ops, value, surrogate):
    """``value`` forward, exactly (adding surrogate - surrogate is +0), the gradient of ``surrogate`` backward."""
    return ops.stop_gradient(value) + (surrogate - ops.stop_gradient(surrogate))


def floor_ste(ops, x):
    """floor(x) forward, identity backward."""
    return with_gradient(ops, ops.floor(x), x)


def round_ste(ops, x):
    """round(x) (half to even) forward, identity backward."""
    return with_gradient(ops, ops.round(x), x)


# -- ranges and scaling factors (float32, HF's formulas) -----------------------------------------------------

def update_range(ops, x_min, x_max, x, momentum: float):
    """HF QuantAct's calibration: the first batch sets the range, later ones move it by ``momentum`` (or take the
    running extremes when momentum is -1). ``x_min``/``x_max`` start at -1e-5/1e-5, which marks "not set"."""
    batch_min = ops.stop_gradient(ops.min(x))
    batch_max = ops.stop_gradient(ops.max(x))
    unset = (ops.min(x_min) > -1.1e-5) & (ops.max(x_max) < 1.1e-5)
    if momentum == -1:
        moved_min, moved_max = ops.minimum(x_min, batch_min), ops.maximum(x_max, batch_max)
    else:
        moved_min = x_min * momentum + batch_min * (1 - momentum)
        moved_max = x_max * momentum + batch_max * (1 - momentum)
    return ops.where(unset, x_min + batch_min, moved_min), ops.where(unset, x_max + batch_max, moved_max)


def symmetric_scale(ops, bits: int, x_min, x_max):
    """The scaling factor that maps [-max|x|, max|x|] onto signed ``bits``-bit integers."""
    n = 2 ** (bits - 1) - 1
    return ops.stop_gradient(ops.divide(ops.maximum(ops.maximum(ops.abs(x_min), ops.abs(x_max)), 1e-8), n))


def weight_scale(ops, weight, bits: int, per_channel: bool):
    """Per-tensor ([1]) or per-output-row ([out]) scaling factor of a weight [out, in] or table [num, dim]."""
    weight = ops.stop_gradient(weight)
    if per_channel:
        return symmetric_scale(ops, bits, ops.min(weight, axis=1), ops.max(weight, axis=1))
    return ops.reshape(symmetric_scale(ops, bits, ops.min(weight), ops.max(weight)), (1,))


def quantize(ops, x, scale, bits: int):
    """HF's SymmetricQuantFunction: round(x / scale) clamped to [-(2**(b-1) - 1), 2**(b-1) - 2], as float.

    The gradient is d/dx of x / scale (straight through the rounding and the clamp).
    """
    n = 2 ** (bits - 1) - 1
    scaled = ops.reciprocal(scale) * x
    return with_gradient(ops, ops.clip(ops.round(scaled), -n, n - 1), scaled)


def dequantize(ops, x_int, scale):
    return ops.cast(x_int, ops.float32) * scale


# -- dyadic requantization (integer) --------------------------------------------------------------------------

def dyadic(ops, numerator, denominator):
    """(m, e) with numerator / denominator ~= m / 2**e, m a 31-bit integer (HF's batch_frexp, exactly).

    The ratio is taken in float64 as HF does; m is its mantissa times 2**31 rounded half away from zero.
    """
    ratio = ops.divide(ops.cast(ops.stop_gradient(numerator), ops.float64), ops.cast(ops.stop_gradient(denominator), ops.float64))
    mantissa, exponent = ops.frexp(ratio)
    magnitude = ops.cast(ops.floor(ops.abs(mantissa) * float(1 << 31) + 0.5), ops.int64)
    m = ops.where(mantissa < 0, -magnitude, magnitude)
    return m, 31 - ops.cast(exponent, ops.int64)


def rounding_mul_shift(ops, x, m, e, bound=None):
    """round_half_even(x * m / 2**e) for int64 ``x`` (|x| < 2**62), |m| <= 2**31 and ``e`` >= 0, exactly.

    ``bound``: the (low, high) range the caller clamps the result to, if any (it widens the float64 form's domain).
    Every form below is exact on its domain, so taking one over another changes no result. On concrete values
    (eager calls: ``ops.inspectable``) the float64 form is tried first: a few passes instead of a dozen int64 ones.
    The short integer form is taken when |x| <= 2**31 is known: always for x of a 32-bit or narrower dtype (the
    product is then at most 2**62 in magnitude, within its domain), else when the backend can tell
    (``ops.below_2_31``, which may always say no). Graphs (XLA) can only know it from the dtype; the long form is
    about four times the operations.
    """
    if ops.inspectable(x):
        fast = _float_rounding_mul_shift(ops, x, m, e, bound)
        if fast is not None:
            return fast
    narrow = x.dtype != ops.int64
    x, m, e = ops.cast(x, ops.int64), ops.cast(m, ops.int64), ops.cast(e, ops.int64)
    x = ops.where(m < 0, -x, x)  # a negative scale ratio (i-GELU's scale is negative) moves its sign to x
    m = ops.abs(m)
    if narrow or ops.below_2_31(x):
        return _rounding_shift(ops, x * m, e)
    return _wide_rounding_mul_shift(ops, x, m, e)


FLOAT64_EXACT = 1 << 53  # every integer of magnitude <= 2**53 is a float64
FLOAT64_ERROR = 2.0 ** -51  # relative error of two float64 roundings (each at most 2**-53), with room to spare


def _float_rounding_mul_shift(ops, x, m, e, bound):
    """round_half_even(x * m / 2**e) of concrete values in float64, or None where exactness cannot be shown.

    m / 2**e is a float64 exactly (m has at most 32 significant bits), so x * (m / 2**e) is rounded at most twice
    (x's cast, the product). Exact when |x * m| < 2**53: the product's integer fits the mantissa and the power of two
    scales it exactly, and so its rounding to an integer is the exact one. Otherwise, for a result clamped to
    ``bound``: within the clamp range (|y| <= B = max(-low, high) + 1) the float errs by at most B * 2**-51, so
    wherever it is farther than that from a half-integer it rounds as the exact value does, and beyond the range
    both clamp alike; if any value comes that close (an exact tie, in practice), None.
    """
    if math.prod(x.shape) == 0 or int(ops.min(e)) < 0:
        return None
    scaled = ops.cast(x, ops.float64) * (ops.cast(m, ops.float64) * ops.pow2(-e, ops.float64))
    if _product_below_2_53(ops, x, m):
        return ops.cast(ops.round(scaled), ops.int64)
    if bound is None:
        return None
    low, high = bound
    scaled = ops.clip(scaled, low - 1, high + 1)
    rounded = ops.round(scaled)
    margin = 0.5 - (max(-low, high) + 1) * FLOAT64_ERROR
    if not bool(ops.max(ops.abs(scaled - rounded)) < margin):
        return None
    return ops.cast(rounded, ops.int64)


def _product_below_2_53(ops, x, m) -> bool:
    """|x * m| < 2**53 for every element: from the dtype for 16-bit or narrower x, else from the values."""
    m_max = int(ops.max(ops.abs(m)))
    if x.dtype in (ops.int8, ops.int16):
        return (1 << 15) * m_max < FLOAT64_EXACT
    x_max = max(int(ops.max(x)), -int(ops.min(x)))
    return x_max * m_max < FLOAT64_EXACT


def _rounding_shift(ops, product, e):
    """round_half_even(product / 2**e) for |product| <= 2**62 (the rounding adds at most 2**61 before the shift:
    no int64 overflow) and e >= 0 (so e > 62 gives 0).

    Adding 2**(e-1) - 1, plus 1 when the floor quotient is odd, before the floor shift rounds ties to even.
    """
    shift = ops.clip(e, 1, 62)
    odd = ops.bitwise_and(ops.right_shift(product, shift), 1)
    below_half = ops.left_shift(ops.constant(1, ops.int64), shift - 1) - 1
    rounded = ops.right_shift(product + below_half + odd, shift)
    rounded = ops.where(e == 0, product, rounded)
    return ops.where(e > 62, ops.constant(0, ops.int64), rounded)


def _wide_rounding_mul_shift(ops, x, m, e):
    """The product can pass 2**63, so it is formed as hi * 2**31 + lo from 31-bit halves of ``x``."""
    low = ops.constant(_LOW31, ops.int64)
    thirty_one = ops.constant(31, ops.int64)
    low_product = ops.bitwise_and(x, low) * m
    hi = ops.right_shift(x, thirty_one) * m + ops.right_shift(low_product, thirty_one)
    lo = ops.bitwise_and(low_product, low)  # x * m == hi * 2**31 + lo, 0 <= lo < 2**31

    # e >= 31: quotient hi >> k (k = e - 31); compare twice the remainder with 2**e for rounding.
    k = ops.clip(e - 31, 0, 62)
    quotient = ops.right_shift(hi, k)
    remainder_hi = hi - ops.left_shift(quotient, k)
    twice_lo = 2 * lo
    c = 2 * remainder_hi + ops.right_shift(twice_lo, thirty_one)
    c_frac = ops.bitwise_and(twice_lo, low)
    half = ops.left_shift(ops.constant(1, ops.int64), k)
    above = (c > half) | ((c == half) & (c_frac > 0))
    tie = (c == half) & (c_frac == 0)
    wide = quotient + ops.cast(above | (tie & (ops.bitwise_and(quotient, 1) == 1)), ops.int64)
    wide = ops.where(e > 93, ops.constant(0, ops.int64), wide)  # |x * m| < 2**93: rounds to 0

    # e < 31: hi * 2**(31 - e) + round(lo / 2**e); hi's term is even, so the tie to even is lo's quotient's.
    small_e = ops.clip(e, 0, 30)
    narrow = ops.left_shift(hi, 31 - small_e) + _rounding_shift(ops, lo, small_e)
    return ops.where(e >= 31, wide, narrow)


def requantize(ops, x_int, x_scale, bits: int, out_scale, identity_int=None, identity_scale=None):
    """HF's FixedPointMul in integers: ``x_int * x_scale (+ identity)`` re-expressed in ``out_scale`` units,
    rounded half to even and clamped to ``bits`` bits. Returns int64."""
    low, high = signed_range(bits)
    out = rescale(ops, x_int, x_scale, out_scale, bound=(low, high) if identity_int is None else None)
    if identity_int is not None:
        out = out + rescale(ops, identity_int, identity_scale, out_scale)
    return ops.clip(out, low, high)


def quantize_activation(ops, x, x_scale, bits: int, scale, identity=None, identity_scale=None):
    """QuantAct's integer path: integers are requantized to ``scale``; a float (``x_scale`` None: inputs_embeds, or
    the output of a block kept in float) is quantized. Returns the ``bits``-bit integers."""
    dtype = integer_dtype(ops, bits)
    if x_scale is not None and (identity is None or identity_scale is not None):
        # Materialized: else XLA fuses the elementwise residual path of every earlier layer into each consumer
        # (a layer norm has three), and program size and run time grow with the square of the depth.
        return ops.materialize(ops.cast(requantize(ops, x, x_scale, bits, scale, identity, identity_scale), dtype))
    total = x if x_scale is None else dequantize(ops, x, x_scale)
    if identity is not None:
        total = total + (identity if identity_scale is None else dequantize(ops, identity, identity_scale))
    return ops.cast(quantize(ops, total, scale, bits), dtype)


def simulate_activation(ops, x, x_scale, bits: int, scale, identity=None, identity_scale=None):
    """QuantAct's simulated path: the float value of the ``bits``-bit quantization of x (+ identity)."""
    if x_scale is None:
        # transformers quantizes x alone here, dropping an identity; the sum is what the caller means.
        x_int = quantize(ops, x if identity is None else identity + x, scale, bits)
    else:
        x_int = fixed_point_mul(ops, x, x_scale, bits, scale, identity, identity_scale)
    return x_int * scale


def fixed_point_mul(ops, pre_act, pre_act_scale, bits: int, out_scale, identity=None, identity_scale=None):
    """HF's FixedPointMul on simulated values (floats holding integer * scale), in float64 as HF computes it; the
    gradient is 1 / out_scale to ``pre_act`` and ``identity`` as in HF.

    Float64 rather than ``requantize``: Softmax feeds it raw exponentials whose integer images pass 2**63.
    """
    def rescaled(x, x_scale):
        z_int = ops.round(ops.divide(ops.stop_gradient(x), x_scale))
        m, e = dyadic(ops, x_scale, out_scale)
        product = ops.cast(z_int, ops.float64) * ops.cast(m, ops.float64)
        return ops.round(product / ops.pow2(e, ops.float64))

    out = rescaled(pre_act, pre_act_scale)
    if identity is not None:
        out = out + rescaled(identity, identity_scale)
    low, high = signed_range(bits)
    out = ops.clip(ops.cast(out, ops.float32), low, high)
    total = pre_act if identity is None else pre_act + identity
    return with_gradient(ops, out, ops.divide(total, ops.stop_gradient(out_scale)))


# -- integer building blocks ----------------------------------------------------------------------------------

def int_linear(ops, x_int, x_scale, weight_int, bias_int, weight_scale_, declared_scale=None):
    """x_int [..., in] (int8) @ weight_int.T [in, out] (int8), accumulated in int32, plus the bias (int64 out).

    The bias is quantized to weight_scale * declared_scale, the input scale the layer was handed; when x_int holds
    another scale (transformers hands every encoder layer the embeddings' scale, issue 26738), the product is first
    rescaled by x_scale / declared_scale, as HF's float division by the handed scale does. Returns (int, scale).
    """
    accumulated = exact_matmul(ops, x_int, ops.transpose(weight_int), PRODUCT_BOUND)  # int32: the short rescale
    if declared_scale is None:
        declared_scale = x_scale
    else:
        accumulated = rescale(ops, accumulated, x_scale, declared_scale)
    accumulated = ops.cast(accumulated, ops.int64)
    if bias_int is not None:
        accumulated = accumulated + ops.cast(bias_int, ops.int64)
    return accumulated, weight_scale_ * declared_scale


FLOAT32_EXACT = 1 << 24  # every integer of magnitude <= 2**24 is a float32, and sums of them stay exact there
INT8_MAGNITUDE = 128  # 8-bit activations lie in [-128, 127], 8-bit weights in [-127, 126]
PRODUCT_BOUND = INT8_MAGNITUDE * INT8_MAGNITUDE  # |a * b| of two 8-bit operands: 2**14


def exact_chunk(k: int, product_bound: int, sum_bound: int | None = None) -> int:
    """The longest run of a length-``k`` reduction that float32 accumulates exactly, in any order: every partial
    sum of n terms is an integer of magnitude <= n * ``product_bound`` (or <= ``sum_bound`` when the caller knows a
    tighter bound for whole rows), which float32 holds while it is <= 2**24."""
    if (k * product_bound if sum_bound is None else sum_bound) <= FLOAT32_EXACT:
        return k
    if product_bound > FLOAT32_EXACT:
        raise ValueError(f"products up to {product_bound} do not fit float32's exact integers (2**24)")
    return FLOAT32_EXACT // product_bound


def exact_matmul(ops, a, b, product_bound: int, sum_bound: int | None = None):
    """Integer a [..., m, k] @ b [..., k, n] as int32, through float32 matmuls: every framework's float GEMM is far
    faster on CPU than its integer one (PyTorch's is a reference loop), and it is exact here because the reduction
    is cut into chunks (``exact_chunk``) whose sums stay within 2**24; the exact chunk results add up in int32."""
    k = a.shape[-1]
    chunk = exact_chunk(k, product_bound, sum_bound)
    a, b = ops.cast(a, ops.float32), ops.cast(b, ops.float32)
    total = None
    for start in range(0, k, chunk):
        part = ops.cast(ops.matmul(a[..., start:start + chunk], b[..., start:start + chunk, :]), ops.int32)
        total = part if total is None else total + part
    return total


def rescale(ops, x_int, x_scale, to_scale, bound=None):
    """x_int (in ``x_scale`` units) in ``to_scale`` units, rounded half to even (int64); unclamped, but ``bound``
    is the (low, high) range the caller clamps the result to, if any (see ``rounding_mul_shift``)."""
    m, e = dyadic(ops, x_scale, to_scale)
    return rounding_mul_shift(ops, x_int, m, e, bound)


def float_floor_divide(ops, a, b):
    """Python's (and PyTorch's) ``a // b`` on floats: floor of the exact quotient, not of the rounded one."""
    mod = ops.fmod(a, b)
    div = ops.divide(a - mod, b)
    div = ops.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1, div)
    floordiv = ops.floor(div)
    return ops.where(div - floordiv > 0.5, floordiv + 1, floordiv)


def gelu_constants(ops, scale):
    """i-GELU's integer constants for an input of ``scale`` (float32 formulas of HF's IntGELU)."""
    erf_scale = ops.divide(scale, GELU_K)
    b_int = ops.floor(ops.reciprocal(erf_scale) * GELU_COEFF[1])
    c_int = ops.floor(ops.reciprocal(erf_scale * erf_scale) * GELU_COEFF[2])
    sigmoid_scale = erf_scale * erf_scale * GELU_COEFF[0] * (2.0 ** GELU_CONST)
    shift_int = float_floor_divide(ops, 1.0, sigmoid_scale)
    return b_int, c_int, shift_int, scale * sigmoid_scale / 2


def int_gelu(ops, x_int, scale):
    """i-GELU: x * (erf(x / sqrt 2) + 1) with a second-order polynomial erf, in int64. Returns (y_int, scale)."""
    b_int, c_int, shift_int, out_scale = gelu_constants(ops, scale)
    b_int, c_int, shift_int = (ops.cast(v, ops.int64) for v in (b_int, c_int, shift_int))
    x_int = ops.cast(x_int, ops.int64)
    clipped = ops.minimum(ops.abs(x_int), -b_int) + b_int
    erf_int = ops.sign(x_int) * (clipped * clipped + c_int)
    erf_int = ops.right_shift(erf_int, ops.constant(GELU_CONST, ops.int64))  # floor(erf / 2**14)
    return x_int * (erf_int + shift_int), out_scale


def simulated_gelu(ops, x, scale):
    """HF IntGELU's simulated forward (floats, STE floors)."""
    b_int, c_int, shift_int, out_scale = gelu_constants(ops, scale)
    x_int = ops.divide(x, scale)
    clipped = ops.minimum(ops.abs(x_int), -b_int) + b_int
    erf_int = ops.sign(x_int) * (clipped * clipped + c_int)
    erf_int = floor_ste(ops, erf_int / 2 ** GELU_CONST)
    return x_int * (erf_int + shift_int) * out_scale, out_scale


def softmax_constants(ops, scale):
    """i-exp's integer constants for scores of ``scale`` (float32 formulas of HF's IntSoftmax)."""
    x0_int = ops.floor(ops.reciprocal(scale) * SOFTMAX_X0)
    b_int = ops.floor(ops.reciprocal(scale) * SOFTMAX_COEF[1])
    c_int = ops.floor(ops.reciprocal(scale * scale) * SOFTMAX_COEF[2])
    exp_scale = SOFTMAX_COEF[0] * (scale * scale) / 2 ** SOFTMAX_CONST
    return x0_int, b_int, c_int, exp_scale


def int_exp(ops, x_int, scale):
    """i-exp of non-positive int64 scores: exp(x) = 2**-q exp(r) with r in (-ln 2, 0] and a polynomial exp(r).
    Returns (exp_int, exp_scale)."""
    x0_int, b_int, c_int, exp_scale = softmax_constants(ops, scale)
    x0_int, b_int, c_int = (ops.cast(v, ops.int64) for v in (x0_int, b_int, c_int))
    x_int = ops.maximum(x_int, SOFTMAX_CONST * x0_int)
    q = ops.floor_divide(x_int, x0_int)
    r = x_int - x0_int * q
    z = (r + b_int) * r + c_int
    exp_int = ops.maximum(ops.left_shift(z, SOFTMAX_CONST - q), 0)
    return exp_int, exp_scale


def simulated_exp(ops, x_int, scale):
    """HF IntSoftmax.int_exp on floats."""
    x0_int, b_int, c_int, exp_scale = softmax_constants(ops, scale)
    x_int = ops.maximum(x_int, SOFTMAX_CONST * x0_int)
    q = floor_ste(ops, ops.divide(x_int, x0_int))
    r = x_int - x0_int * q
    z = (r + b_int) * r + c_int
    # pow2 is exact in every framework; 2.0 ** (30 - q) carries HF's gradient (through q's straight-through floor)
    exact = z * ops.pow2(SOFTMAX_CONST - ops.stop_gradient(q))
    exp_int = ops.maximum(floor_ste(ops, with_gradient(ops, exact, z * 2.0 ** (SOFTMAX_CONST - q))), 0.0)
    return exp_int, exp_scale


def int_softmax(ops, scores_int, scale, masked, act_scale, output_bit: int):
    """i-Softmax over the last axis of int32 scores; ``masked`` (bool, broadcastable) marks keys to ignore.

    The exponentials are requantized to 16 bits with the calibrated ``act_scale`` of HF's ``softmax.act`` (whose
    range HF records in units of the raw exponential), then normalized to ``output_bit`` bits: probabilities
    are integers in [0, 2**output_bit] with scale 2**-output_bit.
    """
    scores = ops.cast(scores_int, ops.int64)
    if masked is not None:
        scores = ops.where(masked, ops.constant(_MASKED_SCORE, ops.int64), scores)
    scores = scores - ops.max(scores, axis=-1, keepdims=True)
    exp_int, _ = int_exp(ops, scores, scale)
    m, e = dyadic(ops, ops.constant(1.0, ops.float32), act_scale)
    low, high = signed_range(SOFTMAX_ACT_BIT)
    exp16 = ops.materialize(ops.clip(rounding_mul_shift(ops, exp_int, m, e, (low, high)), low, high))  # 2 consumers
    total = ops.maximum(ops.sum(exp16, axis=-1, keepdims=True), 1)
    factor = ops.floor_divide(ops.constant(1 << MAX_BIT, ops.int64), total)
    probs = ops.right_shift(exp16 * factor, ops.constant(MAX_BIT - output_bit, ops.int64))
    return ops.cast(probs, ops.int32), 1.0 / 2 ** output_bit


def simulated_softmax(ops, x, scale, exp_act, output_bit: int):
    """HF IntSoftmax's simulated forward. ``exp_act(x, scale) -> (x, scale)`` is the 16-bit ``softmax.act``.

    Masked scores (finfo.min added) are held at the integer path's masked value instead of -inf: the exponential
    clamps them to the same result, and a fully masked row becomes uniform where Hugging Face gets -inf - -inf =
    NaN (which then poisons every calibrated range).
    """
    x_int = ops.maximum(ops.divide(x, scale), float(_MASKED_SCORE))
    x_int = x_int - ops.max(x_int, axis=-1, keepdims=True)
    exp_int, exp_scale = simulated_exp(ops, x_int, scale)
    exp, exp_scale = exp_act(exp_int, exp_scale)
    exp_int = ops.divide(exp, exp_scale)
    factor = floor_ste(ops, 2.0 ** MAX_BIT / ops.sum(exp_int, axis=-1, keepdims=True))
    exp_int = floor_ste(ops, exp_int * factor / 2.0 ** (MAX_BIT - output_bit))
    out_scale = 1.0 / 2 ** output_bit
    return exp_int * out_scale, out_scale


def isqrt(ops, v):
    """floor(sqrt(v)) of non-negative int64 ``v`` by Newton's iteration from a power of two above the root."""
    one = ops.constant(1, ops.int64)
    top_bit = ops.constant(0, ops.int64) * v  # the highest set bit's position, by binary search
    for step in (32, 16, 8, 4, 2, 1):
        top_bit = top_bit + step * ops.cast(ops.right_shift(v, top_bit + step) > 0, ops.int64)
    x = ops.left_shift(one, ops.right_shift(top_bit + 2, one))  # 2**ceil(bit_length / 2), within 2x above the root
    for _ in range(6):  # Newton from within 2x: relative error 1, 1/4, 2.5e-2, 3e-4, 5e-8, 1e-15 (exact)
        x = ops.minimum(x, ops.right_shift(x + ops.floor_divide(v, ops.maximum(x, one)), one))
    return ops.where(v == 0, ops.constant(0, ops.int64), x)


def round_half_even_divide(ops, total, n: int):
    """round(total / n) with ties to even, for int64 ``total``."""
    quotient = ops.floor_divide(total, n)
    twice_remainder = 2 * (total - quotient * n)
    up = (twice_remainder > n) | ((twice_remainder == n) & (ops.bitwise_and(quotient, 1) == 1))
    return quotient + ops.cast(up, ops.int64)


def layer_norm_bias(ops, weight, bias, dim: int):
    """The integer bias and output scale of I-LayerNorm (HF's float32 formulas; no gradient to the bias)."""
    dim_sqrt = ops.sqrt(ops.constant(float(dim), ops.float32))
    scale = dim_sqrt / 2 ** 30
    bias_int = ops.floor(ops.divide(ops.divide(ops.stop_gradient(bias), ops.stop_gradient(weight)), scale))
    return bias_int, scale * weight


def int_layer_norm(ops, x_int, weight, bias, shift):
    """I-LayerNorm of int ``x_int`` [..., dim]: integer mean, variance (pre-shifted right by ``shift`` to stay
    within 32 bits) and Newton square root. Returns (y_int int64, scale [dim])."""
    dim = x_int.shape[-1]
    x_int = ops.cast(x_int, ops.int64)
    mean_int = round_half_even_divide(ops, ops.sum(x_int, axis=-1, keepdims=True), dim)
    y_int = x_int - mean_int
    shift = ops.cast(shift, ops.int64)
    shifted = ops.right_shift(y_int, shift)
    var_int = ops.sum(shifted * shifted, axis=-1, keepdims=True)
    std_int = ops.left_shift(isqrt(ops, var_int), shift)
    factor = ops.floor_divide(ops.constant(1 << 31, ops.int64), ops.maximum(std_int, 1))
    y_int = ops.right_shift(y_int * factor, ops.constant(1, ops.int64))
    bias_int, out_scale = layer_norm_bias(ops, weight, bias, dim)
    return y_int + ops.cast(bias_int, ops.int64), out_scale


def layer_norm_shift(ops, shift, y_int):
    """HF IntLayerNorm.set_shift: the smallest right shift keeping the variance sum below 2**32."""
    var_int = ops.sum(y_int * y_int, axis=2, keepdims=True)
    needed = ops.max(ops.ceil(ops.log2(ops.sqrt(var_int / 2.0 ** MAX_BIT))))
    return ops.maximum(shift, needed)


def simulated_layer_norm(ops, x, scale, weight, bias, shift, training: bool):
    """HF IntLayerNorm's simulated forward. In training a variance past 2**32 raises ``shift`` (returned)."""
    dim = x.shape[-1]
    x_int = ops.divide(x, scale)
    mean_int = round_ste(ops, ops.divide(ops.sum(x_int, axis=2, keepdims=True), dim))
    y_int = x_int - mean_int

    def variance(shift_):
        shifted = floor_ste(ops, y_int / ops.pow2(shift_))
        return ops.sum(shifted * shifted, axis=2, keepdims=True)

    var_int = variance(shift)
    if training:
        overflow = ops.max(ops.stop_gradient(var_int)) >= 2.0 ** MAX_BIT
        raised = layer_norm_shift(ops, shift, ops.stop_gradient(y_int))
        shift = ops.where(overflow, raised, shift)
        var_int = ops.where(overflow, variance(shift), var_int)
    std_int = floor_ste(ops, ops.sqrt(var_int)) * ops.pow2(shift)
    factor = floor_ste(ops, 2.0 ** 31 / std_int)
    y_int = floor_ste(ops, y_int * factor / 2)
    bias_int, out_scale = layer_norm_bias(ops, weight, bias, dim)
    bias_int = ops.stop_gradient(bias_int)
    return (y_int + bias_int) * out_scale, out_scale, shift


def float_layer_norm(ops, x, weight, bias, eps: float):
    """HF IntLayerNorm's float path (its own mean and variance, not the framework's layer norm)."""
    dim = x.shape[-1]
    mean = ops.divide(ops.sum(x, axis=-1, keepdims=True), dim)
    y = x - mean
    var = ops.divide(ops.sum(y * y, axis=-1, keepdims=True), dim)
    return ops.divide(y, ops.sqrt(eps + var)) * weight + bias


# -- attention matmuls -----------------------------------------------------------------------------------------

def attention_scores(ops, query, key, query_scale, key_scale, head_dim: int):
    """Scores [b, h, q, k] from queries and keys [b, h, len, d]: int32 for integer inputs (scale q_s * k_s /
    sqrt(d)), floats already divided by sqrt(d) otherwise (scale too when the inputs are quantized)."""
    scale = math.sqrt(head_dim)
    score_scale = None if query_scale is None else ops.divide(query_scale * key_scale, scale)
    if ops.is_integer(query):
        return exact_matmul(ops, query, ops.swap_last(key), PRODUCT_BOUND), score_scale
    return ops.divide(ops.matmul(query, ops.swap_last(key)), scale), score_scale


def attention_context(ops, probs, value, probs_scale, value_scale):
    """probs [b, h, q, k] @ value [b, h, k, d]: int32 when both are integer, else float (dequantizing value).

    Integer probabilities are non-negative and sum to at most 1 / probs_scale (2**8) per row (the softmax floors
    its shares of 2**32), and |value| <= 128, so every partial sum is within 2**15: float32 is exact at any length.
    """
    if ops.is_integer(probs) and ops.is_integer(value):
        bound = round(1 / probs_scale) * INT8_MAGNITUDE
        return exact_matmul(ops, probs, value, bound, sum_bound=bound), probs_scale * value_scale
    if ops.is_integer(value):
        value = dequantize(ops, value, value_scale)
    context_scale = None if probs_scale is None else probs_scale * value_scale
    return ops.matmul(probs, value), context_scale

