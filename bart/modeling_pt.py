"""BART in PyTorch: a bidirectional encoder and an autoregressive decoder with cross-attention.

Module attribute names are Hugging Face's, so ``named_parameters()`` are the canonical checkpoint names. One
embedding matrix (``model.shared``) is the encoder's and the decoder's ``embed_tokens`` module and, tied, the LM
head. Learned positions start at row 2 (fairseq kept rows 0 and 1 for padding). The cache is transformers' legacy
layout: per decoder layer (self key, self value[, cross key, cross value]), each [batch, heads, seq, head_dim]; or,
for compiled generation, a ``StaticCache`` from ``init_cache`` whose shapes never change.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..common.backend_pt import check_ids, run_layer
from ..common.cache import StaticCache
from ..common.layers_pt import (
    ProjectedAttention,
    activation,
    additive_mask,
    causal_keep_mask,
    check_static_cache_room,
    head_mask_per_layer,
    input_shape,
    layer_dropped,
    new_static_cache,
    padding_keep_mask,
    sequence_classification_loss,
    span_loss,
    static_cache_keep_mask,
    token_loss,
)
from ..common.modeling_pt import PreTrainedModel
from ..common.outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqQuestionAnsweringModelOutput,
    Seq2SeqSequenceClassifierOutput,
    as_encoder_output,
    seq2seq_fields,
    tuple_or_none,
)
from ..common.validation import (
    check_cache_keys,
    check_cache_layers,
    check_encoder_hidden_states,
    check_not_empty,
    check_rank,
    check_sequence_length,
    check_shape,
    check_static_cache_length,
)
from ..generation.mixin_pt import GenerationMixin
from .config import BartConfig
from .weights import weights_spec


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None,
                       name: str = "input_ids") -> torch.Tensor:
    """Decoder inputs from labels (or input ids): the start token, then all but the last; -100 becomes padding."""
    check_rank(name, input_ids.shape, 2, "batch, sequence")
    check_not_empty(name, tuple(input_ids.shape))
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to build decoder inputs from input_ids or labels")
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id must be set to build decoder inputs from input_ids or labels")
    shifted = input_ids.new_zeros(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def _clamp_float16(hidden_states: torch.Tensor) -> torch.Tensor:
    """As transformers' encoder layer: float16 overflow (inf) is clamped to the largest finite values."""
    if hidden_states.dtype != torch.float16 or torch.isfinite(hidden_states).all():
        return hidden_states
    limit = torch.finfo(torch.float16).max - 1000
    return hidden_states.clamp(-limit, limit)


# ----------------------------------------------------------------------------------------------------------------
# Layers


class _BartLayer(nn.Module):
    """What encoder and decoder layers share: post-norm residual blocks and the feed-forward block."""

    def _add_feed_forward(self, config: BartConfig, ffn_dim: int) -> None:
        """Called after the attention blocks, so parameters come in transformers' order."""
        self.dropout = config.dropout
        self.activation_fn = activation(config.activation_function)
        self.activation_dropout = config.activation_dropout
        self.fc1 = nn.Linear(config.d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, config.d_model)
        self.final_layer_norm = nn.LayerNorm(config.d_model, config.layer_norm_eps)

    def _add_and_norm(self, hidden_states, residual, norm: nn.LayerNorm):
        return norm(residual + F.dropout(hidden_states, p=self.dropout, training=self.training))

    def _feed_forward(self, hidden_states):
        x = self.activation_fn(self.fc1(hidden_states))
        x = self.fc2(F.dropout(x, p=self.activation_dropout, training=self.training))
        return self._add_and_norm(x, hidden_states, self.final_layer_norm)


class BartEncoderLayer(_BartLayer):
    def __init__(self, config: BartConfig):
        super().__init__()
        self.self_attn = ProjectedAttention(config.d_model, config.encoder_attention_heads, config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, config.layer_norm_eps)
        self._add_feed_forward(config, config.encoder_ffn_dim)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, output_attentions=False):
        """Returns (output, self-attention probabilities or None)."""
        attended, probs, _ = self.self_attn(hidden_states, attention_mask, head_mask,
                                            output_attentions=output_attentions)
        hidden_states = self._add_and_norm(attended, hidden_states, self.self_attn_layer_norm)
        return _clamp_float16(self._feed_forward(hidden_states)), probs


