"""The decoding loop, written once for PyTorch, TensorFlow and JAX.

Every function takes ``ops``, a small numpy-like backend (``ops_pt.TorchOps``, ``ops_tf.TFOps``, ``ops_jax.JaxOps``),
so the three frameworks run the same sequence of operations and make the same choices by construction, as
``ibert/quant.py`` does for I-BERT's arithmetic. The model enters only as ``step(tokens, cache) -> (logits, cache)``:
one call with a static cache, returning the float32 logits of each row's last token.

Shapes never change: the tokens live in a [rows, width] buffer, the next column to write is ``cur`` (an int32 scalar)
and the loop is ``ops.while_loop`` (a Python loop in PyTorch, ``tf.while_loop`` under XLA, ``lax.while_loop`` under
``jax.jit``). Greedy search and sampling follow transformers 4.x's ``_sample``, beam search (and beam sampling) its
vectorized ``_beam_search``, step for step and with the same float32 arithmetic, so they choose the same tokens.

A backend provides: dtypes ``int32 float32 bool``; ``constant(value, dtype)``, ``arange(n)`` (int32),
``full(shape, value, dtype)``, ``cast``, ``where`` (Python numbers allowed), ``maximum``, ``log``,
``log_softmax`` / ``softmax`` (last axis), ``cumsum``, ``sum any all min`` (with ``axis``, ``keepdims``),
``argmax`` (last axis, first of ties, int32), ``top_k(x, k) -> (values, int32 indices)`` (last axis, sorted, first of
ties), ``take(x, indices, axis)``, ``take_per_row(x [b, n, ...], indices [b, k]) -> [b, k, ...]``, ``reshape``,
``concat``, ``count_into(indices, size)`` (how often each of ``size`` slots is named), ``isin_any(x, values)``,
``bitwise_xor``, ``shift_right_logical``,
``set_column(x, column, values)`` (x[:, column] = values, column traced), ``set_step(buffer, step, scores)``
(buffer[:, step] = scores) and ``while_loop(cond, body, state)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import random as draws
from .processors import process

REMOVED = -1.0e9  # transformers' score for beams that must not be chosen


class Bounds(NamedTuple):
    """Where things are in the token buffer (int32 scalars, the same program serves prompts of one bucket).

    start: the column of transformers' first input token (columns before it pad a prompt to its bucket; the
    prompt ends at ``plan.prompt_columns``); limit: ``start + max_length``, the column generation stops at;
    encoder_length: the encoder input's own length (BART; its bucket padding lies beyond); seed: the sampling seed
    (traced, so a new seed reuses the compiled program).
    """

    start: Any
    limit: Any
    encoder_length: Any
    seed: Any


def search(ops, plan, bounds: Bounds, sequences, cache, step, encoder_ids=None) -> dict:
    """Greedy search or sampling (``plan.do_sample``): one token per row per step until every row has hit an
    end-of-sequence token or the length limit. Returns the final buffer, ``cur`` and the scores if asked."""
    state = search_start(ops, plan, bounds, sequences, cache, step, encoder_ids)
    state = ops.while_loop(search_unfinished(ops), search_body(ops, plan, bounds, step, encoder_ids), state)
    return search_result(state)


def search_start(ops, plan, bounds: Bounds, sequences, cache, step, encoder_ids=None) -> dict:
    """The prompt written to the cache and the first token chosen."""
    logits, cache = step(sequences[:, :plan.prompt_columns], cache)
    state = {
        "sequences": sequences,
        "cur": ops.constant(plan.prompt_columns, ops.int32),
        "unfinished": ops.full((plan.rows,), True, ops.bool),
        "cache": cache,
    }
    if plan.output_scores:
        state["scores"] = ops.full((plan.rows, plan.max_steps, plan.vocab_size), 0.0, ops.float32)
    return _choose_tokens(ops, plan, bounds, state, logits, encoder_ids)


def search_body(ops, plan, bounds: Bounds, step, encoder_ids=None):
    """One step: the last token through the model, the next one chosen."""
    def body(state):
        logits, cache = step(ops.take(state["sequences"], (state["cur"] - 1)[None], axis=1), state["cache"])
        return _choose_tokens(ops, plan, bounds, {**state, "cache": cache}, logits, encoder_ids)

    return body


def search_unfinished(ops):
    return lambda state: ops.any(state["unfinished"])


def search_result(state) -> dict:
    return {key: state[key] for key in ("sequences", "cur", "scores") if key in state}


def _choose_tokens(ops, plan, bounds, state, logits, encoder_ids):
    sequences, cur, unfinished = state["sequences"], state["cur"], state["unfinished"]
    scores = process(ops, plan, logits, sequences, cur, bounds, encoder_ids)
    if plan.do_sample:
        key = draws.stream_key(ops, bounds.seed, cur - plan.prompt_columns)
        tokens = ops.argmax(scores + draws.gumbel(ops, key, (plan.rows, plan.vocab_size)))
    else:
        tokens = ops.argmax(scores)
    if plan.eos_ids:
        tokens = ops.where(unfinished, tokens, plan.pad_token_id)
    hit_end = (cur + 1 >= bounds.limit) | ops.isin_any(tokens, plan.eos_ids)
    new_state = {**state, "sequences": ops.set_column(sequences, cur, tokens), "cur": cur + 1,
                 "unfinished": unfinished & ~hit_end}
    if plan.output_scores:
        new_state["scores"] = ops.set_step(state["scores"], cur - plan.prompt_columns, scores)
    return new_state


# ------------------------------------------------------------------------------------------------------------------
# Beam search


def beam_search(ops, plan, bounds: Bounds, sequences, cache, step, encoder_ids=None) -> dict:
    """Beam search (beam sampling when ``plan.do_sample``) as transformers 4.x's vectorized ``_beam_search``:
    ``sequences`` holds each batch row repeated ``num_beams`` times. Returns the best ``num_beams`` finished
    hypotheses per batch row, best first, with their scores and generated lengths."""
    batch, beams = plan.batch, plan.num_beams
    logits, cache = step(sequences[:, :plan.prompt_columns], cache)
    first_beam_only = ops.where(ops.arange(beams)[None, :] == 0, 0.0, REMOVED)
    state = {
        "running": sequences,
        "running_scores": first_beam_only + ops.full((batch, beams), 0.0, ops.float32),
        "finished": sequences,
        "finished_scores": ops.full((batch, beams), REMOVED, ops.float32),
        "is_finished": ops.full((batch, beams), False, ops.bool),
        "lengths": ops.full((batch, beams), 0, ops.int32),
        "improvable": ops.full((batch, 1), True, ops.bool),
        "hits": ops.full((batch, plan.beam_candidates), False, ops.bool),
        "cur": ops.constant(plan.prompt_columns, ops.int32),
        "cache": cache,
    }
    if plan.output_scores:
        state["scores"] = ops.full((plan.rows, plan.max_steps, plan.vocab_size), 0.0, ops.float32)
    penalties = ops.constant(_length_penalty_table(plan), ops.float32)
    state = _beam_step(ops, plan, bounds, state, logits, encoder_ids, penalties)

    def body(state):
        running = state["running"]
        logits, cache = step(ops.take(running, (state["cur"] - 1)[None], axis=1), state["cache"])
        return _beam_step(ops, plan, bounds, {**state, "cache": cache}, logits, encoder_ids, penalties)

    state = ops.while_loop(lambda state: _beams_unfinished(ops, plan, state), body, state)
    return {key: state[key] for key in ("finished", "finished_scores", "lengths", "cur", "scores") if key in state}


def _length_penalty_table(plan) -> np.ndarray:
    """length ** length_penalty for every length, in float64 rounded to float32 as transformers' Python scalar."""
    lengths = np.arange(plan.width + 1, dtype=np.float64)
    table = np.power(lengths, plan.length_penalty, where=lengths > 0, out=np.ones_like(lengths))
    return table.astype(np.float32)


