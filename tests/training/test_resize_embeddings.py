"""resize_token_embeddings in PyTorch, TF and Flax: each family's LM head resized from the same weights (grown,
rounded up to a multiple, or shrunk; tied and untied) gives the same logits in the three frameworks, keeps the old
rows, keeps a tied head tied, and grows BART's final_logits_bias and config.vocab_size with it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import torch  # noqa: E402

import rosettazoo.bart as bart  # noqa: E402
import rosettazoo.opt as opt  # noqa: E402
from rosettazoo.common.modeling_flax import flatten_params  # noqa: E402
from tests.harness import FLOAT32_ATOL  # noqa: E402
from tests.training.lm_heads import BART, LM_HEADS, OPT  # noqa: E402

HEADS = {
    **LM_HEADS,
    "bart_causal": (bart, "BartForCausalLM", lambda **kw: bart.BartConfig(**BART, **kw)),
    # OPT with its embedding projections (word_embed_proj_dim != hidden_size), which resizing must leave alone.
    "opt": (opt, "OPTForCausalLM", lambda **kw: opt.OPTConfig(**OPT, word_embed_proj_dim=16, **kw)),
}
# Per head (tie_word_embeddings, new_num_tokens, pad_to_multiple_of, expected size): every head is grown or shrunk,
# tied or not, with and without rounding up, once.
RESIZES = {
    "roberta": (True, 101, 8, 104),
    "roberta_prelayernorm": (False, 90, None, 90),
    "ibert": (False, 101, None, 101),
    "bart": (False, 100, 8, 104),
    "bart_causal": (True, 90, None, 90),
    "opt": (True, 101, 4, 104),
}


def logits(framework: str, model, input_ids: np.ndarray) -> np.ndarray:
    if framework == "pt":
        with torch.no_grad():
            return model(input_ids=torch.from_numpy(input_ids)).logits.numpy()
    return np.asarray(model(input_ids=input_ids).logits)


@pytest.mark.parametrize("head", list(HEADS))
def test_resized_models_agree_across_frameworks(head, tmp_path):
    module, name, config = HEADS[head]
    tied, new_num_tokens, multiple, size = RESIZES[head]
    torch.manual_seed(0)
    getattr(module, name)(config(tie_word_embeddings=tied)).save_pretrained(tmp_path)
    models = {fw: getattr(module, prefix + name).from_pretrained(tmp_path)
              for fw, prefix in (("pt", ""), ("tf", "TF"), ("flax", "Flax"))}
    before = models["pt"].numpy_weights()
    token_table = next(n for n, p in models["pt"].named_parameters() if p is models["pt"].get_input_embeddings().weight)
    for model in models.values():
        model.resize_token_embeddings(new_num_tokens, pad_to_multiple_of=multiple)
        assert model.config.vocab_size == size

    input_ids = np.random.default_rng(0).integers(3, size, size=(2, 7))  # new tokens too, when grown
    outputs = {fw: logits(fw, model, input_ids) for fw, model in models.items()}
    assert outputs["pt"].shape == (2, 7, size)
    for fw in ("tf", "flax"):
        assert np.max(np.abs(outputs[fw] - outputs["pt"])) <= FLOAT32_ATOL, fw

    pt = models["pt"]
    after = pt.numpy_weights()
    kept = min(size, 96)
    np.testing.assert_array_equal(after[token_table][:kept], before[token_table][:kept])
    assert pt.get_input_embeddings().num_embeddings == size
    output = pt.get_output_embeddings()
    assert output.weight.shape[0] == output.out_features == size
    assert (output.weight is pt.get_input_embeddings().weight) == tied
    if head == "bart":
        assert pt.final_logits_bias.shape == (1, size)
        assert tuple(models["tf"].final_logits_bias.shape) == (1, size)
        assert flatten_params(models["flax"].params)["final_logits_bias"].shape == (1, size)


def test_resize_errors_are_the_same_in_every_framework():
    module, name, config = HEADS["roberta"]
    for prefix in ("", "TF", "Flax"):
        model = getattr(module, prefix + name)(config())
        with pytest.raises(ValueError, match="new_num_tokens must be a positive integer"):
            model.resize_token_embeddings(0)
        with pytest.raises(ValueError, match="pad_token_id=1 would fall outside it"):
            model.resize_token_embeddings(1)


def test_resized_tf_model_trains_and_saves(tmp_path):
    """The replaced Keras variables are the model's own: they get gradients and are saved and loaded."""
    import tensorflow as tf

    module, name, config = HEADS["bart"]
    model = getattr(module, "TF" + name)(config())
    model.resize_token_embeddings(100)
    input_ids = np.random.default_rng(0).integers(3, 100, size=(2, 7))
    with tf.GradientTape() as tape:
        loss = model(input_ids=input_ids, labels=input_ids, training=False).loss
    grads = dict(zip([v.path for v in model.trainable_variables], tape.gradient(loss, model.trainable_variables)))
    assert all(g is not None for g in grads.values())
    model.save_pretrained(tmp_path)
    loaded = getattr(module, name).from_pretrained(tmp_path)
    assert loaded.config.vocab_size == 100
    np.testing.assert_allclose(logits("pt", loaded, input_ids), logits("tf", model, input_ids), atol=FLOAT32_ATOL)
