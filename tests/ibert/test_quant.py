"""I-BERT's shared quantization arithmetic (ibert/quant.py through the PyTorch backend).

The exact kernels are checked against Python integers; the simulated blocks against transformers 4.57.6's
``quant_modules`` (identical: same float32 operations); the integer blocks against HF's simulation wherever its
float32 arithmetic is exact, and within a stated bound where it is not.
"""

import math
import random

import numpy as np
import pytest
import torch
from transformers.models.ibert import quant_modules as hf

from rosettazoo.ibert import quant
from rosettazoo.ibert import quant_pt as ours

OPS = ours.OPS


def exact_round_half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    return quotient + (twice > denominator or (twice == denominator and quotient % 2 == 1))


def test_rounding_mul_shift_is_exact_for_wide_products():
    rng = random.Random(0)
    xs, ms, es = [], [], []
    for _ in range(4000):
        xs.append(rng.choice([rng.randrange(-2**62 + 1, 2**62), rng.randrange(-2**20, 2**20), rng.randrange(-300, 300)]))
        ms.append(rng.choice([rng.randrange(2**30, 2**31 + 1), rng.randrange(-2**31, -2**30)]))
        es.append(rng.randrange(0, 100))
    # exact ties: x * m an odd or even multiple of 2**(e-1)
    for e in (1, 5, 30, 31, 32, 45, 70):
        for q in (-3, -2, 3, 4):
            xs.append((2 * q + 1) << max(e - 1 - 30, 0))
            ms.append(1 << max(30 - (e - 1), 0) if e - 1 <= 30 else 1 << 0)
            es.append(e)
    cases = [(x, m, e) for x, m, e in zip(xs, ms, es) if abs(x * m) < 2 ** (e + 62)]  # results that fit int64
    assert len(cases) > 2000
    xs, ms, es = (torch.tensor(column) for column in zip(*cases))
    want = [exact_round_half_even(x * m, 2 ** e) for x, m, e in cases]
    assert quant.rounding_mul_shift(OPS, xs, ms, es).tolist() == want
    # the short form, taken when every |x| < 2**31, on those cases alone
    small = [i for i, (x, _, _) in enumerate(cases) if abs(x) < 2**31]
    assert len(small) > 1000
    got = quant.rounding_mul_shift(OPS, xs[small], ms[small], es[small]).tolist()
    assert got == [want[i] for i in small]


def test_dyadic_matches_transformers_batch_frexp():
    scales = torch.rand(64) * 10.0 ** torch.randint(-8, 4, (64,)).float()
    out = torch.rand(64) * 10.0 ** torch.randint(-8, 4, (64,)).float()
    m, e = quant.dyadic(OPS, scales, out)
    hf_m, hf_e = hf.batch_frexp(scales.double() / out.double())
    assert m.tolist() == hf_m.tolist()
    assert e.tolist() == hf_e.long().tolist()


def test_integer_square_root_and_mean():
    rng = random.Random(1)
    values = [0, 1, 2, 3, 4, 15, 16, 17, 2**32 - 1, 2**32, 2**62 + 12345] + [rng.randrange(0, 2**63) for _ in range(500)]
    values += [k * k - 1 for k in (3, 4097, 2**31 - 1)] + [k * k for k in (3, 4097, 2**31 - 1)]
    assert quant.isqrt(OPS, torch.tensor(values)).tolist() == [math.isqrt(v) for v in values]
    totals = list(range(-70, 70)) + [rng.randrange(-2**40, 2**40) for _ in range(200)]
    got = quant.round_half_even_divide(OPS, torch.tensor(totals), 32).tolist()
    assert got == [exact_round_half_even(t, 32) for t in totals]


