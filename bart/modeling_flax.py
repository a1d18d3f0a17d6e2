"""BART in Flax (linen), ``Flax`` prefix: a bidirectional encoder and an autoregressive decoder with cross-attention.

The module tree is Hugging Face's PyTorch one, so parameter paths map to canonical checkpoint names. The one
embedding matrix lives at ``model.shared``: the encoder, the decoder and the tied LM head read it, none holds a
copy (``BartForCausalLM``'s decoder owns ``embed_tokens``). Layers sit under ``layers`` with children "0", "1", ...
``final_logits_bias`` [1, vocab] is a parameter of the generation model, as in transformers' Flax BART.

Decoding keeps either transformers' dynamic cache (per decoder layer (key, value[, cross_key, cross_value]), each
[batch, heads, seq, head_dim], growing by concatenation) or, for ``jax.jit``, a ``StaticCache`` from
``init_cache`` whose shapes never change, so one compilation serves every step.

Linen modules (``Flax...Module`` and the blocks) compute; the public classes are thin model objects holding
``module``, ``params`` and ``config``, called as ``model(input_ids, attention_mask, ..., params=..., train=...)``.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..common.backend_flax import Embed, after_layer_drop, checkpointed, concrete, dense, layer_norm, tied_logits
from ..common.cache import StaticCache
from ..common.layers_flax import (
    ProjectedAttention,
    activation,
    additive_mask,
    causal_keep_mask,
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
from ..common.modeling_flax import FlaxPreTrainedModel
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
)
from ..common.validation import (
    check_cache_keys,
    check_cache_layers,
    check_encoder_hidden_states,
    check_mask_shape,
    check_not_empty,
    check_rank,
    check_sequence_length,
    check_static_cache_length,
)
from ..generation.mixin_flax import FlaxGenerationMixin
from .config import BartConfig
from .weights import weights_spec

Array = Any


def shift_tokens_right(input_ids: Array, pad_token_id: int | None, decoder_start_token_id: int | None,
                       name: str = "input_ids") -> Array:
    """Decoder inputs from labels (or input ids): the start token, then all but the last; -100 becomes padding."""
    check_rank(name, np.shape(input_ids), 2, "batch, sequence")
    check_not_empty(name, np.shape(input_ids))
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to build decoder inputs from input_ids or labels")
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id must be set to build decoder inputs from input_ids or labels")
    input_ids = jnp.asarray(input_ids)
    start = jnp.full((input_ids.shape[0], 1), decoder_start_token_id, input_ids.dtype)
    shifted = jnp.concatenate([start, input_ids[:, :-1]], axis=1)
    return jnp.where(shifted == -100, pad_token_id, shifted)


def _check_same_batch(batch: int, encoder_hidden_states: Array) -> None:
    check_encoder_hidden_states(np.shape(encoder_hidden_states), batch)


def _clamp_float16(hidden_states: Array) -> Array:
    """As transformers' encoder layer: float16 overflow (inf) is clamped to the largest finite values."""
    if hidden_states.dtype != jnp.float16:
        return hidden_states
    limit = float(np.finfo(np.float16).max) - 1000
    overflow = jnp.any(~jnp.isfinite(hidden_states))
    return jnp.where(overflow, jnp.clip(hidden_states, -limit, limit), hidden_states)


# ----------------------------------------------------------------------------------------------------------------
# Blocks


class _Block(nn.Module):
    """Fields every BART block carries; ``gradient_checkpointing`` runs the layers under it with ``nn.remat``."""

    config: BartConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    gradient_checkpointing: bool = False

    def _dense(self, features: int, use_bias: bool = True):
        return dense(features, self.config.init_std, self.dtype, self.param_dtype, use_bias=use_bias)

    def _layer_norm(self):
        return layer_norm(self.config.layer_norm_eps, self.dtype, self.param_dtype)

    def _embed(self, count: int, padding_idx: int | None = None):
        return Embed(count, self.config.d_model, self.config.init_std, self.dtype, self.param_dtype,
                     padding_idx=padding_idx)

    def _attention(self, heads: int):
        c = self.config
        return ProjectedAttention(c.d_model, heads, c.init_std, c.attention_dropout, dtype=self.dtype,
                                  param_dtype=self.param_dtype)


