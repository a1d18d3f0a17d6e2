"""RoBERTa's causal LM with a StaticCache in Flax: a prompt, then jitted steps, equals one pass.

Models are tiny Hugging Face decoders with O(0.1) random weights loaded by our ``from_pretrained``. Each family
compiles one step function (one shape), since XLA compiles are slow on a small CPU.
"""

from functools import partial

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("torch")
pytest.importorskip("transformers")

import jax.numpy as jnp

from rosettazoo.common.cache import StaticCache
from tests.harness import assert_outputs_close
from tests.roberta.cases import FAMILIES, LEFT_PADDING, ORACLE, assert_equals_full_pass, cache_batch, prompt_then_steps


def step_of(model):
    def step(params, input_ids, attention_mask, cache):
        out = model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, params=params)
        return out.logits, out.past_key_values
    return step


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_then_jitted_steps_equal_the_full_pass(family, tmp_path):
    _, ours = ORACLE.pair("flax", family, "ForCausalLM", tmp_path)
    ids, mask, unpadded = cache_batch(ours.config.vocab_size, ours.config.pad_token_id)
    traces = []

    @jax.jit
    def step(params, input_ids, attention_mask, cache):
        traces.append(1)  # runs only while tracing
        return step_of(ours)(params, input_ids, attention_mask, cache)

    logits, cache = prompt_then_steps(ours, ids, mask, partial(step, ours.params))
    assert len(traces) == 1  # the same shapes at every step (the index is a traced leaf): one compilation
    assert_equals_full_pass(ours, ids, mask, logits, cache, family)
    # Positions come from the slot mask: the left-padded row predicts what its unpadded row predicts alone.
    alone = ours(input_ids=unpadded)
    assert_outputs_close(alone.logits, logits[1:, LEFT_PADDING:], label=f"{family}: left-padded row vs alone")


@pytest.mark.parametrize("position_embedding_type", ["relative_key", "relative_key_query"])
def test_relative_positions_with_a_static_cache(position_embedding_type, tmp_path):
    # Query i sits at slot index + i and key j at slot j; eager steps run the same code as jitted ones.
    _, ours = ORACLE.pair("flax", "Roberta", "ForCausalLM", tmp_path, position_embedding_type=position_embedding_type)
    ids, mask, unpadded = cache_batch(ours.config.vocab_size, ours.config.pad_token_id)
    logits, cache = prompt_then_steps(ours, ids, mask, partial(step_of(ours), ours.params))
    assert_equals_full_pass(ours, ids, mask, logits, cache, position_embedding_type)
    alone = ours(input_ids=unpadded)
    assert_outputs_close(alone.logits, logits[1:, LEFT_PADDING:], label=f"{position_embedding_type}: row alone")


def test_static_cache_errors(tmp_path):
    _, ours = ORACLE.pair("flax", "Roberta", "ForCausalLM", tmp_path)
    limit = ours.config.max_sequence_length  # 40 positions - pad_token_id 1 - 1
    assert ours.init_cache(1, limit).max_length == limit
    with pytest.raises(ValueError, match=f"a cache of {limit + 1} slots exceeds the {limit} positions"):
        ours.init_cache(1, limit + 1)
    cache = ours.init_cache(2, 6)
    assert isinstance(cache, StaticCache) and int(cache.index) == 0 and cache.index.dtype == jnp.int32
    assert all(not np.any(np.asarray(t)) for layer in cache.layers for t in layer)
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
    _, encoder = ORACLE.pair("flax", "Roberta", "ForMaskedLM", tmp_path)
    with pytest.raises(ValueError, match="a StaticCache needs a decoder: set is_decoder=True"):
        encoder.init_cache(1, 4)
