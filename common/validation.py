"""Input checks shared by the three frameworks, so bad input gets the same clear error everywhere.

Each takes concrete values (numpy arrays or shapes). Framework code calls them before any gather, because
TensorFlow and JAX gathers silently clamp or zero out-of-range indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_token_ids(ids, vocab_size: int, name: str = "input_ids") -> None:
    ids = np.asarray(ids)
    if ids.size == 0:
        return
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} holds token id {bad}, outside the vocabulary [0, {vocab_size}); "
            f"check that the tokenizer matches the model (vocab_size={vocab_size})"
        )


def check_index_range(ids, size: int, name: str, what: str) -> None:
    """Like ``check_token_ids`` for other embedding tables (positions, token types)."""
    ids = np.asarray(ids)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"{name} holds {bad}, outside [0, {size}) allowed by {what}")


def check_sequence_length(length: int, limit: int, what: str = "max_position_embeddings") -> None:
    if length > limit:
        raise ValueError(
            f"sequence length {length} exceeds the {limit} positions the model allows ({what}); "
            f"truncate the input (e.g. tokenizer(..., truncation=True, max_length={limit}))"
        )


def check_shape(name: str, shape: Sequence[int], expected: Sequence[int], meaning: str = "") -> None:
    if tuple(shape) != tuple(expected):
        extra = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} has shape {list(shape)} but must have shape {list(expected)}{extra}")


def check_rank(name: str, shape: Sequence[int], rank: int, meaning: str) -> None:
    if len(shape) != rank:
        raise ValueError(f"{name} must have {rank} dimensions ({meaning}), got shape {list(shape)}")


def input_shape(ids, embeds, ids_name: str = "input_ids", embeds_name: str = "inputs_embeds") -> tuple[int, int]:
    """(batch, sequence) of exactly one of token ids [batch, seq] or embeddings [batch, seq, hidden], any framework."""
    if ids is not None and embeds is not None:
        raise ValueError(f"give either {ids_name} or {embeds_name}, not both")
    if ids is not None:
        check_rank(ids_name, np.shape(ids), 2, "batch, sequence")
        return tuple(np.shape(ids))
    if embeds is not None:
        check_rank(embeds_name, np.shape(embeds), 3, "batch, sequence, hidden")
        return tuple(np.shape(embeds)[:2])
    raise ValueError(f"give {ids_name} or {embeds_name}")


def check_static_cache_length(max_length: int, limit: int, what: str = "max_position_embeddings") -> None:
    """Refuse a StaticCache with more slots than the model has positions (``init_cache`` checks it once for every
    step, so a compiled step cannot read past the position table)."""
    if max_length > limit:
        raise ValueError(f"a cache of {max_length} slots exceeds the {limit} positions the model allows ({what})")


def check_static_cache_decoder(config) -> None:
    """A StaticCache serves a decoder (an encoder-only RoBERTa attends in both directions)."""
    if not config.is_decoder:
        raise ValueError("a StaticCache needs a decoder: set is_decoder=True in the config")
