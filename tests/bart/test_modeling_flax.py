"""Flax BART against transformers 4.57.6 (PyTorch classes), the oracle, in both directions.

Every model starts as a Hugging Face model with weights (and ``final_logits_bias``) drawn at O(0.1) scale, saved
with ``save_pretrained`` (once per module) and loaded by our ``from_pretrained``. transformers' SDPA attention
returns no attention weights and ignores head masks, so comparisons that need them use its eager attention.
XLA compiles per shape: the tests share a few batch shapes (encoder [4, 9], decoder [4, 6]) to stay fast.
"""

import os

os.environ.setdefault("USE_TF", "0")  # keep transformers from importing TensorFlow: slow and not needed here

import numpy as np
import pytest

pytest.importorskip("flax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import jax
import jax.numpy as jnp

import rosettazoo.bart as zoo
from rosettazoo.bart.modeling_flax import _last_eos_states, shift_tokens_right
from rosettazoo.common.cache import StaticCache
from rosettazoo.common.modeling_flax import flatten_params
from rosettazoo.common.outputs import BaseModelOutput, Seq2SeqLMOutput
from rosettazoo.conversion import WeightsError, export_weights
from tests.bart.cases import (
    ASYMMETRIC,
    CONFIG,
    EOS,
    HEADS,
    ORACLE,
    PAD,
    START,
    TINY,
    decoder_batch,
    eager,
    encoder_batch,
)
from tests.harness import assert_outputs_close, assert_same, call, labels_for


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``saved(head, **overrides)`` -> (transformers model, the folder it saved itself to), made once per module.

    ``saved.loaded`` keeps our model loaded from each folder (tests do not change them), as ``cached_pair`` returns it.
    """
    made = {}

    def get(head: str, **overrides):
        key = (head, tuple(sorted(overrides.items())))
        if key not in made:
            hf = ORACLE.hf_model("Bart", head, **overrides)
            folder = tmp_path_factory.mktemp(f"Bart{head}")
            hf.save_pretrained(folder, safe_serialization=head != "ForQuestionAnswering")  # one reads the .bin
            made[key] = hf, folder
        return made[key]

    get.loaded = {}
    return get


def cached_pair(saved, head: str, **overrides):
    hf, folder = saved(head, **overrides)
    if folder not in saved.loaded:
        saved.loaded[folder] = getattr(zoo, f"FlaxBart{head}").from_pretrained(folder)
    return hf, saved.loaded[folder]


def compiled(function, *args):
    """``jax.jit(function)`` compiled for ``args`` with XLA's backend optimizations off: the tests check numbers,
    and a big graph then compiles in half the time."""
    options = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    return jax.jit(function).lower(*args).compile(compiler_options=options)


@pytest.mark.parametrize("head", HEADS)
def test_hf_checkpoint_matches_every_output(head, saved, tmp_path):
    hf, ours = cached_pair(saved, head)
    inputs, label = encoder_batch(), f"FlaxBart{head}"
    # The fused paths, with labels (no cache) and without (the cache comes back), also as transformers' tuples.
    assert_same(hf, ours, label, **inputs, **labels_for(head, CONFIG, inputs), output_hidden_states=True)
    assert_same(hf, ours, f"{label} tuple", **inputs, return_dict=False)
    # Eager attention: every attention tensor (self, cross, encoder).
    assert_same(eager(head, saved(head)[1]), ours, f"{label} eager", **inputs, output_attentions=True)
    if head in ("Model", "ForConditionalGeneration", "ForQuestionAnswering"):
        assert_same(hf, ours, f"{label} decoder inputs", **inputs, **decoder_batch(), output_hidden_states=True)
    # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
    ours.save_pretrained(tmp_path)
    reloaded, info = getattr(transformers, f"Bart{head}").from_pretrained(tmp_path, output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same(reloaded.eval(), ours, f"{label} saved by us", **inputs, **labels_for(head, CONFIG, inputs))


def test_conditional_generation_labels_and_decoder_inputs(saved):
    hf, ours = cached_pair(saved, "ForConditionalGeneration")
    inputs, labels = encoder_batch(), labels_for("ForConditionalGeneration", CONFIG, encoder_batch())["labels"]
    out = ours(**inputs, labels=labels)
    assert isinstance(out, Seq2SeqLMOutput) and out.past_key_values is None  # labels: no cache, as transformers
    shifted = np.asarray(shift_tokens_right(labels, PAD, START))
    assert (shifted[:, 0] == START).all() and shifted[1, -1] == PAD
    assert (shifted[:, 1:] == np.where(labels[:, :-1] == -100, PAD, labels[:, :-1])).all()
    assert_outputs_close(ours(**inputs, decoder_input_ids=shifted).logits, out.logits, label="shifted")
    assert_same(hf, ours, "labels and decoder inputs", **inputs, labels=labels, **decoder_batch())
    # The loss is the mean cross entropy over the labels that are not -100.
    logits, flat = np.asarray(out.logits, np.float64).reshape(-1, 99), labels.reshape(-1)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    manual = -log_probs[flat != -100, flat[flat != -100]].mean()
    assert abs(manual - float(out.loss)) < 1e-5


def jitted_static_steps(model, inputs: dict, encoded):
    """One decoder token at a time under jax.jit with a StaticCache of 8 slots; returns (logits of the steps, the
    final cache, the jitted step function, how many times it was traced)."""
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    traces = []

    @jax.jit
    def step(params, cache, token, slot_mask):
        traces.append(token.shape)  # runs only while tracing
        out = model(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], decoder_input_ids=token,
                    decoder_attention_mask=slot_mask, past_key_values=cache, params=params)
        return out.logits, out.past_key_values

    cache = model.init_cache(ids.shape[0], 8, encoded)
    # The decoder mask covers every slot: padding 0, the two slots never written 1 (ignored as future slots).
    slot_mask = np.concatenate([mask, np.ones((ids.shape[0], 2), np.int64)], axis=1)
    steps = []
    for t in range(ids.shape[1]):
        logits, cache = step(model.params, cache, ids[:, t:t + 1], slot_mask)
        steps.append(np.asarray(logits))
    real = mask.astype(bool)[..., None]
    return np.concatenate(steps, axis=1) * real, cache, lambda token: step(model.params, cache, token, slot_mask), traces


def real_slots(cache, mask):
    """A legacy cache with the self-attention keys and values of padded decoder positions zeroed: a padded query
    attends differently in a full pass and step by step, so later layers' keys there differ (and are never read)."""
    keep = np.asarray(mask, np.float32)[:, None, :, None]
    return tuple((np.asarray(k) * keep, np.asarray(v) * keep, *cross) for k, v, *cross in cache)


def test_asymmetric_stacks_with_head_masks_and_scaled_embeddings(saved):
    overrides = {**ASYMMETRIC, "scale_embedding": True}
    hf, ours = cached_pair(saved, "ForConditionalGeneration", **overrides)
    assert set(ours.params["model"]["encoder"]["layers"]) == {"0", "1"}
    assert set(ours.params["model"]["decoder"]["layers"]) == {"0"}
    assert ours.params["model"]["decoder"]["layers"]["0"]["fc1"]["kernel"].shape == (32, 23)
    inputs = {**encoder_batch(), **decoder_batch()}
    assert_same(hf, ours, "asymmetric", **inputs, output_hidden_states=True)
    head_masks = {"head_mask": np.array([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]], np.float32),
                  "decoder_head_mask": np.array([[0.0, 1.0]], np.float32),
                  "cross_attn_head_mask": np.array([[1.0, 0.5]], np.float32)}
    assert_same(eager("ForConditionalGeneration", saved("ForConditionalGeneration", **overrides)[1]), ours,
                "asymmetric eager", **inputs,
                **head_masks, output_attentions=True, output_hidden_states=True)
    encoded = ours.encode(inputs["input_ids"], inputs["attention_mask"])
    steps, _, _, traces = jitted_static_steps(ours, inputs, encoded)
    full = ours(**inputs).logits * inputs["decoder_attention_mask"][..., None]
    assert_outputs_close(full, steps, label="asymmetric: one token at a time vs full pass")
    assert len(traces) == 1


