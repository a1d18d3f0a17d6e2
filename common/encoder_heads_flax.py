"""The encoder heads in Flax (linen) that RoBERTa, RoBERTa-PreLayerNorm and I-BERT share.

Each head is written against its family's head base, a subclass of ``FlaxEncoderHead`` that supplies the bare
model's module (``base_model_class``), any module fields of its own (RoBERTa's ``pre_layer_norm``) and the setting
``reads_classifier_dropout`` (whether ``config.classifier_dropout`` replaces ``hidden_dropout_prob`` in the
classifiers). A family's linen head subclasses both, e.g.
``class FlaxRobertaForMaskedLMModule(FlaxEncoderForMaskedLM, _FlaxRobertaHead)``; its model object builds it with the
family's ``base_model_prefix``, under which the head holds the base, so parameter paths are the checkpoint's names.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from .backend_flax import dense
from .layers_flax import ClassificationHead, LMHead, question_answering_output, sequence_classification_loss, token_loss
from .outputs import MaskedLMOutput, MultipleChoiceModelOutput, SequenceClassifierOutput, TokenClassifierOutput
from .validation import check_rank

# Fields every linen module has (flax's), and the one the head decides per task.
_NOT_SHARED_WITH_BASE = ("parent", "name", "add_pooling_layer")


class FlaxEncoderHead(nn.Module):
    """A head on the base model, which it holds under ``base_model_prefix``."""

    config: Any
    base_model_prefix: str  # the family's (the checkpoint prefix): its model object passes it
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    gradient_checkpointing: bool = False
    # Class settings, not module fields; ``reads_classifier_dropout`` is the family head base's.
    label_names = ("labels",)

    @classmethod
    def base_model_class(cls) -> type[nn.Module]:
        """The bare model's module of the family, which the head holds under ``base_model_prefix``."""
        raise NotImplementedError(f"{cls.__name__}'s family head base must define base_model_class()")

    def _add_base_model(self, add_pooling_layer: bool) -> None:
        base_class = self.base_model_class()
        # The base module takes the head's fields that it declares too (config, dtypes, pre_layer_norm, ...).
        shared = {field.name: getattr(self, field.name) for field in dataclasses.fields(base_class)
                  if field.name not in _NOT_SHARED_WITH_BASE and hasattr(self, field.name)}
        setattr(self, self.base_model_prefix, base_class(**shared, add_pooling_layer=add_pooling_layer))

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)

    def _classifier_dropout(self) -> float:
        """``classifier_dropout`` when set and read by the family, else ``hidden_dropout_prob``."""
        config = self.config
        if self.reads_classifier_dropout and config.classifier_dropout is not None:
            return config.classifier_dropout
        return config.hidden_dropout_prob

    def _word_embeddings(self):
        return self.base_model.variables["params"]["embeddings"]["word_embeddings"]["embedding"]


class FlaxEncoderForMaskedLM(FlaxEncoderHead):
    def setup(self):
        self._add_base_model(add_pooling_layer=False)
        self.lm_head = LMHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, labels=None, **inputs):
        outputs = self.base_model(**inputs)
        logits = self.lm_head(outputs.last_hidden_state, self._word_embeddings())
        return MaskedLMOutput(
            loss=None if labels is None else token_loss(logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


class FlaxEncoderForSequenceClassification(FlaxEncoderHead):
    def setup(self):
        self._add_base_model(add_pooling_layer=False)
        self.classifier = ClassificationHead(self.config, self.dtype, self.param_dtype, rate=self._classifier_dropout())

    def __call__(self, labels=None, **inputs):
        outputs = self.base_model(**inputs)
        logits = self.classifier(outputs.last_hidden_state, inputs.get("deterministic", True))
        return SequenceClassifierOutput(
            loss=None if labels is None else sequence_classification_loss(self.config, logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


class FlaxEncoderForMultipleChoice(FlaxEncoderHead):
    """Scores each of ``num_choices`` sequences per example: inputs [batch, num_choices, seq]."""

    def setup(self):
        self._add_base_model(add_pooling_layer=True)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = dense(1, self.config.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, labels=None, **inputs):
        ids, embeds = inputs.get("input_ids"), inputs.get("inputs_embeds")
        if ids is not None:
            check_rank("input_ids", np.shape(ids), 3, "batch, num_choices, sequence")
        elif embeds is not None:
            check_rank("inputs_embeds", np.shape(embeds), 4, "batch, num_choices, sequence, hidden")
        else:
            raise ValueError("give input_ids or inputs_embeds")
        num_choices = np.shape(ids if ids is not None else embeds)[1]
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds"):
            inputs[name] = _flatten_choices(inputs.get(name))
        outputs = self.base_model(**inputs)
        pooled = self.dropout(outputs.pooler_output, deterministic=inputs.get("deterministic", True))
        logits = self.classifier(pooled).reshape(-1, num_choices)
        return MultipleChoiceModelOutput(
            loss=None if labels is None else token_loss(logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


def _flatten_choices(x):
    """[batch, num_choices, *rest] -> [batch * num_choices, *rest]: every choice is a sequence of its own."""
    return None if x is None else jnp.reshape(x, (-1,) + np.shape(x)[2:])


class FlaxEncoderForTokenClassification(FlaxEncoderHead):
    def setup(self):
        self._add_base_model(add_pooling_layer=False)
        self.dropout = nn.Dropout(self._classifier_dropout())
        self.classifier = dense(self.config.num_labels, self.config.initializer_range, self.dtype,
                                self.param_dtype)

    def __call__(self, labels=None, **inputs):
        outputs = self.base_model(**inputs)
        hidden = self.dropout(outputs.last_hidden_state, deterministic=inputs.get("deterministic", True))
        logits = self.classifier(hidden)
        return TokenClassifierOutput(
            loss=None if labels is None else token_loss(logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


class FlaxEncoderForQuestionAnswering(FlaxEncoderHead):
    """Extractive QA: start and end logits per token (``num_labels`` must be 2)."""

    label_names = ("start_positions", "end_positions")

    def setup(self):
        self._add_base_model(add_pooling_layer=False)
        self.qa_outputs = dense(self.config.num_labels, self.config.initializer_range, self.dtype,
                                self.param_dtype)

    def __call__(self, start_positions=None, end_positions=None, **inputs):
        outputs = self.base_model(**inputs)
        return question_answering_output(self.qa_outputs(outputs.last_hidden_state), outputs,
                                         start_positions, end_positions)
