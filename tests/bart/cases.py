"""BART's oracle cases, shared by the PyTorch, TensorFlow and Flax test modules: the tiny configs and numpy batches
(the harness converts them to each framework)."""

import numpy as np

from rosettazoo.bart import BartConfig
from tests.harness import Oracle, call, padded_batch, to_numpy

HEADS = ("Model", "ForConditionalGeneration", "ForSequenceClassification", "ForQuestionAnswering", "ForCausalLM")
TINY = {"vocab_size": 99, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 37, "decoder_ffn_dim": 37, "max_position_embeddings": 40,
        "num_labels": 3}
# distilbart-like: stacks of different depth, width and heads.
ASYMMETRIC = {"encoder_layers": 2, "decoder_layers": 1, "decoder_ffn_dim": 23, "decoder_attention_heads": 2}
EOS, START, PAD = 2, 2, 1
ORACLE = Oracle(TINY)
CONFIG = BartConfig(**TINY)  # what labels_for reads (vocabulary size, number of labels)


def eager(head: str, folder):
    """transformers' eager attention, which returns attention weights and applies head masks."""
    import transformers

    return getattr(transformers, f"Bart{head}").from_pretrained(folder, attn_implementation="eager").eval()


def encoder_batch() -> dict:
    """Full, right-padded, left-padded and fully masked rows, each with one <eos> after its last real token."""
    input_ids, attention_mask = padded_batch(TINY["vocab_size"], PAD, 9)
    for row, mask in enumerate(attention_mask):
        real = np.flatnonzero(mask)
        input_ids[row, real[-1] if real.size else 0] = EOS
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def decoder_batch() -> dict:
    """Decoder rows: full, right-padded, left-padded, full; each starting with the decoder start token."""
    ids = np.random.default_rng(1).integers(4, TINY["vocab_size"], size=(4, 6))
    mask = np.ones((4, 6), dtype=np.int64)
    mask[1, -2:] = 0
    mask[2, :2] = 0
    ids[mask == 0] = PAD
    ids[[0, 1, 3], 0] = START
    ids[2, 2] = START
    return {"decoder_input_ids": ids, "decoder_attention_mask": mask}


def decode_both_ways(model, inputs: dict):
    """Logits of one full pass, and of one decoder token at a time from the model's own cache (the encoder output
    computed once and passed on), both at the real (unpadded) decoder positions; and the last cache. Any framework."""
    encoded = call(model.get_encoder(), input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    common = {"encoder_outputs": encoded, "attention_mask": inputs["attention_mask"], "use_cache": True}
    full = call(model, **common, decoder_input_ids=ids, decoder_attention_mask=mask)
    past, steps = None, []
    for t in range(ids.shape[1]):
        out = call(model, **common, decoder_input_ids=ids[:, t:t + 1], decoder_attention_mask=mask[:, :t + 1],
                   past_key_values=past)
        past = out.past_key_values
        steps.append(to_numpy(out.logits))
    real = np.asarray(mask)[..., None].astype(bool)  # a left-padded row's pad queries see no key; the full pass sees all
    return np.where(real, to_numpy(full.logits), 0), np.where(real, np.concatenate(steps, axis=1), 0), past
