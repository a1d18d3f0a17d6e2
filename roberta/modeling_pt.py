"""RoBERTa and RoBERTa-PreLayerNorm in PyTorch.

One set of blocks serves both families. ``pre_layer_norm`` switches between RoBERTa's "add, then norm" (a
LayerNorm after each residual sum) and fairseq's ``--encoder-normalize-before`` (a LayerNorm before each
sublayer, plus one after the encoder). Module attribute names are Hugging Face's, so ``named_parameters()``
are the canonical checkpoint names.
"""

from __future__ import annotations

import torch
from torch import nn

from ..common.backend_pt import check_ids, check_indices, run_layer, sdpa_attention
from ..common.cache import StaticCache
from ..common.encoder_heads_pt import (
    EncoderForMaskedLM,
    EncoderForMultipleChoice,
    EncoderForQuestionAnswering,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
    EncoderHead,
)
from ..common.layers_pt import (
    LMHead,
    Pooler,
    activation,
    additive_mask,
    causal_keep_mask,
    causal_lm_loss,
    check_static_cache_room,
    eager_attention,
    head_mask_per_layer,
    input_shape,
    keys_and_values,
    merge_heads,
    new_static_cache,
    padding_keep_mask,
    split_heads,
    static_cache_keep_mask,
    static_cache_slots,
)
from ..common.modeling_pt import PreTrainedModel
from ..common.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    as_encoder_output,
    tuple_or_none,
)
from ..common.validation import (
    check_cache_layers,
    check_sequence_length,
    check_static_cache_decoder,
    check_static_cache_length,
)
from ..generation.mixin_pt import GenerationMixin
from .config import RobertaConfig, RobertaPreLayerNormConfig
from .weights import weights_spec


def position_ids_from_input_ids(input_ids: torch.Tensor, padding_idx: int, past_length: int = 0) -> torch.Tensor:
    """RoBERTa numbers real tokens from ``padding_idx + 1`` (after the cached ones); padding keeps ``padding_idx``."""
    is_token = input_ids.ne(padding_idx).int()
    return ((torch.cumsum(is_token, dim=1).type_as(is_token) + past_length) * is_token).long() + padding_idx


def position_ids_from_slot_mask(slot_mask: torch.Tensor, padding_idx: int, index: torch.Tensor, seq: int) -> torch.Tensor:
    """With a StaticCache: RoBERTa's numbering of the slots ``slot_mask`` [batch, max_length] keeps (from
    ``padding_idx + 1``; padding keeps ``padding_idx``), for the ``seq`` slots written from ``index``. It equals the
    numbering of the input ids on an unpadded row, and gives a left-padded row the positions of its unpadded row."""
    mask = slot_mask.long()
    positions = padding_idx + torch.cumsum(mask, dim=1) * mask
    return positions.index_select(1, static_cache_slots(index, seq))


# ----------------------------------------------------------------------------------------------------------------
# Blocks


class RobertaEmbeddings(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.config = config
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=self.padding_idx)
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=self.padding_idx
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, past_length=0):
        config = self.config
        if inputs_embeds is None:
            check_ids(input_ids, config.vocab_size)
            inputs_embeds = self.word_embeddings(input_ids)
        batch, seq = inputs_embeds.shape[:2]
        if position_ids is None:
            position_ids = self._default_position_ids(input_ids, batch, seq, past_length, inputs_embeds.device)
        else:
            check_indices(position_ids, config.max_position_embeddings, "position_ids", "max_position_embeddings")
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, seq), dtype=torch.long, device=inputs_embeds.device)
        else:
            check_indices(token_type_ids, config.type_vocab_size, "token_type_ids", "type_vocab_size")
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if config.position_embedding_type == "absolute":
            embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))

    def _default_position_ids(self, input_ids, batch, seq, past_length, device):
        if input_ids is not None:
            return position_ids_from_input_ids(input_ids, self.padding_idx, past_length)
        # Embeddings give no padding to skip: number them in order (Hugging Face ignores the cache here too).
        first = self.padding_idx + 1
        return torch.arange(first, first + seq, dtype=torch.long, device=device).expand(batch, seq)