def _beam_step(ops, plan, bounds, state, logits, encoder_ids, penalties):
    batch, beams, vocab = plan.batch, plan.num_beams, plan.vocab_size
    candidates = plan.beam_candidates
    cur, running = state["cur"], state["running"]
    log_probs = process(ops, plan, ops.log_softmax(logits), running, cur, bounds, encoder_ids)
    accumulated = ops.reshape(ops.reshape(log_probs, (batch, beams, vocab)) + state["running_scores"][:, :, None],
                              (batch, beams * vocab))
    if plan.do_sample:
        key = draws.stream_key(ops, bounds.seed, cur - plan.prompt_columns)
        noisy = accumulated + draws.gumbel(ops, key, (batch, beams * vocab))
        picked = ops.top_k(noisy, candidates)[1]
        picked_scores = ops.take_per_row(accumulated, picked)
    else:
        picked_scores, picked = ops.top_k(accumulated, candidates)
    source = picked // vocab + ops.arange(batch)[:, None] * beams  # the flat row each candidate extends
    tokens = picked % vocab
    picked_sequences = ops.set_column(ops.take(running, ops.reshape(source, (batch * candidates,)), axis=0), cur,
                                      ops.reshape(tokens, (batch * candidates,)))
    hits = (cur + 1 >= bounds.limit) | ops.isin_any(tokens, plan.eos_ids)

    # The best candidates that did not end run on.
    running_scores = picked_scores + ops.cast(hits, ops.float32) * REMOVED
    keep = ops.top_k(running_scores, beams)[1]
    kept_rows = ops.reshape(keep + ops.arange(batch)[:, None] * candidates, (batch * beams,))
    reorder = ops.reshape(ops.take_per_row(source, keep), (batch * beams,))

    # The ended ones among the first num_beams candidates compete with the hypotheses finished before.
    new_length = cur + 1 - plan.prompt_columns
    just_finished = hits & (ops.arange(candidates)[None, :] < beams)
    finished_scores = picked_scores / ops.take(penalties, new_length[None], axis=0)
    beams_full = ops.all(state["is_finished"], axis=-1, keepdims=True) & (plan.early_stopping is True)
    finished_scores = finished_scores + ops.cast(beams_full, ops.float32) * REMOVED
    finished_scores = finished_scores + ops.cast(~state["improvable"], ops.float32) * REMOVED
    finished_scores = finished_scores + ops.cast(~just_finished, ops.float32) * REMOVED
    merged_scores = ops.concat([state["finished_scores"], finished_scores], axis=1)
    best = ops.top_k(merged_scores, beams)[1]
    merged_sequences = ops.concat([ops.reshape(state["finished"], (batch, beams, plan.width)),
                                   ops.reshape(picked_sequences, (batch, candidates, plan.width))], axis=1)
    merged_lengths = ops.concat([state["lengths"], ops.full((batch, candidates), 0, ops.int32) + new_length], axis=1)
    merged_finished = ops.concat([state["is_finished"], just_finished], axis=1)
    finished_scores = ops.take_per_row(merged_scores, best)
    is_finished = ops.take_per_row(merged_finished, best)

    next_cur = cur + 1
    new_state = {
        **state,
        "running": ops.take(picked_sequences, kept_rows, axis=0),
        "running_scores": ops.take_per_row(running_scores, keep),
        "finished": ops.reshape(ops.take_per_row(merged_sequences, best),
                                (batch * beams, plan.width)),
        "finished_scores": finished_scores,
        "is_finished": is_finished,
        "lengths": ops.take_per_row(merged_lengths, best),
        "hits": hits,
        "cur": next_cur,
        "cache": reorder_cache(ops, state["cache"], reorder),
    }
    new_state["improvable"] = _still_improvable(ops, plan, bounds, new_state, state["improvable"], penalties)
    if plan.output_scores:
        new_state["scores"] = ops.set_step(state["scores"], cur - plan.prompt_columns, log_probs)
    return new_state