class _FlaxBartLayer(_Block):
    """What encoder and decoder layers share: post-norm residual blocks and the feed-forward block."""

    def _add_feed_forward(self, ffn_dim: int) -> None:
        c = self.config
        self.dropout = nn.Dropout(c.dropout)
        self.activation_dropout = nn.Dropout(c.activation_dropout)
        self.fc1 = self._dense(ffn_dim)
        self.fc2 = self._dense(c.d_model)
        self.final_layer_norm = self._layer_norm()

    def _add_and_norm(self, hidden_states, residual, norm, deterministic: bool):
        return norm(residual + self.dropout(hidden_states, deterministic=deterministic))

    def _feed_forward(self, hidden_states, deterministic: bool):
        x = activation(self.config.activation_function)(self.fc1(hidden_states))
        x = self.fc2(self.activation_dropout(x, deterministic=deterministic))
        return self._add_and_norm(x, hidden_states, self.final_layer_norm, deterministic)


class FlaxBartEncoderLayer(_FlaxBartLayer):
    def setup(self):
        self.self_attn = self._attention(self.config.encoder_attention_heads)
        self.self_attn_layer_norm = self._layer_norm()
        self._add_feed_forward(self.config.encoder_ffn_dim)

    def __call__(self, hidden_states, attention_mask, head_mask, deterministic: bool, output_attentions: bool):
        """Returns (output, self-attention probabilities or None)."""
        attended, probs, _ = self.self_attn(hidden_states, attention_mask, head_mask, deterministic=deterministic,
                                            output_attentions=output_attentions)
        hidden_states = self._add_and_norm(attended, hidden_states, self.self_attn_layer_norm, deterministic)
        return _clamp_float16(self._feed_forward(hidden_states, deterministic)), probs


class FlaxBartDecoderLayer(_FlaxBartLayer):
    def setup(self):
        heads = self.config.decoder_attention_heads
        self.self_attn = self._attention(heads)
        self.self_attn_layer_norm = self._layer_norm()
        self.encoder_attn = self._attention(heads)
        self.encoder_attn_layer_norm = self._layer_norm()
        self._add_feed_forward(self.config.decoder_ffn_dim)

    def __call__(self, hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask, head_mask,
                 cross_attn_head_mask, past_key_value, cache_index, deterministic: bool, output_attentions: bool):
        """Returns (output, self-attention probs, cross-attention probs or None, this layer's cache entry).

        ``past_key_value``: (key, value[, cross_key, cross_value]); ``cache_index``: where a StaticCache writes.
        """
        self_past = tuple(past_key_value[:2]) if past_key_value is not None else None
        attended, self_probs, cache = self.self_attn(hidden_states, attention_mask, head_mask, None, self_past,
                                                     cache_index, deterministic, output_attentions)
        hidden_states = self._add_and_norm(attended, hidden_states, self.self_attn_layer_norm, deterministic)
        cross_probs = None
        if encoder_hidden_states is not None:
            cross_past = tuple(past_key_value[2:]) if past_key_value is not None and len(past_key_value) == 4 else None
            attended, cross_probs, cross_cache = self.encoder_attn(
                hidden_states, encoder_attention_mask, cross_attn_head_mask, encoder_hidden_states, cross_past, None,
                deterministic, output_attentions)
            hidden_states = self._add_and_norm(attended, hidden_states, self.encoder_attn_layer_norm, deterministic)
            # A StaticCache keeps its structure from step to step: cross entries only where it had them.
            if cache_index is None or cross_past is not None:
                cache = cache + cross_cache
        return self._feed_forward(hidden_states, deterministic), self_probs, cross_probs, cache


