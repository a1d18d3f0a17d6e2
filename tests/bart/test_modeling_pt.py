"""PyTorch BART against transformers 4.57.6, the oracle, in both directions.

Every model starts as a Hugging Face model with weights (and ``final_logits_bias``) drawn at O(0.1) scale, saved
with ``save_pretrained`` and loaded by our ``from_pretrained``. transformers' SDPA attention returns no attention
weights and ignores head masks, so comparisons that need them load the Hugging Face model with eager attention.
"""

import pytest

import rosettazoo.bart as zoo
from rosettazoo.conversion import WeightsError
from tests.harness import assert_outputs_close, assert_same, call, labels_for, torch_inputs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from tests.bart.cases import (  # noqa: E402
    ASYMMETRIC,
    CONFIG,
    EOS,
    HEADS,
    ORACLE,
    START,
    TINY,
    decode_both_ways,
    decoder_batch,
    eager,
    encoder_batch,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("head", HEADS)
def test_hf_checkpoint_matches_every_output(head, safe, tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", head, tmp_path / "hf", safe=safe)
    assert not any(module.training for module in ours.modules())
    inputs = torch_inputs(encoder_batch())
    label = f"Bart{head}"
    # SDPA, with labels (no cache) and without (the decoder returns its cache).
    assert_same(hf, ours, label, **inputs, **labels_for(head, CONFIG, inputs), output_hidden_states=True)
    assert_same(hf, ours, label, **inputs, output_hidden_states=True)
    # Eager attention: every attention tensor (self, cross, encoder).
    assert_same(eager(head, tmp_path / "hf"), ours, f"{label} eager", **inputs, output_attentions=True)
    if head in ("Model", "ForConditionalGeneration", "ForQuestionAnswering"):
        # Explicit decoder inputs, padded on either side.
        assert_same(hf, ours, f"{label} decoder inputs", **inputs, **torch_inputs(decoder_batch()), output_hidden_states=True)
    if safe:
        # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
        ours.save_pretrained(tmp_path / "ours")
        reloaded, info = getattr(transformers, f"Bart{head}").from_pretrained(tmp_path / "ours",
                                                                              output_loading_info=True)
        assert all(not keys for keys in info.values()), info
        assert_same(hf, reloaded.eval(), f"{label} saved by us", **inputs, **labels_for(head, CONFIG, inputs))


def test_conditional_generation_labels_and_decoder_inputs(tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path)
    inputs, labels = torch_inputs(encoder_batch()), labels_for("ForConditionalGeneration", CONFIG, torch_inputs(encoder_batch()))
    # Labels alone: decoder inputs are the labels shifted right, -100 turned into padding.
    out = call(ours, **inputs, **labels)
    assert out.past_key_values is None  # training with labels: no cache, as transformers
    expected = zoo.modeling_pt.shift_tokens_right(labels["labels"], 1, START)
    assert expected[1, -1] == 1 and torch.equal(expected[:, 1:], labels["labels"][:, :-1].masked_fill(
        labels["labels"][:, :-1] == -100, 1))
    assert_outputs_close(call(ours, **inputs, decoder_input_ids=expected).logits, out.logits, label="shifted")
    assert_same(hf, ours, "labels and decoder inputs", **inputs, **labels, **torch_inputs(decoder_batch()))
    # Loss = mean cross entropy over the labels that are not -100.
    flat = labels["labels"].reshape(-1)
    manual = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 99)[flat != -100], flat[flat != -100])
    assert abs(manual.item() - out.loss.item()) < 1e-6


def test_asymmetric_stacks(tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path, **ASYMMETRIC)
    assert len(ours.model.encoder.layers) == 2 and len(ours.model.decoder.layers) == 1
    assert ours.model.decoder.layers[0].fc1.out_features == 23
    inputs = {**torch_inputs(encoder_batch()), **torch_inputs(decoder_batch())}
    assert_same(hf, ours, "asymmetric", **inputs, output_hidden_states=True)
    head_masks = {"head_mask": torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]]),
                  "decoder_head_mask": torch.tensor([[0.0, 1.0]]), "cross_attn_head_mask": torch.tensor([[1.0, 0.5]])}
    assert_same(eager("ForConditionalGeneration", tmp_path), ours, "asymmetric eager", **inputs, **head_masks,
                output_attentions=True, output_hidden_states=True)
    full, steps, _ = decode_both_ways(ours, inputs)
    assert_outputs_close(full, steps, label="asymmetric: one token at a time vs full pass")