def test_head_masks_and_input_embeddings(saved):
    hf, ours = cached_pair(saved, "Model")
    reference = eager("Model", saved("Model")[1])
    inputs = {**encoder_batch(), **decoder_batch()}
    masks = {"head_mask": np.array([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]], np.float32),
             "decoder_head_mask": np.array([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.3, 1.0]], np.float32),
             "cross_attn_head_mask": np.array([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]], np.float32)}
    # transformers ignores head masks under SDPA: its eager model is the reference.
    assert_same(reference, ours, "head masks", **inputs, **masks)
    table = np.asarray(ours.params["shared"]["embedding"])  # the bare model holds no "model." prefix
    embeds = {"inputs_embeds": table[inputs["input_ids"]] * 0.7,
              "decoder_inputs_embeds": table[inputs["decoder_input_ids"]] * 1.3}
    assert_same(hf, ours, "embeddings", attention_mask=inputs["attention_mask"],
                decoder_attention_mask=inputs["decoder_attention_mask"], **embeds)


def test_encoder_outputs_skip_the_encoder(saved):
    _, ours = cached_pair(saved, "ForConditionalGeneration")
    inputs = {**encoder_batch(), **decoder_batch()}
    full = ours(**inputs, output_hidden_states=True)
    encoded = ours.encode(inputs["input_ids"], inputs["attention_mask"], output_hidden_states=True)
    assert isinstance(encoded, BaseModelOutput) and len(encoded.hidden_states) == 3
    assert_outputs_close(full.encoder_last_hidden_state, encoded.last_hidden_state, label="encode")
    decoder_only = {k: v for k, v in inputs.items() if k != "input_ids"}
    for given in (encoded, encoded.to_tuple(), encoded.last_hidden_state):
        out = ours(**decoder_only, encoder_outputs=given)
        assert_outputs_close(full.logits, out.logits, label="encoder_outputs")
    # The encoder is skipped: a wrong input_ids beside encoder_outputs changes nothing.
    out = ours(**inputs | {"input_ids": inputs["input_ids"] * 0}, encoder_outputs=encoded)
    assert_outputs_close(full.logits, out.logits, label="encoder skipped")
    assert isinstance(ours.encode(inputs["input_ids"], return_dict=False), tuple)


