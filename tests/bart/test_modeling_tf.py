"""TensorFlow / Keras 3 BART against transformers 4.57.6 (PyTorch), the oracle, in both directions.

Models start as Hugging Face models with O(0.1) random weights and ``final_logits_bias`` (see test_modeling_pt),
saved with ``save_pretrained`` and loaded by our ``from_pretrained``; our saves load back in transformers.
transformers' SDPA attention returns no attention weights and ignores head masks, so the comparisons that need
them use its eager attention. The compiled tests use one-layer models, which keeps XLA compilation short.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import keras

import rosettazoo.bart as zoo
from rosettazoo.common.cache import StaticCache
from rosettazoo.common.outputs import Seq2SeqLMOutput
from rosettazoo.conversion import WeightsError, to_canonical
from tests.bart.cases import (
    ASYMMETRIC,
    CONFIG,
    EOS,
    HEADS,
    ORACLE,
    TINY,
    decode_both_ways,
    decoder_batch,
    eager,
    encoder_batch,
)
from tests.harness import assert_outputs_close, assert_same, call, labels_for, numpy_inputs, torch_inputs


def seq2seq_batch() -> dict:
    return {**encoder_batch(), **decoder_batch()}


# ---------------------------------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("head", HEADS)
def test_hf_checkpoint_matches_every_output(head, tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", head, tmp_path / "hf")
    inputs = encoder_batch()
    label = f"TFBart{head}"
    # With labels (no cache), then without (the decoder returns its cache); fully masked rows included.
    assert_same(hf, ours, label, **inputs, **labels_for(head, CONFIG, inputs), output_hidden_states=True)
    assert_same(hf, ours, label, **inputs, output_hidden_states=True)
    # Every attention tensor (self, cross, encoder) against transformers' eager attention.
    assert_same(eager(head, tmp_path / "hf"), ours, f"{label} eager", **inputs, output_attentions=True)
    if head in ("Model", "ForConditionalGeneration", "ForQuestionAnswering"):
        # Explicit decoder inputs, padded on either side.
        assert_same(hf, ours, f"{label} decoder inputs", **inputs, **decoder_batch(), output_hidden_states=True)
    # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = getattr(transformers, f"Bart{head}").from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same(reloaded.eval(), ours, f"{label} saved by us", **inputs, **labels_for(head, CONFIG, inputs))


def test_pytorch_bin_checkpoint(tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path, safe=False)
    assert (tmp_path / "pytorch_model.bin").exists()
    assert_same(hf, ours, "pytorch_model.bin", **encoder_batch(), output_hidden_states=True)


def test_conditional_generation_labels_and_decoder_inputs(tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path)
    inputs, labels = encoder_batch(), labels_for("ForConditionalGeneration", CONFIG, encoder_batch())
    out = ours(**inputs, **labels)
    assert out.past_key_values is None  # labels: no cache, as transformers
    # Labels alone: the decoder reads them shifted right behind the start token, -100 turned into padding.
    shifted = zoo.modeling_tf.shift_tokens_right(labels["labels"], 1, 2).numpy()
    expected = np.concatenate([np.full((4, 1), 2), labels["labels"][:, :-1]], axis=1)
    assert np.array_equal(shifted, np.where(expected == -100, 1, expected)) and shifted[1, -1] == 1
    assert_outputs_close(ours(**inputs, decoder_input_ids=shifted).logits, out.logits, label="shifted")
    assert_same(hf, ours, "labels and decoder inputs", **encoder_batch(),
                **labels_for("ForConditionalGeneration", CONFIG, encoder_batch()),
                **decoder_batch())
    # The loss is the mean cross entropy over the labels that are not -100.
    flat, logits = labels["labels"].reshape(-1), out.logits.numpy().reshape(-1, TINY["vocab_size"])
    kept = flat != -100
    manual = torch.nn.functional.cross_entropy(torch.from_numpy(logits[kept]), torch.from_numpy(flat[kept]))
    assert abs(manual.item() - float(out.loss)) < 1e-6


def test_asymmetric_stacks_with_head_masks(tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path, **ASYMMETRIC)
    assert len(ours.model.encoder.layers) == 2 and len(ours.model.decoder.layers) == 1
    assert ours.model.decoder.layers[0].fc1.units == 23
    inputs = {**encoder_batch(), **decoder_batch()}
    assert_same(hf, ours, "asymmetric", **inputs, output_hidden_states=True)
    head_masks = {"head_mask": torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]]),
                  "decoder_head_mask": torch.tensor([[0.0, 1.0]]), "cross_attn_head_mask": torch.tensor([[1.0, 0.5]])}
    assert_same(eager("ForConditionalGeneration", tmp_path), ours, "asymmetric, head masks", **inputs, **head_masks,
                output_attentions=True, output_hidden_states=True)
    full, steps, _ = decode_both_ways(ours, numpy_inputs(inputs))
    assert_outputs_close(full, steps, label="asymmetric: one token at a time vs full pass")


def test_input_embeddings_and_scaled_embeddings(tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", "Model", tmp_path)
    inputs = torch_inputs({**encoder_batch(), **decoder_batch()})
    # Embeddings given are used as they are (no scale); here scaled so that a missed table would show.
    embeds = {"inputs_embeds": hf.shared(inputs["input_ids"]).detach() * 0.7,
              "decoder_inputs_embeds": hf.shared(inputs["decoder_input_ids"]).detach() * 1.3}
    assert_same(hf, ours, "embeddings", attention_mask=inputs["attention_mask"],
                decoder_attention_mask=inputs["decoder_attention_mask"], **embeds)
    hf, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path / "scaled", scale_embedding=True)
    assert ours.model.encoder.embed_scale == pytest.approx(32 ** 0.5)
    assert_same(hf, ours, "scale_embedding", **encoder_batch(), output_hidden_states=True)


def test_encoder_outputs_skip_the_encoder(tmp_path):
    _, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path)
    inputs = seq2seq_batch()
    full = ours(**inputs, output_hidden_states=True)
    encoded = ours.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                 output_hidden_states=True)
    decoder_only = {k: v for k, v in inputs.items() if k != "input_ids"}
    for given in (encoded, encoded.to_tuple(), (encoded.last_hidden_state,), encoded.last_hidden_state):
        out = ours(**decoder_only, encoder_outputs=given, output_hidden_states=True)
        assert_outputs_close(full.logits, out.logits, label="encoder_outputs")
        assert_outputs_close(full.encoder_last_hidden_state, out.encoder_last_hidden_state)
    # The encoder is skipped: other input_ids beside encoder_outputs change nothing.
    out = ours(**{**inputs, "input_ids": inputs["input_ids"] * 0}, encoder_outputs=encoded)
    assert_outputs_close(full.logits, out.logits, label="encoder skipped")


def test_calls_take_a_dict_and_return_transformers_tuples(tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path)
    inputs = {**encoder_batch(), **decoder_batch()}
    theirs = call(hf, **inputs, output_hidden_states=True, return_dict=False)
    mine = ours(**numpy_inputs(inputs), output_hidden_states=True, return_dict=False)
    assert isinstance(mine, tuple) and len(mine) == len(theirs) == 5  # logits, cache, 2 x hidden states, encoder
    assert_outputs_close(theirs, mine, label="tuple")
    assert_outputs_close(ours(**numpy_inputs(inputs)).logits, ours(numpy_inputs(inputs)).logits, label="dict")


# ---------------------------------------------------------------------------------------------------- caches


def test_dynamic_cache_token_by_token_equals_full_pass_and_transformers(tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path)
    inputs = seq2seq_batch()
    full, steps, cache = decode_both_ways(ours, inputs)
    assert_outputs_close(full, steps, label="one token at a time vs full pass")
    hf_past, hf_steps = None, []
    for t in range(6):  # transformers step by step, from its own cache
        out = call(hf, **{k: torch.from_numpy(v) for k, v in inputs.items() if k.startswith(("input", "attention"))},
                   decoder_input_ids=torch.from_numpy(inputs["decoder_input_ids"][:, t:t + 1]),
                   decoder_attention_mask=torch.from_numpy(inputs["decoder_attention_mask"][:, :t + 1]),
                   past_key_values=hf_past, use_cache=True)
        hf_past = out.past_key_values
        hf_steps.append(out.logits)
    real = inputs["decoder_attention_mask"][..., None].astype(bool)
    assert_outputs_close(np.where(real, torch.cat(hf_steps, dim=1).numpy(), 0), steps, label="steps vs transformers")
    assert_outputs_close(hf_past, cache, label="cache vs transformers")
    assert all(len(layer) == 4 for layer in cache)
    assert cache[0][0].shape == (4, 4, 6, 8) and cache[0][2].shape == (4, 4, 9, 8)
    # A chunk of four tokens, then two at once with attention weights: the cache continues either way.
    first = ours(**{**inputs, "decoder_input_ids": inputs["decoder_input_ids"][:, :4],
                    "decoder_attention_mask": inputs["decoder_attention_mask"][:, :4]}, use_cache=True)
    second = ours(**{**inputs, "decoder_input_ids": inputs["decoder_input_ids"][:, 4:]},
                  past_key_values=first.past_key_values, use_cache=True, output_attentions=True)
    assert_outputs_close(ours(**inputs).logits.numpy()[:, 4:], second.logits, label="two chunks")
    assert second.decoder_attentions[0].shape == (4, 4, 2, 6)


@pytest.mark.parametrize("cross", [False, True], ids=["decoder only", "with cross-attention"])
def test_causal_lm_dynamic_cache(cross, tmp_path):
    hf, ours = ORACLE.pair("tf", "Bart", "ForCausalLM", tmp_path)
    assert ours.config.is_decoder and not ours.config.is_encoder_decoder
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
    extra, hf_extra = numpy_inputs(extra), extra
    full = ours(input_ids=ids.numpy(), attention_mask=mask.numpy(), **extra)
    past, steps, hf_past = None, [], None
    for t in range(ids.shape[1]):
        step = {"input_ids": ids[:, t:t + 1], "attention_mask": mask[:, :t + 1]}
        out = ours(**numpy_inputs(step), **extra, past_key_values=past)
        hf_past = call(hf, **step, **hf_extra, past_key_values=hf_past, use_cache=True).past_key_values
        past = out.past_key_values
        steps.append(out.logits)
    real = mask.numpy()[..., None].astype(bool)
    assert_outputs_close(np.where(real, full.logits, 0), np.where(real, tf.concat(steps, axis=1), 0),
                         label="one token at a time")
    assert_outputs_close(hf_past, past, label="cache vs transformers")
    assert all(len(layer) == (4 if cross else 2) for layer in past)


def one_layer_pair(head: str, folder, **overrides):
    return ORACLE.pair("tf", "Bart", head, folder, encoder_layers=1, decoder_layers=1, **overrides)


def test_static_cache_compiled_steps_equal_one_full_pass(tmp_path):
    _, ours = one_layer_pair("ForConditionalGeneration", tmp_path)
    inputs = seq2seq_batch()
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    encoded = ours.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    full = ours(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], decoder_input_ids=ids,
                decoder_attention_mask=mask, use_cache=True)
    max_length = 8  # two slots more than the steps: unwritten slots must stay out of sight
    cache = ours.init_cache(4, max_length, encoder_outputs=encoded)
    assert isinstance(cache, StaticCache) and int(cache.index) == 0 and cache.max_length == max_length
    assert [len(layer) for layer in cache.layers] == [4]
    assert_outputs_close(full.past_key_values[0][2:], cache.layers[0][2:], label="cross keys computed once")
    # The mask covers every slot: the rows' padding, then ones for the slots still to come.
    slots = np.concatenate([mask, np.ones((4, max_length - ids.shape[1]), mask.dtype)], axis=1)

    @tf.function(jit_compile=True)
    def step(cache, token):
        out = ours(encoder_outputs=encoded.last_hidden_state, attention_mask=inputs["attention_mask"],
                   decoder_input_ids=token, decoder_attention_mask=slots, past_key_values=cache)
        return out.logits, out.past_key_values

    logits = []
    for t in range(ids.shape[1]):
        step_logits, cache = step(cache, ids[:, t:t + 1])
        logits.append(step_logits)
    assert step.experimental_get_tracing_count() == 1  # the same shapes every step: one compilation
    assert int(cache.index) == ids.shape[1]
    real = mask[..., None].astype(bool)
    assert_outputs_close(np.where(real, full.logits, 0), np.where(real, tf.concat(logits, axis=1), 0),
                         label="compiled static-cache steps vs full pass")
    # The filled slots hold the dynamic cache of the full pass (left-padded rows' pad keys included).
    assert_outputs_close(full.past_key_values, cache.to_legacy_cache(), label="static vs dynamic cache")
    assert np.all(cache.layers[0][0].numpy()[:, :, ids.shape[1]:] == 0)


def test_static_cache_chunks_causal_lm_and_errors(tmp_path):
    _, ours = one_layer_pair("ForCausalLM", tmp_path)
    ids, mask = decoder_batch().values()
    encoder_states = np.random.default_rng(5).standard_normal((4, 5, 32)).astype(np.float32)
    slots = np.concatenate([mask, np.ones((4, 4), mask.dtype)], axis=1)
    for states in (None, encoder_states):
        extra = {} if states is None else {"encoder_hidden_states": states}
        full = ours(input_ids=ids, attention_mask=mask, **extra).logits.numpy()
        cache = ours.init_cache(4, 10, encoder_outputs=states)
        assert [len(layer) for layer in cache.layers] == [2 if states is None else 4]
        # Four tokens at once, then one at a time (eagerly): every chunk writes at the cache's index.
        first = ours(input_ids=ids[:, :4], attention_mask=slots, past_key_values=cache, **extra)
        cache, logits = first.past_key_values, [first.logits]
        for t in (4, 5):
            out = ours(input_ids=ids[:, t:t + 1], attention_mask=slots, past_key_values=cache, **extra)
            cache = out.past_key_values
            logits.append(out.logits)
        assert int(cache.index) == 6 and [len(layer) for layer in cache.layers] == [len(extra) * 2 + 2]
        real = mask[..., None].astype(bool)
        assert_outputs_close(np.where(real, full, 0), np.where(real, tf.concat(logits, axis=1), 0),
                             label=f"static cache chunks, cross={states is not None}")
    with pytest.raises(ValueError, match="must cover all 10 cache slots"):
        ours(input_ids=ids[:, :1], attention_mask=mask, past_key_values=ours.init_cache(4, 10))
    with pytest.raises(ValueError, match="would overflow it"):
        ours(input_ids=ids, past_key_values=ours.init_cache(4, 5))
    with pytest.raises(ValueError, match="a cache of 41 slots exceeds the 40 positions"):
        ours.init_cache(4, 41)
    with pytest.raises(ValueError, match="encoder output has batch size 4 but the decoder input has batch size 2"):
        ours.init_cache(2, 10, encoder_outputs=encoder_states)


# ---------------------------------------------------------------------------------------------------- heads


def test_sequence_classification_eos_pooling_and_problem_types(tmp_path):
    generator = torch.Generator().manual_seed(3)
    cases = [(1, torch.randn(4, generator=generator), "regression"),
             (3, (torch.rand(4, 3, generator=generator) > 0.5).float(), "multi_label_classification"),
             (3, torch.tensor([0, 2, 1, 1]), "single_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("tf", "Bart", "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_same(hf, ours, problem_type, **encoder_batch(), labels=labels)
        assert ours.config.problem_type == hf.config.problem_type == problem_type
    inputs = encoder_batch()
    inputs["input_ids"][:, 1] = EOS  # several <eos> per row: the last one is pooled
    assert_same(hf, ours, "two <eos> per row", **inputs)
    inputs = numpy_inputs(inputs)
    inputs["input_ids"][0, 2] = EOS
    with pytest.raises(ValueError, match="All examples must have the same number of <eos> tokens."):
        ours(**inputs)
    graph = tf.function(lambda ids: ours(input_ids=ids).logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match="All examples must have the same number of <eos>"):
        graph(inputs["input_ids"])
    with pytest.raises(ValueError, match="no <eos> token"):
        ours(input_ids=np.full((2, 5), 7))
    with pytest.raises(NotImplementedError, match="pass input_ids"):
        ours(inputs_embeds=np.zeros((2, 5, 32), np.float32))


def test_older_checkpoint_with_decoder_embeddings_and_version_buffers(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    hf = ORACLE.hf_model("Bart", "ForConditionalGeneration")
    state = {name: tensor.contiguous() for name, tensor in hf.state_dict().items()
             if name not in ("model.shared.weight", "model.encoder.embed_tokens.weight", "lm_head.weight")}
    state["model.encoder.version"] = torch.tensor([2.0])
    state["model.decoder.version"] = torch.tensor([2.0])
    hf.config.save_pretrained(tmp_path)
    safetensors_torch.save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours, info = zoo.TFBartForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert_same(hf, ours, "older checkpoint", **encoder_batch(), output_hidden_states=True)
    bare = zoo.TFBartModel.from_pretrained(tmp_path)
    assert_same(hf.model, bare, "bare model", **encoder_batch())
    decoder = zoo.TFBartForCausalLM.from_pretrained(tmp_path)
    assert np.array_equal(decoder.model.decoder.embed_tokens.embeddings.numpy(), hf.lm_head.weight.detach().numpy())


def test_new_heads_and_loading_info(tmp_path):
    ORACLE.hf_model("Bart", "ForConditionalGeneration").save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="allow_new_heads.*classification_head.dense.weight"):
        zoo.TFBartForSequenceClassification.from_pretrained(tmp_path)
    _, info = zoo.TFBartForSequenceClassification.from_pretrained(tmp_path, allow_new_heads=True,
                                                                   output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classification_head.dense.bias", "classification_head.dense.weight",
                                            "classification_head.out_proj.bias", "classification_head.out_proj.weight"]
    assert info["unexpected_keys"] == ["final_logits_bias"]
    qa = zoo.TFBartForQuestionAnswering.from_pretrained(tmp_path, allow_new_heads=True)
    assert qa.config.num_labels == 2 and qa.qa_outputs.units == 2
    # A bare model's checkpoint has no final_logits_bias: as in transformers it stays zero, and is not missing.
    hf = ORACLE.hf_model("Bart", "Model")
    hf.save_pretrained(tmp_path / "bare")
    generator, info = zoo.TFBartForConditionalGeneration.from_pretrained(tmp_path / "bare", output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert np.all(generator.final_logits_bias.numpy() == 0)
    hidden = generator(**encoder_batch(), output_hidden_states=True).decoder_hidden_states[-1]
    assert_outputs_close(call(hf, **encoder_batch()).last_hidden_state, hidden, label="bare checkpoint")


@pytest.mark.parametrize("head", ["ForConditionalGeneration", "ForCausalLM"])
def test_fresh_model_variables_and_init(head):
    config = zoo.BartConfig(**TINY)
    keras.utils.set_random_seed(0)
    ours = getattr(zoo, f"TFBart{head}")(config)
    assert all(layer.built for layer in ours._flatten_layers())  # every variable exists before the first call
    theirs = getattr(transformers, f"Bart{head}")(transformers.BartConfig(**TINY))
    # Tied copies exist once: at model.shared (model.decoder.embed_tokens in the decoder-only model).
    tied = {"lm_head.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"}
    if head == "ForCausalLM":
        tied = {"lm_head.weight"}
    paths = ours.variables_by_path()
    assert sorted(to_canonical(path, "tf")[0] for path in paths) == sorted(set(theirs.state_dict()) - tied)
    for path, variable in paths.items():
        value = variable.numpy()
        if path.endswith(("shared.embeddings", "embed_tokens.embeddings")):
            assert np.all(value[config.pad_token_id] == 0), path
        if path.endswith(("gamma", "beta")):
            assert np.all(value == (1.0 if path.endswith("gamma") else 0.0)), path
        elif path.endswith(("bias", "final_logits_bias")):
            assert np.all(value == 0), path
        else:
            assert abs(value.std() - config.init_std) < 0.004, path
    if head == "ForConditionalGeneration":
        assert not ours.final_logits_bias.trainable  # a buffer in transformers
    clone = type(ours).from_config(ours.get_config())
    assert clone.variable_shapes() == ours.variable_shapes() and clone.config == ours.config


def test_untied_output_embeddings_round_trip(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    hf, ours = ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path / "hf", tie_word_embeddings=False)
    assert "lm_head.kernel" in ours.variables_by_path()
    assert_same(hf, ours, "untied", **encoder_batch())
    ours.save_pretrained(tmp_path / "ours")
    # transformers 4.57.6 cannot reload an untied BART it saved itself (it re-initializes the encoder's and
    # decoder's embed_tokens, which it did not write); so: the same tensors as its save, and our reload agrees.
    names = {}
    for folder in ("hf", "ours"):
        with safetensors.safe_open(tmp_path / folder / "model.safetensors", "np") as f:
            names[folder] = sorted(f.keys())
    assert names["ours"] == names["hf"] and "lm_head.weight" in names["ours"]
    again = zoo.TFBartForConditionalGeneration.from_pretrained(tmp_path / "ours")
    assert_same(hf, again, "untied saved by us", **encoder_batch())


def test_bfloat16_loading_and_saving(tmp_path):
    ORACLE.pair("tf", "Bart", "ForConditionalGeneration", tmp_path / "hf")
    half = zoo.TFBartForConditionalGeneration.from_pretrained(tmp_path / "hf", dtype="bfloat16")
    assert {v.dtype for v in half.weights} == {"bfloat16"}
    inputs = encoder_batch()
    logits = half(**numpy_inputs(inputs)).logits
    assert logits.dtype == tf.bfloat16
    hf_half = transformers.BartForConditionalGeneration.from_pretrained(tmp_path / "hf", dtype=torch.bfloat16).eval()
    # bfloat16 keeps 8 significant bits: outputs of O(1) agree to a few units in the last place.
    assert_outputs_close(call(hf_half, **inputs).logits.float(), tf.cast(logits, tf.float32), atol=0.1)
    assert half.init_cache(4, 8).layers[0][0].dtype == tf.bfloat16
    half.save_pretrained(tmp_path / "half")
    again = zoo.TFBartForConditionalGeneration.from_pretrained(tmp_path / "half", dtype="bfloat16")
    saved, loaded = half.numpy_weights(), again.numpy_weights()
    for name, array in saved.items():
        assert array.dtype == loaded[name].dtype and np.array_equal(array, loaded[name]), name


def test_dropout_and_layerdrop_only_in_training(tmp_path):
    _, ours = ORACLE.pair("tf", "Bart", "ForSequenceClassification", tmp_path, dropout=0.2, activation_dropout=0.1,
                          classifier_dropout=0.3, encoder_layerdrop=0.3, decoder_layerdrop=0.3)
    inputs = {**encoder_batch(), "labels": np.array([0, 2, 1, 1])}
    assert np.array_equal(ours(**inputs).logits, ours(**inputs, training=False).logits)
    assert not np.array_equal(ours(**inputs, training=True).logits, ours(**inputs, training=True).logits)


def test_save_refuses_to_overwrite(tmp_path):
    _, ours = ORACLE.pair("tf", "Bart", "Model", tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path, overwrite=True)


# ---------------------------------------------------------------------------------------------------- Keras


def keras_model(head: str = "ForConditionalGeneration", **overrides):
    keras.utils.set_random_seed(0)
    return getattr(zoo, f"TFBart{head}")(zoo.BartConfig(**{**TINY, "encoder_layers": 1, "decoder_layers": 1,
                                                           **overrides}))


def test_keras_fit_trains_on_the_models_own_loss():
    model = keras_model()
    x = {**encoder_batch(), **labels_for("ForConditionalGeneration", CONFIG, encoder_batch())}
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = model.evaluate(x, batch_size=4, verbose=0)
    assert np.isclose(before, float(model(x).loss), atol=1e-5)
    model.fit(x, batch_size=2, epochs=2, verbose=0)  # a dict of numpy arrays: four steps
    after = model.evaluate(x, batch_size=4, verbose=0)
    assert after < before
    bias = model.final_logits_bias.numpy()
    assert np.all(bias == 0)  # a buffer: training leaves it alone
    predicted = model.predict({k: v for k, v in x.items() if k != "labels"}, batch_size=4, verbose=0)
    assert isinstance(predicted, Seq2SeqLMOutput) and "loss" not in predicted
    assert_outputs_close(model({k: v for k, v in x.items() if k != "labels"}).logits, predicted["logits"],
                         label="predict")


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # raised inside Keras' saving
def test_keras_saving_keeps_every_weight(tmp_path):
    model = keras_model()
    x = encoder_batch()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert np.array_equal(loaded(x).logits, model(x).logits)


def test_jit_compile_matches_eager_and_bad_ids_do_not_pass_silently():
    ours = keras_model()
    inputs = {**seq2seq_batch(), **labels_for("ForConditionalGeneration", CONFIG, encoder_batch())}
    del inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    compiled = tf.function(lambda x: ours(x, output_hidden_states=True, output_attentions=True), jit_compile=True)
    eager_out = ours(inputs, output_hidden_states=True, output_attentions=True)
    assert_outputs_close(eager_out, compiled(inputs), label="jit_compile")
    bad = {**inputs, "input_ids": inputs["input_ids"].copy()}
    bad["input_ids"][1, 2] = ours.config.vocab_size
    # XLA drops asserts and clamps gathers, so the bad row becomes NaN rather than another token's embedding.
    logits = compiled(bad).logits.numpy()
    assert np.isnan(logits[1]).all() and not np.isnan(logits[[0, 2, 3]]).any()
    graph = tf.function(lambda x: ours(x).logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_ids holds a token id outside the vocabulary"):
        graph(bad)


def test_bad_input_is_a_clear_error():
    ours = keras_model()
    ids = np.array([[0, 5, 6, 7, 2]])
    encoded = ours.get_encoder()(input_ids=np.concatenate([ids, ids]))
    cases = [
        ({"input_ids": np.array([[0, 5, 99, 2]])}, "input_ids holds token id 99, outside the vocabulary"),
        ({"input_ids": np.array([[0, -1, 2]])}, "token id -1, outside the vocabulary"),
        ({"input_ids": ids, "decoder_input_ids": np.array([[2, 120]])}, "decoder_input_ids holds token id 120"),
        ({"input_ids": np.full((1, 41), 5)}, "sequence length 41 exceeds the 40 positions"),
        ({"input_ids": ids, "decoder_input_ids": np.full((1, 41), 5)}, "sequence length 41 exceeds"),
        ({"input_ids": ids, "attention_mask": np.ones((1, 4))}, r"attention_mask has shape \[1, 4\]"),
        ({"input_ids": ids, "decoder_attention_mask": np.ones((1, 4))}, r"decoder_attention_mask has shape"),
        ({"input_ids": ids, "decoder_attention_mask": np.ones((1, 1, 5))}, "decoder_attention_mask must have 2"),
        ({"input_ids": ids, "inputs_embeds": np.zeros((1, 5, 32), np.float32)}, "not both"),
        ({"input_ids": ids, "decoder_input_ids": ids, "decoder_inputs_embeds": np.zeros((1, 5, 32), np.float32)},
         "not both"),
        ({}, "give decoder_input_ids or decoder_inputs_embeds, or input_ids"),
        ({"decoder_input_ids": ids}, "give input_ids or inputs_embeds"),
        ({"input_ids": ids[0]}, "input_ids must have 2 dimensions"),
        ({"encoder_outputs": encoded, "decoder_input_ids": np.concatenate([ids] * 3)},
         "encoder output has batch size 2 but the decoder input has batch size 3"),
        ({"input_ids": ids, "head_mask": np.ones((3, 4))}, r"head_mask has shape \[3, 4\]"),
        ({"input_ids": ids, "decoder_head_mask": np.ones((2, 4))}, r"decoder_head_mask has shape \[2, 4\]"),
        ({"input_ids": ids, "cross_attn_head_mask": np.ones((1, 3))}, r"cross_attn_head_mask has shape \[1, 3\]"),
    ]
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            ours(**inputs)
    # The cache counts towards the positions.
    past = ours(input_ids=ids, decoder_input_ids=np.full((1, 39), 5), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="sequence length 41 exceeds"):
        ours(input_ids=ids, decoder_input_ids=np.full((1, 2), 5), past_key_values=past)