def test_head_masks_and_input_embeddings(tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "Model", tmp_path)
    reference = eager("Model", tmp_path)
    inputs = {**torch_inputs(encoder_batch()), **torch_inputs(decoder_batch())}
    masks = {"head_mask": torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]]),
             "decoder_head_mask": torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.3, 1.0]]),
             "cross_attn_head_mask": torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]])}
    # transformers ignores head masks under SDPA: the eager model is the reference; ours switches to eager itself.
    assert_same(reference, ours, "head masks", **inputs, **masks)
    assert_same(reference, ours, "head masks, attentions", **inputs, **masks, output_attentions=True)
    embeds = {"inputs_embeds": ours.shared(inputs["input_ids"]).detach() * 0.7,
              "decoder_inputs_embeds": ours.shared(inputs["decoder_input_ids"]).detach() * 1.3}
    assert_same(hf, ours, "embeddings", attention_mask=inputs["attention_mask"],
                decoder_attention_mask=inputs["decoder_attention_mask"], **embeds)


def test_scaled_embeddings(tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path, scale_embedding=True)
    assert ours.model.encoder.embed_scale == pytest.approx(32 ** 0.5)
    assert_same(hf, ours, "scale_embedding", **torch_inputs(encoder_batch()), output_hidden_states=True)


def test_encoder_outputs_skip_the_encoder(tmp_path):
    _, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path)
    inputs = {**torch_inputs(encoder_batch()), **torch_inputs(decoder_batch())}
    full = call(ours, **inputs, output_hidden_states=True)
    encoded = call(ours.get_encoder(), input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                   output_hidden_states=True)
    decoder_only = {k: v for k, v in inputs.items() if k != "input_ids"}
    for given in (encoded, encoded.to_tuple(), (encoded.last_hidden_state,)):
        out = call(ours, **decoder_only, encoder_outputs=given, output_hidden_states=True)
        assert_outputs_close(full.logits, out.logits, label="encoder_outputs")
        assert_outputs_close(full.encoder_last_hidden_state, out.encoder_last_hidden_state)
    # The encoder is skipped: a wrong input_ids beside encoder_outputs changes nothing.
    out = call(ours, **inputs | {"input_ids": inputs["input_ids"] * 0}, encoder_outputs=encoded)
    assert_outputs_close(full.logits, out.logits, label="encoder skipped")


