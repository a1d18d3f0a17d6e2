"""PyTorch RoBERTa and RoBERTa-PreLayerNorm against transformers 4.57.6, the oracle, in both directions.

Every model starts as a Hugging Face model with weights drawn at O(0.1) scale (Hugging Face's own init has zero
biases, unit norms and 0.02 weights, under which a wrong bias, norm or position hides below the tolerance),
saved with ``save_pretrained`` and loaded by our ``from_pretrained``.
"""

import pytest

import rosettazoo.roberta as zoo
from rosettazoo.common.activations import ACTIVATIONS
from rosettazoo.conversion import WeightsError
from tests.harness import assert_outputs_close, assert_same, call, labels_for

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests.roberta.cases import (  # noqa: E402
    FAMILIES,
    HEADS,
    ORACLE,
    TINY,
    batch,
    decoder_inputs,
    head_batch,
    step_by_step,
)

# Tiny models: one thread per process instead of several spinning threads competing for the same cores.
torch.set_num_threads(1)


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_hf_checkpoint_matches_every_output(family, head, safe, tmp_path):
    hf, ours = ORACLE.pair("pt", family, head, tmp_path / "hf", safe=safe)
    assert not any(module.training for module in ours.modules())
    inputs = head_batch(head, ours.config)
    label = f"{family}{head}"
    # With labels and without attention weights (SDPA); without labels (the decoder returns its cache) and with
    # attention weights (eager attention).
    assert_same(hf, ours, label, **inputs, **labels_for(head, ours.config, inputs), output_hidden_states=True)
    assert_same(hf, ours, label, **inputs, output_hidden_states=True, output_attentions=True)
    if safe:
        # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
        ours.save_pretrained(tmp_path / "ours")
        hf_class = getattr(transformers, f"{family}{head}")
        reloaded, info = hf_class.from_pretrained(tmp_path / "ours", output_loading_info=True)
        assert all(not keys for keys in info.values()), info
        assert_same(hf, reloaded.eval(), f"{label} saved by us", **inputs, output_hidden_states=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_equals_eager_attention_with_fully_masked_rows(family, tmp_path):
    _, ours = ORACLE.pair("pt", family, "Model", tmp_path)
    eager = getattr(transformers, f"{family}Model").from_pretrained(tmp_path, attn_implementation="eager").eval()
    inputs = batch(ours.config)
    assert_same(eager, ours, family, **inputs, output_hidden_states=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_sequence_classification_problem_types(family, tmp_path):
    generator = torch.Generator().manual_seed(3)
    cases = [(1, torch.randn(4, generator=generator), "regression"),
             (3, (torch.rand(4, 3, generator=generator) > 0.5).float(), "multi_label_classification"),
             (3, torch.tensor([0, 2, 1, 1]), "single_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("pt", family, "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_same(hf, ours, problem_type, **batch(ours.config), labels=labels)
        assert ours.config.problem_type == hf.config.problem_type == problem_type


@pytest.mark.parametrize("position_embedding_type", ["relative_key", "relative_key_query"])
@pytest.mark.parametrize("family", FAMILIES)
def test_relative_position_embeddings(family, position_embedding_type, tmp_path):
    hf, ours = ORACLE.pair("pt", family, "ForMaskedLM", tmp_path, position_embedding_type=position_embedding_type)
    assert_same(hf, ours, position_embedding_type, **batch(ours.config), output_hidden_states=True,
                output_attentions=True)


@pytest.mark.parametrize("position_embedding_type", ["absolute", "relative_key"])
@pytest.mark.parametrize("family", FAMILIES)
def test_decoder_with_cross_attention_and_cache(family, position_embedding_type, tmp_path):
    hf, ours = ORACLE.pair("pt", family, "ForCausalLM", tmp_path, add_cross_attention=True,
                           position_embedding_type=position_embedding_type)
    inputs = decoder_inputs(ours.config)
    label = f"{family} decoder {position_embedding_type}"
    if position_embedding_type == "absolute":
        for attentions in (False, True):
            assert_same(hf, ours, label, **inputs, use_cache=True, output_hidden_states=True,
                        output_attentions=attentions)
    else:
        # transformers 4.57.6 gives every query of a multi-token pass the last position's relative distances
        # whenever a cache is in use; without a cache, and one token at a time, it is right and we agree.
        assert_same(hf, ours, label, **inputs, use_cache=False, output_hidden_states=True, output_attentions=True)
    full = call(ours, **inputs, use_cache=True)
    logits, cache = step_by_step(ours, inputs)
    assert_outputs_close(full.logits, logits, label=f"{label}: one token at a time vs full pass")
    assert_outputs_close(full.past_key_values, cache, label=f"{label}: cache built step by step vs full pass")
    assert all(len(layer) == 4 for layer in cache)  # self and cross keys and values
    hf_logits, hf_cache = step_by_step(hf, inputs)
    assert_outputs_close(hf_logits, logits, label=f"{label}: step by step vs transformers")
    assert_outputs_close(hf_cache, cache, label=f"{label}: cache vs transformers")


@pytest.mark.parametrize("family", FAMILIES)
def test_embeddings_positions_and_head_mask_inputs(family, tmp_path):
    hf, ours = ORACLE.pair("pt", family, "Model", tmp_path)
    inputs = batch(ours.config)
    embeds = ours.embeddings.word_embeddings(inputs["input_ids"]).detach()
    mask = inputs["attention_mask"]
    assert_same(hf, ours, "inputs_embeds", inputs_embeds=embeds, attention_mask=mask)
    positions = torch.arange(3, 12).expand(4, -1)
    assert_same(hf, ours, "position_ids", input_ids=inputs["input_ids"], attention_mask=mask, position_ids=positions)
    head_mask = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]])
    assert_same(hf, ours, "head_mask", **inputs, head_mask=head_mask, output_attentions=True)
    assert_same(hf, ours, "3D attention mask", input_ids=inputs["input_ids"],
                attention_mask=mask[:, None, :].expand(-1, 9, -1))


@pytest.mark.parametrize("family", FAMILIES)
def test_return_dict_false_gives_transformers_tuples(family, tmp_path):
    hf, ours = ORACLE.pair("pt", family, "ForMaskedLM", tmp_path)
    inputs = {**batch(ours.config), **labels_for("ForMaskedLM", ours.config, batch(ours.config))}
    theirs = call(hf, **inputs, output_hidden_states=True, return_dict=False)
    mine = call(ours, **inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(mine, tuple) and len(mine) == len(theirs) == 3  # loss, logits, hidden states
    assert_outputs_close(theirs, mine, label="tuple")


def test_bfloat16_loading_and_saving(tmp_path):
    _, ours = ORACLE.pair("pt", "Roberta", "ForMaskedLM", tmp_path / "hf")
    half = zoo.RobertaForMaskedLM.from_pretrained(tmp_path / "hf", dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and not half.training
    inputs = batch(ours.config)
    hf_half = transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "hf", dtype=torch.bfloat16).eval()
    # bfloat16 keeps 8 significant bits: outputs of O(1) agree to a few units in the last place.
    assert_outputs_close(call(hf_half, **inputs).logits.float(), call(half, **inputs).logits.float(), atol=0.1)
    half.save_pretrained(tmp_path / "half")
    again = zoo.RobertaForMaskedLM.from_pretrained(tmp_path / "half", dtype=torch.bfloat16)
    for (name, a), (_, b) in zip(half.named_parameters(), again.named_parameters(), strict=True):
        assert a.dtype == b.dtype == torch.bfloat16 and torch.equal(a, b), name


def test_dropout_only_in_training(tmp_path):
    _, ours = ORACLE.pair("pt", "Roberta", "ForMaskedLM", tmp_path)
    inputs = batch(ours.config)
    assert torch.equal(call(ours, **inputs).logits, call(ours, **inputs).logits)
    ours.train()
    assert not torch.equal(call(ours, **inputs).logits, call(ours, **inputs).logits)


@pytest.mark.parametrize("family", FAMILIES)
def test_new_heads_and_loading_info(family, tmp_path):
    ORACLE.hf_model(family, "ForMaskedLM").save_pretrained(tmp_path)
    classifier = getattr(zoo, f"{family}ForSequenceClassification")
    with pytest.raises(WeightsError, match="allow_new_heads.*classifier.dense.weight"):
        classifier.from_pretrained(tmp_path)
    _, info = classifier.from_pretrained(tmp_path, allow_new_heads=True, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.dense.bias", "classifier.dense.weight",
                                            "classifier.out_proj.bias", "classifier.out_proj.weight"]
    assert {name.split(".")[0] for name in info["unexpected_keys"]} == {"lm_head"}
    bare = getattr(zoo, f"{family}Model").from_pretrained(tmp_path, add_pooling_layer=False)
    assert bare.pooler is None
    reference = getattr(transformers, f"{family}Model").from_pretrained(tmp_path, add_pooling_layer=False).eval()
    assert_same(reference, bare, "base model from a head checkpoint", **batch(bare.config))


@pytest.mark.parametrize("family", FAMILIES)
def test_fresh_model_init_tying_and_parameter_count(family):
    config = getattr(zoo, f"{family}Config")(**TINY)
    torch.manual_seed(0)
    ours = getattr(zoo, f"{family}ForMaskedLM")(config)
    theirs = getattr(transformers, f"{family}ForMaskedLM")(getattr(transformers, f"{family}Config")(**TINY))
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    assert ours.num_parameters() == theirs.num_parameters()
    assert ours.num_parameters(exclude_embeddings=True) == theirs.num_parameters(exclude_embeddings=True)
    base = ours.base_model
    assert ours.lm_head.decoder.weight is base.embeddings.word_embeddings.weight
    assert ours.lm_head.decoder.bias is ours.lm_head.bias
    assert torch.all(base.embeddings.word_embeddings.weight[config.pad_token_id] == 0)
    assert torch.all(base.embeddings.position_embeddings.weight[config.pad_token_id] == 0)
    for name, parameter in ours.named_parameters():
        if "LayerNorm" in name or "layer_norm" in name:
            assert torch.all(parameter == (1.0 if name.endswith("weight") else 0.0)), name
        elif name.endswith("bias"):
            assert torch.all(parameter == 0), name
        else:
            assert abs(parameter.std().item() - config.initializer_range) < 0.004, name


def test_untied_output_embeddings_round_trip(tmp_path):
    hf, ours = ORACLE.pair("pt", "Roberta", "ForMaskedLM", tmp_path / "hf", tie_word_embeddings=False)
    assert ours.lm_head.decoder.weight is not ours.roberta.embeddings.word_embeddings.weight
    assert_same(hf, ours, "untied", **batch(ours.config))
    ours.save_pretrained(tmp_path / "ours")
    reloaded = transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "ours").eval()
    assert_same(hf, reloaded, "untied saved by us", **batch(ours.config))


def test_save_refuses_to_overwrite(tmp_path):
    _, ours = ORACLE.pair("pt", "Roberta", "Model", tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path, overwrite=True)


def test_bad_input_is_a_clear_error(tmp_path):
    _, ours = ORACLE.pair("pt", "Roberta", "ForMaskedLM", tmp_path)
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    cases = [
        ({"input_ids": torch.tensor([[0, 5, 99, 2]])}, "token id 99, outside the vocabulary"),
        ({"input_ids": torch.tensor([[0, -1, 2]])}, "token id -1, outside the vocabulary"),
        ({"input_ids": torch.full((1, 39), 5)}, "sequence length 39 exceeds the 38 positions"),
        ({"input_ids": ids, "attention_mask": torch.ones(1, 4)}, r"attention_mask has shape \[1, 4\]"),
        ({"input_ids": ids, "token_type_ids": torch.full((1, 5), 2)}, "token_type_ids holds 2"),
        ({"input_ids": ids, "inputs_embeds": torch.zeros(1, 5, 32)}, "not both"),
        ({}, "give input_ids or inputs_embeds"),
        ({"input_ids": ids[0]}, "input_ids must have 2 dimensions"),
    ]
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            ours(**inputs)
    choice = zoo.RobertaForMultipleChoice(ours.config)
    with pytest.raises(ValueError, match="input_ids must have 3 dimensions"):
        choice(input_ids=ids)


def test_activations_match_transformers():
    from transformers.activations import ACT2FN

    from rosettazoo.common.layers_pt import activation

    x = torch.linspace(-6, 6, 1001)
    for name in ACTIVATIONS:
        assert torch.allclose(activation(name)(x), ACT2FN[name](x), atol=1e-6, rtol=0), name
