"""BART: PyTorch, TensorFlow and Flax agree on every output of every head, the cache included."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import rosettazoo.bart as zoo
from tests.harness import EVERY_OUTPUT, assert_outputs_close, assert_three_agree, head_inputs, load_three, run

HEADS = ("Model", "ForConditionalGeneration", "ForSequenceClassification", "ForQuestionAnswering", "ForCausalLM")


def tiny_config(**overrides):
    values = {"vocab_size": 99, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 37, "decoder_ffn_dim": 37,
              "max_position_embeddings": 40, "num_labels": 3}
    values.update(overrides)
    return zoo.BartConfig(**values)


def with_eos(input_ids, attention_mask, eos_token_id):
    """End every row's real tokens with one eos, as BART's tokenizer does."""
    input_ids = input_ids.copy()
    for row, mask in zip(input_ids, attention_mask):
        real = np.flatnonzero(mask)
        if real.size:
            row[real[-1]] = eos_token_id
    return input_ids


def head_inputs_with_eos(head, config, *, rows=4, seed=0):
    """The head's inputs (the first ``rows`` of the padded batch), asking for every output, each row ending in eos."""
    inputs = {**head_inputs(head, config, seed=seed, rows=slice(rows)), **EVERY_OUTPUT}
    inputs["input_ids"] = with_eos(inputs["input_ids"], inputs["attention_mask"], config.eos_token_id)
    return inputs


@pytest.mark.parametrize("head", HEADS)
def test_every_head_agrees(head, tmp_path):
    config = tiny_config(num_labels=2 if head == "ForQuestionAnswering" else 3)
    models = load_three(zoo, "Bart" + head, config, tmp_path)
    # Classification pools each row's eos, so every row needs one: no fully masked row there.
    rows = 3 if head == "ForSequenceClassification" else 4
    outputs = assert_three_agree(models, head_inputs_with_eos(head, config, rows=rows), f"Bart{head}")
    if head != "Model":
        assert all("loss" in out for out in outputs.values())


def test_asymmetric_stacks_agree(tmp_path):
    config = tiny_config(encoder_layers=2, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=2,
                         encoder_ffn_dim=37, decoder_ffn_dim=21, scale_embedding=True)
    models = load_three(zoo, "BartForConditionalGeneration", config, tmp_path)
    assert_three_agree(models, head_inputs_with_eos("ForConditionalGeneration", config), "asymmetric BART")


def test_cached_decoding_agrees_with_the_full_pass(tmp_path):
    config = tiny_config()
    models = load_three(zoo, "BartForConditionalGeneration", config, tmp_path)
    rng = np.random.default_rng(5)
    inputs = head_inputs_with_eos("Model", config, rows=3)
    decoder_input_ids = np.concatenate([np.full((3, 1), config.decoder_start_token_id),
                                        rng.integers(3, config.vocab_size, size=(3, 5))], axis=1)
    full = {**inputs, "decoder_input_ids": decoder_input_ids, "use_cache": True}
    full_outputs = assert_three_agree(models, full, "BART full pass")
    prefix = {**full, "decoder_input_ids": decoder_input_ids[:, :4]}
    first = assert_three_agree(models, prefix, "BART prefix")
    for fw, model in models.items():
        step = {**full, "decoder_input_ids": decoder_input_ids[:, 4:], "past_key_values": first[fw].past_key_values}
        logits = np.asarray(run(fw, model, step).logits)
        assert_outputs_close(full_outputs["pt"].logits.numpy()[:, 4:], logits, label=f"BART {fw} cached step")