class FlaxBartLayerCollection(_Block):
    """A stack's ``layers`` list: children named "0", "1", ..., as PyTorch's ModuleList."""

    decoder: bool = False

    def setup(self):
        c = self.config
        layer, count = (FlaxBartDecoderLayer, c.decoder_layers) if self.decoder else (FlaxBartEncoderLayer,
                                                                                       c.encoder_layers)
        # static_argnums: deterministic and output_attentions, the last two arguments of either layer's __call__.
        layer = checkpointed(layer, self.gradient_checkpointing, static_argnums=(9, 10) if self.decoder else (4, 5))
        self.layers = [layer(c, self.dtype, self.param_dtype, name=str(i)) for i in range(count)]

    def __call__(self, index: int, *args):
        return self.layers[index](*args)

    def cross_key_value(self, index: int, encoder_hidden_states: Array) -> tuple[Array, Array]:
        """Layer ``index``'s cross-attention keys and values of the encoder output (decoder layers)."""
        return self.layers[index].encoder_attn.project_key_value(encoder_hidden_states)


class _FlaxBartStack(_Block):
    """Token and learned position embeddings, ``layernorm_embedding`` and dropout, then the layers.

    ``shared``: the model's token table, which then has one path (``model.shared``); None: the stack owns
    ``embed_tokens``.
    """

    shared: Embed | None = None

    def setup(self):
        c = self.config
        # An own table (as PyTorch's padding_idx, lookups of the pad token pass no gradient to its row).
        self.embed_tokens = self.shared if self.shared is not None else self._embed(c.vocab_size, c.pad_token_id)
        self.embed_positions = self._embed(c.max_position_embeddings + c.position_offset)
        self.layernorm_embedding = self._layer_norm()
        self.dropout = nn.Dropout(c.dropout)

    def _embed_inputs(self, input_ids, inputs_embeds, seq: int, past_length, ids_name: str, deterministic: bool):
        """Scaled token embeddings (or the given ones) plus the positions ``past_length ...``, normalized (the caller
        checked the length)."""
        c = self.config
        if inputs_embeds is None:
            self.embed_tokens.check(input_ids, ids_name)
            scale = math.sqrt(c.d_model) if c.scale_embedding else 1.0
            inputs_embeds = self.embed_tokens(input_ids) * scale
        positions = self.embed_positions(jnp.arange(seq) + past_length + c.position_offset)
        hidden_states = self.layernorm_embedding(jnp.asarray(inputs_embeds, self.dtype) + positions)
        return self.dropout(hidden_states, deterministic=deterministic)


class FlaxBartEncoder(_FlaxBartStack):
    def setup(self):
        super().setup()
        self.layers = FlaxBartLayerCollection(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing,
                                              decoder=False)

    def __call__(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None,
                 output_attentions: bool = False, output_hidden_states: bool = False, deterministic: bool = True):
        c = self.config
        batch, seq = input_shape(input_ids, inputs_embeds)
        check_sequence_length(seq, c.max_position_embeddings)
        hidden_states = self._embed_inputs(input_ids, inputs_embeds, seq, 0, "input_ids", deterministic)
        mask = None
        if attention_mask is not None:
            keep = padding_keep_mask(attention_mask, batch, seq, seq, "attention_mask")
            mask = additive_mask(keep, hidden_states.dtype)
        head_masks = head_mask_per_layer(head_mask, c.encoder_layers, c.encoder_attention_heads)
        all_hidden, all_attentions = [], []
        for i in range(c.encoder_layers):
            all_hidden.append(hidden_states)
            output, probs = self.layers(i, hidden_states, mask, head_masks[i], deterministic, output_attentions)
            dropped = layer_dropped(c.encoder_layerdrop, None if deterministic else self.make_rng("dropout"))
            hidden_states = after_layer_drop(dropped, hidden_states, output)
            all_attentions.append(probs)
        all_hidden.append(hidden_states)
        return BaseModelOutput(last_hidden_state=hidden_states,
                               hidden_states=tuple(all_hidden) if output_hidden_states else None,
                               attentions=tuple(all_attentions) if output_attentions else None)


