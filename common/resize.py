"""``resize_token_embeddings``, decided once for the three frameworks: which tensors hold a row (or column) per
token, the new size, and the values of the new entries.

A framework's model passes its vocabulary tensors as {path: numpy array} (its own paths: PyTorch's canonical
names, Keras' and Flax's attribute paths) and puts the returned arrays back. New rows of a table or projection are
drawn from normal(0, std) as the model's init draws them, from a generator seeded per role (the input table, the
output projection), so a PyTorch, a TF and a Flax model resized from the same weights with the same seed are the
same model. New entries of a bias (the LM head's, BART's ``final_logits_bias``) and of I-BERT's cached integer
table start at zero.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

# The token table (RoBERTa/I-BERT word_embeddings, BART's shared and embed_tokens, OPT's embed_tokens), with
# I-BERT's integer copy, and the LM head's projection and bias.
_TABLE = r"(word_embeddings|shared|embed_tokens)\.(weight|embedding|embeddings|weight_integer)"
_HEAD = r"lm_head(\.decoder)?\.(weight|kernel|bias)"
VOCAB_TENSOR = re.compile(rf"(^|\.)({_TABLE}|{_HEAD}|final_logits_bias)$")


def is_vocab_tensor(path: str) -> bool:
    return VOCAB_TENSOR.search(path) is not None


def new_vocab_size(current: int, new_num_tokens: int | None, pad_to_multiple_of: int | None) -> int:
    """The size after resizing: ``new_num_tokens`` (default: the current size) rounded up to a multiple of
    ``pad_to_multiple_of``, as transformers does."""
    size = current if new_num_tokens is None else new_num_tokens
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
    if pad_to_multiple_of is not None:
        if not isinstance(pad_to_multiple_of, (int, np.integer)) or pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
        size = -(-size // pad_to_multiple_of) * pad_to_multiple_of
    return int(size)


def check_pad_token(pad_token_id: int | None, size: int) -> None:
    if pad_token_id is not None and pad_token_id >= size:
        raise ValueError(f"cannot resize the vocabulary to {size} tokens: pad_token_id={pad_token_id} would fall "
                         f"outside it; keep at least {pad_token_id + 1} tokens or change pad_token_id first")


def _vocab_axis(path: str) -> int:
    """Tables and PyTorch's Linear weights [vocab, width] grow rows; Keras/Flax kernels [width, vocab], biases and
    final_logits_bias [1, vocab] grow their last axis."""
    leaf = path.rsplit(".", 1)[-1]
    return -1 if leaf in ("kernel", "bias", "final_logits_bias") else 0


def _new_entries(path: str, shape: tuple[int, ...], axis: int, std: float, seed: int) -> np.ndarray:
    leaf = path.rsplit(".", 1)[-1]
    if leaf in ("bias", "final_logits_bias", "weight_integer"):
        return np.zeros(shape)
    role = 1 if "lm_head" in path else 0  # the output projection's draws differ from the table's
    rows = np.random.default_rng([seed, role]).normal(0.0, std, np.moveaxis(np.empty(shape), axis, 0).shape)
    return np.moveaxis(rows, 0, axis)


def resize_vocab_tensors(arrays: Mapping[str, np.ndarray], old: int, new: int, std: float,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """The vocabulary tensors among ``arrays`` cut or grown from ``old`` to ``new`` tokens (others left out)."""
    out = {}
    for path, array in arrays.items():
        if not is_vocab_tensor(path):
            continue
        axis = _vocab_axis(path)
        if array.shape[axis] != old:
            raise ValueError(f"{path} has shape {array.shape}, but the vocabulary has {old} tokens")
        kept = np.take(array, np.arange(min(old, new)), axis=axis)
        if new > old:
            shape = list(array.shape)
            shape[axis] = new - old
            added = _new_entries(path, tuple(shape), axis, std, seed).astype(array.dtype)
            kept = np.concatenate([kept, added], axis=axis)
        out[path] = kept
    return out
