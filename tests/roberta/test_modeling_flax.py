"""Flax RoBERTa and RoBERTa-PreLayerNorm against the oracle, transformers 4.57.6 (PyTorch classes).

Tiny models saved by transformers load in our Flax classes and agree on every output (logits, loss, all hidden
states, attentions, cache) within 1e-5; what we save loads back in transformers; jax.grad of our loss equals
torch autograd's; the call composes with jit, grad and pmap; bad input fails clearly.
"""

import os

os.environ.setdefault("USE_TF", "0")  # keep transformers from importing TensorFlow: slow and not needed here

import numpy as np
import pytest

pytest.importorskip("flax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax
import jax.numpy as jnp

import rosettazoo.roberta as zoo
from rosettazoo.common.layers_flax import ACTIVATIONS
from rosettazoo.common.modeling_flax import flatten_params
from rosettazoo.common.outputs import MaskedLMOutput
from rosettazoo.conversion import WeightsError, to_canonical
from tests.harness import Oracle, assert_outputs_close, call, head_inputs, padded_batch

FAMILIES = ("Roberta", "RobertaPreLayerNorm")
PREFIXES = {"Roberta": "roberta", "RobertaPreLayerNorm": "roberta_prelayernorm"}
TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 37, "max_position_embeddings": 40}
# Each head also carries one config variation, so every variation is covered without multiplying the cases.
HEADS = {
    "Model": {},
    "ForMaskedLM": {},
    "ForCausalLM": {"is_decoder": True, "tie_word_embeddings": False, "hidden_act": "gelu_new"},
    "ForSequenceClassification": {"num_labels": 3, "position_embedding_type": "relative_key"},
    "ForTokenClassification": {"num_labels": 3, "position_embedding_type": "relative_key_query"},
    "ForMultipleChoice": {"classifier_dropout": 0.3},
    "ForQuestionAnswering": {},
}
ORACLE = Oracle(TINY, weights_seed=None)  # transformers' own init


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("head", list(HEADS))
def test_head_matches_transformers(family, head, tmp_path):
    # One head reads pytorch_model.bin instead of safetensors.
    hf, ours = ORACLE.pair("flax", family, head, tmp_path, safe=head != "ForQuestionAnswering", **HEADS[head])
    inputs = head_inputs(head, hf.config, labels_seed=1)
    everything = {**inputs, "output_hidden_states": True, "output_attentions": True}
    expected, actual = call(hf, **everything), ours(**everything)
    assert_outputs_close(expected, actual, label=f"{family}{head} with attentions")
    assert len(actual.hidden_states) == TINY["num_hidden_layers"] + 1
    if head != "Model":
        assert np.isfinite(actual.loss)
    # Without attention weights both sides take their fused attention path; check tuple order as well.
    assert_outputs_close(call(hf, **inputs, return_dict=False), ours(**inputs, return_dict=False),
                         label=f"{family}{head} fused, as tuple")


@pytest.mark.parametrize("family", FAMILIES)
def test_model_inputs_match_transformers(family, tmp_path):
    hf, ours = ORACLE.pair("flax", family, "Model", tmp_path, type_vocab_size=2)
    input_ids, attention_mask = padded_batch(TINY["vocab_size"], 1)
    rng = np.random.default_rng(2)
    embeds = rng.normal(size=input_ids.shape + (TINY["hidden_size"],)).astype(np.float32)
    mask_3d = np.tril(np.ones((4, 9, 9), np.int64)) * attention_mask[:, None, :]
    cases = {
        "inputs_embeds": {"inputs_embeds": embeds, "attention_mask": attention_mask},
        "head_mask": {"input_ids": input_ids, "head_mask": np.array([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]],
                                                                     np.float32)},
        "token types and positions": {"input_ids": input_ids, "token_type_ids": rng.integers(0, 2, input_ids.shape),
                                      "position_ids": rng.integers(0, 40, input_ids.shape)},
        "3D attention mask": {"input_ids": input_ids, "attention_mask": mask_3d, "output_attentions": True},
        "no attention mask": {"input_ids": input_ids, "output_hidden_states": True},
    }
    for name, inputs in cases.items():
        assert_outputs_close(call(hf, **inputs), ours(**inputs), label=f"{family} {name}")


