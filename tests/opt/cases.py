"""OPT's oracle cases, shared by the PyTorch, TensorFlow and Flax test modules: two tiny layouts, opt-125m's
(pre-layer-norm, final LayerNorm, embeddings of hidden_size) and opt-350m's (post-layer-norm, no final LayerNorm,
embeddings of word_embed_proj_dim != hidden_size with project_in/out), and numpy batches."""

import numpy as np

from tests.harness import Oracle, call, padded_batch, to_numpy

HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForQuestionAnswering")
TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 37,
        "max_position_embeddings": 40, "num_labels": 3}
LAYOUTS = {
    "opt-125m": {},  # layer norm before each block, final layer norm
    "opt-350m": {"do_layer_norm_before": False, "word_embed_proj_dim": 16},  # post-LN, project_in / project_out
}
ORACLE = Oracle(TINY)


def batch(config, length: int = 9, seed: int = 0) -> dict:
    """Full, right-padded, left-padded and fully masked rows."""
    input_ids, attention_mask = padded_batch(config.vocab_size, config.pad_token_id, length, seed=seed)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def step_by_step(model, input_ids, attention_mask, prefill: int = 1):
    """One pass over the first ``prefill`` tokens, then one token at a time from the model's own cache (any
    framework); returns the logits of every position and the final cache."""
    out = call(model, input_ids=input_ids[:, :prefill], attention_mask=attention_mask[:, :prefill], use_cache=True)
    past, logits = out.past_key_values, [to_numpy(out.logits)]
    for t in range(prefill, input_ids.shape[1]):
        out = call(model, input_ids=input_ids[:, t:t + 1], attention_mask=attention_mask[:, :t + 1],
                   past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits.append(to_numpy(out.logits))
    return np.concatenate(logits, axis=1), past
