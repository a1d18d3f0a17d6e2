"""PyTorch OPT against transformers 4.57.6, the oracle, in both directions.

Two tiny layouts: opt-125m's (pre-layer-norm, final LayerNorm, embeddings of hidden_size) and opt-350m's
(post-layer-norm, no final LayerNorm, embeddings of word_embed_proj_dim != hidden_size with project_in/out).
Every model starts as a Hugging Face model with weights drawn at O(0.1) scale (Hugging Face's own init has zero
biases and unit norms, under which a wrong bias or norm hides below the tolerance), saved with ``save_pretrained``
and loaded by our ``from_pretrained``.
"""

import json

import pytest

import rosettazoo.opt as zoo
from rosettazoo.conversion import WeightsError
from tests.harness import assert_outputs_close, assert_same, call, labels_for, torch_inputs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests.opt.cases import HEADS, LAYOUTS, ORACLE, TINY, batch, step_by_step  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_hf_checkpoint_matches_every_output(layout, head, safe, tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", head, tmp_path / "hf", **LAYOUTS[layout], safe=safe)
    assert not any(module.training for module in ours.modules())
    inputs = torch_inputs(batch(ours.config))
    label = f"{layout} OPT{head}"
    # With labels and without attention weights (SDPA), and with attention weights (eager attention); both
    # return the cache (config.use_cache) except question answering, whose output has no cache.
    assert_same(hf, ours, label, **inputs, **labels_for(head, ours.config, inputs), output_hidden_states=True)
    assert_same(hf, ours, label, **inputs, output_hidden_states=True, output_attentions=True)
    if safe:
        # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
        ours.save_pretrained(tmp_path / "ours")
        reloaded, info = getattr(transformers, f"OPT{head}").from_pretrained(tmp_path / "ours",
                                                                           output_loading_info=True)
        assert all(not keys for keys in info.values()), info
        assert_same(hf, reloaded.eval(), f"{label} saved by us", **inputs, output_hidden_states=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_module_tree_is_transformers(layout):
    config = zoo.OPTConfig(**TINY, **LAYOUTS[layout])
    ours = zoo.OPTForCausalLM(config)
    theirs = transformers.OPTForCausalLM(transformers.OPTConfig(**TINY, **LAYOUTS[layout]))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    decoder = ours.model.decoder
    projected = layout == "opt-350m"
    assert (decoder.project_in is not None) == (decoder.project_out is not None) == projected
    assert (decoder.final_layer_norm is None) == projected
    assert decoder.embed_positions.weight.shape == (40 + 2, 32)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sdpa_equals_eager_attention_with_fully_masked_rows(layout, tmp_path):
    _, ours = ORACLE.pair("pt", "OPT", "Model", tmp_path, **LAYOUTS[layout])
    eager = transformers.OPTModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert_same(eager, ours, layout, **torch_inputs(batch(ours.config)), output_hidden_states=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_left_padded_row_equals_the_unpadded_row(layout, tmp_path):
    _, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    tokens = torch.tensor([[5, 17, 33, 8, 61]])
    alone = call(ours, input_ids=tokens).logits
    # Padded on the left, beside a longer row: positions come from the mask, so the real tokens see the same.
    ids = torch.tensor([[1, 1, 1, 5, 17, 33, 8, 61], [9, 10, 11, 12, 13, 14, 15, 16]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1], [1] * 8])
    padded = call(ours, input_ids=ids, attention_mask=mask).logits
    assert_outputs_close(alone, padded[:1, 3:], label=f"{layout}: left-padded row vs alone")
    # Padded on the right too.
    right = call(ours, input_ids=torch.tensor([[5, 17, 33, 8, 61, 1, 1]]),
                 attention_mask=torch.tensor([[1, 1, 1, 1, 1, 0, 0]])).logits
    assert_outputs_close(alone, right[:, :5], label=f"{layout}: right-padded row vs alone")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_token_by_token_with_cache_equals_full_pass(layout, tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    inputs = {name: value[:3] for name, value in torch_inputs(batch(ours.config)).items()}  # full, right-, left-padded
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    full = call(ours, **inputs, use_cache=True)
    assert_same(hf, ours, f"{layout} full pass with cache", **inputs, use_cache=True)
    for prefill in (1, 5):
        logits, cache = step_by_step(ours, ids, mask, prefill)
        label = f"{layout}, prefill {prefill}"
        # A padding query of a left-padded row attends to nothing and averages every key it is given, so only
        # real tokens (and the rows without left padding) are comparable between a full pass and steps.
        real = mask.bool()
        assert_outputs_close(full.logits[real], logits[real], label=f"{label}: steps vs full pass")
        assert_outputs_close(full.logits[:2], logits[:2], label=f"{label}: steps vs full pass, rows 0-1")
        for (full_k, full_v), (k, v) in zip(full.past_key_values, cache, strict=True):
            assert_outputs_close((full_k[:2], full_v[:2]), (k[:2], v[:2]), label=f"{label}: cache, rows 0-1")
        hf_logits, hf_cache = step_by_step(hf, ids, mask, prefill)
        assert_outputs_close(hf_logits, logits, label=f"{label}: steps vs transformers")
        assert_outputs_close(hf_cache, cache, label=f"{label}: cache vs transformers")
        assert all(len(layer) == 2 for layer in cache) and cache[0][0].shape == (3, 4, 9, 8)


def test_hf_dynamic_cache_layout_is_legacy_tuples(tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", "Model", tmp_path)
    inputs = torch_inputs(batch(ours.config))
    theirs = call(hf, **inputs, use_cache=True).past_key_values.to_legacy_cache()
    mine = call(ours, **inputs).past_key_values  # config.use_cache is True by default, as in transformers
    assert isinstance(mine, tuple) and all(isinstance(layer, tuple) for layer in mine)
    assert_outputs_close(theirs, mine, label="cache")
    assert call(ours, **inputs, use_cache=False).past_key_values is None


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sharded_checkpoints(layout, safe, tmp_path):
    hf = ORACLE.hf_model("OPT", "ForCausalLM", **LAYOUTS[layout])
    hf.save_pretrained(tmp_path / "hf", safe_serialization=safe, max_shard_size="20KB")
    index_name = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    index = json.loads((tmp_path / "hf" / index_name).read_text())
    assert len(set(index["weight_map"].values())) >= 3
    ours = zoo.OPTForCausalLM.from_pretrained(tmp_path / "hf")
    inputs = torch_inputs(batch(ours.config))
    assert_same(hf, ours, f"{layout} sharded {index_name}", **inputs, output_hidden_states=True)
    # And our sharded save loads in transformers.
    ours.save_pretrained(tmp_path / "ours", max_shard_size="20KB")
    ours_index = json.loads((tmp_path / "ours" / "model.safetensors.index.json").read_text())
    assert len(set(ours_index["weight_map"].values())) >= 3
    assert "lm_head.weight" not in ours_index["weight_map"]  # tied, as transformers saves it
    reloaded, info = transformers.OPTForCausalLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same(hf, reloaded.eval(), f"{layout} our shards in transformers", **inputs)
    again = zoo.OPTForCausalLM.from_pretrained(tmp_path / "ours")
    assert_same(hf, again, f"{layout} our shards", **inputs)


def test_causal_lm_from_a_bare_model_checkpoint(tmp_path):
    """The facebook/opt-* checkpoints hold the bare model ("decoder.*"); the LM head is the tied embeddings."""
    hf_bare = ORACLE.hf_model("OPT", "Model", **LAYOUTS["opt-350m"])
    hf_bare.save_pretrained(tmp_path)
    hf = transformers.OPTForCausalLM.from_pretrained(tmp_path).eval()
    ours, info = zoo.OPTForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert ours.lm_head.weight is ours.model.decoder.embed_tokens.weight
    assert_same(hf, ours, "LM from bare checkpoint", **torch_inputs(batch(ours.config)))
    bare = zoo.OPTModel.from_pretrained(tmp_path)
    assert_same(hf_bare, bare, "bare", **torch_inputs(batch(ours.config)), output_hidden_states=True)


def test_new_heads_and_loading_info(tmp_path):
    ORACLE.hf_model("OPT", "ForCausalLM").save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="allow_new_heads.*score.weight"):
        zoo.OPTForSequenceClassification.from_pretrained(tmp_path)
    _, info = zoo.OPTForSequenceClassification.from_pretrained(tmp_path, allow_new_heads=True,
                                                               output_loading_info=True)
    assert info["missing_keys"] == ["score.weight"]
    reference = transformers.OPTModel.from_pretrained(tmp_path).eval()
    assert_same(reference, zoo.OPTModel.from_pretrained(tmp_path), "base from LM checkpoint",
                **torch_inputs(batch(reference.config)))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_biases_and_plain_layer_norms(layout, tmp_path, hf_init_skips_plain_layer_norms):
    overrides = {"enable_bias": False, "layer_norm_elementwise_affine": False}
    hf, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path / "hf", **LAYOUTS[layout], **overrides)
    names = [name for name, _ in ours.named_parameters()]
    assert names == [name for name, _ in hf.named_parameters()]
    assert not any("norm" in name or name.endswith("bias") for name in names), names
    inputs = torch_inputs(batch(ours.config))
    assert_same(hf, ours, f"{layout} no biases", **inputs, **labels_for("ForCausalLM", ours.config, inputs),
                output_hidden_states=True, output_attentions=True)
    ours.save_pretrained(tmp_path / "ours")
    reloaded = transformers.OPTForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert_same(hf, reloaded, f"{layout} no biases saved by us", **inputs)


def test_removed_final_layer_norm_and_activation(tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path, _remove_final_layer_norm=True,
                           activation_function="gelu_new")
    assert ours.model.decoder.final_layer_norm is None
    assert_same(hf, ours, "no final LayerNorm", **torch_inputs(batch(ours.config)), output_hidden_states=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_embeddings_and_position_inputs(layout, tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    inputs = torch_inputs(batch(ours.config))
    mask = inputs["attention_mask"]
    embeds = ours.model.decoder.embed_tokens(inputs["input_ids"]).detach()
    assert_same(hf, ours, "inputs_embeds", inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
    positions = torch.arange(-1, 8).expand(4, -1)
    assert_same(hf, ours, "position_ids", **inputs, position_ids=positions)
    assert_same(hf, ours, "no attention mask", input_ids=inputs["input_ids"])


def test_sequence_classification_pooling_and_problem_types(tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", "ForSequenceClassification", tmp_path / "hf")
    inputs = torch_inputs(batch(ours.config))
    # The rightmost non-pad token of each row; a row of padding only pools position 0.
    logits = call(ours, **inputs, output_hidden_states=True)
    scores = ours.score(logits.hidden_states[-1])
    torch.testing.assert_close(logits.logits, scores[torch.arange(4), torch.tensor([8, 5, 8, 0])], rtol=0, atol=0)
    embeds = ours.model.decoder.embed_tokens(inputs["input_ids"]).detach()
    assert_same(hf, ours, "inputs_embeds pool the last position", inputs_embeds=embeds,
                attention_mask=inputs["attention_mask"])
    generator = torch.Generator().manual_seed(3)
    cases = [(1, torch.randn(4, generator=generator), "regression"),
             (3, (torch.rand(4, 3, generator=generator) > 0.5).float(), "multi_label_classification"),
             (3, torch.tensor([0, 2, 1, 1]), "single_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("pt", "OPT", "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_same(hf, ours, problem_type, **inputs, labels=labels)
        assert ours.config.problem_type == hf.config.problem_type == problem_type


def test_sequence_classification_without_pad_token(tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", "ForSequenceClassification", tmp_path, pad_token_id=None)
    ids = torch.randint(3, 99, (2, 7), generator=torch.Generator().manual_seed(4))
    assert_same(hf, ours, "no pad token, one row", input_ids=ids[:1])
    for model in (hf, ours):
        with pytest.raises(ValueError, match="Cannot handle batch sizes > 1 if no padding token is defined."):
            call(model, input_ids=ids)


def test_head_mask_silences_heads(tmp_path):
    """A head mask scales each head's attention (0 silences it), as BART and earlier transformers do. (transformers
    4.57.6's OPT checks the head mask's size and then ignores it, so it is no oracle here.)"""
    hf, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path)
    inputs = torch_inputs(batch(ours.config))
    head_mask = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]])
    masked = call(ours, **inputs, head_mask=head_mask, output_attentions=True)
    # Same as scaling the heads' slices of the output projection's input.
    with torch.no_grad():
        for layer, scales in zip(ours.model.decoder.layers, head_mask, strict=True):
            layer.self_attn.out_proj.weight.mul_(scales.repeat_interleave(8)[None, :])
    scaled = call(ours, **inputs)
    assert_outputs_close(scaled.logits, masked.logits, label="head mask")
    assert torch.all(masked.attentions[0][:, 1] == 0) and torch.all(masked.attentions[1][:, 0] == 0)
    unmasked = call(hf, **inputs)
    assert_outputs_close(unmasked.logits, call(hf, **inputs, head_mask=head_mask).logits, label="HF ignores it")
    with pytest.raises(ValueError, match="head_mask has shape"):
        ours(**inputs, head_mask=torch.ones(3, 4))


def test_return_dict_false_gives_transformers_tuples(tmp_path):
    for head in HEADS:
        hf, ours = ORACLE.pair("pt", "OPT", head, tmp_path / head)
        inputs = torch_inputs(batch(ours.config))
        inputs.update(labels_for(head, ours.config, inputs))
        theirs = call(hf, **inputs, output_hidden_states=True, return_dict=False)
        mine = call(ours, **inputs, output_hidden_states=True, return_dict=False)
        assert isinstance(mine, tuple) and len(mine) == len(theirs), head
        assert_outputs_close(theirs, mine, label=f"{head} tuple")


def test_loss_gradients_match_transformers(tmp_path):
    overrides = {"dropout": 0.0, "attention_dropout": 0.0}
    hf, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path, **LAYOUTS["opt-350m"], **overrides)
    inputs = torch_inputs(batch(ours.config))
    inputs.update(labels_for("ForCausalLM", ours.config, inputs))
    for model in (hf, ours):
        model.train()
        model.zero_grad()
        model(**inputs).loss.backward()
    theirs = dict(hf.named_parameters())
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, theirs[name].grad, rtol=0, atol=1e-5, msg=name)


def test_bfloat16_loading_and_saving(tmp_path):
    ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path / "hf")
    half = zoo.OPTForCausalLM.from_pretrained(tmp_path / "hf", dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and not half.training
    inputs = torch_inputs(batch(half.config))
    hf_half = transformers.OPTForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.bfloat16).eval()
    # bfloat16 keeps 8 significant bits: logits of O(1) agree to a few units in the last place.
    assert_outputs_close(call(hf_half, **inputs).logits.float(), call(half, **inputs).logits.float(), atol=0.1)
    half.save_pretrained(tmp_path / "half")
    again = zoo.OPTForCausalLM.from_pretrained(tmp_path / "half", dtype=torch.bfloat16)
    for (name, a), (_, b) in zip(half.named_parameters(), again.named_parameters(), strict=True):
        assert a.dtype == b.dtype == torch.bfloat16 and torch.equal(a, b), name


def test_dropout_and_layerdrop_only_in_training(tmp_path):
    _, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path)
    inputs = torch_inputs(batch(ours.config))
    assert torch.equal(call(ours, **inputs).logits, call(ours, **inputs).logits)
    ours.train()
    assert not torch.equal(call(ours, **inputs).logits, call(ours, **inputs).logits)
    # layerdrop=1 skips every layer in training: the embeddings go straight to the final LayerNorm.
    _, dropped = ORACLE.pair("pt", "OPT", "Model", tmp_path / "layerdrop", layerdrop=1.0, dropout=0.0)
    dropped.train()
    out = call(dropped, **inputs, output_hidden_states=True)
    decoder = dropped.decoder
    torch.testing.assert_close(out.last_hidden_state, decoder.final_layer_norm(out.hidden_states[0]))
    dropped.eval()
    assert not torch.allclose(call(dropped, **inputs).last_hidden_state, out.last_hidden_state)


def test_fresh_model_init_tying_and_parameter_count():
    config = zoo.OPTConfig(**TINY, **LAYOUTS["opt-350m"])
    torch.manual_seed(0)
    ours = zoo.OPTForCausalLM(config)
    theirs = transformers.OPTForCausalLM(transformers.OPTConfig(**TINY, **LAYOUTS["opt-350m"]))
    assert ours.num_parameters() == theirs.num_parameters()
    assert ours.lm_head.weight is ours.model.decoder.embed_tokens.weight
    assert torch.all(ours.model.decoder.embed_tokens.weight[config.pad_token_id] == 0)
    for name, parameter in ours.named_parameters():
        if "layer_norm" in name:
            assert torch.all(parameter == (1.0 if name.endswith("weight") else 0.0)), name
        elif name.endswith("bias"):
            assert torch.all(parameter == 0), name
        else:
            assert abs(parameter.std().item() - config.init_std) < 0.006, name


def test_untied_output_embeddings_round_trip(tmp_path):
    hf, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path / "hf", tie_word_embeddings=False)
    assert ours.lm_head.weight is not ours.model.decoder.embed_tokens.weight
    assert_same(hf, ours, "untied", **torch_inputs(batch(ours.config)))
    ours.save_pretrained(tmp_path / "ours")
    reloaded = transformers.OPTForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert_same(hf, reloaded, "untied saved by us", **torch_inputs(batch(ours.config)))