@pytest.mark.parametrize("problem_type, num_labels", [("regression", 1), ("multi_label_classification", 3)])
def test_sequence_classification_losses_match_transformers(problem_type, num_labels, tmp_path):
    # problem_type is left unset: both infer it from num_labels and the labels' dtype and record it.
    hf, ours = ORACLE.pair("flax", "Roberta", "ForSequenceClassification", tmp_path, num_labels=num_labels)
    inputs = head_inputs("Model", hf.config, labels_seed=1)
    rng = np.random.default_rng(3)
    inputs["labels"] = (rng.random((4, 3)) > 0.5).astype(np.float32) if num_labels > 1 else rng.random(4, np.float32)
    assert_outputs_close(call(hf, **inputs), ours(**inputs), label=problem_type)
    assert ours.config.problem_type == hf.config.problem_type == problem_type


def decoder_inputs(rng):
    # The batch of the head tests (full, right-padded, left-padded, fully masked rows) and an encoder output whose
    # mask has a full, a padded and a fully masked row.
    input_ids, attention_mask = padded_batch(TINY["vocab_size"], 1)
    return {
        "input_ids": input_ids, "attention_mask": attention_mask,
        "encoder_hidden_states": rng.normal(size=(4, 5, TINY["hidden_size"])).astype(np.float32),
        "encoder_attention_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]),
    }


@pytest.mark.parametrize("family, position_embedding_type", [
    ("Roberta", "absolute"), ("RobertaPreLayerNorm", "absolute"), ("Roberta", "relative_key_query")])
def test_decoder_with_cross_attention_and_cache(family, position_embedding_type, tmp_path):
    hf, ours = ORACLE.pair("flax", family, "ForCausalLM", tmp_path, is_decoder=True, add_cross_attention=True,
                           position_embedding_type=position_embedding_type)
    inputs = decoder_inputs(np.random.default_rng(4))
    full = {**inputs, "use_cache": True, "output_hidden_states": True, "output_attentions": True}
    actual = ours(**full)
    # transformers 4.57.6 places every query at the last key position whenever a cache is in use, which changes
    # a multi-token pass with relative positions; we number the queries correctly, which equals its no-cache pass.
    absolute = position_embedding_type == "absolute"
    if absolute:
        assert_outputs_close(call(hf, **full), actual, label=f"{family} full pass")
    else:
        no_cache = {**full, "use_cache": False}
        assert_outputs_close(call(hf, **no_cache), ours(**no_cache), label=f"{family} full pass")
    layer_cache = actual.past_key_values[0]
    assert len(actual.past_key_values) == 2 and len(layer_cache) == 4 and layer_cache[0].shape == (4, 4, 9, 8)

    # A prefix, then one token at a time, each step given the previous step's cache: as transformers with its own.
    ours_past = hf_past = None
    steps = []
    for start, stop in [(0, 7), (7, 8), (8, 9)]:
        step = {**inputs, "input_ids": inputs["input_ids"][:, start:stop],
                "attention_mask": inputs["attention_mask"][:, :stop], "use_cache": True}
        ours_step = ours(**step, past_key_values=ours_past)
        if absolute:
            hf_step = call(hf, **step, past_key_values=hf_past)
            assert_outputs_close(hf_step, ours_step, label=f"{family} cached step {start}:{stop}")
            hf_past = hf_step.past_key_values
        ours_past = ours_step.past_key_values
        steps.append(np.asarray(ours_step.logits))
    # The steps equal the full pass on the rows without left padding (left padding renumbers the absolute positions
    # of later steps, in transformers too).
    rows = [0, 1, 3]
    assert_outputs_close(np.asarray(actual.logits)[rows], np.concatenate(steps, axis=1)[rows],
                         label=f"{family} token by token")


@pytest.mark.parametrize("family, head", [("Roberta", "ForMaskedLM"), ("RobertaPreLayerNorm", "ForMaskedLM"),
                                          ("Roberta", "ForCausalLM")])
