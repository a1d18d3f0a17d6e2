"""transformers' logits processors and warpers, written once against the ops surface (see ``decoding.py``).

Each works on fixed shapes: ``sequences`` is the whole [rows, width] token buffer, of which the columns
``[bounds.start, cur)`` hold the tokens transformers would see as ``input_ids`` (the prompt with its own padding,
then what was generated; columns before ``start`` are padding added to reach a compiled bucket). ``cur`` is the
column the next token goes to, an int32 scalar that may be traced. The order is transformers 4.x's.
"""

from __future__ import annotations

import math

NEG_INF = -math.inf


def process(ops, plan, scores, sequences, cur, bounds, encoder_ids):
    """The processed scores [rows, vocab] of the next token (warpers included when sampling)."""
    if plan.repetition_penalty != 1.0:
        scores = repetition_penalty(ops, plan, scores, sequences, cur, bounds)
    if plan.no_repeat_ngram_size > 0:
        scores = no_repeat_ngram(ops, plan, scores, sequences, cur, bounds)
    if plan.encoder_no_repeat_ngram_size > 0:
        scores = encoder_no_repeat_ngram(ops, plan, scores, sequences, cur, bounds, encoder_ids)
    for word in plan.bad_words:
        scores = ban_bad_word(ops, plan, scores, sequences, cur, bounds, word)
    if plan.eos_ids and plan.min_length > 0:
        scores = ops.where((cur - bounds.start < plan.min_length) & _eos_columns(ops, plan), NEG_INF, scores)
    if plan.eos_ids and plan.min_new_tokens > 0:
        scores = ops.where((cur - plan.prompt_columns < plan.min_new_tokens) & _eos_columns(ops, plan), NEG_INF, scores)
    if plan.forced_bos_token_id is not None:
        scores = _force(ops, plan, scores, cur - bounds.start == 1, (plan.forced_bos_token_id,))
    if plan.forced_eos_token_ids:
        scores = _force(ops, plan, scores, cur == bounds.limit - 1, plan.forced_eos_token_ids)
    if plan.do_sample:
        scores = warp(ops, plan, scores)
    return scores


def warp(ops, plan, scores):
    """Temperature, then top-k, then top-p (nucleus), as transformers orders its warpers."""
    if plan.temperature != 1.0:
        scores = scores / plan.temperature
    if plan.top_k > 0:
        k = min(max(plan.top_k, plan.min_tokens_to_keep), plan.vocab_size)
        kth_best = ops.top_k(scores, k)[0][:, k - 1:k]
        scores = ops.where(scores < kth_best, NEG_INF, scores)
    if plan.top_p < 1.0:
        scores = top_p(ops, plan, scores)
    return scores


def top_p(ops, plan, scores):
    """Keep the smallest set of best tokens whose probability reaches ``top_p`` (at least min_tokens_to_keep)."""
    ranked = ops.top_k(scores, plan.vocab_size)[0]
    probs = ops.softmax(ranked)
    mass_before = ops.cumsum(probs, axis=-1) - probs
    keep = (mass_before < plan.top_p) | (ops.arange(plan.vocab_size)[None, :] < plan.min_tokens_to_keep)
    kept = ops.sum(ops.cast(keep, ops.int32), axis=-1)
    cutoff = ops.take_per_row(ranked, (kept - 1)[:, None])
    return ops.where(scores < cutoff, NEG_INF, scores)


def repetition_penalty(ops, plan, scores, sequences, cur, bounds):
    """Tokens already in the sequence: negative scores multiplied by the penalty, positive ones divided."""
    columns = ops.arange(plan.width)[None, :]
    seen = _token_mask(ops, plan, sequences, (columns >= bounds.start) & (columns < cur))
    penalized = ops.where(scores < 0, scores * plan.repetition_penalty, scores / plan.repetition_penalty)
    return ops.where(seen, penalized, scores)


def no_repeat_ngram(ops, plan, scores, sequences, cur, bounds):
    """Ban every token that would complete an n-gram already present in the sequence."""
    n = plan.no_repeat_ngram_size
    windows = plan.width - n + 1
    starts = ops.arange(windows)[None, :]
    matches = (starts >= bounds.start) & (starts <= cur - n)
    for j in range(n - 1):
        recent = _column(ops, sequences, cur - n + 1 + j)
        matches = matches & (sequences[:, j:j + windows] == recent)
    banned = _token_mask(ops, plan, sequences[:, n - 1:], matches)
    return ops.where(banned, NEG_INF, scores)


def encoder_no_repeat_ngram(ops, plan, scores, sequences, cur, bounds, encoder_ids):
    """Ban every token that would complete an n-gram of the encoder's input (transformers' BART option)."""
    n = plan.encoder_no_repeat_ngram_size
    windows = encoder_ids.shape[1] - n + 1
    if windows <= 0:
        return scores
    starts = ops.arange(windows)[None, :]
    matches = (starts <= bounds.encoder_length - n) & (cur - bounds.start >= n - 1)
    for j in range(n - 1):
        recent = _column(ops, sequences, cur - n + 1 + j)
        matches = matches & (encoder_ids[:, j:j + windows] == recent)
    banned = _token_mask(ops, plan, encoder_ids[:, n - 1:], matches)
    return ops.where(banned, NEG_INF, scores)


def ban_bad_word(ops, plan, scores, sequences, cur, bounds, word: tuple[int, ...]):
    """Ban the word's last token where the sequence ends with the rest of it (always, for a one-token word)."""
    last = ops.arange(plan.vocab_size)[None, :] == word[-1]
    if len(word) == 1:
        return ops.where(last, NEG_INF, scores)
    matches = cur - bounds.start >= len(word)
    for j, token in enumerate(word[:-1]):
        matches = matches & (_column(ops, sequences, cur - len(word) + 1 + j) == token)
    return ops.where(last & matches, NEG_INF, scores)


def _force(ops, plan, scores, when, token_ids: tuple[int, ...]):
    """Where ``when``: every score -inf but those of ``token_ids``, which become 0."""
    forced = ops.where(_columns_of(ops, plan, token_ids), 0.0, NEG_INF)  # [1, vocab], broadcast over the rows
    return ops.where(when, forced, scores)


def _eos_columns(ops, plan):
    return _columns_of(ops, plan, plan.eos_ids)


def _columns_of(ops, plan, token_ids: tuple[int, ...]):
    """A [1, vocab] mask of the given token ids."""
    vocab = ops.arange(plan.vocab_size)[None, :]
    mask = vocab == token_ids[0]
    for token in token_ids[1:]:
        mask = mask | (vocab == token)
    return mask


def _column(ops, sequences, column):
    """sequences[:, column] as [rows, 1], for a traced column (clamped at 0: callers mask what lies before)."""
    return ops.take(sequences, ops.maximum(column, 0)[None], axis=1)


def _token_mask(ops, plan, token_ids, valid):
    """A [rows, vocab] bool mask: True where a valid entry of ``token_ids`` [rows, n] names that token."""
    rows, n = token_ids.shape
    flat = ops.arange(rows)[:, None] * plan.vocab_size + ops.cast(token_ids, ops.int32)
    dump = rows * plan.vocab_size  # invalid entries land in one extra slot, dropped below
    flat = ops.where(valid, flat, dump)
    counts = ops.count_into(ops.reshape(flat, (rows * n,)), rows * plan.vocab_size + 1)
    return ops.reshape(counts[:dump], (rows, plan.vocab_size)) > 0