def test_bad_input_is_a_clear_error(tmp_path):
    _, ours = ORACLE.pair("pt", "OPT", "ForCausalLM", tmp_path)
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    past = call(ours, input_ids=torch.full((1, 38), 5)).past_key_values
    cases = [
        ({"input_ids": torch.tensor([[2, 5, 99]])}, "token id 99, outside the vocabulary"),
        ({"input_ids": torch.tensor([[2, -1, 5]])}, "token id -1, outside the vocabulary"),
        ({"input_ids": torch.full((1, 41), 5)}, "sequence length 41 exceeds the 40 positions"),
        ({"input_ids": ids[:, :3], "past_key_values": past}, "sequence length 41 exceeds the 40 positions"),
        ({"input_ids": ids, "attention_mask": torch.ones(1, 4)}, r"attention_mask has shape \[1, 4\]"),
        ({"input_ids": ids[:, :1], "past_key_values": past, "attention_mask": torch.ones(1, 1)},
         r"attention_mask has shape \[1, 1\] but must have shape \[1, 39\]"),
        ({"input_ids": ids, "attention_mask": torch.ones(1, 5, 5)}, "attention_mask must have 2 dimensions"),
        ({"input_ids": ids, "position_ids": torch.tensor([[0, 1, 2, 3, 40]])}, "position_ids holds 40"),
        ({"input_ids": ids, "position_ids": torch.tensor([[-2, 1, 2, 3, 4]])}, "position_ids holds -2"),
        ({"input_ids": ids, "position_ids": torch.tensor([[0, 1]])}, r"position_ids has shape \[1, 2\]"),
        ({"input_ids": ids, "inputs_embeds": torch.zeros(1, 5, 32)}, "not both"),
        ({}, "give input_ids or inputs_embeds"),
        ({"input_ids": ids[0]}, "input_ids must have 2 dimensions"),
        ({"input_ids": ids[:, :1], "past_key_values": past[:1]}, "past_key_values holds 1 layers"),
        ({"input_ids": torch.cat([ids, ids])[:, :1], "past_key_values": past}, r"batch=2"),
    ]
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            ours(**inputs)
