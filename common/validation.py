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
        raise ValueError(token_id_error(low if low < 0 else high, vocab_size, name))


def token_id_error(bad, vocab_size: int, name: str = "input_ids") -> str:
    """The message of ``check_token_ids`` (``bad`` may be "{}", a placeholder for jax's checkify to fill)."""
    return (f"{name} holds token id {bad}, outside the vocabulary [0, {vocab_size}); "
            f"check that the tokenizer matches the model (vocab_size={vocab_size})")


def check_index_range(ids, size: int, name: str, what: str, low: int = 0) -> None:
    """Like ``check_token_ids`` for other embedding tables (positions, token types): ids must lie in
    [``low``, ``size``) (OPT numbers padding positions -1)."""
    ids = np.asarray(ids)
    if ids.size and (int(ids.min()) < low or int(ids.max()) >= size):
        bad = int(ids.min()) if int(ids.min()) < low else int(ids.max())
        raise ValueError(index_error(bad, size, name, what, low))


def index_error(bad, size: int, name: str, what: str, low: int = 0) -> str:
    """The message of ``check_index_range`` (``bad`` may be "{}", as in ``token_id_error``)."""
    return f"{name} holds {bad}, outside [{low}, {size}) allowed by {what}"


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
        check_not_empty(ids_name, np.shape(ids))
        return tuple(np.shape(ids))
    if embeds is not None:
        check_rank(embeds_name, np.shape(embeds), 3, "batch, sequence, hidden")
        check_not_empty(embeds_name, np.shape(embeds))
        return tuple(np.shape(embeds)[:2])
    raise ValueError(f"give {ids_name} or {embeds_name}")


def check_static_cache_length(max_length: int, limit: int, what: str = "max_position_embeddings") -> None:
    """Refuse a StaticCache with more slots than the model has positions (``init_cache`` checks it once for every
    step, so a compiled step cannot read past the position table)."""
    if max_length > limit:
        raise ValueError(f"a cache of {max_length} slots exceeds the {limit} positions the model allows ({what})")


def check_cache_room(filled: int, new: int, max_length: int) -> None:
    """A StaticCache step writes ``new`` slots after the ``filled`` ones; past ``max_length`` it would overflow."""
    if filled + new > max_length:
        raise ValueError(f"{cache_overflow_error(new, max_length)}: {filled} are already filled")


def cache_overflow_error(new: int, max_length: int) -> str:
    return f"the StaticCache has {max_length} slots; writing {new} more would overflow it (see init_cache)"


def check_static_cache_decoder(config) -> None:
    """A StaticCache serves a decoder (an encoder-only RoBERTa attends in both directions)."""
    if not config.is_decoder:
        raise ValueError("a StaticCache needs a decoder: set is_decoder=True in the config")


# ---------------------------------------------------------------------------------------------------------------
# Shapes, caches, masks and labels. Shapes may hold None (a TensorFlow graph's unknown dimension): those pass.


def check_not_empty(name: str, shape: Sequence[int | None]) -> None:
    """A batch of no rows, or rows of no tokens, has nothing to attend over (PyTorch and Flax fail deep inside)."""
    if 0 in tuple(shape)[:2]:
        raise ValueError(f"{name} has shape {list(shape)}: give at least one sequence (batch size > 0) of at least "
                         f"one token (sequence length > 0)")


def check_cache_layers(past_key_values, num_layers: int, what: str = "num_hidden_layers") -> None:
    """A cache (per-layer tuples or a StaticCache) holds one entry per decoder layer: a shorter one fails with an
    IndexError deep inside, a longer one would be silently cut."""
    if past_key_values is None:
        return
    layers = getattr(past_key_values, "layers", past_key_values)
    if len(layers) != num_layers:
        raise ValueError(f"past_key_values holds {len(layers)} layer(s) but the model has {num_layers} ({what}); "
                         f"pass the past_key_values this model returned, or a cache from its init_cache")


def check_cache_keys(shape: Sequence[int | None], batch) -> None:
    """A cache's keys are [batch, heads, past length, head_dim], with the batch of the new tokens (a batch or
    dimension not known yet passes)."""
    if len(shape) != 4 or (isinstance(batch, int) and shape[0] not in (None, batch)):
        raise ValueError(f"past_key_values keys must have shape [batch={batch}, heads, past length, head_dim], "
                         f"got {list(shape)}")