def test_dynamic_cache_steps_equal_the_full_pass_and_transformers(saved):
    hf, ours = cached_pair(saved, "ForConditionalGeneration")
    inputs = {**encoder_batch(), **decoder_batch()}
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    full = ours(**inputs, use_cache=True)
    # The cache: self and cross keys and values per layer, equal to transformers' legacy cache.
    assert all(len(layer) == 4 for layer in full.past_key_values)
    assert full.past_key_values[0][0].shape == (4, 4, 6, 8) and full.past_key_values[0][2].shape == (4, 4, 9, 8)
    hf_cache = call(hf, **inputs, use_cache=True).past_key_values.to_legacy_cache()
    assert_outputs_close(hf_cache, full.past_key_values, label="cache vs transformers")
    # The encoder once, then a prefix of 5 tokens and the last token (token by token from the start: the static
    # cache test), each call given the previous cache: the full pass's logits at the real positions, and
    # transformers' steps.
    encoded = ours.encode(inputs["input_ids"], inputs["attention_mask"])
    common = {"attention_mask": inputs["attention_mask"], "use_cache": True}
    past, hf_past, steps = None, None, []
    for start, stop in [(0, 5), (5, 6)]:
        step = {**common, "decoder_input_ids": ids[:, start:stop], "decoder_attention_mask": mask[:, :stop]}
        out = ours(**step, encoder_outputs=encoded, past_key_values=past)
        if start == 5:
            # transformers' cache continues in ours (read before transformers extends it in place).
            from_hf = ours(**step, input_ids=inputs["input_ids"], past_key_values=hf_past.to_legacy_cache())
        hf_out = call(hf, **step, input_ids=inputs["input_ids"], past_key_values=hf_past)
        assert_outputs_close(hf_out.logits, out.logits, label=f"step {start}:{stop} vs transformers")
        past, hf_past = out.past_key_values, hf_out.past_key_values
        steps.append(np.asarray(out.logits))
    assert_outputs_close(steps[1], from_hf.logits, label="continuing transformers' cache")
    real = mask.astype(bool)[..., None]  # a left-padded row's pad queries see no key; the full pass then sees all
    assert_outputs_close(np.asarray(full.logits) * real, np.concatenate(steps, axis=1) * real,
                         label="cached steps vs full pass")
    assert_outputs_close(real_slots(full.past_key_values, mask), real_slots(past, mask), label="stepped cache")


