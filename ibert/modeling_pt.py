"""I-BERT (integer-only RoBERTa) in PyTorch.

Every encoder block passes (tensor, scaling factor) pairs, as transformers 4.x's ``modeling_ibert.py`` does, and
one block of ``quant_pt.py`` picks its path: float (``quant_mode=False``), simulated fake quantization (quant_mode
in training) or integer arithmetic (quant_mode in inference, where the tensors between the embedding lookup and
the last layer are integer dtypes). The attention matmuls go through ``quant.py`` so the same lines serve all
three paths. Integer activations are dequantized only where they leave the encoder (hidden states, attentions,
the last hidden state); the pooler and the heads always run in float, as in Hugging Face.

Module attribute names are Hugging Face's, so ``named_parameters()`` plus the persistent buffers (the
quantization state) are the canonical checkpoint names.
"""

from __future__ import annotations

import torch
from torch import nn

from ..common.backend_pt import check_ids, check_indices, run_layer
from ..common.encoder_heads_pt import (
    EncoderForMaskedLM,
    EncoderForMultipleChoice,
    EncoderForQuestionAnswering,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
    EncoderHead,
)
from ..common.layers_pt import (
    Pooler,
    additive_mask,
    head_mask_per_layer,
    input_shape,
    merge_heads,
    padding_keep_mask,
    split_heads,
)
from ..common.modeling_pt import PreTrainedModel
from ..common.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    tuple_or_none,
)
from ..common.validation import check_sequence_length
from . import quant
from .config import IBertConfig
from .quant_pt import OPS, IntGELU, IntLayerNorm, IntSoftmax, QuantAct, QuantEmbedding, QuantLinear
from .weights import weights_spec


def as_float(x: torch.Tensor, scale) -> torch.Tensor:
    """An integer activation as the float32 value Hugging Face's simulation holds (x_int * scale); floats as given."""
    return quant.dequantize(OPS, x, scale) if OPS.is_integer(x) else x


