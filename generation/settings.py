"""From ``generate``'s arguments to a decoding plan and numpy buffers: framework-neutral, checked before any compute.

``prepare`` resolves the settings as transformers 4.x does (keyword arguments over a passed ``GenerationConfig`` over
the model's own), validates them and the inputs with clear errors, pads the prompt to a bucket so that a new prompt
length does not recompile, and lays out the token buffer. ``Plan`` holds everything that fixes the compiled
program (hashable, so each framework keeps one compiled function per plan); what varies within a bucket travels
as int32 scalars (``decoding.Bounds``).
"""

from __future__ import annotations

import copy
import os
import secrets
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..common.outputs import ModelOutput
from .config import GenerationConfig
from .random import to_int32

BUCKET = 16  # prompt, new-token and encoder lengths are padded up to a multiple of this


@dataclass(frozen=True)
class Plan:
    batch: int
    num_beams: int  # 1 outside beam search
    rows: int  # batch * num_beams (beam search) or batch * num_return_sequences (sampling)
    vocab_size: int
    width: int  # columns of the token buffer and slots of the cache
    prompt_columns: int  # the (bucketed) prompt fills columns [0, prompt_columns)
    do_sample: bool
    eos_ids: tuple[int, ...]
    pad_token_id: int
    repetition_penalty: float
    no_repeat_ngram_size: int
    encoder_no_repeat_ngram_size: int
    bad_words: tuple[tuple[int, ...], ...]
    min_length: int
    min_new_tokens: int
    forced_bos_token_id: int | None
    forced_eos_token_ids: tuple[int, ...]
    temperature: float
    top_k: int
    top_p: float
    min_tokens_to_keep: int
    length_penalty: float
    early_stopping: bool | str
    num_return_sequences: int
    output_scores: bool

    @property
    def max_steps(self) -> int:
        return self.width - self.prompt_columns

    @property
    def beam_candidates(self) -> int:
        """transformers keeps (1 + number of eos tokens, at least 2) x num_beams candidates per step."""
        return max(2, 1 + len(self.eos_ids)) * self.num_beams

    @property
    def is_beam_search(self) -> bool:
        return self.num_beams > 1

    @property
    def rows_per_input(self) -> int:
        """How many rows each input becomes: its beams, or its returned sequences (consecutive rows)."""
        return self.rows // self.batch


@dataclass
class Prepared:
    """The plan and the numpy arrays a framework turns into tensors."""

    plan: Plan
    sequences: np.ndarray  # [rows, width] int32: the prompt, then the fill value
    slot_mask: np.ndarray  # [rows, width] int32: 0 for padding slots
    start: int
    limit: int
    seed: int  # as an int32 value
    encoder_ids: np.ndarray | None = None  # [rows, encoder bucket] int32 (BART)
    encoder_mask: np.ndarray | None = None
    encoder_length: int = 0
    encoder_hidden_states: np.ndarray | None = None  # [rows, encoder bucket, d_model], when the caller encoded


@dataclass(frozen=True)
class ModelFacts:
    """What generation needs to know of a model: filled by each framework's mixin from its config."""

    vocab_size: int
    is_encoder_decoder: bool
    position_limit: int  # the longest sequence the position table allows
    positions_count_slots: bool  # positions number cache slots, not tokens (BART): no padding before the prompt


def resolve_config(defaults: GenerationConfig, generation_config: GenerationConfig | None,
                   kwargs: dict[str, Any]) -> tuple[GenerationConfig, dict[str, Any]]:
    """Keyword arguments over ``generation_config`` over the model's own; returns (settings, other kwargs)."""
    if generation_config is not None and not isinstance(generation_config, GenerationConfig):
        raise TypeError(f"generation_config must be a GenerationConfig, got {type(generation_config).__name__}")
    config = copy.deepcopy(generation_config if generation_config is not None else defaults)
    if "max_length" in kwargs and kwargs.get("max_new_tokens") is not None:
        raise ValueError("pass max_length or max_new_tokens, not both: max_new_tokens counts only new tokens, "
                         "max_length the prompt too")
    if "max_length" in kwargs:  # an explicit max_length overrides a stored max_new_tokens
        config.max_new_tokens = None
    unused = config.update(**kwargs)
    config.validate()
    return config, unused


