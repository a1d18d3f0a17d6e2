"""TensorFlow / Keras 3 RoBERTa and RoBERTa-PreLayerNorm against transformers 4.57.6 (PyTorch), the oracle.

Models start as Hugging Face models with O(0.1) random weights (see test_modeling_pt), saved with
``save_pretrained`` and loaded by our ``from_pretrained``; our saves load back in transformers. The Keras tests
train a one-layer model with SGD, which keeps graph tracing short on a small CPU.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import keras

import rosettazoo.roberta as zoo
from rosettazoo.common.activations import ACTIVATIONS
from rosettazoo.common.layers_tf import activation
from rosettazoo.common.outputs import SequenceClassifierOutput
from rosettazoo.conversion import WeightsError, to_canonical
from tests.harness import assert_outputs_close, assert_same, call, labels_for, numpy_inputs
from tests.roberta.cases import FAMILIES, HEADS, ORACLE, TINY, batch, decoder_inputs, head_batch, step_by_step


def tiny_config(family: str = "Roberta", **overrides):
    return getattr(zoo, f"{family}Config")(**{**TINY, **overrides})


# ---------------------------------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_hf_checkpoint_matches_every_output(family, head, tmp_path):
    hf, ours = ORACLE.pair("tf", family, head, tmp_path / "hf")
    inputs = head_batch(head, ours.config)
    label = f"TF{family}{head}"
    # With labels and without attention weights (transformers takes its SDPA path), then without labels (the
    # decoder returns its cache) and with attention weights (its eager path); fully masked rows included.
    assert_same(hf, ours, label, **inputs, **labels_for(head, ours.config, inputs), output_hidden_states=True)
    assert_same(hf, ours, label, **inputs, output_hidden_states=True, output_attentions=True)
    # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = getattr(transformers, f"{family}{head}").from_pretrained(tmp_path / "ours",
                                                                             output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same(reloaded.eval(), ours, f"{label} saved by us", **inputs, output_hidden_states=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_pytorch_bin_checkpoint(family, tmp_path):
    hf, ours = ORACLE.pair("tf", family, "Model", tmp_path, safe=False)
    assert (tmp_path / "pytorch_model.bin").exists()
    assert_same(hf, ours, "pytorch_model.bin", **batch(ours.config), output_hidden_states=True)


def test_sequence_classification_problem_types(tmp_path):  # the loss code is shared by both families
    generator = torch.Generator().manual_seed(3)
    cases = [(1, torch.randn(4, generator=generator), "regression"),
             (3, (torch.rand(4, 3, generator=generator) > 0.5).float(), "multi_label_classification"),
             (3, torch.tensor([0, 2, 1, 1]), "single_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("tf", "Roberta", "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_same(hf, ours, problem_type, **batch(ours.config), labels=labels)
        assert ours.config.problem_type == hf.config.problem_type == problem_type


@pytest.mark.parametrize("position_embedding_type", ["relative_key", "relative_key_query"])
@pytest.mark.parametrize("family", FAMILIES)
def test_relative_position_embeddings(family, position_embedding_type, tmp_path):
    hf, ours = ORACLE.pair("tf", family, "ForMaskedLM", tmp_path, position_embedding_type=position_embedding_type)
    assert_same(hf, ours, position_embedding_type, **batch(ours.config), output_hidden_states=True,
                output_attentions=True)


@pytest.mark.parametrize("family, position_embedding_type", [
    ("Roberta", "absolute"), ("RobertaPreLayerNorm", "absolute"), ("Roberta", "relative_key"),
])
def test_decoder_with_cross_attention_and_cache(family, position_embedding_type, tmp_path):
    hf, ours = ORACLE.pair("tf", family, "ForCausalLM", tmp_path, add_cross_attention=True,
                           position_embedding_type=position_embedding_type)
    torch_inputs = decoder_inputs(ours.config)
    inputs = numpy_inputs(torch_inputs)
    label = f"TF {family} decoder {position_embedding_type}"
    if position_embedding_type == "absolute":
        assert_same(hf, ours, label, **torch_inputs, use_cache=True, output_hidden_states=True,
                    output_attentions=True)
    else:
        # transformers 4.57.6 gives every query of a multi-token pass the last position's relative distances
        # whenever a cache is in use (as test_modeling_pt explains); without a cache it agrees with us.
        assert_same(hf, ours, label, **torch_inputs, use_cache=False, output_hidden_states=True,
                    output_attentions=True)
    full = ours(**inputs, use_cache=True)
    logits, cache = step_by_step(ours, inputs)
    assert_outputs_close(full.logits, logits, label=f"{label}: one token at a time vs full pass")
    assert_outputs_close(full.past_key_values, cache, label=f"{label}: cache built step by step vs full pass")
    assert all(len(layer) == 4 for layer in cache)  # self and cross keys and values
    hf_logits, hf_cache = step_by_step(hf, torch_inputs)
    assert_outputs_close(hf_logits, logits, label=f"{label}: step by step vs transformers")
    assert_outputs_close(hf_cache, cache, label=f"{label}: cache vs transformers")
    # Several new tokens at once after a cached prefix (the rows have no left padding, so positions continue).
    tokens = ("input_ids", "token_type_ids")
    prefix = ours(**{**inputs, **{k: inputs[k][:, :4] for k in (*tokens, "attention_mask")}}, use_cache=True)
    rest = ours(**{**inputs, **{k: inputs[k][:, 4:] for k in tokens}}, past_key_values=prefix.past_key_values,
                use_cache=True)
    assert_outputs_close(np.asarray(full.logits)[:, 4:], rest.logits, label=f"{label}: two tokens after a cache")


@pytest.mark.parametrize("family", FAMILIES)
def test_embeddings_positions_head_mask_and_3d_mask(family, tmp_path):
    hf, ours = ORACLE.pair("tf", family, "Model", tmp_path)
    inputs = batch(ours.config)
    mask = inputs["attention_mask"]
    embeds = hf.embeddings.word_embeddings(inputs["input_ids"]).detach()
    assert_same(hf, ours, "inputs_embeds", inputs_embeds=embeds, attention_mask=mask)
    positions = torch.arange(3, 12).expand(4, -1)
    assert_same(hf, ours, "position_ids", input_ids=inputs["input_ids"], attention_mask=mask, position_ids=positions)
    head_mask = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]])
    assert_same(hf, ours, "head_mask", **inputs, head_mask=head_mask, output_attentions=True)
    assert_same(hf, ours, "3D attention mask", input_ids=inputs["input_ids"],
                attention_mask=mask[:, None, :].expand(-1, 9, -1))


def test_calls_take_kwargs_a_dict_or_a_list_and_return_tuples(tmp_path):
    hf, ours = ORACLE.pair("tf", "Roberta", "ForMaskedLM", tmp_path)
    inputs = numpy_inputs(batch(ours.config))
    expected = ours(**inputs).logits
    assert_outputs_close(expected, ours(inputs).logits, label="dict")
    as_list = [inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]]
    assert_outputs_close(expected, ours(as_list).logits, label="list")
    with pytest.raises(TypeError, match="unknown inputs"):
        ours({**inputs, "mask": inputs["attention_mask"]})
    torch_inputs = {**batch(ours.config), **labels_for("ForMaskedLM", ours.config, batch(ours.config))}
    theirs = call(hf, **torch_inputs, output_hidden_states=True, return_dict=False)
    mine = ours(**numpy_inputs(torch_inputs), output_hidden_states=True, return_dict=False)
    assert isinstance(mine, tuple) and len(mine) == len(theirs) == 3  # loss, logits, hidden states
    assert_outputs_close(theirs, mine, label="tuple")


# ------------------------------------------------------------------------------------------------ loading and saving


def test_bfloat16_loading_and_saving(tmp_path):
    _, ours = ORACLE.pair("tf", "Roberta", "ForMaskedLM", tmp_path / "hf")
    half = zoo.TFRobertaForMaskedLM.from_pretrained(tmp_path / "hf", dtype="bfloat16")
    assert half.dtype_policy.name == "bfloat16"
    assert {v.dtype for v in half.weights} == {"bfloat16"}
    inputs = numpy_inputs(batch(ours.config))
    logits = half(**inputs).logits
    assert logits.dtype == tf.bfloat16
    hf_half = transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "hf", dtype=torch.bfloat16).eval()
    # bfloat16 keeps 8 significant bits: outputs of O(1) agree to a few units in the last place.
    assert_outputs_close(call(hf_half, **batch(ours.config)).logits.float(), tf.cast(logits, tf.float32), atol=0.1)
    half.save_pretrained(tmp_path / "half")
    again = zoo.TFRobertaForMaskedLM.from_pretrained(tmp_path / "half", dtype="bfloat16")
    saved, loaded = half.numpy_weights(), again.numpy_weights()
    for name, array in saved.items():
        assert array.dtype == loaded[name].dtype and np.array_equal(array, loaded[name]), name


def test_dropout_only_in_training(tmp_path):
    _, ours = ORACLE.pair("tf", "Roberta", "ForMaskedLM", tmp_path)
    inputs = numpy_inputs(batch(ours.config))
    assert np.array_equal(ours(**inputs).logits, ours(**inputs, training=False).logits)
    assert not np.array_equal(ours(**inputs, training=True).logits, ours(**inputs, training=True).logits)


@pytest.mark.parametrize("family", FAMILIES)
def test_new_heads_and_loading_info(family, tmp_path):
    ORACLE.hf_model(family, "ForMaskedLM").save_pretrained(tmp_path)
    classifier = getattr(zoo, f"TF{family}ForSequenceClassification")
    with pytest.raises(WeightsError, match="allow_new_heads.*classifier.dense.weight"):
        classifier.from_pretrained(tmp_path)
    _, info = classifier.from_pretrained(tmp_path, allow_new_heads=True, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.dense.bias", "classifier.dense.weight",
                                            "classifier.out_proj.bias", "classifier.out_proj.weight"]
    assert {name.split(".")[0] for name in info["unexpected_keys"]} == {"lm_head"}
    bare = getattr(zoo, f"TF{family}Model").from_pretrained(tmp_path, add_pooling_layer=False)
    assert bare.pooler is None
    reference = getattr(transformers, f"{family}Model").from_pretrained(tmp_path, add_pooling_layer=False).eval()
    assert_same(reference, bare, "base model from a head checkpoint", **batch(bare.config))


@pytest.mark.parametrize("family", FAMILIES)
def test_fresh_model_variables_and_init(family):
    config = tiny_config(family)
    keras.utils.set_random_seed(0)
    ours = getattr(zoo, f"TF{family}ForMaskedLM")(config)
    assert all(layer.built for layer in ours._flatten_layers())  # every variable exists before the first call
    theirs = getattr(transformers, f"{family}ForMaskedLM")(getattr(transformers, f"{family}Config")(**TINY))
    tied = {"lm_head.decoder.weight", "lm_head.decoder.bias"}  # the word embeddings and lm_head.bias
    paths = ours.variables_by_path()
    assert sorted(to_canonical(path, "tf")[0] for path in paths) == sorted(set(theirs.state_dict()) - tied)
    embeddings = ours.get_base_model().embeddings
    assert np.all(embeddings.word_embeddings.embeddings.numpy()[config.pad_token_id] == 0)
    assert np.all(embeddings.position_embeddings.embeddings.numpy()[config.pad_token_id] == 0)
    for path, variable in paths.items():
        value = variable.numpy()
        if path.endswith(("gamma", "beta")):
            assert np.all(value == (1.0 if path.endswith("gamma") else 0.0)), path
        elif path.endswith("bias"):
            assert np.all(value == 0), path
        else:
            assert abs(value.std() - config.initializer_range) < 0.004, path
    clone = type(ours).from_config(ours.get_config())
    assert clone.variable_shapes() == ours.variable_shapes() and clone.config == ours.config


def test_untied_output_embeddings_round_trip(tmp_path):
    hf, ours = ORACLE.pair("tf", "Roberta", "ForMaskedLM", tmp_path / "hf", tie_word_embeddings=False)
    assert "lm_head.decoder.kernel" in ours.variables_by_path()
    assert_same(hf, ours, "untied", **batch(ours.config))
    ours.save_pretrained(tmp_path / "ours")
    reloaded = transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "ours").eval()
    assert_same(reloaded, ours, "untied saved by us", **batch(ours.config))


def test_save_refuses_to_overwrite(tmp_path):
    _, ours = ORACLE.pair("tf", "Roberta", "Model", tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path, overwrite=True)


# ---------------------------------------------------------------------------------------------------- Keras


def keras_model(head: str = "ForSequenceClassification", **overrides):
    keras.utils.set_random_seed(0)
    return getattr(zoo, f"TFRoberta{head}")(tiny_config(num_hidden_layers=1, **overrides))


def toy_batch(config) -> dict:
    inputs = numpy_inputs(batch(config))
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # raised inside Keras' saving
def test_keras_saving_keeps_every_weight(tmp_path):
    model = keras_model("ForMaskedLM")
    x = toy_batch(model.config)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert np.array_equal(loaded(x).logits, model(x).logits)
    model.save_weights(tmp_path / "model.weights.h5")
    fresh = getattr(zoo, type(model).__name__)(model.config)
    fresh.load_weights(tmp_path / "model.weights.h5")
    expected = model.numpy_weights()
    assert all(np.array_equal(array, expected[path]) for path, array in fresh.numpy_weights().items())



def test_keras_fit_trains_on_the_models_own_loss():
    model = keras_model()
    x = {**toy_batch(model.config), "labels": np.array([0, 2, 1, 1])}
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = model.evaluate(x, batch_size=4, verbose=0)
    assert np.isclose(before, float(model(x).loss), atol=1e-5)
    model.fit(x, batch_size=2, epochs=1, verbose=0)  # a dict of numpy arrays: two steps
    after_numpy = model.evaluate(x, batch_size=4, verbose=0)
    assert after_numpy < before
    model.fit(tf.data.Dataset.from_tensor_slices(x).batch(2), epochs=1, verbose=0, shuffle=False)
    assert model.evaluate(x, batch_size=4, verbose=0) < after_numpy
    predicted = model.predict(toy_batch(model.config), batch_size=2, verbose=0)
    assert isinstance(predicted, SequenceClassifierOutput) and list(predicted) == ["logits"]
    assert_outputs_close(model(toy_batch(model.config)).logits, predicted["logits"], label="predict")


def test_keras_fit_with_a_keras_loss_and_metrics():
    model = keras_model()
    x, y = toy_batch(model.config), np.array([0, 2, 1, 1])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    before = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert np.isclose(before["loss"], float(model(x, labels=y).loss), atol=1e-5)  # the same cross entropy
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    after = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"] and 0.0 <= after["accuracy"] <= 1.0


def test_keras_targets_feed_the_models_own_loss():
    model = keras_model("ForQuestionAnswering", num_labels=2)
    x = toy_batch(model.config)
    y = {"start_positions": np.array([1, 2, 40, 0]), "end_positions": np.array([3, 5, 6, 0])}
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    loss = model.evaluate(x, y, batch_size=4, verbose=0)
    assert np.isclose(loss, float(model(x, **y).loss), atol=1e-5)
    with pytest.raises(ValueError, match="sample_weight needs a loss given to compile"):
        model.evaluate(x, y, sample_weight=np.ones(4), batch_size=4, verbose=0)


def test_jit_compile_matches_eager_and_bad_ids_do_not_pass_silently():
    ours = keras_model("ForMaskedLM")
    inputs = numpy_inputs({**batch(ours.config), **labels_for("ForMaskedLM", ours.config, batch(ours.config))})
    compiled = tf.function(lambda x: ours(x, output_hidden_states=True, output_attentions=True), jit_compile=True)
    eager = ours(inputs, output_hidden_states=True, output_attentions=True)
    assert_outputs_close(eager, compiled(inputs), label="jit_compile")

    bad = {**inputs, "input_ids": inputs["input_ids"].copy()}
    bad["input_ids"][1, 2] = ours.config.vocab_size
    # XLA drops asserts and clamps gathers, so the bad row becomes NaN rather than another token's embedding.
    logits = compiled(bad).logits.numpy()
    assert np.isnan(logits[1]).all() and not np.isnan(logits[[0, 2, 3]]).any()
    graph = tf.function(lambda x: ours(x).logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_ids holds a token id outside the vocabulary \[0, 99\)"):
        graph(bad)


def test_bad_input_is_a_clear_error():
    ours = keras_model("ForMaskedLM")
    ids = np.array([[0, 5, 6, 7, 2]])
    cases = [
        ({"input_ids": np.array([[0, 5, 99, 2]])}, "token id 99, outside the vocabulary"),
        ({"input_ids": np.array([[0, -1, 2]])}, "token id -1, outside the vocabulary"),
        ({"input_ids": np.full((1, 39), 5)}, "sequence length 39 exceeds the 38 positions"),
        ({"input_ids": ids, "attention_mask": np.ones((1, 4))}, r"attention_mask has shape \[1, 4\]"),
        ({"input_ids": ids, "token_type_ids": np.full((1, 5), 2)}, "token_type_ids holds 2"),
        ({"input_ids": ids, "position_ids": np.full((1, 5), 40)}, "position_ids holds 40"),
        ({"input_ids": ids, "inputs_embeds": np.zeros((1, 5, 32), np.float32)}, "not both"),
        ({}, "give input_ids or inputs_embeds"),
        ({"input_ids": ids[0]}, "input_ids must have 2 dimensions"),
    ]
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            ours(**inputs)
    choice = zoo.TFRobertaForMultipleChoice(ours.config)
    with pytest.raises(ValueError, match="input_ids must have 3 dimensions"):
        choice(input_ids=ids)


def test_another_keras_backend_is_refused():
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    code = "import rosettazoo.roberta as zoo; zoo.TFRobertaModel"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "KERAS_BACKEND=tensorflow" in result.stderr, result.stderr[-2000:]


def test_activations_match_transformers():
    from transformers.activations import ACT2FN

    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    for name in ACTIVATIONS:
        expected = ACT2FN[name](torch.from_numpy(x)).numpy()
        assert np.allclose(activation(name)(tf.constant(x)).numpy(), expected, atol=1e-6, rtol=0), name