class BartDecoderLayer(_BartLayer):
    def __init__(self, config: BartConfig):
        super().__init__()
        heads, d_model, eps = config.decoder_attention_heads, config.d_model, config.layer_norm_eps
        self.self_attn = ProjectedAttention(d_model, heads, config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d_model, eps)
        self.encoder_attn = ProjectedAttention(d_model, heads, config.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(d_model, eps)
        self._add_feed_forward(config, config.decoder_ffn_dim)

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                head_mask=None, cross_attn_head_mask=None, past_key_value=None, output_attentions=False,
                cache_index=None):
        """Returns (output, self-attention probs, cross-attention probs or None, this layer's cache entry).

        ``past_key_value``: (key, value[, cross_key, cross_value]); ``cache_index``: where a StaticCache writes.
        """
        self_past = past_key_value[:2] if past_key_value is not None else None
        attended, self_probs, cache = self.self_attn(hidden_states, attention_mask, head_mask, None, self_past,
                                                     output_attentions, cache_index)
        hidden_states = self._add_and_norm(attended, hidden_states, self.self_attn_layer_norm)
        cross_probs = None
        if encoder_hidden_states is not None:
            cross_past = past_key_value[2:4] if past_key_value is not None and len(past_key_value) == 4 else None
            attended, cross_probs, cross_cache = self.encoder_attn(
                hidden_states, encoder_attention_mask, cross_attn_head_mask, encoder_hidden_states, cross_past,
                output_attentions,
            )
            hidden_states = self._add_and_norm(attended, hidden_states, self.encoder_attn_layer_norm)
            # A StaticCache keeps its structure from step to step: cross entries only where it had them.
            if cache_index is None or cross_past is not None:
                cache = cache + cross_cache
        return self._feed_forward(hidden_states), self_probs, cross_probs, cache


class _BartStack(nn.Module):
    """Token and learned position embeddings, then ``layernorm_embedding`` and dropout (encoder and decoder)."""

    def __init__(self, config: BartConfig, embed_tokens: nn.Embedding | None, layers: list[nn.Module]):
        super().__init__()
        self.config = config
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        if embed_tokens is None:
            embed_tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.embed_tokens = embed_tokens
        self.embed_positions = nn.Embedding(config.max_position_embeddings + config.position_offset, config.d_model)
        self.layers = nn.ModuleList(layers)
        self.layernorm_embedding = nn.LayerNorm(config.d_model, config.layer_norm_eps)
        self.gradient_checkpointing = False

    def _embed_inputs(self, input_ids, inputs_embeds, seq: int, past_length, ids_name: str):
        """Scaled token embeddings (or the given ones) plus the positions ``past_length ...``, normalized (the caller
        checked the length)."""
        if inputs_embeds is None:
            check_ids(input_ids, self.config.vocab_size, ids_name)
            inputs_embeds = self.embed_tokens(input_ids) * self.embed_scale
        positions = past_length + torch.arange(seq, device=inputs_embeds.device) + self.config.position_offset
        hidden_states = self.layernorm_embedding(inputs_embeds + self.embed_positions(positions))
        return F.dropout(hidden_states, p=self.config.dropout, training=self.training)


class BartEncoder(_BartStack):
    def __init__(self, config: BartConfig, embed_tokens: nn.Embedding | None = None):
        super().__init__(config, embed_tokens, [BartEncoderLayer(config) for _ in range(config.encoder_layers)])

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None,
                output_attentions=False, output_hidden_states=False, return_dict=True):
        config = self.config
        batch, seq = input_shape(input_ids, inputs_embeds, "input_ids", "inputs_embeds")
        check_sequence_length(seq, config.max_position_embeddings)
        hidden_states = self._embed_inputs(input_ids, inputs_embeds, seq, 0, "input_ids")
        mask = None
        if attention_mask is not None:
            keep = padding_keep_mask(attention_mask, batch, seq, seq, "attention_mask")
            mask = additive_mask(keep, hidden_states.dtype)
        head_masks = head_mask_per_layer(head_mask, config.encoder_layers, config.encoder_attention_heads,
                                         hidden_states.dtype)
        all_hidden = [] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer, layer_head_mask in zip(self.layers, head_masks, strict=True):
            if output_hidden_states:
                all_hidden.append(hidden_states)
            probs = None
            if not layer_dropped(config.encoder_layerdrop, self.training):
                hidden_states, probs = run_layer(self, layer, hidden_states, mask, layer_head_mask, output_attentions)
            if output_attentions:
                all_attentions.append(probs)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        out = BaseModelOutput(last_hidden_state=hidden_states, hidden_states=tuple_or_none(all_hidden),
                              attentions=tuple_or_none(all_attentions))
        return out if return_dict else out.to_tuple()