def test_static_cache_under_jit_compiles_once_and_equals_the_full_pass(saved):
    _, ours = cached_pair(saved, "ForConditionalGeneration")
    inputs = {**encoder_batch(), **decoder_batch()}
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    encoded = ours.encode(inputs["input_ids"], inputs["attention_mask"])
    full = ours(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], decoder_input_ids=ids,
                decoder_attention_mask=mask)
    fresh = ours.init_cache(4, 8, encoded)
    assert isinstance(fresh, StaticCache) and fresh.max_length == 8 and int(fresh.index) == 0
    assert all(len(layer) == 4 and layer[0].shape == (4, 4, 8, 8) for layer in fresh.layers)
    assert_outputs_close(full.past_key_values[0][2:], fresh.layers[0][2:], label="cross keys and values")
    steps, cache, step, traces = jitted_static_steps(ours, inputs, encoded)
    real = mask.astype(bool)[..., None]
    assert_outputs_close(np.asarray(full.logits) * real, steps, label="jitted static-cache steps vs full pass")
    assert isinstance(cache, StaticCache) and int(cache.index) == 6
    assert_outputs_close(real_slots(full.past_key_values, mask), real_slots(cache.to_legacy_cache(), mask),
                         label="static vs dynamic cache")
    # Under jit the ids are not known: an out-of-range id poisons its row instead of being clamped silently.
    logits, _ = step(np.array([[5], [99], [5], [-1]]))
    logits = np.asarray(logits)
    assert np.isfinite(logits[[0, 2]]).all() and np.isnan(logits[[1, 3]]).all()
    assert len(traces) == 1, "every step must reuse the one compilation"
    # Eagerly, several tokens in one call: the same.
    slot_mask = np.concatenate([mask, np.ones((4, 2), np.int64)], axis=1)
    out = ours(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], decoder_input_ids=ids,
               decoder_attention_mask=slot_mask, past_key_values=fresh)
    assert_outputs_close(np.asarray(full.logits) * real, np.asarray(out.logits) * real, label="one eager chunk")
    assert int(out.past_key_values.index) == 6