class RobertaSelfAttention(nn.Module):
    """Multi-head attention; cross-attention when ``key_value_states`` (the encoder output) is given."""

    def __init__(self, config: RobertaConfig, position_embedding_type: str):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.dropout_prob = config.attention_probs_dropout_prob
        self.position_embedding_type = position_embedding_type
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        if position_embedding_type != "absolute":
            self.max_position_embeddings = config.max_position_embeddings
            self.distance_embedding = nn.Embedding(2 * config.max_position_embeddings - 1, self.head_size)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, key_value_states=None, past_key_value=None,
                cache_index=None, output_attentions=False):
        """``cache_index`` (a StaticCache's) writes the new keys and values into the slots of ``past_key_value``
        from that index instead of appending them."""
        query = split_heads(self.query(hidden_states), self.num_heads)
        key, value = keys_and_values(self.project_key_value, hidden_states, key_value_states, past_key_value,
                                     cache_index)
        if output_attentions or head_mask is not None or self.position_embedding_type != "absolute":
            context, probs = eager_attention(
                query, key, value, attention_mask, dropout=self.dropout_prob, head_mask=head_mask,
                extra_scores=self._relative_scores(query, key, cache_index), training=self.training,
            )
        else:
            context = sdpa_attention(query, key, value, attention_mask, dropout=self.dropout_prob,
                                     training=self.training)
            probs = None
        return merge_heads(context), probs, (key, value)

    def project_key_value(self, source):
        """Keys and values [batch, heads, len, head_dim] of ``source`` (the encoder output, for a cache)."""
        return split_heads(self.key(source), self.num_heads), split_heads(self.value(source), self.num_heads)

    def _relative_scores(self, query, key, cache_index) -> list[torch.Tensor]:
        """Scores from the learned query-key distance embeddings (Shaw et al.; Huang et al. for key_query)."""
        if self.position_embedding_type == "absolute":
            return []
        query_length, key_length = query.shape[2], key.shape[2]
        if cache_index is None:  # the queries are the last positions: the cached keys come before them
            query_positions = torch.arange(key_length - query_length, key_length, device=query.device)
        else:  # the keys are a StaticCache's slots, the queries written at its index
            query_positions = static_cache_slots(cache_index, query_length)
        key_positions = torch.arange(key_length, device=query.device)
        distance = query_positions[:, None] - key_positions[None, :]
        table = self.distance_embedding(distance + self.max_position_embeddings - 1).to(query.dtype)
        scores = [torch.einsum("bhld,lrd->bhlr", query, table)]
        if self.position_embedding_type == "relative_key_query":
            scores.append(torch.einsum("bhrd,lrd->bhlr", key, table))
        return scores


class RobertaResidualOutput(nn.Module):
    """dense -> dropout -> add the block input, then LayerNorm unless pre-layer-norm normalized the input already.

    Serves as both ``attention.output`` and the layer's ``output`` (transformers' SelfOutput and Output).
    """

    def __init__(self, config: RobertaConfig, input_size: int, pre_layer_norm: bool):
        super().__init__()
        self.pre_layer_norm = pre_layer_norm
        self.dense = nn.Linear(input_size, config.hidden_size)
        if not pre_layer_norm:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, residual):
        hidden_states = self.dropout(self.dense(hidden_states)) + residual
        return hidden_states if self.pre_layer_norm else self.LayerNorm(hidden_states)


class RobertaAttention(nn.Module):
    """Self- or cross-attention with its output block; pre-layer-norm normalizes the input first."""

    def __init__(self, config: RobertaConfig, position_embedding_type: str, pre_layer_norm: bool):
        super().__init__()
        self.pre_layer_norm = pre_layer_norm
        self.self = RobertaSelfAttention(config, position_embedding_type)
        self.output = RobertaResidualOutput(config, config.hidden_size, pre_layer_norm)
        if pre_layer_norm:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, key_value_states=None, past_key_value=None,
                cache_index=None, output_attentions=False):
        normed = self.LayerNorm(hidden_states) if self.pre_layer_norm else hidden_states
        context, probs, key_value = self.self(
            normed, attention_mask=attention_mask, head_mask=head_mask, key_value_states=key_value_states,
            past_key_value=past_key_value, cache_index=cache_index, output_attentions=output_attentions,
        )
        return self.output(context, residual=hidden_states), probs, key_value


