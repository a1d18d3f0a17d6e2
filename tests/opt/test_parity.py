"""OPT: PyTorch, TensorFlow and Flax agree on every output of every head, for opt-125m's and opt-350m's layouts."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import rosettazoo.opt as zoo
from tests.harness import EVERY_OUTPUT, assert_outputs_close, assert_three_agree, head_inputs, load_three, padded_batch, run

HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForQuestionAnswering")
LAYOUTS = {
    "opt-125m": {},  # layer norm before each block, final layer norm
    "opt-350m": {"do_layer_norm_before": False, "word_embed_proj_dim": 16},  # post-LN, project_in / project_out
}


def tiny_config(layout, **overrides):
    values = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 37,
              "max_position_embeddings": 40, "num_labels": 3, **LAYOUTS[layout]}
    values.update(overrides)
    return zoo.OPTConfig(**values)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("head", HEADS)
def test_every_head_agrees(layout, head, tmp_path):
    config = tiny_config(layout, num_labels=2 if head == "ForQuestionAnswering" else 3)
    models = load_three(zoo, "OPT" + head, config, tmp_path)
    outputs = assert_three_agree(models, {**head_inputs(head, config), **EVERY_OUTPUT}, f"{layout} OPT{head}")
    if head != "Model":
        assert all("loss" in out for out in outputs.values())


def test_without_biases_and_affine_norms(tmp_path):
    config = tiny_config("opt-125m", enable_bias=False, layer_norm_elementwise_affine=False)
    models = load_three(zoo, "OPTForCausalLM", config, tmp_path)
    assert_three_agree(models, {**head_inputs("ForCausalLM", config), **EVERY_OUTPUT}, "OPT without biases")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cached_decoding_agrees_with_the_full_pass(layout, tmp_path):
    config = tiny_config(layout)
    models = load_three(zoo, "OPTForCausalLM", config, tmp_path)
    input_ids, attention_mask = padded_batch(config.vocab_size, config.pad_token_id, length=7, seed=2)
    input_ids, attention_mask = input_ids[:3], attention_mask[:3]  # full, right- and left-padded rows
    full = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": True}
    full_outputs = assert_three_agree(models, full, f"{layout} full pass")
    prefix = {**full, "input_ids": input_ids[:, :5], "attention_mask": attention_mask[:, :5]}
    first = assert_three_agree(models, prefix, f"{layout} prefix")
    # OPT numbers positions from the attention mask, so every row, left-padded too, continues the full pass.
    real = attention_mask[:, 5:] == 1
    for fw, model in models.items():
        step = {**full, "input_ids": input_ids[:, 5:], "past_key_values": first[fw].past_key_values}
        logits = np.asarray(run(fw, model, step).logits)
        assert_outputs_close(full_outputs["pt"].logits.numpy()[:, 5:][real], logits[real],
                             label=f"{layout} {fw} cached step")