def test_return_dict_false_gives_transformers_tuples(tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path)
    inputs = {**torch_inputs(encoder_batch()), **torch_inputs(decoder_batch())}
    theirs = call(hf, **inputs, output_hidden_states=True, return_dict=False)
    mine = call(ours, **inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(mine, tuple) and len(mine) == len(theirs) == 5  # logits, cache, 2 x hidden states, encoder
    assert_outputs_close(theirs, mine, label="tuple")
    encoded = call(ours.model.encoder, input_ids=inputs["input_ids"], return_dict=False)
    assert isinstance(encoded, tuple) and len(encoded) == 1


def test_cache_token_by_token_equals_full_pass_and_transformers(tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path)
    inputs = {**torch_inputs(encoder_batch()), **torch_inputs(decoder_batch())}
    full, steps, _ = decode_both_ways(ours, inputs)
    assert_outputs_close(full, steps, label="one token at a time vs full pass")
    hf_full, hf_steps, _ = decode_both_ways(hf, inputs)
    assert_outputs_close(hf_steps, steps, label="step by step vs transformers")
    # The cache itself: self and cross keys and values per layer, equal to transformers' legacy cache.
    kwargs = {**inputs, "use_cache": True}
    ours_cache, hf_cache = call(ours, **kwargs).past_key_values, call(hf, **kwargs).past_key_values
    assert all(len(layer) == 4 for layer in ours_cache)
    assert ours_cache[0][0].shape == (4, 4, 6, 8) and ours_cache[0][2].shape == (4, 4, 9, 8)
    assert_outputs_close(hf_cache, ours_cache, label="cache vs transformers")
    # A longer first chunk, then a second chunk with eager attention: the cache continues either way.
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    first = call(ours, **inputs | {"decoder_input_ids": ids[:, :4], "decoder_attention_mask": mask[:, :4]}, use_cache=True)
    second = call(ours, **inputs | {"decoder_input_ids": ids[:, 4:]}, past_key_values=first.past_key_values,
                  use_cache=True, output_attentions=True)
    assert_outputs_close(call(ours, **inputs).logits[:, 4:], second.logits, label="two chunks")
    assert second.decoder_attentions[0].shape == (4, 4, 2, 6)
    # transformers' cache object is accepted too (read as its legacy tuples).
    hf_first = call(hf, **inputs | {"decoder_input_ids": ids[:, :4], "decoder_attention_mask": mask[:, :4]}, use_cache=True)
    from_hf = call(ours, **inputs | {"decoder_input_ids": ids[:, 4:]}, past_key_values=hf_first.past_key_values)
    assert_outputs_close(second.logits, from_hf.logits, label="continuing transformers' cache")


@pytest.mark.parametrize("cross", [False, True], ids=["decoder only", "with cross-attention"])
def test_causal_lm_cache(cross, tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "ForCausalLM", tmp_path)
    ids, mask = torch_inputs(decoder_batch()).values()
    extra = {}
    if cross:
        generator = torch.Generator().manual_seed(5)
        extra = {"encoder_hidden_states": torch.randn(4, 5, 32, generator=generator),
                 "encoder_attention_mask": torch.tensor([[1] * 5, [1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0] * 5])}
    assert_same(hf, ours, "causal LM", input_ids=ids, attention_mask=mask, **extra, use_cache=True,
                output_hidden_states=True)
    assert_same(eager("ForCausalLM", tmp_path), ours, "causal LM eager", input_ids=ids, attention_mask=mask,
                **extra, output_attentions=True)
    full = call(ours, input_ids=ids, attention_mask=mask, **extra, use_cache=True)
    past, steps, hf_past, hf_steps = None, [], None, []
    for t in range(ids.shape[1]):
        step = {"input_ids": ids[:, t:t + 1], "attention_mask": mask[:, :t + 1], **extra, "use_cache": True}
        out, hf_out = call(ours, **step, past_key_values=past), call(hf, **step, past_key_values=hf_past)
        past, hf_past = out.past_key_values, hf_out.past_key_values
        steps.append(out.logits)
        hf_steps.append(hf_out.logits)
    real = mask.bool()[..., None]
    assert_outputs_close(full.logits * real, torch.cat(steps, dim=1) * real, label="one token at a time")
    assert_outputs_close(torch.cat(hf_steps, dim=1), torch.cat(steps, dim=1), label="steps vs transformers")
    assert_outputs_close(hf_past, past, label="cache vs transformers")
    assert all(len(layer) == (4 if cross else 2) for layer in past)


def test_sequence_classification_eos_pooling_and_problem_types(tmp_path):
    generator = torch.Generator().manual_seed(3)
    cases = [(1, torch.randn(4, generator=generator), "regression"),
             (3, (torch.rand(4, 3, generator=generator) > 0.5).float(), "multi_label_classification"),
             (3, torch.tensor([0, 2, 1, 1]), "single_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("pt", "Bart", "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_same(hf, ours, problem_type, **torch_inputs(encoder_batch()), labels=labels)
        assert ours.config.problem_type == hf.config.problem_type == problem_type
    # Several <eos> per row: the last one is pooled.
    inputs = torch_inputs(encoder_batch())
    inputs["input_ids"][:, 1] = EOS
    assert_same(hf, ours, "two <eos> per row", **inputs)
    inputs["input_ids"][0, 2] = EOS
    with pytest.raises(ValueError, match="All examples must have the same number of <eos> tokens."):
        ours(**inputs)
    with pytest.raises(ValueError, match="no <eos> token"):
        ours(input_ids=torch.full((2, 5), 7))
    with pytest.raises(NotImplementedError, match="pass input_ids"):
        ours(inputs_embeds=torch.zeros(2, 5, 32))


def test_older_checkpoint_with_decoder_embeddings_and_version_buffers(tmp_path):
    hf = ORACLE.hf_model("Bart", "ForConditionalGeneration")
    state = {name: tensor.contiguous() for name, tensor in hf.state_dict().items()
             if name not in ("model.shared.weight", "model.encoder.embed_tokens.weight", "lm_head.weight")}
    state["model.encoder.version"] = torch.tensor([2.0])
    state["model.decoder.version"] = torch.tensor([2.0])
    hf.config.save_pretrained(tmp_path)
    safetensors_torch.save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours, info = zoo.BartForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert ours.lm_head.weight is ours.model.shared.weight is ours.model.decoder.embed_tokens.weight
    assert_same(hf, ours, "older checkpoint", **torch_inputs(encoder_batch()), output_hidden_states=True)
    # A bare BartModel loads the same file (prefix "model." stripped), and so does the decoder-only model.
    bare = zoo.BartModel.from_pretrained(tmp_path, allow_new_heads=False)
    assert_outputs_close(call(hf.model, **torch_inputs(encoder_batch())), call(bare, **torch_inputs(encoder_batch())),
                         label="bare model")
    decoder = zoo.BartForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(decoder.lm_head.weight, hf.lm_head.weight)


def test_new_heads_and_loading_info(tmp_path):
    ORACLE.hf_model("Bart", "ForConditionalGeneration").save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="allow_new_heads.*classification_head.dense.weight"):
        zoo.BartForSequenceClassification.from_pretrained(tmp_path)
    _, info = zoo.BartForSequenceClassification.from_pretrained(tmp_path, allow_new_heads=True,
                                                                 output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classification_head.dense.bias", "classification_head.dense.weight",
                                            "classification_head.out_proj.bias", "classification_head.out_proj.weight"]
    assert info["unexpected_keys"] == ["final_logits_bias"]
    qa = zoo.BartForQuestionAnswering.from_pretrained(tmp_path, allow_new_heads=True)
    assert qa.config.num_labels == 2 and qa.qa_outputs.out_features == 2


def test_fresh_model_init_tying_and_parameter_count():
    config = zoo.BartConfig(**TINY)
    torch.manual_seed(0)
    ours = zoo.BartForConditionalGeneration(config)
    theirs = transformers.BartForConditionalGeneration(transformers.BartConfig(**TINY))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.num_parameters() == theirs.num_parameters()
    assert ours.num_parameters(exclude_embeddings=True) == theirs.num_parameters(exclude_embeddings=True)
    shared = ours.model.shared.weight
    assert ours.lm_head.weight is shared
    assert ours.model.encoder.embed_tokens.weight is shared and ours.model.decoder.embed_tokens.weight is shared
    assert torch.all(shared[config.pad_token_id] == 0) and torch.all(ours.final_logits_bias == 0)
    for name, parameter in ours.named_parameters():
        if "layer_norm" in name or "layernorm" in name:
            assert torch.all(parameter == (1.0 if name.endswith("weight") else 0.0)), name
        elif name.endswith("bias"):
            assert torch.all(parameter == 0), name
        else:
            assert abs(parameter.std().item() - config.init_std) < 0.004, name
    causal = zoo.BartForCausalLM(zoo.BartConfig(**TINY))
    assert causal.config.is_decoder and not causal.config.is_encoder_decoder
    assert causal.lm_head.weight is causal.model.decoder.embed_tokens.weight
    assert list(causal.state_dict()) == list(transformers.BartForCausalLM(transformers.BartConfig(**TINY)).state_dict())


def test_untied_output_embeddings_round_trip(tmp_path):
    hf, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path / "hf", tie_word_embeddings=False)
    assert ours.lm_head.weight is not ours.model.shared.weight
    assert_same(hf, ours, "untied", **torch_inputs(encoder_batch()))
    ours.save_pretrained(tmp_path / "ours")
    # transformers 4.57.6 cannot reload an untied BART, not even its own save: it unties the encoder's and decoder's
    # embed_tokens from model.shared and initializes them randomly. So: our file holds exactly what its file holds,
    # and we reload it.
    saved = safetensors_torch.load_file(tmp_path / "ours" / "model.safetensors")
    theirs = safetensors_torch.load_file(tmp_path / "hf" / "model.safetensors")
    assert sorted(saved) == sorted(theirs) and all(torch.equal(saved[k], theirs[k]) for k in theirs)
    reloaded = zoo.BartForConditionalGeneration.from_pretrained(tmp_path / "ours")
    assert_same(hf, reloaded, "untied saved by us", **torch_inputs(encoder_batch()))


def test_bfloat16_loading_and_saving(tmp_path):
    ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path / "hf")
    half = zoo.BartForConditionalGeneration.from_pretrained(tmp_path / "hf", dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.final_logits_bias.dtype == torch.bfloat16 and not half.training
    hf_half = transformers.BartForConditionalGeneration.from_pretrained(tmp_path / "hf", dtype=torch.bfloat16).eval()
    inputs = torch_inputs(encoder_batch())
    # bfloat16 keeps 8 significant bits: outputs of O(1) agree to a few units in the last place.
    assert_outputs_close(call(hf_half, **inputs).logits.float(), call(half, **inputs).logits.float(), atol=0.1)
    half.save_pretrained(tmp_path / "half")
    again = zoo.BartForConditionalGeneration.from_pretrained(tmp_path / "half", dtype=torch.bfloat16)
    for (name, a), (_, b) in zip(half.state_dict().items(), again.state_dict().items(), strict=True):
        assert a.dtype == b.dtype == torch.bfloat16 and torch.equal(a, b), name


def test_training_mode_dropout_matches_transformers_with_the_same_seed(tmp_path):
    dropouts = {"dropout": 0.2, "activation_dropout": 0.1, "classifier_dropout": 0.3, "encoder_layerdrop": 0.3,
                "decoder_layerdrop": 0.3}
    hf, ours = ORACLE.pair("pt", "Bart", "ForSequenceClassification", tmp_path, **dropouts)
    inputs = {**torch_inputs(encoder_batch()), "labels": torch.tensor([0, 2, 1, 1])}
    assert torch.equal(call(ours, **inputs).logits, call(ours, **inputs).logits)
    hf.train(), ours.train()
    outputs = []
    for seed in range(4):  # with layer drop some seeds skip layers: the same ones in both
        for model in (hf, ours):
            torch.manual_seed(seed)
            outputs.append(model(**inputs, output_hidden_states=True))
        assert_outputs_close(outputs[-2], outputs[-1], label=f"training, seed {seed}")
    assert not torch.equal(outputs[1].logits, outputs[3].logits)
    outputs[-1].loss.backward()  # gradients flow through the shared embedding
    assert ours.model.shared.weight.grad.abs().sum() > 0


def test_save_refuses_to_overwrite(tmp_path):
    _, ours = ORACLE.pair("pt", "Bart", "Model", tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path, overwrite=True)


def test_bad_input_is_a_clear_error(tmp_path):
    _, ours = ORACLE.pair("pt", "Bart", "ForConditionalGeneration", tmp_path)
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    encoded = ours.get_encoder()(input_ids=torch.cat([ids, ids]))
    cases = [
        ({"input_ids": torch.tensor([[0, 5, 99, 2]])}, "input_ids holds token id 99, outside the vocabulary"),
        ({"input_ids": torch.tensor([[0, -1, 2]])}, "token id -1, outside the vocabulary"),
        ({"input_ids": ids, "decoder_input_ids": torch.tensor([[2, 120]])}, "decoder_input_ids holds token id 120"),
        ({"input_ids": torch.full((1, 41), 5)}, "sequence length 41 exceeds the 40 positions"),
        ({"input_ids": ids, "decoder_input_ids": torch.full((1, 41), 5)}, "sequence length 41 exceeds"),
        ({"input_ids": ids, "attention_mask": torch.ones(1, 4)}, r"attention_mask has shape \[1, 4\]"),
        ({"input_ids": ids, "decoder_attention_mask": torch.ones(1, 4)}, r"decoder_attention_mask has shape"),
        ({"input_ids": ids, "decoder_attention_mask": torch.ones(1, 1, 5)}, "decoder_attention_mask must have 2"),
        ({"input_ids": ids, "inputs_embeds": torch.zeros(1, 5, 32)}, "not both"),
        ({"input_ids": ids, "decoder_input_ids": ids, "decoder_inputs_embeds": torch.zeros(1, 5, 32)}, "not both"),
        ({}, "give decoder_input_ids or decoder_inputs_embeds, or input_ids"),
        ({"decoder_input_ids": ids}, "give input_ids or inputs_embeds"),
        ({"input_ids": ids[0]}, "input_ids must have 2 dimensions"),
        ({"encoder_outputs": encoded, "decoder_input_ids": torch.cat([ids] * 3)}, "encoder output has batch size 2 "
                                                                                   "but the decoder input has batch "
                                                                                   "size 3"),
        ({"input_ids": ids, "head_mask": torch.ones(3, 4)}, r"head_mask has shape \[3, 4\]"),
        ({"input_ids": ids, "cross_attn_head_mask": torch.ones(2, 3)}, r"cross_attn_head_mask has shape \[2, 3\]"),
    ]
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            ours(**inputs)
    # The cache counts towards the positions.
    past = ours(input_ids=ids, decoder_input_ids=torch.full((1, 39), 5), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="sequence length 41 exceeds"):
        ours(input_ids=ids, decoder_input_ids=torch.full((1, 2), 5), past_key_values=past)


def test_checkpoint_without_final_logits_bias_loads_with_a_zero_bias(tmp_path):
    from safetensors.numpy import load_file, save_file

    zoo.BartForConditionalGeneration(zoo.BartConfig(**TINY)).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["final_logits_bias"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model, info = zoo.BartForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.all(model.final_logits_bias == 0)