class FlaxBartDecoder(_FlaxBartStack):
    """Causal layers with cross-attention over the encoder output, and a dynamic or static cache.

    A StaticCache given as ``past_key_values`` always comes back in the output, advanced by the new tokens
    (``use_cache`` is implied): a compiled generation step returns what the next one takes.

    The decoder of the seq2seq models (shared table) calls its inputs ``decoder_input_ids``,
    ``decoder_attention_mask``, ... in errors; BartForCausalLM's (own table) ``input_ids``, ``attention_mask``.
    """

    def setup(self):
        super().setup()
        self.input_prefix = "" if self.shared is None else "decoder_"
        self.layers = FlaxBartLayerCollection(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing,
                                              decoder=True)

    def __call__(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                 head_mask=None, cross_attn_head_mask=None, past_key_values=None, inputs_embeds=None,
                 use_cache: bool = False, output_attentions: bool = False, output_hidden_states: bool = False,
                 deterministic: bool = True):
        c, prefix = self.config, self.input_prefix
        batch, seq = input_shape(input_ids, inputs_embeds, f"{prefix}input_ids", f"{prefix}inputs_embeds")
        static = isinstance(past_key_values, StaticCache)
        past_layers = self._past_layers(past_key_values, batch)
        if static:
            # init_cache checked max_length against the positions; each write checks the room left.
            past_length, use_cache = past_key_values.index, True
        else:
            past_length = past_layers[0][0].shape[2] if past_layers is not None else 0
            check_sequence_length(seq + past_length, c.max_position_embeddings)
        hidden_states = self._embed_inputs(input_ids, inputs_embeds, seq, past_length, f"{prefix}input_ids",
                                           deterministic)
        dtype = hidden_states.dtype
        mask = self._self_attention_mask(attention_mask, past_key_values, batch, seq, past_length, dtype)
        encoder_mask = self._cross_attention_mask(encoder_attention_mask, encoder_hidden_states, batch, seq, dtype)
        if encoder_hidden_states is not None:
            encoder_hidden_states = jnp.asarray(encoder_hidden_states, dtype)
        layers_count, heads = c.decoder_layers, c.decoder_attention_heads
        head_masks = head_mask_per_layer(head_mask, layers_count, heads, f"{prefix}head_mask")
        cross_head_masks = head_mask_per_layer(cross_attn_head_mask, layers_count, heads, "cross_attn_head_mask")

        all_hidden, all_self, all_cross, cache = [], [], [], []
        for i in range(layers_count):
            all_hidden.append(hidden_states)
            output, self_probs, cross_probs, layer_cache = self.layers(
                i, hidden_states, mask, encoder_hidden_states, encoder_mask, head_masks[i], cross_head_masks[i],
                past_layers[i] if past_layers is not None else None, past_length if static else None, deterministic,
                output_attentions)
            dropped = layer_dropped(c.decoder_layerdrop, None if deterministic else self.make_rng("dropout"))
            hidden_states = after_layer_drop(dropped, hidden_states, output)
            all_self.append(self_probs)
            all_cross.append(cross_probs)
            cache.append(layer_cache)
        all_hidden.append(hidden_states)
        if use_cache:
            cache = StaticCache(tuple(cache), past_length + seq) if static else tuple(cache)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, past_key_values=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_self) if output_attentions else None,
            cross_attentions=tuple(all_cross) if output_attentions and encoder_hidden_states is not None else None,
        )

    def _past_layers(self, past_key_values, batch: int) -> tuple | None:
        """The per-layer entries of a dynamic cache or a StaticCache, checked for structure."""
        if past_key_values is None:
            return None
        layers = past_key_values.layers if isinstance(past_key_values, StaticCache) else past_key_values
        check_cache_layers(layers, self.config.decoder_layers, "decoder_layers")
        if any(len(entry) not in (2, 4) for entry in layers):
            raise ValueError("past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per decoder "
                             "layer, each [batch, heads, seq, head_dim]")
        check_cache_keys(np.shape(layers[0][0]), batch)
        return tuple(layers)

    def _self_attention_mask(self, attention_mask, past_key_values, batch, seq, past_length, dtype):
        """The additive causal mask [batch, 1, seq, keys]: keys are the cached ones and the new ones, or, with a
        StaticCache, all its slots (``attention_mask`` must then cover them all)."""
        if isinstance(past_key_values, StaticCache):
            keep = static_cache_keep_mask(attention_mask, past_length, seq, past_key_values.max_length, batch)
            return additive_mask(keep, dtype)
        name = f"{self.input_prefix}attention_mask"
        if attention_mask is None:
            attention_mask = jnp.ones((batch, past_length + seq), jnp.int32)
        check_rank(name, np.shape(attention_mask), 2, "batch, past + sequence length")
        check_mask_shape(name, np.shape(attention_mask), batch, seq, past_length + seq)
        return additive_mask(causal_keep_mask(attention_mask, seq), dtype)

    def _cross_attention_mask(self, encoder_attention_mask, encoder_hidden_states, batch, seq, dtype):
        """The additive padding mask [batch, 1, seq, encoder keys] of the cross-attention (None: no padding)."""
        if encoder_hidden_states is None:
            return None
        _check_same_batch(batch, encoder_hidden_states)
        if encoder_attention_mask is None:
            return None
        name = "attention_mask" if self.input_prefix else "encoder_attention_mask"
        keep = padding_keep_mask(encoder_attention_mask, batch, seq, np.shape(encoder_hidden_states)[1], name)
        return additive_mask(keep, dtype)

    def init_cache(self, batch_size: int, max_length: int, encoder_hidden_states=None) -> StaticCache:
        """See ``BartPreTrainedModel.init_cache``."""
        c = self.config
        check_static_cache_length(max_length, c.max_position_embeddings)
        cross = None
        if encoder_hidden_states is not None:
            _check_same_batch(batch_size, encoder_hidden_states)
            source = jnp.asarray(encoder_hidden_states, self.dtype)
            cross = [self.layers.cross_key_value(i, source) for i in range(c.decoder_layers)]
        heads = c.decoder_attention_heads
        return new_static_cache(c.decoder_layers, batch_size, heads, max_length, c.d_model // heads, self.dtype,
                                cross)