def test_our_save_loads_in_transformers(family, head, tmp_path):
    config = getattr(zoo, f"{family}Config")(**TINY, **HEADS[head])
    ours = getattr(zoo, f"Flax{family}{head}")(config, seed=3)
    ours.save_pretrained(tmp_path)
    with pytest.raises(FileExistsError):
        ours.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path, overwrite=True)
    hf, info = getattr(transformers, f"{family}{head}").from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = head_inputs(head, config, labels_seed=1)
    assert_outputs_close(call(hf.eval(), **inputs, output_hidden_states=True),
                         ours(**inputs, output_hidden_states=True), label=f"{family}{head} saved by Flax")


@pytest.mark.parametrize("family", FAMILIES)
def test_jitted_grad_matches_torch_autograd(family, tmp_path):
    hf, ours = ORACLE.pair("flax", family, "ForMaskedLM", tmp_path, type_vocab_size=2)
    inputs = head_inputs("ForMaskedLM", hf.config, labels_seed=1)
    inputs["token_type_ids"] = np.random.default_rng(5).integers(0, 2, inputs["input_ids"].shape)

    def loss(params):
        out = ours(**inputs, params=params, output_hidden_states=True)
        return out.loss, out

    (value, jitted), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(ours.params)
    assert isinstance(jitted, MaskedLMOutput)
    assert_outputs_close(ours(**inputs, output_hidden_states=True), jitted, label=f"{family} jit vs eager")

    hf.zero_grad()
    hf(**{name: torch.from_numpy(value) for name, value in inputs.items()}).loss.backward()
    expected = {name: p.grad.numpy() for name, p in hf.named_parameters()}
    actual = {}
    for path, grad in flatten_params(grads).items():
        name, transpose = to_canonical(path, "flax")
        actual[name] = np.asarray(grad).T if transpose else np.asarray(grad)
    # The tied word embeddings collect the gradient of both the input lookup and the output projection.
    assert_outputs_close(expected, actual, label=f"{family} gradients")
    assert f"{PREFIXES[family]}.embeddings.word_embeddings.weight" in actual

    stepped = jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, ours.params, grads)
    assert ours(**inputs, params=stepped).loss < value


def test_pmap_composes():
    model = zoo.FlaxRobertaForMaskedLM(zoo.RobertaConfig(**TINY), seed=1)
    input_ids, attention_mask = padded_batch(TINY["vocab_size"], 1)
    def stack(tree):  # one CPU device: every argument gets a leading device axis of 1
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[None], tree)

    pmapped = jax.pmap(lambda p, ids, mask: model(ids, mask, params=p).logits)(
        stack(model.params), stack(input_ids), stack(attention_mask))
    assert_outputs_close(model(input_ids, attention_mask).logits, pmapped[0], label="pmap")


def test_dropout_only_in_training():
    config = zoo.RobertaConfig(**TINY)
    model = zoo.FlaxRobertaForMaskedLM(config)
    ids, _ = padded_batch(config.vocab_size, config.pad_token_id)
    def rng(seed):  # an RBG key: threefry's random programs take seconds to compile op by op
        return jax.random.key(seed, impl="unsafe_rbg")

    first = model(ids, train=True, dropout_rng=rng(0)).logits
    again = model(ids, train=True, dropout_rng=rng(0)).logits
    other = model(ids, train=True, dropout_rng=rng(1)).logits
    evaluation = model(ids).logits
    assert np.array_equal(first, again)
    assert not np.allclose(first, other) and not np.allclose(first, evaluation)
    with pytest.raises(ValueError, match="dropout_rng"):
        model(ids, train=True)


def test_bfloat16_load_sets_compute_and_param_dtype(tmp_path):
    _, ours = ORACLE.pair("flax", "RobertaPreLayerNorm", "ForMaskedLM", tmp_path)
    half = zoo.FlaxRobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path, dtype="bfloat16")
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(half.params)} == {jnp.dtype(jnp.bfloat16)}
    ids, mask = padded_batch(TINY["vocab_size"], 1)
    logits = jax.jit(lambda params: half(ids, mask, params=params).logits)(half.params)  # one compile, not per op
    assert logits.dtype == jnp.bfloat16
    # bfloat16 keeps ~3 significant digits; the tiny model's logits are O(1).
    np.testing.assert_allclose(np.asarray(logits, np.float32), np.asarray(ours(ids, mask).logits), atol=0.1)
    # Saved as bfloat16, read back (as float32) unchanged.
    half.save_pretrained(tmp_path / "half")
    back = zoo.FlaxRobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "half")
    saved, loaded = flatten_params(half.params), flatten_params(back.params)
    assert sorted(saved) == sorted(loaded)
    for path, value in saved.items():
        assert np.array_equal(np.asarray(value, np.float32), np.asarray(loaded[path])), path