class BartDecoder(_BartStack):
    """Causal layers with cross-attention over the encoder output, and a dynamic or static cache.

    A StaticCache given as ``past_key_values`` always comes back in the output, advanced by the new tokens
    (``use_cache`` is implied): a compiled generation step returns what the next one takes.

    The decoder of the seq2seq models (shared table) calls its inputs ``decoder_input_ids``,
    ``decoder_attention_mask``, ... in errors; BartForCausalLM's (own table) ``input_ids``, ``attention_mask``.
    """

    def __init__(self, config: BartConfig, embed_tokens: nn.Embedding | None = None):
        super().__init__(config, embed_tokens, [BartDecoderLayer(config) for _ in range(config.decoder_layers)])
        self.input_prefix = "" if embed_tokens is None else "decoder_"

    def forward(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                head_mask=None, cross_attn_head_mask=None, past_key_values=None, inputs_embeds=None, use_cache=None,
                output_attentions=False, output_hidden_states=False, return_dict=True):
        config, prefix = self.config, self.input_prefix
        use_cache = config.use_cache if use_cache is None else use_cache
        batch, seq = input_shape(input_ids, inputs_embeds, f"{prefix}input_ids", f"{prefix}inputs_embeds")
        static = isinstance(past_key_values, StaticCache)
        if not static and hasattr(past_key_values, "to_legacy_cache"):  # transformers' Cache objects
            past_key_values = past_key_values.to_legacy_cache()
        past_layers = self._past_layers(past_key_values or None, batch)
        if static:
            # init_cache checked max_length against the positions; each write checks the room left.
            past_length, use_cache = past_key_values.index, True
            check_static_cache_room(past_length, seq, past_key_values.max_length)
        else:
            past_length = past_layers[0][0].shape[2] if past_layers is not None else 0
            check_sequence_length(seq + past_length, config.max_position_embeddings)
        hidden_states = self._embed_inputs(input_ids, inputs_embeds, seq, past_length, f"{prefix}input_ids")
        dtype = hidden_states.dtype
        mask = self._self_attention_mask(attention_mask, past_key_values, batch, seq, past_length, dtype)
        encoder_mask = self._cross_attention_mask(encoder_attention_mask, encoder_hidden_states, batch, seq, dtype)
        layers_count, heads = config.decoder_layers, config.decoder_attention_heads
        head_masks = head_mask_per_layer(head_mask, layers_count, heads, dtype, f"{prefix}head_mask")
        cross_head_masks = head_mask_per_layer(cross_attn_head_mask, layers_count, heads, dtype, "cross_attn_head_mask")
        all_hidden = [] if output_hidden_states else None
        all_self = [] if output_attentions else None
        all_cross = [] if output_attentions and encoder_hidden_states is not None else None
        cache = [] if use_cache else None
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden.append(hidden_states)
            past = past_layers[i] if past_layers is not None else None
            if layer_dropped(config.decoder_layerdrop, self.training):
                if static:  # the cache keeps every layer, this one unchanged
                    cache.append(past)
                continue
            hidden_states, self_probs, cross_probs, layer_cache = run_layer(
                self, layer, hidden_states, mask, encoder_hidden_states, encoder_mask, head_masks[i], cross_head_masks[i],
                past, output_attentions, past_length if static else None,
            )
            if output_attentions:
                all_self.append(self_probs)
                if all_cross is not None:
                    all_cross.append(cross_probs)
            if use_cache:
                cache.append(layer_cache)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        cache = StaticCache(tuple(cache), past_length + seq) if static else tuple_or_none(cache)
        out = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, past_key_values=cache,
            hidden_states=tuple_or_none(all_hidden), attentions=tuple_or_none(all_self),
            cross_attentions=tuple_or_none(all_cross),
        )
        return out if return_dict else out.to_tuple()

    def _past_layers(self, past_key_values, batch: int) -> tuple | None:
        """The per-layer entries of a dynamic cache or a StaticCache, checked for structure."""
        if past_key_values is None:
            return None
        layers = past_key_values.layers if isinstance(past_key_values, StaticCache) else past_key_values
        check_cache_layers(layers, self.config.decoder_layers, "decoder_layers")
        if any(len(entry) not in (2, 4) for entry in layers):
            raise ValueError("past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per decoder "
                             "layer, each [batch, heads, seq, head_dim]")
        check_cache_keys(tuple(layers[0][0].shape), batch)
        return tuple(layers)

    def _self_attention_mask(self, attention_mask, past_key_values, batch: int, seq: int, past_length, dtype):
        """The additive causal mask [batch, 1, seq, keys]: keys are the cached ones and the new ones, or, with a
        StaticCache, all its slots (``attention_mask`` must then cover them all). None for one new token and no
        padding: it sees every key."""
        if isinstance(past_key_values, StaticCache):
            keep = static_cache_keep_mask(attention_mask, past_length, seq, past_key_values.max_length, batch)
            return additive_mask(keep, dtype)
        key_length, name = past_length + seq, f"{self.input_prefix}attention_mask"
        if attention_mask is None:
            if seq == 1:
                return None
            attention_mask = torch.ones((batch, key_length), device=self.embed_positions.weight.device)
        check_rank(name, attention_mask.shape, 2, "batch, past + sequence length")
        check_shape(name, attention_mask.shape, (batch, key_length), "batch, past + sequence length")
        return additive_mask(causal_keep_mask(attention_mask, seq), dtype)

    def _cross_attention_mask(self, encoder_attention_mask, encoder_hidden_states, batch: int, seq: int, dtype):
        """The additive padding mask [batch, 1, seq, encoder keys] of the cross-attention (None: no padding)."""
        if encoder_hidden_states is None:
            return None
        _check_same_batch(batch, encoder_hidden_states)
        if encoder_attention_mask is None:
            return None
        name = "attention_mask" if self.input_prefix else "encoder_attention_mask"
        keep = padding_keep_mask(encoder_attention_mask, batch, seq, encoder_hidden_states.shape[1], name)
        return additive_mask(keep, dtype)

    def init_cache(self, batch_size: int, max_length: int, encoder_hidden_states=None) -> StaticCache:
        """See ``BartPreTrainedModel.init_cache``."""
        config = self.config
        check_static_cache_length(max_length, config.max_position_embeddings)
        cross = None
        if encoder_hidden_states is not None:
            _check_same_batch(batch_size, encoder_hidden_states)
            cross = [layer.encoder_attn.project_key_value(encoder_hidden_states) for layer in self.layers]
        heads = config.decoder_attention_heads
        weight = self.embed_positions.weight
        return new_static_cache(config.decoder_layers, batch_size, heads, max_length, config.d_model // heads,
                                weight.dtype, weight.device, cross)