# ----------------------------------------------------------------------------------------------------------------
# The encoder-decoder and its heads


class FlaxBartModule(_Block):
    """``shared`` embeddings, ``encoder`` and ``decoder``: returns the decoder's last hidden state (and the
    encoder's)."""

    label_names = ()  # class constant: the labels its loss takes (checked in common/modeling_flax.py)

    def setup(self):
        self.shared = self._embed(self.config.vocab_size, self.config.pad_token_id)
        blocks = (self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)
        self.encoder = FlaxBartEncoder(*blocks, shared=self.shared)
        self.decoder = FlaxBartDecoder(*blocks, shared=self.shared)

    def __call__(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                 past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None, use_cache=None,
                 output_attentions=None, output_hidden_states=None, deterministic: bool = True):
        c = self.config
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            # BART's denoising default: the decoder reads the input shifted right.
            if input_ids is None:
                raise ValueError("give decoder_input_ids or decoder_inputs_embeds, or input_ids to build them from")
            decoder_input_ids = shift_tokens_right(input_ids, c.pad_token_id, c.decoder_start_token_id)
        output_attentions = c.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = c.output_hidden_states if output_hidden_states is None else output_hidden_states
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, inputs_embeds=inputs_embeds,
                output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                deterministic=deterministic,
            )
        else:
            encoder_outputs = as_encoder_output(encoder_outputs)
        decoded = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state, encoder_attention_mask=attention_mask,
            head_mask=decoder_head_mask, cross_attn_head_mask=cross_attn_head_mask, past_key_values=past_key_values,
            inputs_embeds=decoder_inputs_embeds, use_cache=c.use_cache if use_cache is None else use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            deterministic=deterministic,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoded.last_hidden_state,
            past_key_values=decoded.past_key_values,
            decoder_hidden_states=decoded.hidden_states,
            decoder_attentions=decoded.attentions,
            cross_attentions=decoded.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


class _Head(_Block):
    """A head on the base model, held under ``model`` (the checkpoint prefix)."""

    label_names = ("labels",)

    @property
    def base_model(self) -> nn.Module:
        return self.model