def test_missing_head_needs_allow_new_heads(tmp_path):
    ORACLE.hf_model("Roberta", "ForMaskedLM").save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="allow_new_heads"):
        zoo.FlaxRobertaForSequenceClassification.from_pretrained(tmp_path)
    model, info = zoo.FlaxRobertaForSequenceClassification.from_pretrained(
        tmp_path, allow_new_heads=True, output_loading_info=True, num_labels=4)
    assert sorted(info["missing_keys"]) == ["classifier.dense.bias", "classifier.dense.weight",
                                            "classifier.out_proj.bias", "classifier.out_proj.weight"]
    assert "lm_head.bias" in info["unexpected_keys"]
    assert model.params["classifier"]["out_proj"]["kernel"].shape == (32, 4)
    assert model.config.num_labels == 4


def test_activations_match_transformers():
    from transformers.activations import ACT2FN as HF_ACT2FN

    x = np.linspace(-6, 6, 101, dtype=np.float32)
    for name in ACTIVATIONS:
        expected = HF_ACT2FN[name](torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(np.asarray(ACTIVATIONS[name](jnp.asarray(x))), expected, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.fixture(scope="module")
def small_model():
    return zoo.FlaxRobertaModel(zoo.RobertaConfig(**{**TINY, "max_position_embeddings": 20}))


IDS = np.array([[0, 5, 6, 7, 2]])


@pytest.mark.parametrize("inputs, error, message", [
    ({"input_ids": np.array([[0, 5, 99, 2]])}, ValueError, r"token id 99, outside the vocabulary \[0, 99\)"),
    ({"input_ids": np.array([[0, 5, -1, 2]])}, ValueError, r"token id -1, outside the vocabulary"),
    # 20 positions, numbered from pad_token_id + 1 = 2: room for 18 tokens.
    ({"input_ids": np.full((1, 19), 5)}, ValueError, "sequence length 19 exceeds the 18 positions"),
    ({"input_ids": IDS, "attention_mask": np.ones((1, 4))}, ValueError, r"attention_mask has shape \[1, 4\]"),
    ({"input_ids": IDS, "attention_mask": np.ones(5)}, ValueError, "attention_mask must have 2 or 3 dimensions"),
    ({"input_ids": IDS[0]}, ValueError, "input_ids must have 2 dimensions"),
    ({"input_ids": IDS, "position_ids": IDS + 16}, ValueError, r"position_ids holds 23, outside \[0, 20\)"),
    ({"input_ids": IDS, "token_type_ids": IDS}, ValueError, r"token_type_ids holds 7, outside \[0, 2\)"),
    ({"input_ids": IDS, "head_mask": np.ones(3)}, ValueError, r"head_mask has shape \[3\]"),
    ({}, ValueError, "give input_ids or inputs_embeds"),
    ({"input_ids": IDS, "labels": IDS}, TypeError, "FlaxRobertaModel takes no labels"),
], ids=["id too large", "negative id", "too long", "mask shape", "mask rank", "ids rank", "position ids",
        "token types", "head mask", "no input", "labels on base model"])
def test_bad_input_raises_clearly(small_model, inputs, error, message):
    with pytest.raises(error, match=message):
        small_model(**inputs)


def test_out_of_range_ids_under_jit_poison_their_row(small_model):
    ids = np.full((3, 18), 5)  # the longest sequence that fits
    ids[0, 2], ids[1, 1] = 99, -1
    hidden = np.asarray(jax.jit(lambda ids: small_model(ids).last_hidden_state)(ids))
    assert np.isnan(hidden[0]).all() and np.isnan(hidden[1]).all()
    assert np.isfinite(hidden[2]).all()


def test_outputs_are_pytrees():
    out = MaskedLMOutput(logits=jnp.ones(2), attentions=(jnp.zeros(1),))
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, out)
    assert isinstance(doubled, MaskedLMOutput) and doubled.loss is None
    assert list(doubled.keys()) == ["logits", "attentions"] and float(doubled.logits[0]) == 2.0
