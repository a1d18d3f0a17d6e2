"""The encoder heads in TensorFlow / Keras 3 that RoBERTa, RoBERTa-PreLayerNorm and I-BERT share.

Each head is written against its family's head base, a subclass of ``TFEncoderHead`` and of the family's
pretrained class, which supplies the bare model (``base_model_class``) and two settings: ``reads_classifier_dropout``
(whether ``config.classifier_dropout`` replaces ``hidden_dropout_prob`` in the classifiers) and
``base_takes_encoder_states`` (whether the base model takes a decoder's cross-attention inputs). A family's public
head subclasses both, e.g. ``class TFRobertaForMaskedLM(TFEncoderForMaskedLM, _TFRobertaHead)``. The base is held
under ``base_model_prefix``, so variable paths are the checkpoint's names.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .backend_tf import dense, dim
from .layers_tf import (
    ClassificationHead,
    LMHead,
    question_answering_output,
    sequence_classification_loss,
    span_loss,
    token_loss,
)
from .modeling_tf import TFPreTrainedModel, returned, unpack_inputs
from .outputs import MaskedLMOutput, MultipleChoiceModelOutput, SequenceClassifierOutput, TokenClassifierOutput
from .validation import check_rank


class TFEncoderHead(TFPreTrainedModel):
    """A head on the base model, which it holds under ``base_model_prefix``."""

    # Settings the family's head base defines (see the module docstring).
    reads_classifier_dropout: bool
    base_takes_encoder_states: bool

    @classmethod
    def base_model_class(cls) -> type[TFPreTrainedModel]:
        """The bare model of the family, which the head holds under ``base_model_prefix``."""
        raise NotImplementedError(f"{cls.__name__}'s family head base must define base_model_class()")

    def _add_base_model(self, add_pooling_layer: bool) -> None:
        base_model = self.base_model_class()(
            self.config, add_pooling_layer=add_pooling_layer, dtype=self.dtype_policy, name=self.base_model_prefix
        )
        setattr(self, self.base_model_prefix, base_model)

    def _classifier_dropout(self) -> float:
        """``classifier_dropout`` when set and read by the family, else ``hidden_dropout_prob``."""
        config = self.config
        if self.reads_classifier_dropout and config.classifier_dropout is not None:
            return config.classifier_dropout
        return config.hidden_dropout_prob

    def _word_embeddings(self):
        return self.get_base_model().embeddings.word_embeddings.embeddings


class TFEncoderForMaskedLM(TFEncoderHead):
    def __init__(self, config, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self._add_base_model(add_pooling_layer=False)
        self.lm_head = LMHead(config, name="lm_head", dtype=self.dtype_policy)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
             output_attentions=None, output_hidden_states=None, return_dict=None, training=False):
        # a decoder's cross-attention inputs, for base models that take them (I-BERT's takes none)
        encoder_states = ({"encoder_hidden_states": encoder_hidden_states,
                           "encoder_attention_mask": encoder_attention_mask} if self.base_takes_encoder_states else {})
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds, **encoder_states,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            training=training,
        )
        out = MaskedLMOutput(
            logits=self.lm_head(outputs.last_hidden_state, word_embeddings=self._word_embeddings()),
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return token_loss(output.logits, labels)


class TFEncoderForSequenceClassification(TFEncoderHead):
    def __init__(self, config, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self._add_base_model(add_pooling_layer=False)
        self.classifier = ClassificationHead(config, self._classifier_dropout(), name="classifier", dtype=self.dtype_policy)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             training=False):
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            training=training,
        )
        out = SequenceClassifierOutput(
            logits=self.classifier(outputs.last_hidden_state, training=training),
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return sequence_classification_loss(self.config, output.logits, labels)


class TFEncoderForMultipleChoice(TFEncoderHead):
    """Scores each of ``num_choices`` sequences per example: inputs [batch, num_choices, seq]."""

    serving_rank = 3  # [batch, choices, length]

    def __init__(self, config, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self._add_base_model(add_pooling_layer=True)
        dtype = self.dtype_policy
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)
        self.classifier = dense(1, config.hidden_size, config.initializer_range, "classifier", dtype)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, token_type_ids=None, attention_mask=None, labels=None, position_ids=None,
             head_mask=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, training=False):
        if input_ids is not None:
            check_rank("input_ids", list(input_ids.shape), 3, "batch, num_choices, sequence")
            num_choices = dim(input_ids, 1)
        elif inputs_embeds is not None:
            check_rank("inputs_embeds", list(inputs_embeds.shape), 4, "batch, num_choices, sequence, hidden")
            num_choices = dim(inputs_embeds, 1)
        else:
            raise ValueError("give input_ids or inputs_embeds")
        outputs = self.get_base_model()(
            input_ids=_flatten_choices(input_ids), attention_mask=_flatten_choices(attention_mask),
            token_type_ids=_flatten_choices(token_type_ids), position_ids=_flatten_choices(position_ids),
            head_mask=head_mask, inputs_embeds=_flatten_choices(inputs_embeds),
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            training=training,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output, training=training))
        out = MultipleChoiceModelOutput(
            logits=tf.reshape(logits, [-1, num_choices]), hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return token_loss(output.logits, labels)


def _flatten_choices(x):
    """[batch, num_choices, *rest] -> [batch * num_choices, *rest]: every choice is a sequence of its own."""
    if x is None:
        return None
    x = tf.convert_to_tensor(x)
    rest = [dim(x, axis) for axis in range(2, x.shape.rank)]
    return tf.reshape(x, [-1, *rest])


class TFEncoderForTokenClassification(TFEncoderHead):
    def __init__(self, config, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self._add_base_model(add_pooling_layer=False)
        dtype = self.dtype_policy
        self.dropout = keras.layers.Dropout(self._classifier_dropout(), dtype=dtype)
        self.classifier = dense(config.num_labels, config.hidden_size, config.initializer_range, "classifier", dtype)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             training=False):
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            training=training,
        )
        out = TokenClassifierOutput(
            logits=self.classifier(self.dropout(outputs.last_hidden_state, training=training)),
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return token_loss(output.logits, labels)


class TFEncoderForQuestionAnswering(TFEncoderHead):
    """Extractive QA: start and end logits per token (``num_labels`` must be 2)."""

    def __init__(self, config, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self._add_base_model(add_pooling_layer=False)
        self.qa_outputs = dense(config.num_labels, config.hidden_size, config.initializer_range, "qa_outputs",
                                self.dtype_policy)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
             output_hidden_states=None, return_dict=None, training=False):
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            training=training,
        )
        out = question_answering_output(self.qa_outputs(outputs.last_hidden_state), outputs, start_positions,
                                        end_positions)
        return returned(out, return_dict, self.config)

    def head_loss(self, labels, output):
        return span_loss(output.start_logits, output.end_logits, labels["start_positions"], labels["end_positions"])