class FlaxBartForConditionalGenerationModule(_Head):
    def setup(self):
        c = self.config
        self.model = FlaxBartModule(c, self.dtype, self.param_dtype, self.gradient_checkpointing)
        if not c.tie_word_embeddings:
            self.lm_head = self._dense(c.vocab_size, use_bias=False)
        self.final_logits_bias = self.param("final_logits_bias", jax.nn.initializers.zeros, (1, c.vocab_size),
                                            self.param_dtype)

    def __call__(self, labels=None, **inputs):
        c = self.config
        if labels is not None:
            inputs["use_cache"] = False  # as transformers: training on labels returns no cache
            if inputs.get("decoder_input_ids") is None and inputs.get("decoder_inputs_embeds") is None:
                inputs["decoder_input_ids"] = shift_tokens_right(labels, c.pad_token_id, c.decoder_start_token_id,
                                                                 "labels")
        outputs = self.base_model(**inputs)
        hidden = outputs.last_hidden_state
        if c.tie_word_embeddings:
            logits = tied_logits(hidden, self.base_model.shared.embedding)
        else:
            logits = self.lm_head(hidden)
        logits = logits + self.final_logits_bias.astype(self.dtype)
        return Seq2SeqLMOutput(loss=None if labels is None else token_loss(logits, labels), logits=logits,
                               **seq2seq_fields(outputs))


class FlaxBartClassificationHead(_Block):
    """dropout, dense, tanh, dropout, out_proj: classifies the pooled <eos> representation."""

    def setup(self):
        c = self.config
        self.dense = self._dense(c.d_model)
        self.dropout = nn.Dropout(c.classifier_dropout or 0.0)
        self.out_proj = self._dense(c.num_labels)

    def __call__(self, features, deterministic: bool):
        x = jnp.tanh(self.dense(self.dropout(features, deterministic=deterministic)))
        return self.out_proj(self.dropout(x, deterministic=deterministic))


def _last_eos_states(input_ids, hidden_states, eos_token_id: int) -> Array:
    """The hidden state at the last <eos> of each row [batch, hidden]; every row must hold as many <eos>
    (checked when the ids are known now)."""
    length = np.shape(input_ids)[1]
    if hidden_states.shape[1] != length:
        raise ValueError(f"the decoder sequence ({hidden_states.shape[1]}) must be as long as input_ids ({length}): "
                         f"the <eos> positions of input_ids select the decoder states")
    values = concrete(input_ids)
    if values is not None:
        counts = np.sum(values == eos_token_id, axis=1)
        if len(np.unique(counts)) > 1:
            raise ValueError("All examples must have the same number of <eos> tokens.")
        if counts.size and counts[0] == 0:
            raise ValueError(f"input_ids hold no <eos> token (id {eos_token_id}) to classify from")
    eos = jnp.asarray(input_ids) == eos_token_id
    last = length - 1 - jnp.argmax(eos[:, ::-1], axis=1)
    return jnp.take_along_axis(hidden_states, last[:, None, None], axis=1)[:, 0]


class FlaxBartForSequenceClassificationModule(_Head):
    """Classifies from the decoder's hidden state at the last <eos> token of each row (the encoder's input)."""

    takes_cache = False  # a head that does not decode

    def setup(self):
        self.model = FlaxBartModule(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)
        self.classification_head = FlaxBartClassificationHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, labels=None, **inputs):
        if labels is not None:
            inputs["use_cache"] = False
        input_ids = inputs.get("input_ids")
        if input_ids is None and inputs.get("inputs_embeds") is not None:
            raise NotImplementedError(
                "FlaxBartForSequenceClassification pools at the <eos> tokens of input_ids: pass input_ids, not "
                "inputs_embeds")
        outputs = self.base_model(**inputs)
        pooled = _last_eos_states(input_ids, outputs.last_hidden_state, self.config.eos_token_id)
        logits = self.classification_head(pooled, inputs.get("deterministic", True))
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels)
        return Seq2SeqSequenceClassifierOutput(loss=loss, logits=logits, **seq2seq_fields(outputs))


class FlaxBartForQuestionAnsweringModule(_Head):
    """Extractive QA: start and end logits per decoder position."""

    label_names = ("start_positions", "end_positions")
    takes_cache = False  # a head that does not decode

    def setup(self):
        self.model = FlaxBartModule(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)
        self.qa_outputs = self._dense(self.config.num_labels)

    def __call__(self, start_positions=None, end_positions=None, **inputs):
        has_positions = start_positions is not None and end_positions is not None
        if has_positions:
            inputs["use_cache"] = False
        outputs = self.base_model(**inputs)
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = span_loss(start_logits, end_logits, start_positions, end_positions) if has_positions else None
        return Seq2SeqQuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                   **seq2seq_fields(outputs))


