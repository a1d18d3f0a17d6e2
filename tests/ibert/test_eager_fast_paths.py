"""The integer path's eager shortcuts change no result: the float64 requantization agrees with the exact integer
forms wherever it answers (ties and near-ties included), and PyTorch's cached int8 weights follow every change of
the float weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rosettazoo.ibert import quant
from rosettazoo.ibert.quant_pt import OPS as TORCH_OPS
from rosettazoo.ibert.quant_pt import QuantEmbedding, QuantLinear


class _IntegerOnly(type(TORCH_OPS)):
    """PyTorch's backend that never takes the float64 shortcut: the exact integer forms alone."""

    @staticmethod
    def inspectable(x) -> bool:
        return False


INTEGER_OPS = _IntegerOnly()


def _cases(rng, count: int = 4000):
    """x, m, e over the requantizations' range: products from tiny to 2**93, and near-ties built on purpose."""
    e = rng.integers(0, 80, count)
    m = rng.integers(1 << 30, (1 << 31) + 1, count) * rng.choice([-1, 1], count)
    bits = rng.integers(1, 61, count)
    x = np.array([int(v) for v in rng.integers(-(1 << 62), 1 << 62, count)]) >> (62 - bits)
    # near-ties: x * m within a few units of (k + 1/2) * 2**e for a small k
    k = rng.integers(-300, 300, count // 4)
    tie_e = rng.integers(1, 62, count // 4)
    tie_m = m[: count // 4]
    target = [((2 * int(ki) + 1) << int(ei)) // (2 * int(mi)) for ki, ei, mi in zip(k, tie_e, tie_m)]
    tie_x = np.array(target, dtype=np.int64) + rng.integers(-2, 3, count // 4)
    x = np.concatenate([x, tie_x])
    m = np.concatenate([m, tie_m])
    e = np.concatenate([e, tie_e])
    # exact ties: x * m == (k + 1/2) * 2**e
    half_m = np.full(8, 1 << 30)
    half_e = np.full(8, 31)
    half_x = np.arange(-4, 4) * 2 + 1  # odd x: x * 2**30 / 2**31 = x / 2, a tie
    x, m, e = (np.concatenate(parts).astype(np.int64) for parts in ((x, half_x), (m, half_m), (e, half_e)))
    # the integer forms' domain: the result fits int64 (|x * m / 2**e| < 2**62)
    inside = np.array([abs(int(xi) * int(mi)) < 1 << (62 + int(ei)) for xi, mi, ei in zip(x, m, e)])
    x, m, e = x[inside], m[inside], e[inside]
    order = np.argsort(np.abs(x.astype(np.float64)), kind="stable")  # batches of like magnitudes: some fit float64
    return x[order], m[order], e[order]


@pytest.mark.parametrize("bits", [None, 8, 16, 22])
def test_float64_requantization_matches_the_integer_forms(bits):
    x, m, e = (torch.from_numpy(v) for v in _cases(np.random.default_rng(bits or 0)))
    bound = None if bits is None else quant.signed_range(bits)
    answered = 0
    for x_part, m_part, e_part in zip(x.split(32), m.split(32), e.split(32)):  # one m and e per element
        fast = quant.rounding_mul_shift(TORCH_OPS, x_part, m_part, e_part, bound)
        exact = quant.rounding_mul_shift(INTEGER_OPS, x_part, m_part, e_part, bound)
        if bound is not None:
            fast, exact = fast.clamp(*bound), exact.clamp(*bound)
        assert torch.equal(fast, exact)
        answered += quant._float_rounding_mul_shift(TORCH_OPS, x_part, m_part, e_part, bound) is not None
    assert answered > 0  # the shortcut is taken, not always refused


def test_float64_requantization_refuses_what_it_cannot_prove():
    m, e = torch.tensor([(1 << 31) - 1]), torch.tensor([40])
    # a product past 2**53 with no clamp to lean on, and a negative shift: only the integer forms answer
    assert quant._float_rounding_mul_shift(TORCH_OPS, torch.tensor([1 << 40]), m, e, None) is None
    assert quant._float_rounding_mul_shift(TORCH_OPS, torch.tensor([5]), m, torch.tensor([-1]), None) is None
    # an exact tie past 2**53: 3 * 2**39 * 2**31 / 2**71 = 1.5, refused even under a clamp
    exact_tie = torch.tensor([3 << 39], dtype=torch.int64)
    assert quant._float_rounding_mul_shift(TORCH_OPS, exact_tie, torch.tensor([1 << 31]), torch.tensor([71]),
                                           (-128, 127)) is None
    small = torch.tensor([-3, 0, 5], dtype=torch.int8)  # 8-bit inputs: exact products, known from the dtype
    assert torch.equal(quant._float_rounding_mul_shift(TORCH_OPS, small, m, e, None),
                       quant.rounding_mul_shift(INTEGER_OPS, small, m, e))


def test_other_backends_take_the_same_shortcut_exactly():
    jax = pytest.importorskip("jax")
    tf = pytest.importorskip("tensorflow")
    from rosettazoo.ibert.quant_flax import OPS as JAX_OPS
    from rosettazoo.ibert.quant_tf import OPS as TF_OPS

    x, m, e = _cases(np.random.default_rng(7), count=160)
    expected = [quant.rounding_mul_shift(INTEGER_OPS, *(torch.from_numpy(v[i:i + 64]) for v in (x, m, e)),
                                         (-128, 127)).clamp(-128, 127).numpy() for i in range(0, len(x), 64)]
    with jax.enable_x64(True):
        for i, want in zip(range(0, len(x), 64), expected):
            got_jax = quant.rounding_mul_shift(JAX_OPS, *(jax.numpy.asarray(v[i:i + 64]) for v in (x, m, e)),
                                               (-128, 127))
            np.testing.assert_array_equal(np.clip(np.asarray(got_jax), -128, 127), want)
    for i, want in zip(range(0, len(x), 64), expected):
        got_tf = quant.rounding_mul_shift(TF_OPS, *(tf.constant(v[i:i + 64]) for v in (x, m, e)), (-128, 127))
        np.testing.assert_array_equal(np.clip(got_tf.numpy(), -128, 127), want)


def _linear() -> QuantLinear:
    torch.manual_seed(0)
    layer = QuantLinear(8, 4, weight_bit=8, per_channel=True, quant_mode=True).eval()
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


def _linear_output(layer: QuantLinear) -> torch.Tensor:
    x = torch.arange(-8, 8, dtype=torch.int8).view(2, 8)
    out, scale = layer(x, torch.tensor([0.05]))
    return quant.dequantize(TORCH_OPS, out, scale)


def _fresh_output(layer: QuantLinear) -> torch.Tensor:
    fresh = _linear()
    fresh.load_state_dict(layer.state_dict())
    return _linear_output(fresh)


@pytest.mark.parametrize("change", ["in_place", "load_state_dict", "data", "parameter", "optimizer"])
def test_cached_int8_weights_follow_the_float_weights(change):
    layer = _linear()
    before = _linear_output(layer)
    assert torch.equal(_linear_output(layer), before)  # cached: the same integers
    if change == "in_place":
        with torch.no_grad():
            layer.weight.mul_(-2)
    elif change == "load_state_dict":
        layer.load_state_dict({**layer.state_dict(), "weight": torch.randn(4, 8)})
    elif change == "data":
        layer.weight.data = torch.randn(4, 8)
    elif change == "parameter":
        layer.weight = torch.nn.Parameter(torch.randn(4, 8))
    else:
        layer.train()
        out, _ = layer(torch.randn(2, 8), torch.tensor([0.05]))
        out.sum().backward()
        torch.optim.SGD(layer.parameters(), lr=1.0).step()
        layer.eval()
    after = _linear_output(layer)
    assert not torch.equal(after, before)
    assert torch.equal(after, _fresh_output(layer))


def test_cached_embedding_table_follows_the_float_table():
    torch.manual_seed(0)
    table = QuantEmbedding(10, 4, quant_mode=True).eval()
    with torch.no_grad():
        table.weight.normal_()
    ids = torch.tensor([[1, 2, 9]])
    first, scale = table(ids)
    with torch.inference_mode():  # cached inside inference mode, still usable outside it
        assert torch.equal(table(ids)[0], first)
    with torch.no_grad():
        table.weight[2] *= 10
    second, second_scale = table(ids)
    expected_scale = quant.weight_scale(TORCH_OPS, table.weight, 8, per_channel=False)
    expected = quant.quantize(TORCH_OPS, table.weight, expected_scale.view(-1, 1), 8).to(torch.int8)[ids]
    assert torch.equal(second, expected) and torch.equal(second_scale, expected_scale)
    assert not torch.equal(second, first)
    assert "_integer_weight" not in str(table.state_dict().keys())


def _weights_that_tell_the_roundings_apart() -> np.ndarray:
    """Rows [m, w, 0, ...] whose per-row scale is s = m / 127 and where round(w * (1 / s)), PyTorch's two roundings,
    differs from round(w * (127 / m)), the one rounding XLA's rewrite of 1 / (m / 127) would give."""
    rng = np.random.default_rng(0)
    m = rng.uniform(0.05, 0.5, 20000).astype(np.float32)
    reciprocal = np.float32(1) / (m / np.float32(127))
    rewritten = np.float32(127) / m
    k = rng.integers(1, 120, m.size)
    w = ((k + 0.5) / reciprocal).astype(np.float32)
    apart = np.round(w * reciprocal) != np.round(w * rewritten)
    rows = np.zeros((int(apart.sum()), 4), np.float32)
    rows[:, 0], rows[:, 1] = m[apart], w[apart]
    return rows[:64]


def test_compiled_weight_quantization_rounds_as_pytorch():
    jax = pytest.importorskip("jax")
    tf = pytest.importorskip("tensorflow")
    from rosettazoo.ibert.quant_flax import OPS as JAX_OPS
    from rosettazoo.ibert.quant_tf import OPS as TF_OPS

    weight = _weights_that_tell_the_roundings_apart()
    assert len(weight) > 0

    def quantized(ops, w):
        scale = quant.weight_scale(ops, w, 8, per_channel=True)
        return quant.quantize(ops, w, ops.reshape(scale, (-1, 1)), 8)

    expected = quantized(TORCH_OPS, torch.from_numpy(weight)).numpy()
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda w: quantized(JAX_OPS, w))(weight)), expected)
    compiled = tf.function(lambda w: quantized(TF_OPS, w), jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.constant(weight)).numpy(), expected)
