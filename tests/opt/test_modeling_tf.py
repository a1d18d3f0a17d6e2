"""TensorFlow / Keras 3 OPT against transformers 4.57.6 (PyTorch), the oracle, for opt-125m's and opt-350m's layouts.

Models start as Hugging Face models with O(0.1) random weights (Hugging Face's own init, with zero biases and unit
norms, would hide a wrong bias or norm below the tolerance), saved with ``save_pretrained`` and loaded by our
``from_pretrained``; our saves load back in transformers.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import keras

import rosettazoo.opt as zoo
from rosettazoo.common.cache import StaticCache
from rosettazoo.common.outputs import CausalLMOutputWithPast
from rosettazoo.conversion import WeightsError, to_canonical
from tests.harness import assert_outputs_close, assert_same, call, labels_for
from tests.opt.cases import HEADS, LAYOUTS, ORACLE, TINY, batch, step_by_step

torch.set_num_threads(1)




# ---------------------------------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_hf_checkpoint_matches_every_output(layout, head, tmp_path):
    hf, ours = ORACLE.pair("tf", "OPT", head, tmp_path / "hf", **LAYOUTS[layout])
    inputs = batch(ours.config)
    label = f"{layout} TFOPT{head}"
    # transformers' SDPA path (the default) with labels and its cache; then its eager path, which alone returns
    # attention weights; fully masked rows included.
    assert_same(hf, ours, label, **inputs, **labels_for(head, ours.config, inputs), output_hidden_states=True)
    hf.set_attn_implementation("eager")
    assert_same(hf, ours, label, **inputs, output_hidden_states=True, output_attentions=True)
    # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = getattr(transformers, f"OPT{head}").from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same(reloaded.eval(), ours, f"{label} saved by us", **inputs, output_hidden_states=True)


@pytest.mark.parametrize("overrides", [
    {"enable_bias": False, "layer_norm_elementwise_affine": False},
    {"_remove_final_layer_norm": True},
    {"activation_function": "gelu", "tie_word_embeddings": False},
], ids=["no-bias-no-affine", "no-final-norm", "gelu-untied"])
def test_config_variants(overrides, tmp_path, hf_init_skips_plain_layer_norms):
    hf, ours = ORACLE.pair("tf", "OPT", "ForCausalLM", tmp_path / "hf", **overrides)
    paths = ours.variables_by_path()
    assert sorted(to_canonical(path, "tf")[0] for path in paths) == sorted(
        set(hf.state_dict()) - ({"lm_head.weight"} if hf.config.tie_word_embeddings else set()))
    inputs = batch(ours.config)
    assert_same(hf, ours, str(overrides), **inputs, **labels_for("ForCausalLM", ours.config, inputs),
                output_hidden_states=True)
    ours.save_pretrained(tmp_path / "ours")
    reloaded = transformers.OPTForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert_same(reloaded, ours, f"{overrides} saved by us", **inputs)


@pytest.mark.parametrize("save_kwargs", [{"max_shard_size": "20KB"}, {"max_shard_size": "20KB",
                                                                      "safe_serialization": False}],
                         ids=["safetensors", "bin"])
def test_sharded_checkpoints(save_kwargs, tmp_path):
    hf, ours = ORACLE.pair("tf", "OPT", "ForCausalLM", tmp_path, **LAYOUTS["opt-350m"], save_kwargs=save_kwargs)
    index = "model.safetensors.index.json" if save_kwargs.get("safe_serialization", True) else \
        "pytorch_model.bin.index.json"
    assert (tmp_path / index).exists() and len(list(tmp_path.glob("*-of-*"))) > 2
    assert_same(hf, ours, f"sharded {save_kwargs}", **batch(ours.config))


def test_sequence_classification_problem_types_and_pooling(tmp_path):
    cases = [(1, np.random.default_rng(3).normal(size=4).astype(np.float32), "regression"),
             (3, (np.random.default_rng(3).random((4, 3)) > 0.5).astype(np.float32), "multi_label_classification"),
             (3, np.array([0, 2, 1, 1]), "single_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("tf", "OPT", "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_same(hf, ours, problem_type, **batch(ours.config), labels=labels)
        assert ours.config.problem_type == hf.config.problem_type == problem_type
    # Embeddings give no padding to find: the last token of each row, as transformers.
    inputs = batch(ours.config)
    embeds = hf.model.decoder.embed_tokens(torch.from_numpy(inputs["input_ids"])).detach().numpy()
    assert_same(hf, ours, "inputs_embeds", inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
    # Without a pad token: the last token, and only for a batch of one (transformers' error otherwise).
    hf, ours = ORACLE.pair("tf", "OPT", "ForSequenceClassification", tmp_path / "no-pad", pad_token_id=None)
    assert_same(hf, ours, "no pad token", input_ids=inputs["input_ids"][2:3])
    with pytest.raises(ValueError, match="Cannot handle batch sizes > 1 if no padding token is defined."):
        ours(input_ids=inputs["input_ids"])


def test_inputs_embeds_position_ids_and_head_mask(tmp_path):
    hf, ours = ORACLE.pair("tf", "OPT", "Model", tmp_path, **LAYOUTS["opt-350m"])
    inputs = batch(ours.config)
    embeds = hf.decoder.embed_tokens(torch.from_numpy(inputs["input_ids"])).detach().numpy()
    assert_same(hf, ours, "inputs_embeds", inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
    positions = np.broadcast_to(np.arange(3, 12), (4, 9)).copy()
    assert_same(hf, ours, "position_ids", **inputs, position_ids=positions)
    # transformers 4.57.6 ignores OPT's head_mask (OPTAttention drops it); we apply it as RoBERTa does and as
    # transformers' OPT did before: each head's attention probabilities are multiplied by its entry.
    head_mask = np.array([[1.0, 0.0, 1.0, 0.5], [1.0, 1.0, 1.0, 1.0]], np.float32)
    plain = ours(**inputs, output_attentions=True)
    masked = ours(**inputs, head_mask=head_mask, output_attentions=True)
    assert_outputs_close(np.asarray(plain.attentions[0]) * head_mask[0][None, :, None, None], masked.attentions[0],
                         label="head_mask scales the first layer's probabilities")
    assert not np.allclose(plain.last_hidden_state, masked.last_hidden_state)
    assert_outputs_close(plain, ours(**inputs, head_mask=np.ones(4, np.float32), output_attentions=True),
                         label="a head mask of ones changes nothing")


# ---------------------------------------------------------------------------------------------------- caches


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dynamic_cache_token_by_token_equals_the_full_pass(layout, tmp_path):
    hf, ours = ORACLE.pair("tf", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    inputs = batch(ours.config)
    ids, mask = inputs["input_ids"][:3], inputs["attention_mask"][:3]  # full, right- and left-padded rows
    full = ours(input_ids=ids, attention_mask=mask, use_cache=True)
    assert all(len(layer) == 2 for layer in full.past_key_values)
    logits, cache = step_by_step(ours, ids, mask)
    real = mask == 1  # a padding query sees no key: its (uniform) attention spans whatever keys the call has
    assert_outputs_close(np.asarray(full.logits)[real], logits[real], label=f"{layout}: token by token vs full pass")
    hf_logits, hf_cache = step_by_step(hf, ids, mask)
    assert_outputs_close(hf_logits, logits, label=f"{layout}: step by step vs transformers")
    assert_outputs_close(hf_cache, cache, label=f"{layout}: cache vs transformers")
    # Several tokens after a cached prefix; the left-padded row continues its positions from the mask.
    prefix = ours(input_ids=ids[:, :5], attention_mask=mask[:, :5], use_cache=True)
    rest = ours(input_ids=ids[:, 5:], attention_mask=mask, past_key_values=prefix.past_key_values, use_cache=True)
    assert_outputs_close(np.asarray(full.logits)[:, 5:][real[:, 5:]], np.asarray(rest.logits)[real[:, 5:]],
                         label=f"{layout}: four tokens after a cache")
    legacy = tuple(tuple(torch.from_numpy(np.array(t)) for t in layer) for layer in prefix.past_key_values)
    theirs = call(hf, input_ids=ids[:, 5:], attention_mask=mask,
                  past_key_values=transformers.DynamicCache.from_legacy_cache(legacy))
    assert_outputs_close(theirs, rest, label=f"{layout}: our cache in transformers")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_static_cache_under_jit_compile_equals_the_full_pass(layout, tmp_path):
    _, ours = ORACLE.pair("tf", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    inputs = batch(ours.config)
    ids, mask = inputs["input_ids"][:3], inputs["attention_mask"][:3]
    length, slots = ids.shape[1], ids.shape[1] + 3  # three slots stay unwritten
    full = ours(input_ids=ids, attention_mask=mask, use_cache=True)
    slot_mask = np.concatenate([mask, np.ones((3, 3), mask.dtype)], axis=1)  # future slots may say anything

    @tf.function(jit_compile=True)
    def step(input_ids, attention_mask, cache):
        out = ours(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache)
        return out.logits, out.past_key_values

    cache = ours.init_cache(3, slots)
    assert isinstance(cache, StaticCache) and cache.max_length == slots and int(cache.index) == 0
    logits = []
    for t in range(length):
        step_logits, cache = step(ids[:, t:t + 1], slot_mask, cache)
        logits.append(np.asarray(step_logits))
    assert step.experimental_get_tracing_count() == 1  # the same shapes every step: one compilation
    assert isinstance(cache, StaticCache) and int(cache.index) == length
    real = mask == 1
    assert_outputs_close(np.asarray(full.logits)[real], np.concatenate(logits, axis=1)[real],
                         label=f"{layout}: static cache under jit_compile vs full pass")
    for (key, value), (full_key, full_value) in zip(cache.to_legacy_cache(), full.past_key_values, strict=True):
        assert_outputs_close(np.asarray(full_key).transpose(0, 2, 1, 3)[real],
                             np.asarray(key).transpose(0, 2, 1, 3)[real], label="static keys")
        assert_outputs_close(np.asarray(full_value).transpose(0, 2, 1, 3)[real],
                             np.asarray(value).transpose(0, 2, 1, 3)[real], label="static values")
    # A prompt of five tokens in one call (eagerly), then the rest one by one under the same compiled step.
    prompt = ours(input_ids=ids[:, :5], attention_mask=slot_mask, past_key_values=ours.init_cache(3, slots))
    cache, logits = prompt.past_key_values, [np.asarray(prompt.logits)]
    for t in range(5, length):
        step_logits, cache = step(ids[:, t:t + 1], slot_mask, cache)
        logits.append(np.asarray(step_logits))
    assert step.experimental_get_tracing_count() == 1
    assert_outputs_close(np.asarray(full.logits)[real], np.concatenate(logits, axis=1)[real],
                         label=f"{layout}: prompt then steps vs full pass")


def test_static_cache_errors():
    ours = keras_model()
    with pytest.raises(ValueError, match="a cache of 41 slots exceeds the 40 positions"):
        ours.init_cache(2, 41)
    cache = ours.init_cache(2, 6)
    ids = np.full((2, 4), 5)
    with pytest.raises(ValueError, match=r"with a StaticCache, attention_mask must cover all 6 cache slots"):
        ours(input_ids=ids, attention_mask=np.ones((2, 4)), past_key_values=cache)
    cache = ours(input_ids=ids, past_key_values=cache).past_key_values  # no mask: every slot kept
    assert int(cache.index) == 4
    with pytest.raises(ValueError, match="the StaticCache has 6 slots; writing 3 more would overflow it"):
        ours(input_ids=np.full((2, 3), 5), past_key_values=cache)


# ---------------------------------------------------------------------------------------------------- the model object


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fresh_model_variables_and_init(layout):
    config = zoo.OPTConfig(**TINY, **LAYOUTS[layout])
    keras.utils.set_random_seed(0)
    ours = zoo.TFOPTForCausalLM(config)
    assert all(layer.built for layer in ours._flatten_layers())  # every variable exists before the first call
    theirs = transformers.OPTForCausalLM(transformers.OPTConfig(**TINY, **LAYOUTS[layout]))
    paths = ours.variables_by_path()
    tied = {"lm_head.weight"}  # the token embeddings
    assert sorted(to_canonical(path, "tf")[0] for path in paths) == sorted(set(theirs.state_dict()) - tied)
    assert np.all(ours.model.decoder.embed_tokens.embeddings.numpy()[config.pad_token_id] == 0)
    for path, variable in paths.items():
        value = variable.numpy()
        if path.endswith(("gamma", "beta")):
            assert np.all(value == (1.0 if path.endswith("gamma") else 0.0)), path
        elif path.endswith("bias"):
            assert np.all(value == 0), path
        else:
            assert abs(value.std() - config.init_std) < 0.006, path
    clone = type(ours).from_config(ours.get_config())
    assert clone.variable_shapes() == ours.variable_shapes() and clone.config == ours.config


def test_new_heads_and_bfloat16(tmp_path):
    ORACLE.hf_model("OPT", "ForCausalLM").save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="allow_new_heads.*score.weight"):
        zoo.TFOPTForSequenceClassification.from_pretrained(tmp_path)
    _, info = zoo.TFOPTForSequenceClassification.from_pretrained(tmp_path, allow_new_heads=True,
                                                                 output_loading_info=True)
    assert info["missing_keys"] == ["score.weight"]
    half = zoo.TFOPTForCausalLM.from_pretrained(tmp_path, dtype="bfloat16")
    assert {v.dtype for v in half.weights} == {"bfloat16"}
    inputs = batch(half.config)
    logits = half(**inputs).logits
    assert logits.dtype == tf.bfloat16
    hf_half = transformers.OPTForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    # bfloat16 keeps 8 significant bits: logits of O(1) agree to a few units in the last place.
    real = inputs["attention_mask"] == 1
    assert_outputs_close(call(hf_half, **inputs).logits.float().numpy()[real],
                         tf.cast(logits, tf.float32).numpy()[real], atol=0.15)
    assert half.init_cache(1, 4).layers[0][0].dtype == tf.bfloat16


def test_dropout_and_layerdrop_only_in_training():
    ours = keras_model(dropout=0.3, layerdrop=0.5)
    inputs = batch(ours.config)
    assert np.array_equal(ours(**inputs).logits, ours(**inputs, training=False).logits)
    assert not np.array_equal(ours(**inputs, training=True).logits, ours(**inputs, training=True).logits)


def test_calls_take_a_dict_or_a_list_and_return_tuples():
    ours = keras_model()
    inputs = batch(ours.config)
    expected = ours(**inputs)
    assert_outputs_close(expected.logits, ours(inputs).logits, label="dict")
    assert_outputs_close(expected.logits, ours([inputs["input_ids"], inputs["attention_mask"]]).logits, label="list")
    labels = labels_for("ForCausalLM", ours.config, inputs)
    as_tuple = ours(**inputs, **labels, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3  # loss, logits, cache
    assert_outputs_close(ours(**inputs, **labels).to_tuple(), as_tuple, label="tuple")
    assert "past_key_values" not in ours(**inputs, use_cache=False)


def test_bad_input_is_a_clear_error():
    ours = keras_model()
    ids = np.array([[2, 5, 6, 7]])
    cases = [
        ({"input_ids": np.array([[2, 5, 99]])}, "token id 99, outside the vocabulary"),
        ({"input_ids": np.array([[2, -1, 5]])}, "token id -1, outside the vocabulary"),
        ({"input_ids": np.full((1, 41), 5)}, "sequence length 41 exceeds the 40 positions"),
        ({"input_ids": ids, "attention_mask": np.ones((1, 3))}, r"attention_mask has shape \[1, 3\]"),
        ({"input_ids": ids, "attention_mask": np.ones((1, 4, 4))}, "attention_mask must have 2 dimensions"),
        ({"input_ids": ids, "position_ids": np.full((1, 4), 40)}, r"position_ids holds 40, outside \[-1, 40\)"),
        ({"input_ids": ids, "position_ids": np.full((1, 4), -2)}, r"position_ids holds -2, outside \[-1, 40\)"),
        ({"input_ids": ids, "position_ids": np.zeros((1, 3), int)}, r"position_ids has shape \[1, 3\]"),
        ({"input_ids": ids, "past_key_values": ((np.zeros((1, 4, 2, 8)),) * 2,) * 2},
         "past_key_values holds 2 layers but the model has 1"),
        ({"input_ids": ids, "inputs_embeds": np.zeros((1, 4, 32), np.float32)}, "not both"),
        ({}, "give input_ids or inputs_embeds"),
        ({"input_ids": ids[0]}, "input_ids must have 2 dimensions"),
    ]
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            ours(**inputs)
    past = ours(input_ids=np.full((1, 38), 5), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="sequence length 41 exceeds the 40 positions"):
        ours(input_ids=np.full((1, 3), 5), past_key_values=past)


# ---------------------------------------------------------------------------------------------------- Keras


def keras_model(head: str = "ForCausalLM", **overrides):
    keras.utils.set_random_seed(0)
    return getattr(zoo, f"TFOPT{head}")(zoo.OPTConfig(**{**TINY, "num_hidden_layers": 1, **overrides}))


def test_keras_fit_trains_causal_lm_on_its_own_loss():
    model = keras_model()
    inputs = batch(model.config)
    x = {**inputs, **labels_for("ForCausalLM", model.config, inputs)}
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = model.evaluate(x, batch_size=4, verbose=0)
    assert np.isclose(before, float(model(x).loss), atol=1e-5)
    model.fit(x, batch_size=2, epochs=2, verbose=0)
    assert model.evaluate(x, batch_size=4, verbose=0) < before
    predicted = model.predict(inputs, batch_size=2, verbose=0)
    assert isinstance(predicted, CausalLMOutputWithPast) and "loss" not in predicted
    assert_outputs_close(model(inputs).logits, predicted["logits"], label="predict")


def test_jit_compile_matches_eager_and_bad_ids_do_not_pass_silently():
    ours = keras_model("ForCausalLM", **LAYOUTS["opt-350m"])
    inputs = batch(ours.config)
    inputs = {**inputs, **labels_for("ForCausalLM", ours.config, inputs)}
    compiled = tf.function(lambda x: ours(x, output_hidden_states=True, output_attentions=True), jit_compile=True)
    assert_outputs_close(ours(inputs, output_hidden_states=True, output_attentions=True), compiled(inputs),
                         label="jit_compile")
    bad = {**inputs, "input_ids": inputs["input_ids"].copy()}
    bad["input_ids"][1, 2] = ours.config.vocab_size
    # XLA drops asserts and clamps gathers, so the bad row becomes NaN rather than another token's embedding.
    logits = compiled(bad).logits.numpy()
    assert np.isnan(logits[1]).all() and not np.isnan(logits[[0, 2, 3]]).any()
    graph = tf.function(lambda x: ours(x).logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_ids holds a token id outside the vocabulary"):
        graph(bad)