class FlaxBartDecoderWrapper(_Block):
    """Holds the decoder as ``model.decoder``, so a BartForCausalLM's weights keep the encoder-decoder's names."""

    def setup(self):
        self.decoder = FlaxBartDecoder(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)


class FlaxBartForCausalLMModule(_Head):
    """The decoder alone as a language model (cross-attention when ``encoder_hidden_states`` are given).

    As in transformers, the loss compares logits and labels at the same position: pass labels already shifted.
    """

    def setup(self):
        self.model = FlaxBartDecoderWrapper(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)
        if not self.config.tie_word_embeddings:
            self.lm_head = self._dense(self.config.vocab_size, use_bias=False)

    def __call__(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                 head_mask=None, cross_attn_head_mask=None, past_key_values=None, inputs_embeds=None, labels=None,
                 use_cache=None, output_attentions=None, output_hidden_states=None, deterministic: bool = True):
        c = self.config
        outputs = self.base_model.decoder(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, head_mask=head_mask,
            cross_attn_head_mask=cross_attn_head_mask, past_key_values=past_key_values, inputs_embeds=inputs_embeds,
            use_cache=c.use_cache if use_cache is None else use_cache,
            output_attentions=c.output_attentions if output_attentions is None else output_attentions,
            output_hidden_states=c.output_hidden_states if output_hidden_states is None else output_hidden_states,
            deterministic=deterministic,
        )
        hidden = outputs.last_hidden_state
        if c.tie_word_embeddings:
            logits = tied_logits(hidden, self.base_model.decoder.embed_tokens.embedding)
        else:
            logits = self.lm_head(hidden)
        return CausalLMOutputWithCrossAttentions(
            loss=None if labels is None else token_loss(logits, labels), logits=logits,
            past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, cross_attentions=outputs.cross_attentions,
        )


def _base_of(module: nn.Module) -> nn.Module:
    """The module holding ``encoder`` / ``decoder``: the base model itself, or a head's (``model``)."""
    return module if isinstance(module, FlaxBartModule) else module.base_model


# ----------------------------------------------------------------------------------------------------------------
# Model objects