def prepare(facts: ModelFacts, config: GenerationConfig, input_ids, attention_mask, seed: int | None,
            encoder_hidden_states: np.ndarray | None = None) -> Prepared:
    """Check ``input_ids`` ([batch, length] ids; BART: the encoder input) and the settings, then lay out buffers.

    ``encoder_hidden_states`` [batch, length, d_model] (BART): the encoder's output, computed by the caller;
    ``input_ids`` may then be left out (``encoder_no_repeat_ngram_size`` needs them, and is ignored without them).
    """
    ids_known = input_ids is not None
    if encoder_hidden_states is not None:
        input_ids = _encoded_input_ids(facts, config, input_ids, encoder_hidden_states)
    input_ids = _as_ids(input_ids, facts.vocab_size)
    eos_ids = _id_tuple(config.eos_token_id)
    pad = config.pad_token_id if config.pad_token_id is not None else (eos_ids[0] if eos_ids else None)
    attention_mask = _attention_mask(input_ids, attention_mask, pad, eos_ids)
    if pad is None and not attention_mask.all():
        raise ValueError("the batch is padded (attention_mask has zeros) but no pad_token_id is set: pass "
                         "pad_token_id= to generate or set it in the generation config")
    batch = input_ids.shape[0]
    if facts.is_encoder_decoder:
        start_token = config.decoder_start_token_id
        if start_token is None:
            start_token = config.bos_token_id
        if start_token is None:
            raise ValueError("an encoder-decoder model needs decoder_start_token_id (or bos_token_id) to start "
                             "decoding: pass it to generate or set it in the generation config")
        prompt = np.full((batch, 1), start_token, np.int64)
        prompt_mask = np.ones((batch, 1), np.int64)
    else:
        prompt, prompt_mask = input_ids, attention_mask
        _warn_right_padding(prompt, prompt_mask, pad)
    prompt_length = prompt.shape[1]
    max_length = _max_length(config, prompt_length)
    if max_length > facts.position_limit:
        raise ValueError(f"max_length {max_length} exceeds the {facts.position_limit} positions the model allows "
                         f"(max_position_embeddings); lower max_length or max_new_tokens")
    min_new_tokens = config.min_new_tokens or 0
    plan_kwargs = _search_settings(config, eos_ids)
    expand = plan_kwargs["num_beams"] if plan_kwargs["num_beams"] > 1 else plan_kwargs["num_return_sequences"]
    pad_columns, width = _bucketed_layout(prompt_length, max_length, facts)
    fill = _fill_value(pad, eos_ids)
    sequences = np.full((batch, width), fill, np.int64)
    sequences[:, :pad_columns] = pad if pad is not None else fill
    sequences[:, pad_columns:pad_columns + prompt_length] = prompt
    slot_mask = np.ones((batch, width), np.int64)
    slot_mask[:, :pad_columns] = 0
    slot_mask[:, pad_columns:pad_columns + prompt_length] = prompt_mask
    plan = Plan(
        batch=batch, rows=batch * expand, vocab_size=facts.vocab_size, width=width,
        prompt_columns=pad_columns + prompt_length, eos_ids=eos_ids,
        pad_token_id=pad if pad is not None else 0,
        repetition_penalty=float(config.repetition_penalty), no_repeat_ngram_size=config.no_repeat_ngram_size,
        encoder_no_repeat_ngram_size=config.encoder_no_repeat_ngram_size if facts.is_encoder_decoder and ids_known
        else 0,
        bad_words=_bad_words(config.bad_words_ids, eos_ids, facts.vocab_size),
        min_length=config.min_length, min_new_tokens=min_new_tokens,
        forced_bos_token_id=_checked_id(config.forced_bos_token_id, facts.vocab_size, "forced_bos_token_id"),
        forced_eos_token_ids=tuple(_checked_id(t, facts.vocab_size, "forced_eos_token_id")
                                   for t in _id_tuple(config.forced_eos_token_id)),
        output_scores=bool(config.output_scores and config.return_dict_in_generate),
        **plan_kwargs,
    )
    prepared = Prepared(plan, np.repeat(sequences, expand, axis=0).astype(np.int32),
                        np.repeat(slot_mask, expand, axis=0).astype(np.int32), pad_columns,
                        pad_columns + max_length, _seed(seed, config))
    if facts.is_encoder_decoder:
        _add_encoder_inputs(prepared, input_ids, attention_mask, expand, pad, facts, encoder_hidden_states)
    return prepared


