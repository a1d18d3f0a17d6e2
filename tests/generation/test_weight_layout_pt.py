"""PyTorch generate stores linear weights column-major for fast decoding: nothing else may notice."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rosettazoo.opt import OPTConfig, OPTForCausalLM  # noqa: E402

IDS = np.array([[5, 6, 7, 8, 9, 10]])


def tiny_opt():
    torch.manual_seed(0)
    config = OPTConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
                       max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=1, bos_token_id=2,
                       eos_token_id=2)
    return OPTForCausalLM(config).eval()


def test_generate_keeps_values_shapes_tying_and_checkpoints(tmp_path):
    model = tiny_opt()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    parameters = {name: p for name, p in model.named_parameters()}
    first = model.generate(IDS, max_new_tokens=5)
    fc1 = model.model.decoder.layers[0].fc1.weight
    assert not fc1.is_contiguous() and fc1.t().is_contiguous(), "the weight was not made column-major"
    after = dict(model.named_parameters())
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert after[name] is parameters[name], name  # the same Parameter objects (optimizers keep working)
        assert torch.equal(after[name], value), name
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    assert torch.equal(model.generate(IDS, max_new_tokens=5), first)

    model.save_pretrained(tmp_path)
    theirs = transformers.OPTForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        ids = torch.tensor(IDS)
        np.testing.assert_allclose(theirs(ids).logits.numpy(), model(ids).logits.numpy(), atol=1e-5)


def test_training_after_generate_still_updates_the_weights():
    model = tiny_opt()
    model.generate(IDS, max_new_tokens=3)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.tensor(IDS)
    loss = model(ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    assert model(ids, labels=ids).loss < loss


def test_bfloat16_weights_stay_row_major_even_after_a_float32_generate():
    model = tiny_opt()
    model.generate(IDS, max_new_tokens=2)
    model.to(torch.bfloat16)
    assert not model.model.decoder.layers[0].fc1.weight.is_contiguous()  # .to() kept the float32 layout
    model.generate(IDS, max_new_tokens=2)
    assert all(p.is_contiguous() for p in model.parameters())