class FlaxBartPreTrainedModel(FlaxPreTrainedModel):
    """Base of the BART model objects: params, config, from_pretrained / save_pretrained, the call, ``encode``
    and ``init_cache``."""

    config_class = BartConfig
    base_model_prefix = "model"
    module_class: type[nn.Module] = FlaxBartModule

    def __init__(self, config: BartConfig, input_shape: tuple[int, int] | None = None, seed: int = 0,
                 dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, _do_init: bool = True):
        self.adapt_config(config)
        module = self.module_class(config, jnp.dtype(dtype), jnp.dtype(param_dtype))
        super().__init__(config, module, input_shape=input_shape or (1, 1), seed=seed, dtype=dtype,
                         param_dtype=param_dtype, _do_init=_do_init)

    @staticmethod
    def adapt_config(config: BartConfig) -> None:
        """What a head sets on its config, as transformers' constructors do."""

    def weights_spec(self):
        return weights_spec(self.config)

    def dummy_inputs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        return {"input_ids": jnp.zeros(input_shape, jnp.int32)}

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        *,
        head_mask=None,
        decoder_head_mask=None,
        cross_attn_head_mask=None,
        encoder_outputs=None,
        past_key_values=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        labels=None,
        start_positions=None,
        end_positions=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        params=None,
        dropout_rng=None,
        train: bool = False,
    ):
        """Run the model; a pure function of ``params`` (default: ``self.params``).

        ``train=True`` enables dropout and needs ``dropout_rng``. ``past_key_values``: the dynamic cache (a tuple
        over decoder layers of (key, value, cross_key, cross_value), each [batch, heads, seq, head_dim]) or a
        ``StaticCache`` from ``init_cache`` (then ``decoder_attention_mask`` covers all its slots). Heads compute
        the loss from ``labels`` (question answering: ``start_positions`` and ``end_positions``) as transformers.
        """
        return self.apply_module(
            params, dropout_rng, train, return_dict, input_ids=input_ids, attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask, head_mask=head_mask,
            decoder_head_mask=decoder_head_mask, cross_attn_head_mask=cross_attn_head_mask,
            encoder_outputs=encoder_outputs, inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            past_key_values=past_key_values, labels=labels, start_positions=start_positions, end_positions=end_positions,
        )

    def encode(self, input_ids=None, attention_mask=None, *, head_mask=None, inputs_embeds=None,
               output_attentions=None, output_hidden_states=None, return_dict=None, params=None, dropout_rng=None,
               train: bool = False):
        """The encoder alone (a ``BaseModelOutput``), e.g. once before decoding with ``encoder_outputs``."""
        c = self.config

        def run(module, deterministic, **inputs):
            return _base_of(module).encoder(**inputs, deterministic=deterministic)

        return self.apply_module(
            params, dropout_rng, train, return_dict, method=run, input_ids=input_ids, attention_mask=attention_mask,
            head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=c.output_attentions if output_attentions is None else output_attentions,
            output_hidden_states=c.output_hidden_states if output_hidden_states is None else output_hidden_states,
        )

    def init_cache(self, batch_size: int, max_length: int, encoder_outputs=None, *, params=None) -> StaticCache:
        """A StaticCache for compiled generation: ``max_length`` zero slots per decoder layer and index 0.

        With ``encoder_outputs`` (an output, a tuple or the encoder's last hidden state) each layer's
        cross-attention keys and values are computed once and stored as its 3rd and 4th entries. Pass the cache
        as ``past_key_values`` with a (decoder) attention mask over all ``max_length`` slots; each call writes at
        the cache's index and returns it advanced.
        """
        source = None
        if encoder_outputs is not None:
            source = as_encoder_output(encoder_outputs).last_hidden_state
        return self.module.apply({"params": self._require_params(params)}, batch_size, max_length, source,
                                 method=lambda module, *args: _base_of(module).decoder.init_cache(*args))


class FlaxBartModel(FlaxBartPreTrainedModel):
    module_class = FlaxBartModule


class FlaxBartForConditionalGeneration(FlaxGenerationMixin, FlaxBartPreTrainedModel):
    """Summarization, translation, denoising: decoder logits over the vocabulary plus ``final_logits_bias``."""

    module_class = FlaxBartForConditionalGenerationModule


class FlaxBartForSequenceClassification(FlaxBartPreTrainedModel):
    module_class = FlaxBartForSequenceClassificationModule


class FlaxBartForQuestionAnswering(FlaxBartPreTrainedModel):
    module_class = FlaxBartForQuestionAnsweringModule

    @staticmethod
    def adapt_config(config: BartConfig) -> None:
        config.num_labels = 2  # QA has exactly a start and an end score


class FlaxBartForCausalLM(FlaxGenerationMixin, FlaxBartPreTrainedModel):
    """The decoder alone as a language model; ``encoder_hidden_states`` add cross-attention."""

    module_class = FlaxBartForCausalLMModule

    @staticmethod
    def adapt_config(config: BartConfig) -> None:
        config.is_decoder = True
        config.is_encoder_decoder = False

    def dummy_inputs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        # Encoder states too, so the cross-attention weights exist.
        states = jnp.zeros(tuple(input_shape) + (self.config.d_model,), self.dtype)
        return {"input_ids": jnp.zeros(input_shape, jnp.int32), "encoder_hidden_states": states}

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        *,
        head_mask=None,
        cross_attn_head_mask=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        params=None,
        dropout_rng=None,
        train: bool = False,
    ):
        """Run the decoder; ``past_key_values`` a dynamic cache or a ``StaticCache`` from ``init_cache`` (then
        ``attention_mask`` covers all its slots); the loss compares logits and ``labels`` position by position."""
        return self.apply_module(
            params, dropout_rng, train, return_dict, input_ids=input_ids, attention_mask=attention_mask,
            encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
            head_mask=head_mask, cross_attn_head_mask=cross_attn_head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )

    def encode(self, *args, **kwargs):
        raise TypeError("FlaxBartForCausalLM has no encoder: pass encoder_hidden_states to the call")