def _still_improvable(ops, plan, bounds, state, improvable, penalties):
    """transformers' early-stop heuristic: can the best running beam still beat the worst finished one?"""
    if plan.early_stopping == "never" and plan.length_penalty > 0.0:
        best_length = bounds.limit - plan.prompt_columns
    else:
        best_length = state["cur"] - plan.prompt_columns
    best_running = state["running_scores"][:, :1] / ops.take(penalties, best_length[None], axis=0)
    worst_finished = ops.where(state["is_finished"],
                               ops.min(state["finished_scores"], axis=1, keepdims=True), REMOVED)
    return improvable & ops.any(best_running > worst_finished, axis=-1, keepdims=True)


def _beams_unfinished(ops, plan, state):
    improvement_possible = ops.any(state["improvable"])
    open_beam = ~(ops.all(state["is_finished"]) & (plan.early_stopping is True))
    return improvement_possible & open_beam & ~ops.all(state["hits"])


def rows_of_inputs(ops, plan, x):
    """``x`` [batch, ...], one entry per input, as [rows, ...]: each entry repeated for its input's consecutive rows
    (beams, or returned sequences). So the encoder and the cross-attention projections run once per input, as
    transformers expands the encoder output only after encoding."""
    every = plan.rows_per_input
    return x if every == 1 else ops.take(x, ops.arange(plan.rows) // every, axis=0)


def cache_rows_of_inputs(ops, plan, cache):
    """A cache made for the ``plan.batch`` inputs, every entry expanded to the plan's rows (``rows_of_inputs``)."""
    layers = tuple(tuple(rows_of_inputs(ops, plan, entry) for entry in layer) for layer in cache.layers)
    return type(cache)(layers, cache.index)


def reorder_cache(ops, cache, rows):
    """The cache with its self-attention rows gathered (beam search); cross-attention entries stay as they are:
    every beam of a batch row shares them."""
    layers = tuple((ops.take(layer[0], rows, axis=0), ops.take(layer[1], rows, axis=0), *layer[2:])
                   for layer in cache.layers)
    return type(cache)(layers, cache.index)