def test_causal_lm_with_and_without_cross_attention_and_caches(saved):
    hf, ours = cached_pair(saved, "ForCausalLM")
    hf_eager = eager("ForCausalLM", saved("ForCausalLM")[1])
    ids, mask = decoder_batch().values()
    # Encoder states of the encoder batch's shape and mask (full, right- and left-padded, fully masked rows): the
    # shapes the seq2seq tests compiled.
    cross = {"encoder_hidden_states": np.random.default_rng(5).normal(size=(4, 9, 32)).astype(np.float32),
             "encoder_attention_mask": encoder_batch()["attention_mask"]}
    slot_mask = np.concatenate([mask, np.ones((4, 2), np.int64)], axis=1)
    for extra in ({}, cross):
        label = "causal LM" + (" with cross-attention" if extra else "")
        assert_same(hf, ours, label, input_ids=ids, attention_mask=mask, **extra, output_hidden_states=True)
        assert_same(hf_eager, ours, f"{label}, eager", input_ids=ids, attention_mask=mask, **extra,
                    output_attentions=True)
        # The static cache (cross-attention keys and values stored once when given), filled in one chunk.
        static = ours.init_cache(4, 8, extra.get("encoder_hidden_states"))
        assert all(len(layer) == (4 if extra else 2) for layer in static.layers)
        out = ours(input_ids=ids, attention_mask=slot_mask, **extra, past_key_values=static)
        real = mask[..., None]  # a padded query sees no key: uniform over 8 slots here, over 6 keys without cache
        assert_outputs_close(ours(input_ids=ids, attention_mask=mask, **extra).logits * real, out.logits * real,
                             label=f"{label}, static cache")
        assert int(out.past_key_values.index) == 6
    # The dynamic cache: a prefix, then the last token, as transformers with its own cache (the seq2seq tests'
    # shapes; token by token from the start: the static cache test).
    full = ours(input_ids=ids, attention_mask=mask, **cross)
    past, hf_past, steps = None, None, []
    for start, stop in [(0, 5), (5, 6)]:
        step = {"input_ids": ids[:, start:stop], "attention_mask": mask[:, :stop], **cross, "use_cache": True}
        out, hf_out = ours(**step, past_key_values=past), call(hf, **step, past_key_values=hf_past)
        assert_outputs_close(hf_out.logits, out.logits, label=f"causal LM step {start}:{stop}")
        past, hf_past = out.past_key_values, hf_out.past_key_values
        steps.append(np.asarray(out.logits))
    real = mask.astype(bool)[..., None]
    assert_outputs_close(np.asarray(full.logits) * real, np.concatenate(steps, axis=1) * real,
                         label="causal LM token by token vs full pass")
    assert_outputs_close(hf_past.to_legacy_cache(), past, label="causal LM cache vs transformers")
    assert all(len(layer) == 4 for layer in past)


def test_jitted_grad_of_the_loss_matches_torch_autograd(saved):
    # One layer per stack: the compiled gradient of a deeper model checks nothing more and compiles longer.
    hf, ours = cached_pair(saved, "ForConditionalGeneration", encoder_layers=1, decoder_layers=1)
    # Full, right- and left-padded rows. Not the fully masked one: its attention is uniform whatever the scores,
    # so its gradient through the scores is rounding noise (transformers' SDPA and eager differ by 0.3 there).
    inputs = {name: value[:3] for name, value in encoder_batch().items()}
    labels = labels_for("ForConditionalGeneration", CONFIG, encoder_batch())["labels"][:3]

    def loss(params):
        out = ours(**inputs, labels=labels, params=params)
        return out.loss, out

    (value, jitted), grads = compiled(jax.value_and_grad(loss, has_aux=True), ours.params)(ours.params)
    assert isinstance(jitted, Seq2SeqLMOutput)
    hf.zero_grad()
    hf_loss = hf(**{name: torch.from_numpy(v) for name, v in inputs.items()}, labels=torch.from_numpy(labels)).loss
    hf_loss.backward()
    assert abs(hf_loss.item() - float(value)) < 1e-5
    expected = {name: p.grad.numpy() for name, p in hf.named_parameters()}
    flat = {path: np.asarray(grad) for path, grad in flatten_params(grads).items()}
    actual = export_weights(flat, ours.weights_spec(), "flax")
    # final_logits_bias is a buffer in PyTorch (no gradient), a parameter in Flax as in transformers' Flax BART.
    assert actual.pop("final_logits_bias").shape == (1, 99)
    # The shared embedding collects the gradients of the encoder, the decoder and the tied LM head.
    assert_outputs_close(expected, actual, label="gradients")