def _check_same_batch(batch: int, encoder_hidden_states) -> None:
    check_encoder_hidden_states(tuple(encoder_hidden_states.shape), batch)


class BartClassificationHead(nn.Module):
    """dropout, dense, tanh, dropout, out_proj: classifies the pooled <eos> representation."""

    def __init__(self, config: BartConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.dropout = nn.Dropout(p=config.classifier_dropout or 0.0)
        self.out_proj = nn.Linear(config.d_model, config.num_labels)

    def forward(self, features):
        x = self.dropout(torch.tanh(self.dense(self.dropout(features))))
        return self.out_proj(x)


# ----------------------------------------------------------------------------------------------------------------
# Models


class BartPreTrainedModel(PreTrainedModel):
    config_class = BartConfig
    base_model_prefix = "model"

    def weights_spec(self):
        return weights_spec(self.config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared

    def get_encoder(self) -> BartEncoder:
        return self.base_model.encoder

    def get_decoder(self) -> BartDecoder:
        return self.base_model.decoder

    def init_cache(self, batch_size: int, max_length: int, encoder_outputs=None) -> StaticCache:
        """A StaticCache for compiled generation: ``max_length`` zero slots per decoder layer and index 0.

        With ``encoder_outputs`` (an output, a tuple or the encoder's last hidden state) each layer's
        cross-attention keys and values are computed once and stored as its 3rd and 4th entries. Pass the cache
        as ``past_key_values`` with an ``attention_mask`` (decoder_attention_mask for the seq2seq models) over all
        ``max_length`` slots; each call writes at the cache's index and returns it advanced.
        """
        encoder_hidden_states = None
        if encoder_outputs is not None:
            encoder_hidden_states = as_encoder_output(encoder_outputs).last_hidden_state
        return self.get_decoder().init_cache(batch_size, max_length, encoder_hidden_states)


class BartModel(BartPreTrainedModel):
    """The encoder-decoder without a head; returns the decoder's last hidden state (and the encoder's)."""

    def __init__(self, config: BartConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.encoder = BartEncoder(config, self.shared)
        self.decoder = BartDecoder(config, self.shared)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        head_mask=None,
        decoder_head_mask=None,
        cross_attn_head_mask=None,
        encoder_outputs=None,
        past_key_values=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        config = self.config
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            # BART's denoising default: the decoder reads the input shifted right.
            if input_ids is None:
                raise ValueError("give decoder_input_ids or decoder_inputs_embeds, or input_ids to build them from")
            decoder_input_ids = shift_tokens_right(input_ids, config.pad_token_id, config.decoder_start_token_id)
        output_attentions = self.config_default("output_attentions", output_attentions)
        output_hidden_states = self.config_default("output_hidden_states", output_hidden_states)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, inputs_embeds=inputs_embeds,
                output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            )
        else:
            encoder_outputs = as_encoder_output(encoder_outputs)
        decoded = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state, encoder_attention_mask=attention_mask,
            head_mask=decoder_head_mask, cross_attn_head_mask=cross_attn_head_mask, past_key_values=past_key_values,
            inputs_embeds=decoder_inputs_embeds, use_cache=self.config_default("use_cache", use_cache),
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
        out = Seq2SeqModelOutput(
            last_hidden_state=decoded.last_hidden_state,
            past_key_values=decoded.past_key_values,
            decoder_hidden_states=decoded.hidden_states,
            decoder_attentions=decoded.attentions,
            cross_attentions=decoded.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return self.returned(out, return_dict)


# The encoder-decoder heads' shared arguments, passed through to BartModel.
class BartForConditionalGeneration(GenerationMixin, BartPreTrainedModel):
    """Summarization, translation, denoising: decoder logits over the vocabulary plus ``final_logits_bias``."""

    def __init__(self, config: BartConfig):
        super().__init__(config)
        self.model = BartModel(config)
        self.register_buffer("final_logits_bias", torch.zeros((1, config.vocab_size)))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        head_mask=None,
        decoder_head_mask=None,
        cross_attn_head_mask=None,
        encoder_outputs=None,
        past_key_values=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id,
                                                       self.config.decoder_start_token_id, "labels")
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, head_mask=head_mask, decoder_head_mask=decoder_head_mask,
            cross_attn_head_mask=cross_attn_head_mask, encoder_outputs=encoder_outputs,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state) + self.final_logits_bias
        loss = token_loss(logits, labels) if labels is not None else None
        out = Seq2SeqLMOutput(loss=loss, logits=logits, **seq2seq_fields(outputs))
        return self.returned(out, return_dict)


class BartForSequenceClassification(BartPreTrainedModel):
    """Classifies from the decoder's hidden state at the last <eos> token of each row (the encoder's input)."""

    def __init__(self, config: BartConfig):
        super().__init__(config)
        self.model = BartModel(config)
        self.classification_head = BartClassificationHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        head_mask=None,
        decoder_head_mask=None,
        cross_attn_head_mask=None,
        encoder_outputs=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        if labels is not None:
            use_cache = False
        if input_ids is None and inputs_embeds is not None:
            raise NotImplementedError(
                f"{type(self).__name__} pools at the <eos> tokens of input_ids: pass input_ids, not inputs_embeds"
            )
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, head_mask=head_mask, decoder_head_mask=decoder_head_mask,
            cross_attn_head_mask=cross_attn_head_mask, encoder_outputs=encoder_outputs, inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        logits = self.classification_head(_last_eos_states(input_ids, hidden_states, self.config.eos_token_id))
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        out = Seq2SeqSequenceClassifierOutput(loss=loss, logits=logits, **seq2seq_fields(outputs))
        return self.returned(out, return_dict)


def _last_eos_states(input_ids, hidden_states, eos_token_id) -> torch.Tensor:
    """The hidden state at the last <eos> of each row [batch, hidden]; every row must hold as many <eos>."""
    if hidden_states.shape[1] != input_ids.shape[1]:
        raise ValueError(
            f"the decoder sequence ({hidden_states.shape[1]}) must be as long as input_ids ({input_ids.shape[1]}): "
            f"the <eos> positions of input_ids select the decoder states"
        )
    eos = input_ids.eq(eos_token_id)
    counts = eos.sum(dim=1)
    if len(torch.unique_consecutive(counts)) > 1:
        raise ValueError("All examples must have the same number of <eos> tokens.")
    if int(counts[0]) == 0:
        raise ValueError(f"input_ids hold no <eos> token (id {eos_token_id}) to classify from")
    batch, _, hidden = hidden_states.shape
    return hidden_states[eos, :].view(batch, -1, hidden)[:, -1, :]


class BartForQuestionAnswering(BartPreTrainedModel):
    """Extractive QA: start and end logits per decoder position (the config's ``num_labels`` becomes 2)."""

    def __init__(self, config: BartConfig):
        config.num_labels = 2  # as transformers: QA has exactly a start and an end score
        super().__init__(config)
        self.model = BartModel(config)
        self.qa_outputs = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        head_mask=None,
        decoder_head_mask=None,
        cross_attn_head_mask=None,
        encoder_outputs=None,
        start_positions=None,
        end_positions=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        has_positions = start_positions is not None and end_positions is not None
        if has_positions:
            use_cache = False
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, head_mask=head_mask, decoder_head_mask=decoder_head_mask,
            cross_attn_head_mask=cross_attn_head_mask, encoder_outputs=encoder_outputs, inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).split(1, dim=-1)
        start_logits = start_logits.squeeze(-1).contiguous()
        end_logits = end_logits.squeeze(-1).contiguous()
        loss = span_loss(start_logits, end_logits, start_positions, end_positions) if has_positions else None
        out = Seq2SeqQuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                  **seq2seq_fields(outputs))
        return self.returned(out, return_dict)