class RobertaIntermediate(nn.Module):
    def __init__(self, config: RobertaConfig, pre_layer_norm: bool):
        super().__init__()
        self.pre_layer_norm = pre_layer_norm
        if pre_layer_norm:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation(config.hidden_act)

    def forward(self, hidden_states):
        if self.pre_layer_norm:
            hidden_states = self.LayerNorm(hidden_states)
        return self.intermediate_act_fn(self.dense(hidden_states))


class RobertaLayer(nn.Module):
    def __init__(self, config: RobertaConfig, pre_layer_norm: bool):
        super().__init__()
        self.attention = RobertaAttention(config, config.position_embedding_type, pre_layer_norm)
        if config.add_cross_attention:
            if not config.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True: cross-attention is a decoder layer")
            self.crossattention = RobertaAttention(config, "absolute", pre_layer_norm)
        self.intermediate = RobertaIntermediate(config, pre_layer_norm)
        self.output = RobertaResidualOutput(config, config.intermediate_size, pre_layer_norm)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_value=None, cache_index=None, output_attentions=False):
        """Returns (output, self-attention probs, cross-attention probs, cache entry of this layer).

        ``past_key_value``: (key, value[, cross_key, cross_value]); ``cache_index``: where a StaticCache writes.
        """
        self_past = past_key_value[:2] if past_key_value is not None else None
        hidden_states, self_probs, cache = self.attention(
            hidden_states, attention_mask=attention_mask, head_mask=head_mask, past_key_value=self_past,
            cache_index=cache_index, output_attentions=output_attentions,
        )
        cross_probs = None
        if encoder_hidden_states is not None:
            if not hasattr(self, "crossattention"):
                raise ValueError(
                    "encoder_hidden_states were given, but the model has no cross-attention layers; "
                    "build it with is_decoder=True and add_cross_attention=True"
                )
            cross_past = past_key_value[2:] if past_key_value is not None and len(past_key_value) == 4 else None
            hidden_states, cross_probs, cross_cache = self.crossattention(
                hidden_states, attention_mask=encoder_attention_mask, head_mask=head_mask,
                key_value_states=encoder_hidden_states, past_key_value=cross_past, output_attentions=output_attentions,
            )
            # A StaticCache keeps its structure from step to step: cross entries only where it had them.
            if cache_index is None or cross_past is not None:
                cache = cache + cross_cache
        hidden_states = self.output(self.intermediate(hidden_states), residual=hidden_states)
        return hidden_states, self_probs, cross_probs, cache


class RobertaEncoder(nn.Module):
    def __init__(self, config: RobertaConfig, pre_layer_norm: bool):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([RobertaLayer(config, pre_layer_norm) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, hidden_states, attention_mask=None, head_masks=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_values=None, cache_index=None, use_cache=False,
                output_attentions=False, output_hidden_states=False):
        """``past_key_values``: per layer (key, value[, cross_key, cross_value]), the slots of a StaticCache when
        ``cache_index`` is given."""
        all_hidden = [] if output_hidden_states else None
        all_self = [] if output_attentions else None
        all_cross = [] if output_attentions and self.config.add_cross_attention else None
        cache = [] if use_cache else None
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, self_probs, cross_probs, layer_cache = run_layer(
                self, layer, hidden_states, attention_mask, head_masks[i], encoder_hidden_states,
                encoder_attention_mask, past_key_values[i] if past_key_values is not None else None, cache_index,
                output_attentions,
            )
            if output_attentions:
                all_self.append(self_probs)
                if all_cross is not None:
                    all_cross.append(cross_probs)
            if use_cache:
                cache.append(layer_cache)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            past_key_values=tuple_or_none(cache),
            hidden_states=tuple_or_none(all_hidden),
            attentions=tuple_or_none(all_self),
            cross_attentions=tuple_or_none(all_cross),
        )


# ----------------------------------------------------------------------------------------------------------------
# Models


