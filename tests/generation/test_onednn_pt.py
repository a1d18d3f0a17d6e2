"""PyTorch generate runs float32 linear layers through oneDNN while decoding: same tokens, nothing left behind."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rosettazoo.generation.mixin_pt import onednn_linear_layers  # noqa: E402

from .models import ids_of, model  # noqa: E402

IDS = np.array([[5, 6, 7, 8, 9, 10], [1, 1, 11, 12, 13, 14]])
MASK = (IDS != 1).astype(np.int64)


def linear_layers(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_the_layers_compute_what_they_did_and_get_their_forward_back():
    opt = model("opt", "pt")
    inputs = torch.tensor(IDS)
    with torch.no_grad():
        want = opt(inputs, attention_mask=torch.tensor(MASK)).logits
        with onednn_linear_layers(opt):
            if torch.backends.mkldnn.is_available():
                assert all("forward" in vars(layer) for layer in linear_layers(opt))
            got = opt(inputs, attention_mask=torch.tensor(MASK)).logits
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    assert not any("forward" in vars(layer) for layer in linear_layers(opt))


def test_generate_gives_the_same_tokens_with_and_without_it_and_restores_on_errors(monkeypatch):
    opt = model("opt", "pt")
    fast = ids_of(opt.generate(IDS, attention_mask=MASK, max_new_tokens=8, num_beams=2))
    calls = []
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: calls.append(1) or False)
    plain = ids_of(opt.generate(IDS, attention_mask=MASK, max_new_tokens=8, num_beams=2))
    assert calls, "the oneDNN switch was not consulted"
    monkeypatch.undo()
    np.testing.assert_array_equal(fast, plain)
    with pytest.raises(ValueError):
        opt.generate(IDS, attention_mask=MASK, max_new_tokens=0)
    assert not any("forward" in vars(layer) for layer in linear_layers(opt))


@pytest.mark.parametrize("rows, bias", [(1, True), (2, False), (8, True), (16, False), (17, True)])
def test_few_rows_multiply_with_the_weight_as_left_operand_and_get_the_same_values(rows, bias):
    if not torch.backends.mkldnn.is_available():
        pytest.skip("oneDNN is not available")
    from rosettazoo.generation import mixin_pt

    torch.manual_seed(rows)
    layer = torch.nn.Linear(768, 2304, bias=bias)
    inputs = torch.randn(rows, 1, 768)
    left_operands = []

    def spy(left, *args):
        left_operands.append(tuple(left.shape))
        return torch.ops.mkldnn._linear_pointwise(left, *args)

    with torch.no_grad():
        got = mixin_pt._onednn_linear(spy, layer, inputs)
        want = torch.nn.functional.linear(inputs, layer.weight, layer.bias)
    weight_first = mixin_pt.WEIGHT_STATIONARY_ROWS[0] <= rows <= mixin_pt.WEIGHT_STATIONARY_ROWS[1]
    assert left_operands == [(2304, 768) if weight_first else (rows, 1, 768)]
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_generate_gives_the_same_tokens_with_every_layer_weight_first(monkeypatch):
    from rosettazoo.generation import mixin_pt

    opt = model("opt", "pt")
    usual = ids_of(opt.generate(IDS, attention_mask=MASK, max_new_tokens=8, num_beams=2))
    monkeypatch.setattr(mixin_pt, "WEIGHT_STATIONARY_MIN_SIZE", 0)
    np.testing.assert_array_equal(ids_of(opt.generate(IDS, attention_mask=MASK, max_new_tokens=8, num_beams=2)),
                                  usual)