class BartDecoderWrapper(nn.Module):
    """Holds the decoder as ``model.decoder``, so a BartForCausalLM's weights keep the encoder-decoder's names."""

    def __init__(self, config: BartConfig):
        super().__init__()
        self.decoder = BartDecoder(config)


class BartForCausalLM(GenerationMixin, BartPreTrainedModel):
    """The decoder alone as a language model (cross-attention when ``encoder_hidden_states`` are given).

    As in transformers, the loss compares logits and labels at the same position: pass labels already shifted.
    """

    def __init__(self, config: BartConfig):
        config.is_decoder = True
        config.is_encoder_decoder = False
        super().__init__(config)
        self.model = BartDecoderWrapper(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.decoder.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        head_mask=None,
        cross_attn_head_mask=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        outputs = self.base_model.decoder(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, head_mask=head_mask,
            cross_attn_head_mask=cross_attn_head_mask, past_key_values=past_key_values, inputs_embeds=inputs_embeds,
            use_cache=self.config_default("use_cache", use_cache),
            output_attentions=self.config_default("output_attentions", output_attentions),
            output_hidden_states=self.config_default("output_hidden_states", output_hidden_states),
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = token_loss(logits, labels) if labels is not None else None
        out = CausalLMOutputWithCrossAttentions(
            loss=loss, logits=logits, past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, cross_attentions=outputs.cross_attentions,
        )
        return self.returned(out, return_dict)