def test_float_floor_divide_matches_python():
    divisors = -(torch.rand(2000) * 10.0 ** torch.randint(-8, 0, (2000,)).float())
    got = quant.float_floor_divide(OPS, 1.0, divisors)
    assert torch.equal(got, 1.0 // divisors)


def _twins(hf_module, our_module):
    our_module.load_state_dict(hf_module.state_dict())
    return hf_module, our_module


def _linear_pair(seed=0):
    torch.manual_seed(seed)
    theirs = hf.QuantLinear(32, 32, quant_mode=True, per_channel=True)
    theirs.weight.data.normal_(0, 0.1)
    theirs.bias.data.normal_(0, 0.05)
    return _twins(theirs, ours.QuantLinear(32, 32, quant_mode=True, per_channel=True))


def _quantized_input(seed=0):
    torch.manual_seed(seed)
    act = hf.QuantAct(8, quant_mode=True)
    act.train()
    x, scale = act(torch.randn(2, 5, 32) * 3)
    return x, scale


def test_simulated_blocks_equal_transformers_in_training():
    x, scale = _quantized_input()
    theirs, mine = _linear_pair()
    theirs.train(), mine.train()
    y, y_scale = theirs(x, scale)
    assert torch.equal(y, mine(x, scale)[0])
    for name in ("weight_integer", "fc_scaling_factor", "bias_integer"):
        assert torch.equal(getattr(theirs, name), getattr(mine, name)), name

    act_theirs, act_mine = _twins(hf.QuantAct(8, quant_mode=True), ours.QuantAct(8, quant_mode=True))
    act_theirs.train(), act_mine.train()
    for _ in range(3):  # the first call sets the range, later ones move it with momentum 0.95
        want = act_theirs(y, y_scale, identity=x, identity_scaling_factor=scale)
        got = act_mine(y, y_scale, identity=x, identity_scaling_factor=scale)
        assert torch.equal(want[0], got[0])
    for name in ("x_min", "x_max", "act_scaling_factor"):
        assert torch.equal(getattr(act_theirs, name), getattr(act_mine, name)), name

    gelu_want, gelu_got = hf.IntGELU(quant_mode=True)(y, y_scale), ours.IntGELU(quant_mode=True)(y, y_scale)
    assert torch.equal(gelu_want[0], gelu_got[0]) and torch.equal(gelu_want[1], gelu_got[1])


def test_simulated_gradients_equal_transformers():
    x, scale = _quantized_input()
    theirs, mine = _linear_pair()
    theirs.train(), mine.train()
    leaf_theirs, leaf_mine = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    grads_theirs = torch.autograd.grad(theirs(leaf_theirs, scale)[0].pow(2).sum(), [leaf_theirs, theirs.weight])
    grads_mine = torch.autograd.grad(mine(leaf_mine, scale)[0].pow(2).sum(), [leaf_mine, mine.weight])
    for want, got in zip(grads_theirs, grads_mine):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def _scores(seed=0):
    torch.manual_seed(seed)
    query = torch.randint(-127, 128, (2, 4, 5, 8))
    key = torch.randint(-127, 128, (2, 4, 5, 8))
    query_scale, key_scale = torch.tensor([0.02]), torch.tensor([0.03])
    float_scores = torch.matmul(query * query_scale, (key * key_scale).transpose(-1, -2)) / math.sqrt(8)
    int_scores = quant.attention_scores(OPS, query.to(torch.int8), key.to(torch.int8), query_scale, key_scale, 8)
    mask = torch.zeros(2, 1, 1, 5)
    mask[0, ..., 3:] = torch.finfo(torch.float32).min
    return float_scores, int_scores, mask


def test_softmax_simulated_equals_transformers_and_integer_equals_simulation():
    float_scores, (int_scores, scale), mask = _scores()
    theirs, mine = _twins(hf.IntSoftmax(8, quant_mode=True), ours.IntSoftmax(8, quant_mode=True))
    theirs.train(), mine.train()
    for _ in range(2):
        want = theirs(float_scores + mask, scale)
        got = mine(float_scores, scale, attention_mask=mask)
        assert torch.equal(want[0], got[0])
    assert torch.equal(theirs.act.x_max, mine.act.x_max)
    theirs.eval(), mine.eval()
    want = theirs(float_scores + mask, scale)
    probs, probs_scale = mine(int_scores, scale, attention_mask=mask)
    assert probs.dtype == torch.int32 and int_scores.dtype == torch.int32
    # These scores stay below 2**24, where HF's float32 simulation is exact: the integers agree exactly.
    assert torch.equal(torch.round(want[0] / want[1]).to(torch.int32), probs)


def test_integer_linear_activation_embedding_equal_simulation():
    x, scale = _quantized_input()
    x_int = torch.round(x / scale).to(torch.int8)
    theirs, mine = _linear_pair()
    theirs.eval(), mine.eval()
    want, want_scale = theirs(x, scale)
    got, got_scale = mine(x_int, scale)
    assert got.dtype == torch.int64 and torch.equal(want_scale, got_scale)
    assert torch.equal(torch.round(want / want_scale).long(), got)

    act_theirs, act_mine = _twins(hf.QuantAct(8, quant_mode=True), ours.QuantAct(8, quant_mode=True))
    act_theirs.train()
    act_theirs(want, want_scale, identity=x, identity_scaling_factor=scale)
    act_mine.load_state_dict(act_theirs.state_dict())
    act_theirs.eval(), act_mine.eval()
    sim, sim_scale = act_theirs(want, want_scale, identity=x, identity_scaling_factor=scale)
    out, out_scale = act_mine(got, got_scale, identity=x_int, identity_scaling_factor=scale)
    assert out.dtype == torch.int8
    assert torch.equal(torch.round(sim / sim_scale).to(torch.int8), out)

    table_theirs = hf.QuantEmbedding(50, 32, padding_idx=1, quant_mode=True)
    table_theirs.weight.data.normal_(0, 0.02)
    table_theirs, table_mine = _twins(table_theirs, ours.QuantEmbedding(50, 32, padding_idx=1, quant_mode=True))
    table_theirs.eval(), table_mine.eval()
    ids = torch.randint(0, 50, (2, 5))
    sim, sim_scale = table_theirs(ids)
    looked_up, _ = table_mine(ids)
    assert looked_up.dtype == torch.int8 and torch.equal(torch.round(sim / sim_scale).to(torch.int8), looked_up)


def test_integer_gelu_and_layer_norm_within_float32_rounding_of_simulation():
    """HF simulates i-GELU and I-LayerNorm on values past 2**24 (products of 2**20-sized factors), where float32
    keeps 24 bits; the integer results differ from it by float32 rounding: a few 2**-24 relative, plus, in
    LayerNorm, a floor(sqrt(var)) that float32 rounds up when var sits just below a perfect square (one unit in
    the standard deviation, a relative 1 / std of the output)."""
    x, scale = _quantized_input()
    theirs, mine = _linear_pair()
    theirs.eval(), mine.eval()
    y, y_scale = theirs(x, scale)
    y_int, _ = mine(torch.round(x / scale).to(torch.int8), scale)
    want, want_scale = hf.IntGELU(quant_mode=True)(y, y_scale)
    got, got_scale = ours.IntGELU(quant_mode=True)(y_int, y_scale)
    assert torch.equal(want_scale, got_scale) and got.dtype == torch.int64
    # relative to the largest value: where x * (erf + 1) cancels to near 0, HF's rounding of the terms remains
    assert ((want / want_scale).double() - got.double()).abs().max() < 2**-20 * got.abs().max()

    torch.manual_seed(3)
    norm_theirs = hf.IntLayerNorm(32, 1e-12, output_bit=32, quant_mode=True)
    norm_theirs.weight.data.normal_(1, 0.1)
    norm_theirs.bias.data.normal_(0, 0.1)
    norm_theirs, norm_mine = _twins(norm_theirs, ours.IntLayerNorm(32, 1e-12, output_bit=32, quant_mode=True))
    x_int = torch.randint(-2**21, 2**21, (4, 6, 32))
    x_scale = torch.tensor([1e-5])
    norm_theirs.train(), norm_mine.train()
    trained = norm_theirs(x_int * x_scale, x_scale), norm_mine(x_int * x_scale, x_scale)
    assert torch.equal(trained[0][0], trained[1][0]) and torch.equal(norm_theirs.shift, norm_mine.shift)
    assert norm_mine.shift.item() > 0  # the 22-bit input overflowed 32 bits and raised the shift
    norm_theirs.eval(), norm_mine.eval()
    want, want_scale = norm_theirs(x_int * x_scale, x_scale)
    got, got_scale = norm_mine(x_int.to(torch.int32), x_scale)
    assert got.dtype == torch.int64 and torch.equal(want_scale, got_scale)
    std = torch.sqrt(((x_int - x_int.double().mean(-1, keepdim=True)) ** 2).sum(-1, keepdim=True))
    relative = ((want / want_scale).double() - got.double()).abs() / got.double().abs().clamp(min=1)
    assert (relative < 2**-20 + 2.0 / std * 2 ** norm_mine.shift.item()).all()


@pytest.mark.parametrize("block", ["gelu", "softmax", "layernorm", "nonlinear"])
def test_force_dequant_keeps_blocks_in_float(block):
    gelu = ours.IntGELU(quant_mode=True, force_dequant=block)
    softmax = ours.IntSoftmax(8, quant_mode=True, force_dequant=block)
    norm = ours.IntLayerNorm(8, 1e-5, quant_mode=True, force_dequant=block)
    assert gelu.quant_mode == (block not in ("gelu", "nonlinear"))
    assert softmax.quant_mode == (block not in ("softmax", "nonlinear"))
    assert norm.quant_mode == (block not in ("layernorm", "nonlinear"))
    # a float block given integers dequantizes them
    if not gelu.quant_mode:
        x_int = torch.tensor([[-100, 0, 50]])
        y, scale = gelu(x_int, torch.tensor([0.01]))
        assert scale is None and torch.allclose(y, torch.nn.functional.gelu(x_int * 0.01))


def test_quant_linear_needs_a_per_tensor_input_scale():
    layer = ours.QuantLinear(4, 3, quant_mode=True)
    with pytest.raises(ValueError, match="per tensor"):
        layer(torch.zeros(1, 4), None)
    with pytest.raises(ValueError, match="per tensor"):
        layer(torch.zeros(1, 4), torch.ones(4))


def test_quant_act_rejects_per_channel():
    with pytest.raises(ValueError, match="per_channel"):
        ours.QuantAct(8, per_channel=True)


def test_pow2_is_exact():
    n = torch.arange(-126, 128)
    assert torch.equal(OPS.pow2(n), torch.from_numpy(np.ldexp(np.float32(1), n.numpy()).astype(np.float32)))
    n = torch.arange(-1000, 1000)
    assert torch.equal(OPS.pow2(n, torch.float64), torch.from_numpy(np.ldexp(1.0, n.numpy())))
