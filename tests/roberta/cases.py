"""RoBERTa's oracle cases, shared by the PyTorch, TensorFlow and static-cache test modules: tiny configs and torch
batches (the transformers oracle takes torch; our TF and Flax models get them as numpy through the harness)."""

import numpy as np
import torch

from rosettazoo.common.cache import StaticCache
from tests.harness import Oracle, assert_outputs_close, call, padded_batch, to_numpy

FAMILIES = ("Roberta", "RobertaPreLayerNorm")
HEADS = ("Model", "ForMaskedLM", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification",
         "ForMultipleChoice", "ForQuestionAnswering")
TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37,
        "max_position_embeddings": 40, "type_vocab_size": 2, "num_labels": 3}
HEAD_CONFIG = {"ForCausalLM": {"is_decoder": True}, "ForQuestionAnswering": {"num_labels": 2}}

ORACLE = Oracle(TINY, HEAD_CONFIG)


def batch(config, length: int = 9, seed: int = 0) -> dict:
    """Full, right-padded, left-padded and fully masked rows, with random token types."""
    input_ids, attention_mask = padded_batch(config.vocab_size, config.pad_token_id, length, seed=seed)
    token_type_ids = np.random.default_rng(seed).integers(0, 2, size=input_ids.shape)
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
            "token_type_ids": torch.from_numpy(token_type_ids)}


def head_batch(head: str, config) -> dict:
    inputs = batch(config)
    if head == "ForMultipleChoice":  # [batch 2, choices 2, seq]
        inputs = {name: value.reshape(2, 2, -1) for name, value in inputs.items()}
    return inputs


def decoder_inputs(config):
    """Full and right-padded decoder rows (a cached step continues them exactly) over a padded encoder output."""
    inputs = batch(config, length=6, seed=4)
    inputs = {name: value[:2] for name, value in inputs.items()}
    generator = torch.Generator().manual_seed(5)
    inputs["encoder_hidden_states"] = torch.randn(2, 5, config.hidden_size, generator=generator)
    inputs["encoder_attention_mask"] = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return inputs


def step_by_step(model, inputs: dict) -> tuple[np.ndarray, object]:
    """Decode one token at a time from the model's own cache (any framework); returns the logits of every step
    and the cache."""
    past, logits = None, []
    for t in range(inputs["input_ids"].shape[1]):
        out = call(model, input_ids=inputs["input_ids"][:, t:t + 1],
                   token_type_ids=inputs["token_type_ids"][:, t:t + 1],
                   attention_mask=inputs["attention_mask"][:, :t + 1],
                   encoder_hidden_states=inputs["encoder_hidden_states"],
                   encoder_attention_mask=inputs["encoder_attention_mask"], past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits.append(to_numpy(out.logits))
    return np.concatenate(logits, axis=1), past


# ------------------------------------------------------------------------ a causal LM with a StaticCache (TF, Flax)
PROMPT, STEPS, SPARE = 5, 3, 2  # tokens in the first call, single-token steps after it, slots never written
LENGTH = PROMPT + STEPS
LEFT_PADDING = 3


def cache_batch(vocab_size: int, pad: int):
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
    """Logits of a prompt written into a fresh StaticCache in one (eager) call, then of single-token
    ``step(input_ids, attention_mask, cache) -> (logits, cache)``s."""
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
