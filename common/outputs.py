"""Model outputs with transformers 4.x field names and tuple order, shared by the three frameworks.

An output is a dataclass that also behaves as an ordered mapping of its fields that are not ``None``:
``out.logits``, ``out["logits"]`` and ``out[0]`` (tuple order, ``None`` fields skipped) all work, as in
transformers. The values are whatever tensors the framework produced.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

OUTPUT_CLASSES: list[type] = []


class ModelOutput(OrderedDict):
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        OUTPUT_CLASSES.append(cls)

    def __post_init__(self):
        names = [f.name for f in fields(self)]
        first = getattr(self, names[0])
        # tf.function rebuilds a mapping output as type(out)(iterator of (key, value) pairs), as transformers allows.
        if isinstance(first, Iterator) and all(getattr(self, name) is None for name in names[1:]):
            object.__setattr__(self, names[0], None)
            del self[names[0]]
            for key, value in first:
                setattr(self, key, value)
            return
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                super().__setitem__(field.name, value)

    def __getitem__(self, key):
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def __setattr__(self, name, value):
        if name in self.keys() or (value is not None and name in {f.name for f in fields(self)}):
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __reduce__(self):
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self[k] for k in self.keys())

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: Any = None
    past_key_values: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass
class BaseModelOutputWithPastAndCrossAttentions(ModelOutput):
    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class CausalLMOutputWithCrossAttentions(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class BaseModelOutputWithPast(ModelOutput):
    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class CausalLMOutputWithPast(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class SequenceClassifierOutputWithPast(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class Seq2SeqModelOutput(ModelOutput):
    last_hidden_state: Any = None
    past_key_values: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@dataclass
class Seq2SeqLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@dataclass
class Seq2SeqSequenceClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@dataclass
class Seq2SeqQuestionAnsweringModelOutput(ModelOutput):
    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    past_key_values: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


SEQ2SEQ_FIELDS = tuple(name for name in Seq2SeqModelOutput.__dataclass_fields__ if name != "last_hidden_state")


def seq2seq_fields(outputs: Seq2SeqModelOutput) -> dict:
    """The fields a seq2seq head copies from its base model's output (all but the last hidden state)."""
    return {name: getattr(outputs, name) for name in SEQ2SEQ_FIELDS}


def as_encoder_output(encoder_outputs) -> BaseModelOutput:
    """The encoder's output given as an output object, a mapping, a tuple (last hidden state, [hidden states,
    [attentions]]) or a bare tensor of any framework, as transformers accepts ``encoder_outputs``."""
    if isinstance(encoder_outputs, BaseModelOutput):
        return encoder_outputs
    if isinstance(encoder_outputs, Mapping):
        return BaseModelOutput(**encoder_outputs)
    if not isinstance(encoder_outputs, (tuple, list)):
        encoder_outputs = (encoder_outputs,)
    if not 1 <= len(encoder_outputs) <= 3:
        raise ValueError("encoder_outputs must be the encoder's output, or a tuple (last_hidden_state, "
                         "[hidden_states, [attentions]])")
    return BaseModelOutput(*encoder_outputs)


def tuple_or_none(values):
    """Per-layer outputs collected in a list (None when not asked for) as the tuple transformers returns."""
    return tuple(values) if values is not None else None
