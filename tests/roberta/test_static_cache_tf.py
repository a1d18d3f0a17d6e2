"""RoBERTa's causal LM with a StaticCache in TensorFlow / Keras 3: a prompt, then steps under XLA, equals one pass.

Models are tiny Hugging Face decoders with O(0.1) random weights loaded by our ``from_pretrained``. Each family
compiles one step function (one shape), since XLA compiles are slow on a small CPU.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from rosettazoo.common.cache import StaticCache
from tests.harness import assert_outputs_close
from tests.roberta.test_modeling_pt import FAMILIES
from tests.roberta.test_modeling_tf import pair

PROMPT, STEPS, SPARE = 5, 3, 2  # tokens in the first call, single-token steps after it, slots never written
LENGTH = PROMPT + STEPS
LEFT_PADDING = 3


def decoder_batch(vocab_size: int, pad: int):
    """A full row and a left-padded row, and the left-padded row's tokens without its padding."""
    ids = np.random.default_rng(0).integers(pad + 3, vocab_size, size=(2, LENGTH))
    mask = np.ones_like(ids)
    mask[1, :LEFT_PADDING] = 0
    ids[mask == 0] = pad
    return ids, mask, ids[1:, LEFT_PADDING:]


def slot_mask(mask):
    """The padding mask over every cache slot; what it says of slots never written does not matter."""
    return np.concatenate([mask, np.ones((mask.shape[0], SPARE), mask.dtype)], axis=1)


def prompt_then_steps(model, ids, mask, step):
    """Logits of a prompt written into a fresh StaticCache in one (eager) call, then of single-token ``step``s."""
    slots = slot_mask(mask)
    out = model(input_ids=ids[:, :PROMPT], attention_mask=slots,
                past_key_values=model.init_cache(ids.shape[0], LENGTH + SPARE))
    logits, cache = [np.asarray(out.logits)], out.past_key_values
    for t in range(PROMPT, LENGTH):
        step_logits, cache = step(ids[:, t:t + 1], slots, cache)
        logits.append(np.asarray(step_logits))
    return np.concatenate(logits, axis=1), cache


def assert_equals_full_pass(model, ids, mask, logits, cache, label):
    full = model(input_ids=ids, attention_mask=mask, use_cache=True)
    real = mask == 1  # a padding query sees no key: its uniform attention spans whatever keys the call has
    assert_outputs_close(np.asarray(full.logits)[real], logits[real], label=f"{label}: static cache vs full pass")
    assert isinstance(cache, StaticCache) and int(cache.index) == LENGTH
    for static, dynamic in zip(cache.to_legacy_cache(), full.past_key_values, strict=True):
        for got, want in zip(static, dynamic, strict=True):
            assert_outputs_close(np.asarray(want).transpose(0, 2, 1, 3)[real],
                                 np.asarray(got).transpose(0, 2, 1, 3)[real], label=f"{label}: cached keys/values")


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_then_compiled_steps_equal_the_full_pass(family, tmp_path):
    _, ours = pair(family, "ForCausalLM", tmp_path)
    ids, mask, unpadded = decoder_batch(ours.config.vocab_size, ours.config.pad_token_id)
    traces = []

    @tf.function(jit_compile=True)
    def step(input_ids, attention_mask, cache):
        traces.append(1)  # runs only while tracing
        out = ours(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache)
        return out.logits, out.past_key_values

    logits, cache = prompt_then_steps(ours, ids, mask, step)
    assert len(traces) == 1  # the same shapes at every step (the index is a tensor): one compilation
    assert_equals_full_pass(ours, ids, mask, logits, cache, family)
    # Positions come from the slot mask: the left-padded row predicts what its unpadded row predicts alone.
    alone = ours(input_ids=unpadded)
    assert_outputs_close(alone.logits, logits[1:, LEFT_PADDING:], label=f"{family}: left-padded row vs alone")


def eager_step(model):
    def step(input_ids, attention_mask, cache):
        out = model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache)
        return out.logits, out.past_key_values
    return step


@pytest.mark.parametrize("position_embedding_type", ["relative_key", "relative_key_query"])
def test_relative_positions_with_a_static_cache(position_embedding_type, tmp_path):
    # Query i sits at slot index + i and key j at slot j; eager steps run the same code as compiled ones.
    _, ours = pair("Roberta", "ForCausalLM", tmp_path, position_embedding_type=position_embedding_type)
    ids, mask, unpadded = decoder_batch(ours.config.vocab_size, ours.config.pad_token_id)
    logits, cache = prompt_then_steps(ours, ids, mask, eager_step(ours))
    assert_equals_full_pass(ours, ids, mask, logits, cache, position_embedding_type)
    alone = ours(input_ids=unpadded)
    assert_outputs_close(alone.logits, logits[1:, LEFT_PADDING:], label=f"{position_embedding_type}: row alone")


def test_static_cache_errors(tmp_path):
    _, ours = pair("Roberta", "ForCausalLM", tmp_path)
    limit = ours.config.max_sequence_length  # 40 positions - pad_token_id 1 - 1
    assert ours.init_cache(1, limit).max_length == limit
    with pytest.raises(ValueError, match=f"a cache of {limit + 1} slots exceeds the {limit} positions"):
        ours.init_cache(1, limit + 1)
    cache = ours.init_cache(2, 6)
    assert isinstance(cache, StaticCache) and int(cache.index) == 0 and cache.index.dtype == tf.int32
    assert all(float(tf.reduce_max(tf.abs(t))) == 0 for layer in cache.layers for t in layer)
    ids = np.full((2, 4), 5)
    with pytest.raises(ValueError, match="with a StaticCache, attention_mask must cover all 6 cache slots"):
        ours(input_ids=ids, attention_mask=np.ones((2, 4)), past_key_values=cache)
    cache = ours(input_ids=ids, past_key_values=cache).past_key_values  # no mask: every slot kept
    assert int(cache.index) == 4
    with pytest.raises(ValueError, match="the StaticCache has 6 slots; writing 3 more would overflow it"):
        ours(input_ids=np.full((2, 3), 5), past_key_values=cache)
    with pytest.raises(NotImplementedError, match="encoder_hidden_states"):
        ours(input_ids=ids[:, :1], past_key_values=cache,
             encoder_hidden_states=np.zeros((2, 3, ours.config.hidden_size), np.float32))


def test_init_cache_needs_a_decoder(tmp_path):
    _, encoder = pair("Roberta", "ForMaskedLM", tmp_path)
    with pytest.raises(ValueError, match="a StaticCache needs a decoder: set is_decoder=True"):
        encoder.init_cache(1, 4)
