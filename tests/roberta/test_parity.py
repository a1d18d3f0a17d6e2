"""RoBERTa and RoBERTa-PreLayerNorm: PyTorch, TensorFlow and Flax agree on every output of every head."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import torch  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

import rosettazoo.roberta as zoo  # noqa: E402
from tests.harness import (  # noqa: E402
    EVERY_OUTPUT,
    assert_outputs_close,
    assert_three_agree,
    head_inputs,
    load_three,
    padded_batch,
    run,
)

FAMILIES = {"Roberta": zoo.RobertaConfig, "RobertaPreLayerNorm": zoo.RobertaPreLayerNormConfig}
HEADS = ("Model", "ForMaskedLM", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification",
         "ForMultipleChoice", "ForQuestionAnswering")


def tiny_config(family: str, **overrides):
    values = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=40, num_labels=3)
    values.update(overrides)
    return FAMILIES[family](**values)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("head", HEADS)
def test_every_head_agrees(family, head, tmp_path):
    # The QA head's two outputs are the start and end logits (num_labels 2, as in transformers).
    config = tiny_config(family, is_decoder=head == "ForCausalLM", num_labels=2 if head == "ForQuestionAnswering" else 3)
    models = load_three(zoo, family + head, config, tmp_path)
    outputs = assert_three_agree(models, {**head_inputs(head, config), **EVERY_OUTPUT}, f"{family}{head}")
    if head != "Model":
        assert "loss" in outputs["pt"] and "loss" in outputs["tf"] and "loss" in outputs["flax"]


@pytest.mark.parametrize("problem_type, num_labels", [("regression", 1), ("multi_label_classification", 3)])
def test_sequence_classification_problem_types(problem_type, num_labels, tmp_path):
    config = tiny_config("Roberta", num_labels=num_labels, problem_type=problem_type)
    models = load_three(zoo, "RobertaForSequenceClassification", config, tmp_path)
    inputs = {**head_inputs("ForSequenceClassification", config), **EVERY_OUTPUT}
    rng = np.random.default_rng(1)
    shape = (4,) if num_labels == 1 else (4, num_labels)
    inputs["labels"] = (rng.random(shape) > 0.5).astype(np.float32) if num_labels > 1 else rng.random(shape).astype(np.float32)
    assert_three_agree(models, inputs, problem_type)


@pytest.mark.parametrize("position_embedding_type", ["relative_key", "relative_key_query"])
def test_relative_positions_agree(position_embedding_type, tmp_path):
    config = tiny_config("Roberta", position_embedding_type=position_embedding_type)
    models = load_three(zoo, "RobertaForMaskedLM", config, tmp_path)
    assert_three_agree(models, {**head_inputs("ForMaskedLM", config), **EVERY_OUTPUT}, position_embedding_type)


@pytest.mark.parametrize("family, position_embedding_type", [
    ("Roberta", "absolute"), ("RobertaPreLayerNorm", "absolute"), ("Roberta", "relative_key_query")])
def test_decoder_with_cross_attention_and_cache(family, position_embedding_type, tmp_path):
    config = tiny_config(family, is_decoder=True, add_cross_attention=True,
                         position_embedding_type=position_embedding_type)
    models = load_three(zoo, family + "ForCausalLM", config, tmp_path)
    rng = np.random.default_rng(3)
    input_ids, attention_mask = padded_batch(config.vocab_size, config.pad_token_id, length=7, seed=3)
    input_ids, attention_mask = input_ids[:3], attention_mask[:3]  # full, right- and left-padded rows
    encoder = {"encoder_hidden_states": rng.normal(size=(3, 5, config.hidden_size)).astype(np.float32),
               "encoder_attention_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])}
    full = {"input_ids": input_ids, "attention_mask": attention_mask, **encoder,
            "output_hidden_states": True, "output_attentions": True, "use_cache": True}
    full_outputs = assert_three_agree(models, full, f"{family} decoder full pass")

    prefix = {**full, "input_ids": input_ids[:, :5], "attention_mask": attention_mask[:, :5]}
    first = assert_three_agree(models, prefix, f"{family} decoder prefix")
    # RoBERTa numbers a cached step's positions from the past length, as transformers does, so only rows
    # without left padding continue the full pass exactly.
    continuing_rows = slice(0, 2)
    for fw, model in models.items():
        step = {**full, "input_ids": input_ids[:, 5:], "past_key_values": first[fw].past_key_values}
        logits = np.asarray(run(fw, model, step).logits)
        assert_outputs_close(full_outputs["pt"].logits.numpy()[continuing_rows, 5:], logits[continuing_rows],
                             label=f"{family} {fw} cached step")


def test_round_trip_pt_tf_flax_pt_is_bit_exact(tmp_path):
    config = tiny_config("Roberta", tie_word_embeddings=True)
    torch.manual_seed(0)
    zoo.RobertaForMaskedLM(config).save_pretrained(tmp_path / "pt")
    zoo.TFRobertaForMaskedLM.from_pretrained(tmp_path / "pt").save_pretrained(tmp_path / "tf")
    zoo.FlaxRobertaForMaskedLM.from_pretrained(tmp_path / "tf").save_pretrained(tmp_path / "flax")
    zoo.RobertaForMaskedLM.from_pretrained(tmp_path / "flax").save_pretrained(tmp_path / "back")
    original, final = load_file(tmp_path / "pt" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert sorted(original) == sorted(final)
    for name, array in original.items():
        assert np.array_equal(array, final[name]), name
