"""Flax OPT against transformers 4.57.6 (PyTorch), the oracle, for opt-125m's and opt-350m's layouts.

Models start as Hugging Face models with O(0.1) random weights (Hugging Face's own init, with zero biases and unit
norms, would hide a wrong bias or norm below the tolerance), saved with ``save_pretrained`` and loaded by our
``from_pretrained``; our saves load back in transformers. Every call uses the same batch shape where it can: JAX
compiles each operation once per shape.
"""

import json
import os

os.environ.setdefault("USE_TF", "0")  # keep transformers from importing TensorFlow: slow and not needed here

import numpy as np
import pytest

pytest.importorskip("flax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax
import jax.numpy as jnp

import rosettazoo.opt as zoo
from rosettazoo.common.cache import StaticCache
from rosettazoo.common.layers_flax import new_static_cache
from rosettazoo.common.modeling_flax import flatten_params
from rosettazoo.common.outputs import CausalLMOutputWithPast
from rosettazoo.conversion import WeightsError, to_canonical
from tests.harness import assert_outputs_close, assert_same, call, labels_for
from tests.opt.cases import HEADS, LAYOUTS, ORACLE, TINY, batch, step_by_step

torch.set_num_threads(1)




# ---------------------------------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_hf_checkpoint_matches_every_output(layout, head, tmp_path):
    # Question answering reads pytorch_model.bin, the others safetensors.
    safe = head != "ForQuestionAnswering"
    hf, ours = ORACLE.pair("flax", "OPT", head, tmp_path / "hf", **LAYOUTS[layout], safe=safe)
    inputs = batch(ours.config)
    label = f"{layout} FlaxOPT{head}"
    # transformers' SDPA path (the default) with labels and its cache, against our fused path, also as tuples;
    # then its eager path, which alone returns attention weights; fully masked rows included.
    with_labels = {**inputs, **labels_for(head, ours.config, inputs), "output_hidden_states": True}
    assert_same(hf, ours, label, **with_labels)
    assert_outputs_close(call(hf, **with_labels, return_dict=False), ours(**with_labels, return_dict=False),
                         label=f"{label} as tuples")
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
    hf, ours = ORACLE.pair("flax", "OPT", "ForCausalLM", tmp_path / "hf", **overrides)
    paths = flatten_params(ours.params)
    names = {to_canonical(path, "flax")[0] for path in paths}
    assert names == {name for name, _ in hf.named_parameters()}
    if not overrides.get("enable_bias", True):
        assert not any("norm" in path or path.endswith("bias") for path in paths), sorted(paths)
    inputs = batch(ours.config)
    assert_same(hf, ours, f"{overrides}", **inputs, **labels_for("ForCausalLM", ours.config, inputs),
                output_hidden_states=True)
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = transformers.OPTForCausalLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same(reloaded.eval(), ours, f"{overrides} saved by us", **inputs)


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_sharded_checkpoints(safe, tmp_path):
    hf = ORACLE.hf_model("OPT", "ForCausalLM", **LAYOUTS["opt-350m"])
    hf.save_pretrained(tmp_path / "hf", safe_serialization=safe, max_shard_size="20KB")
    index_name = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    assert len(set(json.loads((tmp_path / "hf" / index_name).read_text())["weight_map"].values())) >= 3
    ours = zoo.FlaxOPTForCausalLM.from_pretrained(tmp_path / "hf")
    inputs = batch(ours.config)
    assert_same(hf, ours, f"sharded {index_name}", **inputs, output_hidden_states=True)
    # Our sharded save loads in transformers, without the tied lm_head.
    ours.save_pretrained(tmp_path / "ours", max_shard_size="20KB")
    weight_map = json.loads((tmp_path / "ours" / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(weight_map.values())) >= 3 and "lm_head.weight" not in weight_map
    reloaded, info = transformers.OPTForCausalLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same(reloaded.eval(), ours, "our shards in transformers", **inputs)


def test_sequence_classification_pooling_and_problem_types(tmp_path):
    hf, ours = ORACLE.pair("flax", "OPT", "ForSequenceClassification", tmp_path / "hf")
    inputs = batch(ours.config)
    # The rightmost non-pad token of each row; a row of padding only pools position 0.
    out = ours(**inputs, output_hidden_states=True)
    scores = np.asarray(out.hidden_states[-1]) @ np.asarray(ours.params["score"]["kernel"])
    np.testing.assert_allclose(np.asarray(out.logits), scores[np.arange(4), [8, 5, 8, 0]], rtol=0, atol=1e-6)
    embeds = np.asarray(ours.params["model"]["decoder"]["embed_tokens"]["embedding"])[inputs["input_ids"]]
    assert_same(hf, ours, "inputs_embeds pool the last position", inputs_embeds=embeds,
                attention_mask=inputs["attention_mask"])
    rng = np.random.default_rng(3)
    cases = [(1, rng.normal(size=4).astype(np.float32), "regression"),
             (3, (rng.random((4, 3)) > 0.5).astype(np.float32), "multi_label_classification"),
             (3, np.array([0, 2, 1, 1]), "single_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("flax", "OPT", "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_same(hf, ours, problem_type, **inputs, labels=labels)
        assert ours.config.problem_type == hf.config.problem_type == problem_type
    hf, ours = ORACLE.pair("flax", "OPT", "ForSequenceClassification", tmp_path / "no-pad", pad_token_id=None)
    one_row = inputs["input_ids"][:1]
    # Jitted: one compilation of this new shape instead of one per operation.
    assert_outputs_close(call(hf, input_ids=one_row).logits.numpy(),
                         jax.jit(lambda ids: ours(input_ids=ids).logits)(one_row), label="no pad token, one row")
    with pytest.raises(ValueError, match="Cannot handle batch sizes > 1 if no padding token is defined."):
        ours(input_ids=inputs["input_ids"])


def test_inputs_embeds_position_ids_and_head_mask(tmp_path):
    hf, ours = ORACLE.pair("flax", "OPT", "ForCausalLM", tmp_path, **LAYOUTS["opt-350m"])
    inputs = batch(ours.config)
    mask = inputs["attention_mask"]
    embeds = np.asarray(ours.params["model"]["decoder"]["embed_tokens"]["embedding"])[inputs["input_ids"]]
    assert_same(hf, ours, "inputs_embeds", inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
    positions = np.broadcast_to(np.arange(-1, 8), (4, 9))
    assert_same(hf, ours, "position_ids", **inputs, position_ids=positions)
    assert_same(hf, ours, "no attention mask", input_ids=inputs["input_ids"])
    # transformers 4.57.6 checks the head mask and then ignores it; our PyTorch OPT applies it (as BART does),
    # and so do we.
    head_mask = np.array([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]], np.float32)
    pt = zoo.OPTForCausalLM.from_pretrained(tmp_path)
    masked = ours(**inputs, head_mask=head_mask, output_attentions=True)
    assert_outputs_close(call(pt, **inputs, head_mask=head_mask, output_attentions=True), masked,
                         label="head mask vs our PyTorch")
    assert np.all(np.asarray(masked.attentions[0])[:, 1] == 0) and np.all(np.asarray(masked.attentions[1])[:, 0] == 0)
    assert not np.allclose(np.asarray(masked.logits), np.asarray(ours(**inputs).logits))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_padded_rows_equal_the_unpadded_row(layout, tmp_path):
    _, ours = ORACLE.pair("flax", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    # One batch (of the shape every test uses): a full row, its first six tokens padded on the right, and its
    # first five padded on the left. Causal attention makes the full row's first logits those of its prefixes,
    # and positions come from the mask, so the padded rows give them too.
    tokens = np.arange(10, 19)
    ids = np.stack([tokens, np.r_[tokens[:6], [1] * 3], np.r_[[1] * 4, tokens[:5]], tokens[::-1]])
    mask = (ids != 1).astype(np.int64)
    logits = np.asarray(ours(input_ids=ids, attention_mask=mask).logits)
    assert_outputs_close(logits[0, :5], logits[2, 4:], label=f"{layout}: left-padded row")
    assert_outputs_close(logits[0, :6], logits[1, :6], label=f"{layout}: right-padded row")


# ---------------------------------------------------------------------------------------------------- caches


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dynamic_cache_token_by_token_equals_the_full_pass(layout, tmp_path):
    hf, ours = ORACLE.pair("flax", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    inputs = batch(ours.config)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    full = ours(**inputs)  # config.use_cache: the cache comes back, as in transformers
    assert all(len(layer) == 2 for layer in full.past_key_values) and full.past_key_values[0][0].shape == (4, 4, 9, 8)
    assert ours(**inputs, use_cache=False).past_key_values is None
    assert_same(hf, ours, f"{layout} full pass with cache", **inputs)
    # Six tokens, then one at a time (each step compiles anew: its cache is longer).
    logits, cache = step_by_step(ours, ids, mask, 6)
    real = mask == 1  # a padding query sees no key: its (uniform) attention spans whatever keys the call has
    assert_outputs_close(np.asarray(full.logits)[real], logits[real], label=f"{layout}: token by token vs full pass")
    for step_kv, full_kv in zip(cache, full.past_key_values, strict=True):  # keys and values of real tokens
        assert_outputs_close([np.swapaxes(t, 1, 2)[real] for t in full_kv],
                             [np.swapaxes(t, 1, 2)[real] for t in step_kv], label=f"{layout}: cache")
    hf_logits, hf_cache = step_by_step(hf, ids, mask, 6)
    assert_outputs_close(hf_logits, logits, label=f"{layout}: step by step vs transformers")
    assert_outputs_close(hf_cache, cache, label=f"{layout}: cache vs transformers")
    # Our cache, given to transformers, continues as ours does.
    legacy = tuple(tuple(torch.from_numpy(np.array(t[:, :, :8])) for t in layer) for layer in cache)
    theirs = call(hf, input_ids=ids[:, 8:], attention_mask=mask,
                  past_key_values=transformers.DynamicCache.from_legacy_cache(legacy))
    assert_outputs_close(theirs.logits.numpy(), logits[:, 8:], label=f"{layout}: our cache in transformers")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_static_cache_under_jit_equals_the_full_pass(layout, tmp_path):
    hf, ours = ORACLE.pair("flax", "OPT", "ForCausalLM", tmp_path, **LAYOUTS[layout])
    inputs = batch(ours.config)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    length, slots = ids.shape[1], ids.shape[1] + 3  # three slots stay unwritten
    full = call(hf, **inputs)
    slot_mask = np.concatenate([mask, np.ones((4, 3), mask.dtype)], axis=1)  # future slots may say anything
    traces = []

    @jax.jit
    def step(params, input_ids, attention_mask, cache):
        traces.append(1)
        out = ours(input_ids, attention_mask, params=params, past_key_values=cache)
        return out.logits, out.past_key_values

    cache = ours.init_cache(4, slots)
    assert isinstance(cache, StaticCache) and cache.max_length == slots and int(cache.index) == 0
    assert cache.layers[0][0].shape == (4, 4, slots, 8) and len(cache.layers) == 2
    logits = []
    for t in range(length):
        step_logits, cache = step(ours.params, ids[:, t:t + 1], slot_mask, cache)
        logits.append(np.asarray(step_logits))
    assert len(traces) == 1  # the same shapes every step, the index a traced leaf: one compilation
    assert isinstance(cache, StaticCache) and int(cache.index) == length
    real = mask == 1  # padding queries attend to nothing: their uniform average spans different keys
    assert_outputs_close(full.logits.numpy()[real], np.concatenate(logits, axis=1)[real],
                         label=f"{layout}: static cache under jit vs transformers' full pass")
    for (key, value), (full_key, full_value) in zip(cache.to_legacy_cache(), full.past_key_values.to_legacy_cache(),
                                                    strict=True):
        for ours_kv, theirs_kv in ((key, full_key), (value, full_value)):
            assert_outputs_close(theirs_kv.numpy().transpose(0, 2, 1, 3)[real],
                                 np.asarray(ours_kv).transpose(0, 2, 1, 3)[real], label="static keys and values")
    assert np.all(np.asarray(cache.layers[0][0])[:, :, length:] == 0)  # unwritten slots stay empty
    # A prompt of five tokens in one eager call, then the rest one by one under the same compiled step.
    prompt = ours(input_ids=ids[:, :5], attention_mask=slot_mask, past_key_values=ours.init_cache(4, slots))
    cache, logits = prompt.past_key_values, [np.asarray(prompt.logits)]
    for t in range(5, length):
        step_logits, cache = step(ours.params, ids[:, t:t + 1], slot_mask, cache)
        logits.append(np.asarray(step_logits))
    assert len(traces) == 1
    assert_outputs_close(full.logits.numpy()[real], np.concatenate(logits, axis=1)[real],
                         label=f"{layout}: prompt then steps vs transformers' full pass")
    # Past the last slot the compiled step cannot raise: its logits turn NaN instead of overwriting slots.
    cache = StaticCache(cache.layers, jnp.asarray(slots, jnp.int32))
    assert np.isnan(np.asarray(step(ours.params, ids[:, :1], slot_mask, cache)[0])).all()


def test_static_cache_errors():
    ours = zoo.FlaxOPTForCausalLM(zoo.OPTConfig(**TINY))
    with pytest.raises(ValueError, match="a cache of 41 slots exceeds the 40 positions"):
        ours.init_cache(4, 41)
    cache = ours.init_cache(4, 12)
    ids = np.full((4, 5), 5)
    with pytest.raises(ValueError, match=r"with a StaticCache, attention_mask must cover all 12 cache slots"):
        ours(input_ids=ids, attention_mask=np.ones((4, 5)), past_key_values=cache)
    cache = ours(input_ids=ids, past_key_values=cache).past_key_values  # no mask: every slot kept
    assert int(cache.index) == 5
    with pytest.raises(ValueError, match="the StaticCache has 12 slots; writing 8 more would overflow it"):
        ours(input_ids=np.full((4, 8), 5), past_key_values=cache)
    # init_cache refuses such a cache; one built by hand still meets the step's own position check.
    oversized = new_static_cache(2, 4, 4, 48, 8, jnp.float32)
    with pytest.raises(ValueError, match="sequence length 41 exceeds the 40 positions"):
        ours(input_ids=np.full((4, 1), 5), past_key_values=StaticCache(oversized.layers, 40))


# ---------------------------------------------------------------------------------------------------- training


def test_jitted_loss_gradient_matches_torch_autograd(tmp_path):
    hf, ours = ORACLE.pair("flax", "OPT", "ForCausalLM", tmp_path, **LAYOUTS["opt-350m"], dropout=0.0, attention_dropout=0.0)
    # transformers' eager attention is the reference: torch's SDPA kernel differs in the gradient through a
    # fully masked query (the left-padded row's last padding position predicts its first token), by ~1e-2.
    hf.set_attn_implementation("eager")
    inputs = batch(ours.config)
    inputs.update(labels_for("ForCausalLM", ours.config, inputs))

    def loss(params):
        out = ours(**inputs, params=params, train=True, dropout_rng=jax.random.key(0, impl="unsafe_rbg"))
        return out.loss, out

    (value, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(ours.params)
    assert isinstance(out, CausalLMOutputWithPast)
    hf.train()
    hf.zero_grad()
    expected_loss = hf(**{name: torch.from_numpy(v) for name, v in inputs.items()}).loss
    expected_loss.backward()
    assert abs(float(value) - expected_loss.item()) <= 1e-5
    expected = {name: p.grad.numpy() for name, p in hf.named_parameters()}
    actual = {}
    for path, grad in flatten_params(grads).items():
        name, transpose = to_canonical(path, "flax")
        actual[name] = np.asarray(grad).T if transpose else np.asarray(grad)
    # The tied token embeddings collect the gradient of both the input lookup and the output projection.
    assert_outputs_close(expected, actual, label="gradients")
    stepped = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, ours.params, grads)
    assert ours(**inputs, params=stepped).loss < value


def test_dropout_and_layerdrop_only_in_training():
    config = zoo.OPTConfig(**TINY)
    ours = zoo.FlaxOPTForCausalLM(config)
    ids = batch(config)["input_ids"]

    def rng(seed):  # an RBG key: threefry's random programs take seconds to compile op by op
        return jax.random.key(seed, impl="unsafe_rbg")

    first = ours(ids, train=True, dropout_rng=rng(0)).logits
    assert np.array_equal(first, ours(ids, train=True, dropout_rng=rng(0)).logits)
    assert not np.allclose(first, ours(ids, train=True, dropout_rng=rng(1)).logits)
    assert not np.allclose(first, ours(ids).logits)
    with pytest.raises(ValueError, match="dropout_rng"):
        ours(ids, train=True)
    # layerdrop=1 skips every layer in training: the embeddings go straight to the final layer norm.
    dropped = zoo.FlaxOPTModel(zoo.OPTConfig(**TINY, layerdrop=1.0, dropout=0.0))
    out = dropped(ids, train=True, dropout_rng=rng(0), output_hidden_states=True)
    assert all(np.array_equal(out.hidden_states[0], h) for h in out.hidden_states[1:-1])
    assert not np.allclose(dropped(ids).last_hidden_state, out.last_hidden_state)


# ---------------------------------------------------------------------------------------------------- the model object


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fresh_model_tree_and_init(layout):
    config = zoo.OPTConfig(**TINY, **LAYOUTS[layout])
    ours = zoo.FlaxOPTForCausalLM(config, seed=1)
    theirs = transformers.OPTForCausalLM(transformers.OPTConfig(**TINY, **LAYOUTS[layout]))
    flat = flatten_params(ours.params)
    assert {to_canonical(path, "flax")[0] for path in flat} == {name for name, _ in theirs.named_parameters()}
    assert "model.decoder.layers.1.self_attn.q_proj.kernel" in flat
    assert (layout == "opt-350m") == ("model.decoder.project_in.kernel" in flat)
    assert (layout == "opt-350m") != ("model.decoder.final_layer_norm.scale" in flat)
    assert flat["model.decoder.embed_positions.embedding"].shape == (42, 32)
    assert np.all(np.asarray(flat["model.decoder.embed_tokens.embedding"])[config.pad_token_id] == 0)
    for path, value in flat.items():
        value = np.asarray(value)
        if path.endswith("scale"):
            assert np.all(value == 1), path
        elif path.endswith("bias"):
            assert np.all(value == 0), path
        else:
            assert abs(value.std() - config.init_std) < 0.006, path
    assert sorted(zoo.FlaxOPTModel(config).params) == ["decoder"]


def test_new_heads_and_bfloat16(tmp_path):
    ORACLE.hf_model("OPT", "ForCausalLM").save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="allow_new_heads.*score.weight"):
        zoo.FlaxOPTForSequenceClassification.from_pretrained(tmp_path)
    _, info = zoo.FlaxOPTForSequenceClassification.from_pretrained(tmp_path, allow_new_heads=True,
                                                                   output_loading_info=True)
    assert info["missing_keys"] == ["score.weight"]
    full = zoo.FlaxOPTForCausalLM.from_pretrained(tmp_path)
    half = zoo.FlaxOPTForCausalLM.from_pretrained(tmp_path, dtype="bfloat16")
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(half.params)} == {jnp.dtype(jnp.bfloat16)}
    assert half.init_cache(1, 4).layers[0][0].dtype == jnp.bfloat16
    inputs = batch(half.config)
    logits = jax.jit(lambda params: half(**inputs, params=params).logits)(half.params)  # one compile, not per op
    assert logits.dtype == jnp.bfloat16
    # bfloat16 keeps ~3 significant digits; the tiny model's logits are a few units.
    np.testing.assert_allclose(np.asarray(logits, np.float32), np.asarray(full(**inputs).logits), atol=0.25)


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_model():
    return zoo.FlaxOPTForCausalLM(zoo.OPTConfig(**TINY))


IDS = np.array([[2, 5, 6, 7, 8]])
PAST = tuple((np.zeros((1, 4, 38, 8), np.float32),) * 2 for _ in range(2))


@pytest.mark.parametrize("inputs, error, message", [
    ({"input_ids": np.array([[2, 5, 99]])}, ValueError, r"token id 99, outside the vocabulary \[0, 99\)"),
    ({"input_ids": np.array([[2, -1, 5]])}, ValueError, "token id -1, outside the vocabulary"),
    ({"input_ids": np.full((1, 41), 5)}, ValueError, "sequence length 41 exceeds the 40 positions"),
    ({"input_ids": IDS[:, :3], "past_key_values": PAST}, ValueError, "sequence length 41 exceeds the 40 positions"),
    ({"input_ids": IDS, "attention_mask": np.ones((1, 4))}, ValueError, r"attention_mask has shape \[1, 4\]"),
    ({"input_ids": IDS[:, :1], "past_key_values": PAST, "attention_mask": np.ones((1, 1))}, ValueError,
     r"attention_mask has shape \[1, 1\] but must have shape \[1, 39\]"),
    ({"input_ids": IDS, "attention_mask": np.ones((1, 5, 5))}, ValueError, "attention_mask must have 2 dimensions"),
    ({"input_ids": IDS, "position_ids": np.array([[0, 1, 2, 3, 40]])}, ValueError, "position_ids holds 40"),
    ({"input_ids": IDS, "position_ids": np.array([[-2, 1, 2, 3, 4]])}, ValueError, "position_ids holds -2"),
    ({"input_ids": IDS, "position_ids": np.array([[0, 1]])}, ValueError, r"position_ids has shape \[1, 2\]"),
    ({"input_ids": IDS, "head_mask": np.ones((3, 4))}, ValueError, r"head_mask has shape \[3, 4\]"),
    ({"input_ids": IDS, "inputs_embeds": np.zeros((1, 5, 32))}, ValueError, "not both"),
    ({}, ValueError, "give input_ids or inputs_embeds"),
    ({"input_ids": IDS[0]}, ValueError, "input_ids must have 2 dimensions"),
    ({"input_ids": IDS[:, :1], "past_key_values": PAST[:1]}, ValueError, "past_key_values holds 1 layers"),
    ({"input_ids": np.concatenate([IDS, IDS])[:, :1], "past_key_values": PAST}, ValueError, r"batch=2"),
    ({"input_ids": IDS, "start_positions": np.array([1])}, TypeError, "FlaxOPTForCausalLM takes no start_positions"),
], ids=["id too large", "negative id", "too long", "too long with cache", "mask shape", "mask shape with cache",
        "mask rank", "position too large", "position too small", "position shape", "head mask", "ids and embeds",
        "no input", "ids rank", "cache layers", "cache batch", "wrong labels"])
def test_bad_input_raises_clearly(small_model, inputs, error, message):
    with pytest.raises(error, match=message):
        small_model(**inputs)


def test_out_of_range_ids_under_jit_poison_their_row(small_model):
    ids = np.full((3, 9), 5)
    ids[0, 2], ids[1, 1] = 99, -1
    logits = np.asarray(jax.jit(lambda ids: small_model(ids).logits)(ids))
    assert np.isnan(logits[0, 2:]).all() and np.isnan(logits[1, 1:]).all()
    assert np.isfinite(logits[2]).all()