class RobertaPreTrainedModel(PreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"
    pre_layer_norm = False

    def weights_spec(self):
        return weights_spec(self.config, self.base_model_prefix)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def init_cache(self, batch_size: int, max_length: int, encoder_outputs=None) -> StaticCache:
        """A StaticCache for compiled generation: ``max_length`` zero slots per layer and index 0.

        With ``encoder_outputs`` (an output, a tuple or the encoder's last hidden state; the model needs
        ``add_cross_attention``) each layer's cross-attention keys and values are computed once and stored as its
        3rd and 4th entries. Pass the cache as ``past_key_values`` with an ``attention_mask`` over all
        ``max_length`` slots (0 for padding); positions are then numbered from that mask, so a left-padded row
        gets the positions of its unpadded row. Each call writes at the cache's index and returns it advanced.
        """
        config = self.config
        _check_static_cache_slots(config, max_length)
        layers = self.base_model.encoder.layer
        cross = None
        if encoder_outputs is not None:
            if not config.add_cross_attention:
                raise ValueError("encoder_outputs were given, but the model has no cross-attention layers; "
                                 "build it with is_decoder=True and add_cross_attention=True")
            encoder_hidden_states = as_encoder_output(encoder_outputs).last_hidden_state
            cross = [layer.crossattention.self.project_key_value(encoder_hidden_states) for layer in layers]
        heads = config.num_attention_heads
        return new_static_cache(len(layers), batch_size, heads, max_length, config.hidden_size // heads,
                                self.dtype, self.device, cross)


class RobertaModel(RobertaPreTrainedModel):
    """The bare encoder (or decoder, with ``is_decoder``): embeddings, layers, optional pooler."""

    def __init__(self, config: RobertaConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = RobertaEmbeddings(config)
        self.encoder = RobertaEncoder(config, self.pre_layer_norm)
        if self.pre_layer_norm:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        config = self.config
        output_attentions = self.config_default("output_attentions", output_attentions)
        output_hidden_states = self.config_default("output_hidden_states", output_hidden_states)
        use_cache = self.config_default("use_cache", use_cache) if config.is_decoder else False
        batch, seq = input_shape(input_ids, inputs_embeds)
        check_cache_layers(past_key_values, config.num_hidden_layers)
        static = isinstance(past_key_values, StaticCache)
        if static:
            static_mask, position_ids = self._static_cache_inputs(
                past_key_values, attention_mask, position_ids, batch, seq
            )
            past_length, use_cache = past_key_values.index, True
        else:
            past_length = self._past_length(past_key_values)
            check_sequence_length(seq + past_length, config.max_sequence_length)

        embeddings = self.embeddings(
            input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
            past_length=past_length,
        )
        if static:
            mask = static_mask
        else:
            mask = self._self_attention_mask(attention_mask, batch, seq, past_length, embeddings)
        if not (config.is_decoder and encoder_hidden_states is not None):
            encoder_hidden_states = encoder_mask = None  # an encoder ignores them, as in transformers
        else:
            encoder_mask = self._encoder_attention_mask(
                encoder_attention_mask, encoder_hidden_states, seq, embeddings.dtype
            )
        head_masks = head_mask_per_layer(head_mask, config.num_hidden_layers, config.num_attention_heads,
                                         embeddings.dtype)

        encoded = self.encoder(
            embeddings, attention_mask=mask, head_masks=head_masks, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_mask,
            past_key_values=past_key_values.layers if static else past_key_values,
            cache_index=past_length if static else None, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        sequence_output = encoded.last_hidden_state
        if self.pre_layer_norm:
            sequence_output = self.LayerNorm(sequence_output)
        past = StaticCache(encoded.past_key_values, past_length + seq) if static else encoded.past_key_values
        out = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
            hidden_states=encoded.hidden_states,
            past_key_values=past,
            attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions,
        )
        return self.returned(out, return_dict)

    def _static_cache_inputs(self, cache: StaticCache, attention_mask, position_ids, batch: int, seq: int):
        """(the additive mask of the new queries over all slots, their position ids) for a call with a StaticCache;
        ``attention_mask`` [batch, max_length] covers every slot (None keeps them all)."""
        config = self.config
        _check_static_cache_slots(config, cache.max_length)
        check_static_cache_room(cache.index, seq, cache.max_length)
        if attention_mask is None:
            attention_mask = torch.ones((batch, cache.max_length), dtype=torch.long, device=cache.index.device)
        keep = static_cache_keep_mask(attention_mask, cache.index, seq, cache.max_length, batch)
        if position_ids is None:
            position_ids = position_ids_from_slot_mask(attention_mask, config.pad_token_id, cache.index, seq)
        return additive_mask(keep, self.dtype), position_ids

    def _self_attention_mask(self, attention_mask, batch, seq, past_length, embeddings):
        """The additive self-attention mask [batch, 1, seq or 1, past + seq], or None when nothing is masked."""
        key_length = past_length + seq
        if attention_mask is None:
            if not self.config.is_decoder or seq == 1:
                return None
            attention_mask = torch.ones((batch, key_length), device=embeddings.device)
        keep = padding_keep_mask(attention_mask, batch, seq, key_length, "attention_mask")
        if self.config.is_decoder and attention_mask.dim() == 2:
            keep = causal_keep_mask(attention_mask, seq)
        return additive_mask(keep, embeddings.dtype)

    def _encoder_attention_mask(self, encoder_attention_mask, encoder_hidden_states, seq, dtype):
        if encoder_attention_mask is None:
            return None
        batch, encoder_length = encoder_hidden_states.shape[:2]
        keep = padding_keep_mask(encoder_attention_mask, batch, seq, encoder_length, "encoder_attention_mask")
        return additive_mask(keep, dtype)

    def _past_length(self, past_key_values) -> int:
        if past_key_values is None:
            return 0
        if any(len(entry) not in (2, 4) for entry in past_key_values):
            raise ValueError("past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per layer, "
                             "each [batch, heads, seq, head_dim]")
        return past_key_values[0][0].shape[2]


class _RobertaHead(EncoderHead, RobertaPreTrainedModel):
    """The family's head base: the shared encoder heads (common/encoder_heads_pt.py) on RoBERTa's base model."""

    reads_classifier_dropout = True
    base_takes_encoder_states = True

    @classmethod
    def base_model_class(cls) -> type[RobertaModel]:
        """The bare model of this family, which head models hold under ``base_model_prefix``."""
        return RobertaPreLayerNormModel if cls.pre_layer_norm else RobertaModel


class RobertaForMaskedLM(EncoderForMaskedLM, _RobertaHead):
    pass


class RobertaForCausalLM(GenerationMixin, _RobertaHead):
    """Left-to-right language model; set ``is_decoder=True`` for causal attention."""

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self._add_base_model(add_pooling_layer=False)
        self.lm_head = LMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
                past_key_values=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values, use_cache=False if labels is not None else use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        out = CausalLMOutputWithCrossAttentions(
            loss=loss, logits=logits, past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, cross_attentions=outputs.cross_attentions,
        )
        return self.returned(out, return_dict)


class RobertaForSequenceClassification(EncoderForSequenceClassification, _RobertaHead):
    pass


class RobertaForMultipleChoice(EncoderForMultipleChoice, _RobertaHead):
    pass


class RobertaForTokenClassification(EncoderForTokenClassification, _RobertaHead):
    pass


class RobertaForQuestionAnswering(EncoderForQuestionAnswering, _RobertaHead):
    pass


# ----------------------------------------------------------------------------------------------------------------
# RoBERTa-PreLayerNorm: the same models with the pre-layer-norm switch on and their own config and prefix.


class RobertaPreLayerNormPreTrainedModel(RobertaPreTrainedModel):
    config_class = RobertaPreLayerNormConfig
    base_model_prefix = "roberta_prelayernorm"
    pre_layer_norm = True


class RobertaPreLayerNormModel(RobertaPreLayerNormPreTrainedModel, RobertaModel):
    """The bare RoBERTa-PreLayerNorm encoder, with a final LayerNorm after the last layer."""


class RobertaPreLayerNormForMaskedLM(RobertaPreLayerNormPreTrainedModel, RobertaForMaskedLM):
    pass


class RobertaPreLayerNormForCausalLM(RobertaPreLayerNormPreTrainedModel, RobertaForCausalLM):
    pass


class RobertaPreLayerNormForSequenceClassification(RobertaPreLayerNormPreTrainedModel,
                                                   RobertaForSequenceClassification):
    pass


class RobertaPreLayerNormForMultipleChoice(RobertaPreLayerNormPreTrainedModel, RobertaForMultipleChoice):
    pass


class RobertaPreLayerNormForTokenClassification(RobertaPreLayerNormPreTrainedModel, RobertaForTokenClassification):
    pass


class RobertaPreLayerNormForQuestionAnswering(RobertaPreLayerNormPreTrainedModel, RobertaForQuestionAnswering):
    pass


def _check_static_cache_slots(config: RobertaConfig, max_length: int) -> None:
    check_static_cache_decoder(config)
    check_static_cache_length(max_length, config.max_sequence_length, "max_position_embeddings - pad_token_id - 1")