def test_sequence_classification_eos_pooling(saved):
    # The loss by problem type is common/layers_flax.py's, tested with RoBERTa; single-label is in the head test.
    hf, ours = cached_pair(saved, "ForSequenceClassification")
    # Several <eos> per row: the last one is pooled, eagerly and under jit.
    inputs = encoder_batch()
    inputs["input_ids"][:, 1] = EOS
    assert_same(hf, ours, "two <eos> per row", **inputs)
    # Under jit (ids unknown) the same rows are pooled.
    states = np.random.default_rng(4).normal(size=(4, 9, 32)).astype(np.float32)
    eager_pooled = _last_eos_states(inputs["input_ids"], states, EOS)
    jitted = jax.jit(lambda ids: _last_eos_states(ids, states, EOS))(inputs["input_ids"])
    last = [np.flatnonzero(row == EOS)[-1] for row in inputs["input_ids"]]
    assert np.array_equal(eager_pooled, states[np.arange(4), last]) and np.array_equal(jitted, eager_pooled)
    inputs["input_ids"][0, 2] = EOS
    with pytest.raises(ValueError, match="All examples must have the same number of <eos> tokens."):
        ours(**inputs)
    with pytest.raises(ValueError, match="no <eos> token"):
        ours(input_ids=np.full((2, 5), 7))
    with pytest.raises(NotImplementedError, match="pass input_ids"):
        ours(inputs_embeds=np.zeros((2, 5, 32), np.float32))
    with pytest.raises(TypeError, match="takes no past_key_values"):
        ours(**inputs, past_key_values=((np.zeros((4, 4, 1, 8)),) * 2,) * 2)


def test_older_checkpoint_with_decoder_embeddings_and_version_buffers(saved, tmp_path):
    hf, _ = saved("ForConditionalGeneration")
    state = {name: tensor.contiguous() for name, tensor in hf.state_dict().items()
             if name not in ("model.shared.weight", "model.encoder.embed_tokens.weight", "lm_head.weight")}
    state["model.encoder.version"] = torch.tensor([2.0])
    state["model.decoder.version"] = torch.tensor([2.0])
    hf.config.save_pretrained(tmp_path)
    safetensors_torch.save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours, info = zoo.FlaxBartForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert_same(hf, ours, "older checkpoint", **encoder_batch(), output_hidden_states=True)
    # The decoder-only model reads the same file.
    decoder = zoo.FlaxBartForCausalLM.from_pretrained(tmp_path)
    table = decoder.params["model"]["decoder"]["embed_tokens"]["embedding"]
    assert np.array_equal(table, hf.model.shared.weight.detach().numpy())
    # Without final_logits_bias (some checkpoints lack the all-zero buffer) it stays zero.
    del state["final_logits_bias"]
    safetensors_torch.save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours, info = zoo.FlaxBartForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert not np.asarray(ours.params["final_logits_bias"]).any()


def test_new_heads_and_loading_info(saved):
    _, folder = saved("ForConditionalGeneration")
    with pytest.raises(WeightsError, match="allow_new_heads.*classification_head.dense.weight"):
        zoo.FlaxBartForSequenceClassification.from_pretrained(folder)
    _, info = zoo.FlaxBartForSequenceClassification.from_pretrained(folder, allow_new_heads=True,
                                                                     output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classification_head.dense.bias", "classification_head.dense.weight",
                                            "classification_head.out_proj.bias", "classification_head.out_proj.weight"]
    assert info["unexpected_keys"] == ["final_logits_bias"]
    qa = zoo.FlaxBartForQuestionAnswering.from_pretrained(folder, allow_new_heads=True)
    assert qa.config.num_labels == 2 and qa.params["qa_outputs"]["kernel"].shape == (32, 2)