def _encoded_input_ids(facts: ModelFacts, config: GenerationConfig, input_ids, encoder_hidden_states: np.ndarray):
    """The encoder input that goes with a given encoder output: ``input_ids`` checked against it, or, when left
    out, placeholder ids of its shape (they only lay out the buffers)."""
    if not facts.is_encoder_decoder:
        raise TypeError("encoder_outputs= is for encoder-decoder models (BartForConditionalGeneration)")
    shape = np.shape(encoder_hidden_states)
    if len(shape) != 3 or 0 in shape:
        raise ValueError(f"encoder_outputs must hold a last hidden state [batch, length, d_model], got {list(shape)}")
    if input_ids is None:
        if config.encoder_no_repeat_ngram_size:
            warnings.warn("encoder_no_repeat_ngram_size needs the encoder's input_ids; without them it is ignored "
                          "(pass input_ids= with encoder_outputs=)", stacklevel=_caller_stacklevel())
        return np.zeros(shape[:2], np.int64)
    if np.shape(input_ids) != shape[:2]:
        raise ValueError(f"input_ids {list(np.shape(input_ids))} do not match encoder_outputs {list(shape)}: "
                         f"they must be the encoder's input and output")
    return input_ids


def _seed(seed: int | None, config: GenerationConfig) -> int:
    """The sampling seed as an int32 value; without one, a fresh seed for each call that samples."""
    if not config.do_sample:
        return 0
    if seed is None:
        return to_int32(secrets.randbits(32))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return to_int32(int(seed))


def _search_settings(config: GenerationConfig, eos_ids) -> dict[str, Any]:
    num_beams = config.num_beams
    return {
        "num_beams": num_beams,
        "do_sample": bool(config.do_sample),
        "temperature": float(config.temperature) if config.do_sample else 1.0,
        "top_k": int(config.top_k or 0) if config.do_sample else 0,
        "top_p": float(config.top_p if config.top_p is not None else 1.0) if config.do_sample else 1.0,
        "min_tokens_to_keep": len(eos_ids) + 1 if num_beams > 1 and eos_ids else (2 if num_beams > 1 else 1),
        "length_penalty": float(config.length_penalty),
        "early_stopping": config.early_stopping,
        "num_return_sequences": config.num_return_sequences,
    }


def _add_encoder_inputs(prepared: Prepared, input_ids, attention_mask, expand: int, pad, facts: ModelFacts,
                        encoder_hidden_states: np.ndarray | None):
    """The encoder's input (or output) padded on the right to its bucket (masked there) and repeated per row."""
    batch, length = input_ids.shape
    width = _round_up(length)
    if width > facts.position_limit:
        width = length
    ids = np.full((batch, width), pad if pad is not None else 0, np.int64)
    mask = np.zeros((batch, width), np.int64)
    ids[:, :length], mask[:, :length] = input_ids, attention_mask
    prepared.encoder_ids = np.repeat(ids, expand, axis=0).astype(np.int32)
    prepared.encoder_mask = np.repeat(mask, expand, axis=0).astype(np.int32)
    prepared.encoder_length = length
    if encoder_hidden_states is not None:
        hidden = np.zeros((batch, width, encoder_hidden_states.shape[2]), encoder_hidden_states.dtype)
        hidden[:, :length] = encoder_hidden_states
        prepared.encoder_hidden_states = np.repeat(hidden, expand, axis=0)


