"""I-BERT's oracle cases, shared by the PyTorch, TensorFlow and Flax test modules: the tiny config (dropout off: a
training-mode forward is then deterministic and comparable with Hugging Face's), torch batches and a calibrated
quantized Hugging Face model."""

import numpy as np
import torch

from rosettazoo.ibert import IBertConfig
from tests.harness import Oracle, padded_batch

HEADS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForMultipleChoice",
         "ForQuestionAnswering")
TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37,
        "max_position_embeddings": 40, "type_vocab_size": 2, "num_labels": 3, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0}
HEAD_CONFIG = {"ForQuestionAnswering": {"num_labels": 2}}
ORACLE = Oracle(TINY, HEAD_CONFIG)
CONFIG = IBertConfig(**TINY)  # what labels_for reads (vocabulary size, number of labels)


def batch(vocab_size: int = 99, length: int = 9, seed: int = 0, fully_masked_row: bool = True) -> dict:
    """Full, right-padded, left-padded (and fully masked) rows with random token types.

    Quantized models get no fully masked row: Hugging Face's simulated softmax turns it into NaN (-inf minus -inf).
    """
    input_ids, attention_mask = padded_batch(vocab_size, 1, length, seed=seed)
    token_type_ids = np.random.default_rng(seed).integers(0, 2, size=input_ids.shape)
    rows = slice(None) if fully_masked_row else slice(0, 3)
    return {"input_ids": torch.from_numpy(input_ids[rows]), "attention_mask": torch.from_numpy(attention_mask[rows]),
            "token_type_ids": torch.from_numpy(token_type_ids[rows])}


def head_batch(head: str) -> dict:
    inputs = batch()
    if head == "ForMultipleChoice":  # [batch 2, choices 2, seq]
        inputs = {name: value.reshape(2, 2, -1) for name, value in inputs.items()}
    return inputs


def buffers(model) -> dict:
    saved = set(model.state_dict())
    return {name: buffer for name, buffer in model.named_buffers() if name in saved}


def calibrated_hf(head: str, folder, steps: int = 3, **overrides):
    """A quantized Hugging Face model whose activation ranges were calibrated by training-mode forwards, saved
    (buffers included) to ``folder``; returned in eval mode."""
    hf = ORACLE.hf_model("IBert", head, quant_mode=True, **overrides).train()
    with torch.no_grad():
        for step in range(steps):
            hf(**batch(seed=10 + step, fully_masked_row=False))
    hf.save_pretrained(folder)
    return hf.eval()