def check_encoder_hidden_states(shape: Sequence[int | None], batch: int | None, hidden_size: int | None = None) -> None:
    """The encoder output a decoder attends to: [batch, encoder sequence, hidden] with the decoder's batch."""
    name = "the encoder output (encoder_outputs[0] or encoder_hidden_states)"
    check_rank(name, shape, 3, "batch, encoder sequence, hidden")
    if hidden_size is not None and shape[2] is not None and shape[2] != hidden_size:
        raise ValueError(f"{name} has shape {list(shape)} but its last dimension must be the model's hidden size "
                         f"{hidden_size}")
    if isinstance(batch, int) and shape[0] is not None and shape[0] != batch:
        raise ValueError(f"the encoder output has batch size {shape[0]} but the decoder input has batch size "
                         f"{batch}; they must be equal")


def check_binary_mask(values, name: str = "attention_mask") -> None:
    """A padding mask that positions are counted from (OPT) must hold only 0 and 1; ``values`` may be the mask's
    distinct values."""
    values = np.asarray(values)
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        raise ValueError(f"{name} must hold only 0 (padding) and 1 (token), got {float(bad.flat[0]):g}; positions are "
                         f"counted from it")


def dtype_name(dtype) -> str:
    """"int64", "float32", ... of a numpy, TensorFlow, JAX or PyTorch dtype."""
    name = getattr(dtype, "name", None)
    return name if isinstance(name, str) else str(dtype).removeprefix("torch.")


def _dtype_kind(dtype) -> str:
    """"integers", "floats" or "bools": Keras casts float64 inputs to float32 and JAX int64 to int32, so errors name
    the kind, which every framework keeps."""
    name = dtype_name(dtype)
    if name.startswith(("int", "uint")):
        return "integers"
    if name.startswith(("float", "bfloat")):
        return "floats"
    return "bools" if name == "bool" else name


def _known_size(shape: Sequence[int | None]) -> int | None:
    return None if any(d is None for d in shape) else int(np.prod(shape, dtype=np.int64))


def check_class_labels(name: str, shape: Sequence[int | None], dtype, expected: Sequence[int], meaning: str) -> None:
    """Labels of a classification or language-model head: integer class ids, one per prediction (any shape with
    that many elements, as PyTorch's flattening accepts; -100 marks a label to ignore)."""
    kind = _dtype_kind(dtype)
    if kind != "integers":
        raise ValueError(f"{name} must hold integer class ids ({meaning}), got {kind}; float labels are "
                         f"for regression (num_labels=1 or problem_type='regression') or "
                         f"problem_type='multi_label_classification'")
    size, wanted = _known_size(shape), _known_size(expected)
    if size is not None and wanted is not None and size != wanted:
        raise ValueError(f"{name} has shape {list(shape)} but must have shape {list(expected)} ({meaning})")


def check_float_labels(name: str, shape: Sequence[int | None], dtype, logits_shape: Sequence[int], meaning: str, *,
                       squeezed: bool = False) -> None:
    """Targets of a regression or multi-label head: floats of the logits' shape (``squeezed``: a one-output
    regression, whose [batch, 1] logits also take [batch] targets, as PyTorch squeezes both)."""
    kind = _dtype_kind(dtype)
    if kind != "floats":
        raise ValueError(f"{name} must hold floats ({meaning}), got {kind}; integer labels are class ids, "
                         f"for problem_type='single_label_classification'")
    allowed = [tuple(logits_shape)]
    if squeezed and tuple(logits_shape)[-1:] == (1,):
        allowed.append(tuple(logits_shape)[:-1])
    if None not in (*shape, *logits_shape) and tuple(shape) not in allowed:
        raise ValueError(f"{name} has shape {list(shape)} but must have shape {list(logits_shape)} ({meaning})")


# ---------------------------------------------------------------------------------------------------------------
# A whole batch, before compiled code. Under jax.jit or tf.function(jit_compile=True) the models cannot raise: an
# invalid index makes the affected outputs NaN. check_inputs gives the eager errors first.

_TOKEN_ID_NAMES = ("input_ids", "decoder_input_ids")
_FIRST_POSITION = {"opt": -1}  # OPT numbers padding -1 (its position table keeps two rows before position 0)