def _round_up(length: int) -> int:
    return -(-length // BUCKET) * BUCKET


def _bucketed_layout(prompt_length: int, max_length: int, facts: ModelFacts) -> tuple[int, int]:
    """(padding columns before the prompt, buffer width): the prompt and the new tokens each rounded up to a
    bucket, so prompts of one bucket share a compiled program; exact sizes where buckets would pass the
    position table (BART's decoder numbers slots, and caches refuse more slots than positions)."""
    if facts.is_encoder_decoder or facts.positions_count_slots:
        return 0, min(_round_up(max_length), facts.position_limit)
    padded_prompt = _round_up(prompt_length)
    width = padded_prompt + _round_up(max_length - prompt_length)
    if width > facts.position_limit:
        return 0, max_length
    return padded_prompt - prompt_length, width


def _max_length(config: GenerationConfig, prompt_length: int) -> int:
    max_length = config.max_length
    if config.max_new_tokens is not None:
        max_length = prompt_length + config.max_new_tokens
    if prompt_length >= max_length:
        raise ValueError(f"the prompt has {prompt_length} tokens but max_length is {max_length}, so nothing can be "
                         f"generated: raise max_length, or pass max_new_tokens to count only new tokens")
    return max_length


def _as_ids(input_ids, vocab_size: int) -> np.ndarray:
    if input_ids is None:
        raise ValueError("generate needs input_ids [batch, length]")
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"input_ids must have shape [batch, length] with both at least 1, got {list(ids.shape)}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"input_ids must hold integer token ids, got dtype {ids.dtype}")
    bad = ids[(ids < 0) | (ids >= vocab_size)]
    if bad.size:
        raise ValueError(f"input_ids holds {int(bad[0])}, outside the vocabulary [0, {vocab_size})")
    return ids.astype(np.int64)


def _attention_mask(input_ids: np.ndarray, attention_mask, pad, eos_ids) -> np.ndarray:
    """The given mask (checked), or transformers' default: padding where a pad token that is not eos appears."""
    if attention_mask is not None:
        mask = np.asarray(attention_mask)
        if mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids {list(input_ids.shape)}, "
                             f"got {list(mask.shape)}")
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        return mask.astype(np.int64)
    if pad is not None and pad not in eos_ids and (input_ids == pad).any():
        return (input_ids != pad).astype(np.int64)
    return np.ones_like(input_ids)


def _warn_right_padding(prompt: np.ndarray, mask: np.ndarray, pad) -> None:
    if pad is not None and ((prompt[:, -1] == pad) & (mask[:, -1] == 0)).any():
        warnings.warn("A decoder-only model is being given a right-padded prompt: generated tokens would follow "
                      "the padding. Pad on the left (tokenizer padding_side='left') for correct results.",
                      stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside this package (the call of
    ``generate``), however many frames each framework's mixin (and its decorators) adds."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(2), 2  # 1: the function that warns, 2: its caller
    while frame is not None and (os.path.abspath(frame.f_code.co_filename).startswith(package)
                                 or frame.f_code.co_filename.endswith(os.path.join("torch", "utils", "_contextlib.py"))):
        frame, level = frame.f_back, level + 1
    return level


def _fill_value(pad, eos_ids) -> int:
    """What unwritten columns of the output hold: transformers' ``pad_token_id or eos_token_id[0]``."""
    if not eos_ids:
        return pad if pad is not None else 0
    return pad if pad else eos_ids[0]


def _id_tuple(value) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))


def _checked_id(token, vocab_size: int, name: str):
    if token is not None and not 0 <= token < vocab_size:
        raise ValueError(f"{name} is {token}, outside the vocabulary [0, {vocab_size})")
    return token


def _bad_words(bad_words_ids, eos_ids, vocab_size: int) -> tuple[tuple[int, ...], ...]:
    """The banned sequences, checked against the vocabulary, less the lone eos tokens (as transformers)."""
    if bad_words_ids is None:
        return ()
    words = []
    for word in bad_words_ids:
        for token in word:
            _checked_id(token, vocab_size, "bad_words_ids")
        if not (len(word) == 1 and word[0] in eos_ids):
            words.append(tuple(int(t) for t in word))
    return tuple(words)


@dataclass
class GenerateOutput(ModelOutput):
    """What ``generate`` returns with ``return_dict_in_generate=True`` (and, in Flax, always): the sequences, with
    ``output_scores=True`` the processed scores of each step, and for beam search each sequence's score."""

    sequences: Any = None
    scores: tuple | None = None
    sequences_scores: Any = None


def collect(prepared: Prepared, result: dict[str, np.ndarray]) -> GenerateOutput:
    """Crop the buffers to what transformers returns: the prompt (without bucket padding) and the new tokens."""
    plan, start = prepared.plan, prepared.start
    steps = int(result["cur"]) - plan.prompt_columns
    scores = None
    if plan.output_scores:
        scores = tuple(result["scores"][:, i] for i in range(steps))
    if not plan.is_beam_search:
        return GenerateOutput(result["sequences"][:, start:int(result["cur"])].astype(np.int64), scores)
    keep = plan.num_return_sequences
    finished = result["finished"].reshape(plan.batch, plan.num_beams, plan.width)[:, :keep]
    generated = int(result["lengths"][:, :keep].max())
    sequences = finished.reshape(plan.batch * keep, plan.width)[:, start:plan.prompt_columns + generated]
    sequences_scores = result["finished_scores"][:, :keep].reshape(-1)
    return GenerateOutput(sequences.astype(np.int64), scores, sequences_scores)