def position_ids_from_input_ids(input_ids: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """Real tokens count from ``padding_idx + 1`` in order; padding keeps position ``padding_idx``."""
    is_token = input_ids.ne(padding_idx).long()
    return torch.cumsum(is_token, dim=1) * is_token + padding_idx


def check_binary_head_mask(head_mask: torch.Tensor) -> None:
    """Integer probabilities can be kept or silenced, not scaled by a fraction."""
    if not bool(((head_mask == 0) | (head_mask == 1)).all()):
        raise ValueError("head_mask must hold only 0 (silence a head) and 1 (keep it) in integer inference "
                         "(quant_mode in eval mode): integer probabilities cannot be scaled by a fraction")


# ----------------------------------------------------------------------------------------------------------------
# Quantized building blocks with transformers' bit widths


def _linear(config: IBertConfig, in_features: int, out_features: int) -> QuantLinear:
    return QuantLinear(in_features, out_features, bias=True, weight_bit=quant.WEIGHT_BIT, bias_bit=quant.BIAS_BIT,
                       per_channel=True, quant_mode=config.quant_mode)


def _act(config: IBertConfig, bits: int = quant.ACT_BIT) -> QuantAct:
    return QuantAct(bits, quant_mode=config.quant_mode)


def _layer_norm(config: IBertConfig) -> IntLayerNorm:
    return IntLayerNorm(config.hidden_size, eps=config.layer_norm_eps, output_bit=quant.LN_OUTPUT_BIT,
                        quant_mode=config.quant_mode, force_dequant=config.force_dequant)


def _embedding(config: IBertConfig, num_embeddings: int, padding_idx: int | None = None) -> QuantEmbedding:
    return QuantEmbedding(num_embeddings, config.hidden_size, padding_idx=padding_idx, weight_bit=quant.WEIGHT_BIT,
                          quant_mode=config.quant_mode)


def init_quant_block(module: nn.Module, std: float) -> None:
    """Hugging Face's init for the quantized blocks (the common ``init_module`` covers the float ones)."""
    if isinstance(module, (QuantLinear, QuantEmbedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, QuantLinear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, QuantEmbedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, IntLayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------------------------------
# Encoder


class IBertEmbeddings(nn.Module):
    """Word + token type + position embeddings, each sum requantized to 16 bits, then I-LayerNorm and 8 bits."""

    def __init__(self, config: IBertConfig):
        super().__init__()
        self.config = config
        self.padding_idx = config.pad_token_id
        self.word_embeddings = _embedding(config, config.vocab_size, self.padding_idx)
        self.token_type_embeddings = _embedding(config, config.type_vocab_size)
        self.position_embeddings = _embedding(config, config.max_position_embeddings, self.padding_idx)
        self.embeddings_act1 = _act(config, quant.EMBEDDING_ACT_BIT)
        self.embeddings_act2 = _act(config, quant.EMBEDDING_ACT_BIT)  # unused, as in Hugging Face: kept for its buffers
        self.LayerNorm = _layer_norm(config)
        self.output_activation = _act(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        config = self.config
        if inputs_embeds is None:
            check_ids(input_ids, config.vocab_size)
            inputs_embeds, embeds_scale = self.word_embeddings(input_ids)
        else:
            embeds_scale = None
        batch, seq = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        device = inputs_embeds.device
        if position_ids is None:
            position_ids = self._default_position_ids(input_ids, batch, seq, device)
        else:
            check_indices(position_ids, config.max_position_embeddings, "position_ids", "max_position_embeddings")
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, seq), dtype=torch.long, device=device)
        else:
            check_indices(token_type_ids, config.type_vocab_size, "token_type_ids", "type_vocab_size")
        # Hugging Face requantizes both sums with embeddings_act1 (its range statistics move twice per call).
        token_types, token_types_scale = self.token_type_embeddings(token_type_ids)
        x, scale = self.embeddings_act1(inputs_embeds, embeds_scale, identity=token_types,
                                        identity_scaling_factor=token_types_scale)
        positions, positions_scale = self.position_embeddings(position_ids)
        x, scale = self.embeddings_act1(x, scale, identity=positions, identity_scaling_factor=positions_scale)
        x, scale = self.LayerNorm(x, scale)
        return self.output_activation(self.dropout(x), scale)

    def _default_position_ids(self, input_ids, batch, seq, device):
        if input_ids is not None:
            return position_ids_from_input_ids(input_ids, self.padding_idx)
        # Embeddings show no padding to skip: number every position.
        first = self.padding_idx + 1
        return torch.arange(first, first + seq, dtype=torch.long, device=device).expand(batch, seq)


class IBertSelfAttention(nn.Module):
    """Multi-head self-attention over 8-bit queries, keys and values with the integer softmax."""

    def __init__(self, config: IBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = _linear(config, config.hidden_size, config.hidden_size)
        self.key = _linear(config, config.hidden_size, config.hidden_size)
        self.value = _linear(config, config.hidden_size, config.hidden_size)
        self.query_activation = _act(config)
        self.key_activation = _act(config)
        self.value_activation = _act(config)
        self.output_activation = _act(config)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.softmax = IntSoftmax(quant.ACT_BIT, quant_mode=config.quant_mode, force_dequant=config.force_dequant)

    def forward(self, hidden_states, scale, attention_mask=None, head_mask=None, input_scale=None):
        """Returns (context, its scale, probabilities, their scale). ``input_scale``: see ``IBertLayer``."""
        query, query_scale = self.query_activation(*self.query(hidden_states, scale, input_scale))
        key, key_scale = self.key_activation(*self.key(hidden_states, scale, input_scale))
        value, value_scale = self.value_activation(*self.value(hidden_states, scale, input_scale))
        query, key, value = (split_heads(x, self.num_heads) for x in (query, key, value))
        scores, scores_scale = quant.attention_scores(OPS, query, key, query_scale, key_scale, self.head_size)
        probs, probs_scale = self.softmax(scores, scores_scale, attention_mask=attention_mask)
        probs = self.dropout(probs)  # identity in inference, so integer probabilities pass untouched
        if head_mask is not None:
            probs = probs * (head_mask.to(torch.int32) if OPS.is_integer(probs) else head_mask)
        context, context_scale = quant.attention_context(OPS, probs, value, probs_scale, value_scale)
        context, context_scale = self.output_activation(merge_heads(context), context_scale)
        return context, context_scale, probs, probs_scale


class IBertResidualOutput(nn.Module):
    """dense -> dropout -> add the block input (requantized to 22 bits) -> I-LayerNorm -> 8 bits.

    Serves as both ``attention.output`` and the layer's ``output`` (transformers' SelfOutput and Output).
    """

    def __init__(self, config: IBertConfig, input_size: int):
        super().__init__()
        self.dense = _linear(config, input_size, config.hidden_size)
        self.ln_input_act = _act(config, quant.LN_INPUT_BIT)
        self.LayerNorm = _layer_norm(config)
        self.output_activation = _act(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, scale, residual, residual_scale):
        hidden_states, scale = self.dense(hidden_states, scale)
        hidden_states, scale = self.ln_input_act(self.dropout(hidden_states), scale, identity=residual,
                                                 identity_scaling_factor=residual_scale)
        return self.output_activation(*self.LayerNorm(hidden_states, scale))


class IBertAttention(nn.Module):
    def __init__(self, config: IBertConfig):
        super().__init__()
        self.self = IBertSelfAttention(config)
        self.output = IBertResidualOutput(config, config.hidden_size)

    def forward(self, hidden_states, scale, attention_mask=None, head_mask=None, input_scale=None):
        context, context_scale, probs, probs_scale = self.self(hidden_states, scale, attention_mask, head_mask,
                                                               input_scale)
        residual = hidden_states
        if input_scale is not None:  # HF rounds the residual to the handed scale's grid
            residual = quant.rescale(OPS, hidden_states, input_scale, scale)
        output, output_scale = self.output(context, context_scale, residual, scale)
        return output, output_scale, probs, probs_scale


class IBertIntermediate(nn.Module):
    def __init__(self, config: IBertConfig):
        super().__init__()
        self.dense = _linear(config, config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = IntGELU(quant_mode=config.quant_mode, force_dequant=config.force_dequant)
        self.output_activation = _act(config)

    def forward(self, hidden_states, scale):
        return self.output_activation(*self.intermediate_act_fn(*self.dense(hidden_states, scale)))


class IBertLayer(nn.Module):
    def __init__(self, config: IBertConfig):
        super().__init__()
        self.attention = IBertAttention(config)
        self.intermediate = IBertIntermediate(config)
        self.output = IBertResidualOutput(config, config.intermediate_size)
        self.pre_intermediate_act = _act(config)
        self.pre_output_act = _act(config)

    def forward(self, hidden_states, scale, attention_mask=None, head_mask=None, input_scale=None):
        """Returns (output, its scale, attention probabilities, their scale).

        transformers (like the authors' fairseq code) hands every layer the embeddings' scale as ``scale``, not
        the previous layer's (transformers issue 26738), and checkpoints were trained so: later layers quantize
        their bias on that grid and round their residual to it. The simulated path holds float values and follows
        directly; in integer inference the integers are in their own ``input_scale``, and the layer converts
        exactly where HF divides by the handed scale, so both paths compute what Hugging Face computes.
        """
        attended, attended_scale, probs, probs_scale = self.attention(hidden_states, scale, attention_mask, head_mask,
                                                                      input_scale)
        # The feed-forward block and its residual both take the requantized attention output, as in Hugging Face.
        attended, attended_scale = self.pre_intermediate_act(attended, attended_scale)
        intermediate, intermediate_scale = self.pre_output_act(*self.intermediate(attended, attended_scale))
        output, output_scale = self.output(intermediate, intermediate_scale, attended, attended_scale)
        return output, output_scale, probs, probs_scale


class IBertEncoder(nn.Module):
    def __init__(self, config: IBertConfig):
        super().__init__()
        self.layer = nn.ModuleList([IBertLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, hidden_states, scale, attention_mask=None, head_masks=None, output_attentions=False,
                output_hidden_states=False):
        """Hidden states and attentions come out as floats (dequantized in integer inference)."""
        all_hidden = [] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        embeddings_scale = scale
        for layer, head_mask in zip(self.layer, head_masks):
            if output_hidden_states:
                all_hidden.append(as_float(hidden_states, scale))
            # every layer is handed the embeddings' scale, as in Hugging Face (see IBertLayer)
            input_scale = scale if OPS.is_integer(hidden_states) else None
            hidden_states, scale, probs, probs_scale = run_layer(self, layer, hidden_states, embeddings_scale,
                                                                 attention_mask, head_mask, input_scale)
            if output_attentions:
                all_probs.append(as_float(probs, probs_scale))
        if output_hidden_states:
            all_hidden.append(as_float(hidden_states, scale))
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=as_float(hidden_states, scale),
            hidden_states=tuple_or_none(all_hidden),
            attentions=tuple_or_none(all_probs),
        )


# ----------------------------------------------------------------------------------------------------------------
# Models


class IBertPreTrainedModel(PreTrainedModel):
    """Checkpoints hold the quantization state too: the persistent buffers (ranges, scaling factors, integer
    weights) load and save next to the parameters, under Hugging Face's names (common/modeling_pt.py)."""

    config_class = IBertConfig
    base_model_prefix = "ibert"

    def weights_spec(self):
        return weights_spec(self.config, self.base_model_prefix)

    def get_input_embeddings(self) -> QuantEmbedding:
        return self.base_model.embeddings.word_embeddings

    def post_init(self) -> None:
        std = self.initializer_std()
        for module in self.modules():
            if not getattr(module, "_rosettazoo_initialized", False):
                init_quant_block(module, std)
        super().post_init()



class IBertModel(IBertPreTrainedModel):
    """The bare encoder: quantized embeddings and layers, optional float pooler."""

    def __init__(self, config: IBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = IBertEmbeddings(config)
        self.encoder = IBertEncoder(config)
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        config = self.config
        output_attentions = self.config_default("output_attentions", output_attentions)
        output_hidden_states = self.config_default("output_hidden_states", output_hidden_states)
        batch, seq = input_shape(input_ids, inputs_embeds)
        check_sequence_length(seq, config.max_sequence_length)
        mask = None
        if attention_mask is not None:
            keep = padding_keep_mask(attention_mask, batch, seq, seq, "attention_mask")
            mask = additive_mask(keep, self.dtype)
        if config.quant_mode and self.dtype != torch.float32:
            raise ValueError(f"a quantized I-BERT (quant_mode=True) computes its scales in float32 and its values in "
                             f"integers; load it in float32, not {self.dtype}")
        head_masks = head_mask_per_layer(head_mask, config.num_hidden_layers, config.num_attention_heads, self.dtype)
        if head_mask is not None and config.quant_mode and not self.training:
            check_binary_head_mask(head_mask)

        hidden_states, scale = self.embeddings(input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                                               inputs_embeds=inputs_embeds)
        encoded = self.encoder(hidden_states, scale, mask, head_masks, output_attentions=output_attentions,
                               output_hidden_states=output_hidden_states)
        sequence_output = encoded.last_hidden_state
        out = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return self.returned(out, return_dict)


# ----------------------------------------------------------------------------------------------------------------
# Heads: the shared encoder heads (common/encoder_heads_pt.py) on I-BERT's base model (float in every path, as in
# Hugging Face)


class _IBertHead(EncoderHead, IBertPreTrainedModel):
    """The family's head base. As transformers' I-BERT, the heads ignore classifier_dropout, and the base model is
    an encoder only."""

    reads_classifier_dropout = False
    base_takes_encoder_states = False

    @classmethod
    def base_model_class(cls) -> type[IBertModel]:
        """The bare model, which head models hold under ``base_model_prefix``."""
        return IBertModel


class IBertForMaskedLM(EncoderForMaskedLM, _IBertHead):
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """transformers' IBertForMaskedLM signature: no cross-attention inputs."""
        return super().forward(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds, labels=labels,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=return_dict,
        )


class IBertForSequenceClassification(EncoderForSequenceClassification, _IBertHead):
    pass


class IBertForMultipleChoice(EncoderForMultipleChoice, _IBertHead):
    pass


class IBertForTokenClassification(EncoderForTokenClassification, _IBertHead):
    pass


class IBertForQuestionAnswering(EncoderForQuestionAnswering, _IBertHead):
    pass