@pytest.mark.parametrize("head", ["ForConditionalGeneration", "ForCausalLM"])
def test_fresh_model_names_init_and_save(head, tmp_path):
    config = zoo.BartConfig(**TINY)
    ours = getattr(zoo, f"FlaxBart{head}")(config, seed=3)
    theirs = getattr(transformers, f"Bart{head}")(transformers.BartConfig(**TINY))
    # Every parameter maps to a transformers name; tied copies and buffers aside, the names are the same.
    saved_names = set(export_weights(ours.numpy_weights(), ours.weights_spec(), "flax"))
    tied = {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"}
    if head == "ForCausalLM":
        tied = {"lm_head.weight"}
        assert ours.config.is_decoder and not ours.config.is_encoder_decoder
    assert saved_names == set(theirs.state_dict()) - tied
    for path, value in flatten_params(ours.params).items():
        value = np.asarray(value)
        if path.endswith(("bias", "_bias")):
            assert not value.any(), path
        elif path.endswith("scale"):
            assert (value == 1).all(), path
        else:
            assert abs(value.std() - config.init_std) < 0.004, path
    ours.save_pretrained(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours.save_pretrained(tmp_path)
    reloaded, info = getattr(transformers, f"Bart{head}").from_pretrained(tmp_path, output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    inputs = encoder_batch()
    assert_same(reloaded.eval(), ours, f"fresh {head} saved by us", **inputs, **labels_for(head, CONFIG, inputs))


def test_untied_output_embeddings_round_trip(saved, tmp_path):
    hf, ours = cached_pair(saved, "ForConditionalGeneration", tie_word_embeddings=False)
    assert ours.params["lm_head"]["kernel"].shape == (32, 99)
    assert_same(hf, ours, "untied", **encoder_batch())
    ours.save_pretrained(tmp_path)
    # transformers 4.57.6 cannot reload an untied BART, not even its own save (see the PyTorch tests): our file
    # holds exactly what its file holds, and we reload it.
    _, folder = saved("ForConditionalGeneration", tie_word_embeddings=False)
    mine = safetensors_torch.load_file(tmp_path / "model.safetensors")
    theirs = safetensors_torch.load_file(folder / "model.safetensors")
    assert sorted(mine) == sorted(theirs) and all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_bfloat16_loading_and_saving(saved, tmp_path):
    _, folder = saved("ForConditionalGeneration")
    half = zoo.FlaxBartForConditionalGeneration.from_pretrained(folder, dtype="bfloat16")
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree_util.tree_leaves(half.params))
    hf_half = transformers.BartForConditionalGeneration.from_pretrained(folder, dtype=torch.bfloat16).eval()
    inputs = encoder_batch()
    logits = half(**inputs).logits
    assert logits.dtype == jnp.bfloat16
    # bfloat16 keeps 8 significant bits: outputs of O(1) agree to a few units in the last place.
    assert_outputs_close(call(hf_half, **inputs).logits.float(), np.asarray(logits, np.float32), atol=0.1)
    half.save_pretrained(tmp_path)
    again = zoo.FlaxBartForConditionalGeneration.from_pretrained(tmp_path, dtype="bfloat16")
    for (path, a), b in zip(flatten_params(half.params).items(), flatten_params(again.params).values(), strict=True):
        assert a.dtype == b.dtype == jnp.bfloat16 and np.array_equal(a, b), path


def test_dropout_and_layerdrop_only_in_training():
    dropouts = {"dropout": 0.2, "activation_dropout": 0.1, "attention_dropout": 0.1, "classifier_dropout": 0.3,
                "encoder_layerdrop": 0.3, "decoder_layerdrop": 0.3, "encoder_layers": 1, "decoder_layers": 1}
    ours = zoo.FlaxBartForSequenceClassification(zoo.BartConfig(**{**TINY, **dropouts}), seed=1)
    inputs = {**encoder_batch(), "labels": np.array([0, 2, 1, 1])}
    with pytest.raises(ValueError, match="dropout_rng"):
        ours(**inputs, train=True)
    rng = jax.random.PRNGKey(0)
    train = compiled(lambda rng: ours(**inputs, train=True, dropout_rng=rng), rng)
    first, again, other = train(rng), train(rng), train(jax.random.PRNGKey(1))
    assert np.array_equal(first.logits, again.logits) and not np.allclose(first.logits, other.logits)
    assert np.isfinite(first.loss)
    assert np.array_equal(ours(**inputs).logits, ours(**inputs).logits)
    assert not np.allclose(first.logits, ours(**inputs).logits)


def test_bad_input_is_a_clear_error(saved):
    _, ours = cached_pair(saved, "ForConditionalGeneration")
    inputs = encoder_batch()  # the shapes other tests compiled: errors come before anything new is computed
    ids, decoder_ids = inputs["input_ids"], decoder_batch()["decoder_input_ids"]
    encoded = ours.encode(ids)
    bad = ids.copy()
    bad[1, 3] = 99
    cases = [
        ({"input_ids": bad}, "input_ids holds token id 99, outside the vocabulary"),
        ({"input_ids": np.where(bad == 99, -1, bad)}, "token id -1, outside the vocabulary"),
        ({"input_ids": ids, "decoder_input_ids": np.where(decoder_ids == 2, 120, decoder_ids)},
         "decoder_input_ids holds token id 120"),
        ({"input_ids": np.full((1, 41), 5)}, "sequence length 41 exceeds the 40 positions"),
        ({"input_ids": ids, "decoder_input_ids": np.full((4, 41), 5)}, "sequence length 41 exceeds"),
        ({"input_ids": ids, "attention_mask": np.ones((4, 4))}, r"attention_mask has shape \[4, 4\]"),
        ({"input_ids": ids, "decoder_attention_mask": np.ones((4, 4))}, r"decoder_attention_mask has shape"),
        ({"input_ids": ids, "decoder_attention_mask": np.ones((4, 1, 9))}, "decoder_attention_mask must have 2"),
        ({"input_ids": ids, "inputs_embeds": np.zeros((4, 9, 32))}, "not both"),
        ({"input_ids": ids, "decoder_input_ids": ids, "decoder_inputs_embeds": np.zeros((4, 9, 32))}, "not both"),
        ({}, "give decoder_input_ids or decoder_inputs_embeds, or input_ids"),
        ({"decoder_input_ids": ids}, "give input_ids or inputs_embeds"),
        ({"input_ids": ids[0]}, "input_ids must have 2 dimensions"),
        ({"encoder_outputs": encoded, "decoder_input_ids": decoder_ids[:3]},
         "encoder output has batch size 4 but the decoder input has batch size 3"),
        ({"input_ids": ids, "head_mask": np.ones((3, 4))}, r"head_mask has shape \[3, 4\]"),
        ({"input_ids": ids, "cross_attn_head_mask": np.ones((2, 3))}, r"cross_attn_head_mask has shape \[2, 3\]"),
        ({"input_ids": ids, "past_key_values": ((np.zeros((4, 4, 1, 8)),) * 2,)},
         r"past_key_values holds 1 layer\(s\) but the model has 2"),
        # The cache counts towards the positions.
        ({"input_ids": ids, "decoder_input_ids": decoder_ids[:, :2],
          "past_key_values": ((np.zeros((4, 4, 39, 8)),) * 2,) * 2}, "sequence length 41 exceeds"),
    ]
    for case, message in cases:
        with pytest.raises(ValueError, match=message):
            ours(**case)
    with pytest.raises(TypeError, match="takes no start_positions"):
        ours(input_ids=ids, start_positions=np.array([0]))
    # A StaticCache: its mask covers every slot, it cannot overflow, and it fits the positions.
    static = ours.init_cache(4, 8, encoded)
    decoder = {"encoder_outputs": encoded, "decoder_input_ids": decoder_ids}
    with pytest.raises(ValueError, match="attention_mask must cover all 8 cache slots"):
        ours(**decoder, decoder_attention_mask=np.ones((4, 6)), past_key_values=static)
    with pytest.raises(ValueError, match="StaticCache has 8 slots; writing 6 more would overflow"):
        ours(**decoder, past_key_values=StaticCache(static.layers, jnp.asarray(3, jnp.int32)))
    with pytest.raises(ValueError, match="exceeds the 40 positions"):
        ours.init_cache(4, 41)
    with pytest.raises(ValueError, match="encoder output has batch size 4 but the decoder input has batch size 3"):
        ours.init_cache(3, 8, encoded)