def check_inputs(config, batch) -> None:
    """Raise the error an eager call would raise for any invalid index in ``batch``, the keyword arguments of a
    model call (numpy, TensorFlow, JAX or PyTorch arrays holding values; other keys are ignored).

    Checks token ids (``input_ids``, ``decoder_input_ids``) against the vocabulary, ``token_type_ids`` against
    ``type_vocab_size``, ``position_ids`` against the position table, sequence lengths against the positions,
    OPT's ``attention_mask`` (positions are counted from it) and a ``past_key_values`` StaticCache's room for the
    new tokens. Call it on each batch before a jitted function to get errors instead of NaN.
    """
    limit = getattr(config, "max_sequence_length", config.max_position_embeddings)
    for name in _TOKEN_ID_NAMES:
        if batch.get(name) is not None:
            ids = _values(batch[name])
            check_token_ids(ids, config.vocab_size, name)
            check_sequence_length(ids.shape[-1], limit)
    if batch.get("token_type_ids") is not None and hasattr(config, "type_vocab_size"):
        check_index_range(_values(batch["token_type_ids"]), config.type_vocab_size, "token_type_ids",
                          "type_vocab_size")
    if batch.get("position_ids") is not None:
        check_index_range(_values(batch["position_ids"]), config.max_position_embeddings, "position_ids",
                          "max_position_embeddings", _FIRST_POSITION.get(config.model_type, 0))
    if config.model_type == "opt" and batch.get("attention_mask") is not None:
        check_binary_mask(np.unique(_values(batch["attention_mask"])))
    cache = batch.get("past_key_values")
    if hasattr(cache, "index") and hasattr(cache, "max_length"):  # a StaticCache
        new = batch.get("input_ids", batch.get("decoder_input_ids"))
        check_cache_room(int(_values(cache.index)), _values(new).shape[-1] if new is not None else 0,
                         cache.max_length)


def _values(array) -> np.ndarray:
    """A numpy copy of a numpy, TensorFlow, JAX or PyTorch (CPU or not) array."""
    if hasattr(array, "detach"):  # PyTorch
        array = array.detach().cpu()
    return np.asarray(array)


def infer_problem_type(num_labels: int, labels_dtype) -> str:
    """A sequence classifier's problem type when the config leaves it unset, as transformers infers it: one output is
    regression, integer labels are single-label classification, float labels multi-label classification."""
    if num_labels == 1:
        return "regression"
    return "single_label_classification" if _dtype_kind(labels_dtype) == "integers" else "multi_label_classification"


def check_sequence_classification_labels(problem_type: str, shape: Sequence[int | None], dtype,
                                         logits_shape: Sequence[int | None]) -> None:
    """Labels of a sequence classifier ([batch, num_labels] logits) for its problem type."""
    if problem_type == "regression":
        check_float_labels("labels", shape, dtype, logits_shape, "regression targets, one per output", squeezed=True)
    elif problem_type == "single_label_classification":
        check_class_labels("labels", shape, dtype, tuple(logits_shape)[:-1], "one class id per example")
    else:
        check_float_labels("labels", shape, dtype, logits_shape, "multi-label targets, 0 or 1 per class")


def check_token_labels(shape: Sequence[int | None], dtype, logits_shape: Sequence[int | None]) -> None:
    """Labels of a head that predicts a class per position or per example (LM, token, multiple choice)."""
    check_class_labels("labels", shape, dtype, tuple(logits_shape)[:-1], "one class id per prediction, -100 to ignore it")


def check_span_positions(name: str, shape: Sequence[int | None], dtype, batch: int | None) -> None:
    """start_positions / end_positions of a question-answering head: one token index per example."""
    check_class_labels(name, shape, dtype, (batch,), "one token index per example")


def check_mask_shape(name: str, shape: Sequence[int | None], batch, query_length, key_length) -> None:
    """A padding mask [batch, keys] or a full mask [batch, queries, keys] (keys count cached positions too);
    unknown (None, or traced) sizes pass."""
    def fits(expected):
        return len(shape) == len(expected) and all(
            not isinstance(e, int) or s is None or s == e for s, e in zip(shape, expected))

    if len(shape) == 2 and not fits((batch, key_length)):
        check_shape(name, shape, (batch, key_length), "batch, key length")
    elif len(shape) == 3 and not fits((batch, query_length, key_length)):
        check_shape(name, shape, (batch, query_length, key_length), "batch, query length, key length")
    elif len(shape) not in (2, 3):
        raise ValueError(f"{name} must have 2 or 3 dimensions, got shape {list(shape)}")


def check_gradient_checkpointing(config) -> None:
    """Gradient checkpointing runs each layer's forward pass twice, so the pass must change no state: I-BERT with
    ``quant_mode`` moves its activation ranges in every training pass, and the recomputation would see others."""
    if getattr(config, "quant_mode", False):
        raise ValueError("gradient checkpointing recomputes each layer, but I-BERT with quant_mode=True updates its "
                         "activation ranges in every training pass: train it without gradient checkpointing, or "
                         "with quant_mode=False")
