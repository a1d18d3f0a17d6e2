"""The encoder heads in PyTorch that RoBERTa, RoBERTa-PreLayerNorm and I-BERT share.

Each head is written against its family's head base, a subclass of ``EncoderHead`` and of the family's pretrained
class, which supplies the bare model (``base_model_class``) and two settings: ``reads_classifier_dropout`` (whether
``config.classifier_dropout`` replaces ``hidden_dropout_prob`` in the classifiers) and ``base_takes_encoder_states``
(whether the base model takes a decoder's cross-attention inputs). A family's public head subclasses both, e.g.
``class RobertaForMaskedLM(EncoderForMaskedLM, _RobertaHead)``. The base is held under ``base_model_prefix``, so
parameter names are the checkpoint's.
"""

from __future__ import annotations

from torch import nn

from .layers_pt import ClassificationHead, LMHead, question_answering_output, sequence_classification_loss, token_loss
from .modeling_pt import PreTrainedModel
from .outputs import MaskedLMOutput, MultipleChoiceModelOutput, SequenceClassifierOutput, TokenClassifierOutput
from .validation import check_rank


class EncoderHead(PreTrainedModel):
    """A head on the base model, which it holds under ``base_model_prefix``."""

    # Settings the family's head base defines (see the module docstring).
    reads_classifier_dropout: bool
    base_takes_encoder_states: bool

    @classmethod
    def base_model_class(cls) -> type[PreTrainedModel]:
        """The bare model of the family, which the head holds under ``base_model_prefix``."""
        raise NotImplementedError(f"{cls.__name__}'s family head base must define base_model_class()")

    def _add_base_model(self, add_pooling_layer: bool) -> None:
        base_model = self.base_model_class()(self.config, add_pooling_layer=add_pooling_layer)
        setattr(self, self.base_model_prefix, base_model)

    def _classifier_dropout(self) -> float:
        """``classifier_dropout`` when set and read by the family, else ``hidden_dropout_prob``."""
        config = self.config
        if self.reads_classifier_dropout and config.classifier_dropout is not None:
            return config.classifier_dropout
        return config.hidden_dropout_prob


class EncoderForMaskedLM(EncoderHead):
    def __init__(self, config):
        super().__init__(config)
        self._add_base_model(add_pooling_layer=False)
        self.lm_head = LMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):
        # a decoder's cross-attention inputs, for base models that take them (I-BERT's takes none)
        encoder_states = ({"encoder_hidden_states": encoder_hidden_states,
                           "encoder_attention_mask": encoder_attention_mask} if self.base_takes_encoder_states else {})
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds, **encoder_states,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = token_loss(logits, labels) if labels is not None else None
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                             attentions=outputs.attentions)
        return self.returned(out, return_dict)


class EncoderForSequenceClassification(EncoderHead):
    def __init__(self, config):
        super().__init__(config)
        self._add_base_model(add_pooling_layer=False)
        self.classifier = ClassificationHead(config, self._classifier_dropout())
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(outputs.last_hidden_state)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                       attentions=outputs.attentions)
        return self.returned(out, return_dict)


class EncoderForMultipleChoice(EncoderHead):
    """Scores each of ``num_choices`` sequences per example: inputs [batch, num_choices, seq]."""

    def __init__(self, config):
        super().__init__(config)
        self._add_base_model(add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, labels=None, position_ids=None,
                head_mask=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        if input_ids is not None:
            check_rank("input_ids", input_ids.shape, 3, "batch, num_choices, sequence")
            num_choices = input_ids.shape[1]
        elif inputs_embeds is not None:
            check_rank("inputs_embeds", inputs_embeds.shape, 4, "batch, num_choices, sequence, hidden")
            num_choices = inputs_embeds.shape[1]
        else:
            raise ValueError("give input_ids or inputs_embeds")
        outputs = self.base_model(
            input_ids=_flatten_choices(input_ids), attention_mask=_flatten_choices(attention_mask),
            token_type_ids=_flatten_choices(token_type_ids), position_ids=_flatten_choices(position_ids),
            head_mask=head_mask, inputs_embeds=_flatten_choices(inputs_embeds),
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)
        loss = token_loss(logits, labels) if labels is not None else None
        out = MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                        attentions=outputs.attentions)
        return self.returned(out, return_dict)


def _flatten_choices(x):
    """[batch, num_choices, *rest] -> [batch * num_choices, *rest]: every choice is a sequence of its own."""
    return x.flatten(0, 1) if x is not None else None


class EncoderForTokenClassification(EncoderHead):
    def __init__(self, config):
        super().__init__(config)
        self._add_base_model(add_pooling_layer=False)
        self.dropout = nn.Dropout(self._classifier_dropout())
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = token_loss(logits, labels) if labels is not None else None
        out = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                    attentions=outputs.attentions)
        return self.returned(out, return_dict)


class EncoderForQuestionAnswering(EncoderHead):
    """Extractive QA: start and end logits per token (``num_labels`` must be 2)."""

    def __init__(self, config):
        super().__init__(config)
        self._add_base_model(add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        out = question_answering_output(self.qa_outputs(outputs.last_hidden_state), outputs, start_positions,
                                        end_positions)
        return self.returned(out, return_dict)
