"""BART in TensorFlow / Keras 3 (``TF`` prefix).

The same module tree as ``modeling_pt.py`` (Hugging Face's names), as Keras layers on attributes, so variable
paths map to canonical checkpoint names. The one embedding matrix lives at ``model.shared``: the encoder, the
decoder and the tied LM head read it, none holds a copy (``BartForCausalLM``'s decoder owns ``embed_tokens``).

Decoding keeps either transformers' dynamic cache (per layer (key, value[, cross_key, cross_value]), growing by
concatenation) or, for compiled generation, a ``StaticCache`` from ``init_cache`` whose shapes never change.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from ..common.backend_tf import (
    Block,
    after_layer_drop,
    check_length,
    dense,
    dim,
    embedding,
    gather,
    layer_norm,
    lookup_token_ids,
    run_layer,
    tied_logits,
)
from ..common.cache import StaticCache
from ..common.layers_tf import (
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
from ..common.modeling_tf import TFPreTrainedModel, returned, unpack_inputs
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
    check_static_cache_length,
)
from ..generation.mixin_tf import TFGenerationMixin
from .config import BartConfig
from .weights import weights_spec

# What an exported encoder-decoder serves (the classification and QA heads build decoder inputs from input_ids).
SEQ2SEQ_SERVING_INPUTS = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask")


def shift_tokens_right(input_ids, pad_token_id: int | None, decoder_start_token_id: int | None,
                       name: str = "input_ids"):
    """Decoder inputs from labels (or input ids): the start token, then all but the last; -100 becomes padding."""
    input_ids = tf.convert_to_tensor(input_ids)
    check_rank(name, list(input_ids.shape), 2, "batch, sequence")
    check_not_empty(name, list(input_ids.shape))
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to build decoder inputs from input_ids or labels")
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id must be set to build decoder inputs from input_ids or labels")
    start = tf.fill([dim(input_ids, 0), 1], tf.cast(decoder_start_token_id, input_ids.dtype))
    shifted = tf.concat([start, input_ids[:, :-1]], axis=1)
    return tf.where(shifted == -100, tf.cast(pad_token_id, shifted.dtype), shifted)


def _clamp_float16(hidden_states):
    """As transformers' encoder layer: float16 overflow (inf) is clamped to the largest finite values."""
    if hidden_states.dtype != tf.float16:
        return hidden_states
    limit = float(np.finfo(np.float16).max) - 1000
    overflow = tf.reduce_any(tf.logical_not(tf.math.is_finite(hidden_states)))
    return tf.where(overflow, tf.clip_by_value(hidden_states, -limit, limit), hidden_states)


# ----------------------------------------------------------------------------------------------------------------
# Layers. Each builds its variables in __init__ (sizes come from the config), so it is built from the start.


class _TFBartLayer(Block):
    """What encoder and decoder layers share: post-norm residual blocks and the feed-forward block."""

    def _add_feed_forward(self, config: BartConfig, ffn_dim: int) -> None:
        """Called after the attention blocks, so variables come in transformers' order."""
        dtype, d_model, std = self.dtype_policy, config.d_model, config.init_std
        self.dropout = keras.layers.Dropout(config.dropout, dtype=dtype)
        self.activation_fn = activation(config.activation_function)
        self.activation_dropout = keras.layers.Dropout(config.activation_dropout, dtype=dtype)
        self.fc1 = dense(ffn_dim, d_model, std, "fc1", dtype)
        self.fc2 = dense(d_model, ffn_dim, std, "fc2", dtype)
        self.final_layer_norm = layer_norm(d_model, config.layer_norm_eps, "final_layer_norm", dtype)

    def _add_and_norm(self, hidden_states, residual, norm, training):
        return norm(residual + self.dropout(hidden_states, training=training))

    def _feed_forward(self, hidden_states, training):
        x = self.activation_dropout(self.activation_fn(self.fc1(hidden_states)), training=training)
        return self._add_and_norm(self.fc2(x), hidden_states, self.final_layer_norm, training)


class TFBartEncoderLayer(_TFBartLayer):
    def __init__(self, config: BartConfig, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        self.self_attn = ProjectedAttention(config.d_model, config.encoder_attention_heads, config.attention_dropout,
                                            config.init_std, name="self_attn", dtype=dtype)
        self.self_attn_layer_norm = layer_norm(config.d_model, config.layer_norm_eps, "self_attn_layer_norm", dtype)
        self._add_feed_forward(config, config.encoder_ffn_dim)
        self.built = True

    def call(self, hidden_states, attention_mask=None, head_mask=None, training=False):
        """Returns (output, self-attention probabilities)."""
        attended, probs, _ = self.self_attn(hidden_states, attention_mask=attention_mask, head_mask=head_mask,
                                            training=training)
        hidden_states = self._add_and_norm(attended, hidden_states, self.self_attn_layer_norm, training)
        return _clamp_float16(self._feed_forward(hidden_states, training)), probs


class TFBartDecoderLayer(_TFBartLayer):
    def __init__(self, config: BartConfig, **kwargs):
        super().__init__(**kwargs)
        dtype, heads, d_model, eps = self.dtype_policy, config.decoder_attention_heads, config.d_model, config.layer_norm_eps
        self.self_attn = ProjectedAttention(d_model, heads, config.attention_dropout, config.init_std, name="self_attn",
                                            dtype=dtype)
        self.self_attn_layer_norm = layer_norm(d_model, eps, "self_attn_layer_norm", dtype)
        self.encoder_attn = ProjectedAttention(d_model, heads, config.attention_dropout, config.init_std,
                                               name="encoder_attn", dtype=dtype)
        self.encoder_attn_layer_norm = layer_norm(d_model, eps, "encoder_attn_layer_norm", dtype)
        self._add_feed_forward(config, config.decoder_ffn_dim)
        self.built = True

    def call(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
             head_mask=None, cross_attn_head_mask=None, past_key_value=None, cache_index=None, training=False):
        """Returns (output, self-attention probs, cross-attention probs or None, this layer's cache entry).

        ``past_key_value``: (key, value[, cross_key, cross_value]); ``cache_index``: where a StaticCache writes.
        """
        self_past = tuple(past_key_value[:2]) if past_key_value is not None else None
        attended, self_probs, cache = self.self_attn(
            hidden_states, attention_mask=attention_mask, head_mask=head_mask, past_key_value=self_past,
            cache_index=cache_index, training=training,
        )
        hidden_states = self._add_and_norm(attended, hidden_states, self.self_attn_layer_norm, training)
        cross_probs = None
        if encoder_hidden_states is not None:
            cross_past = tuple(past_key_value[2:]) if past_key_value is not None and len(past_key_value) == 4 else None
            attended, cross_probs, cross_cache = self.encoder_attn(
                hidden_states, attention_mask=encoder_attention_mask, head_mask=cross_attn_head_mask,
                key_value_states=encoder_hidden_states, past_key_value=cross_past, training=training,
            )
            hidden_states = self._add_and_norm(attended, hidden_states, self.encoder_attn_layer_norm, training)
            # A StaticCache keeps its structure from step to step: cross entries only where it had them.
            if cache_index is None or cross_past is not None:
                cache = cache + cross_cache
        return self._feed_forward(hidden_states, training), self_probs, cross_probs, cache


class _TFBartStack(Block):
    """Token and learned position embeddings, then ``layernorm_embedding`` and dropout (encoder and decoder).

    ``embed_tokens``: the model's ``shared`` table, read but not held (a private attribute, which the walk of
    variable paths skips), so it has one path; None: the stack owns its ``embed_tokens`` (BartForCausalLM).
    """

    def __init__(self, config: BartConfig, embed_tokens: keras.layers.Embedding | None, **kwargs):
        super().__init__(**kwargs)
        dtype, d_model, std = self.dtype_policy, config.d_model, config.init_std
        self.config = config
        self.embed_scale = math.sqrt(d_model) if config.scale_embedding else 1.0
        if embed_tokens is None:
            self.embed_tokens = embedding(config.vocab_size, d_model, std, "embed_tokens", dtype, config.pad_token_id)
            embed_tokens = self.embed_tokens
        self._embed_tokens = embed_tokens
        self.embed_positions = embedding(config.max_position_embeddings + config.position_offset, d_model, std,
                                         "embed_positions", dtype)
        self.layernorm_embedding = layer_norm(d_model, config.layer_norm_eps, "layernorm_embedding", dtype)
        self.dropout = keras.layers.Dropout(config.dropout, dtype=dtype)
        self.gradient_checkpointing = False

    @property
    def token_table(self):
        return self._embed_tokens.embeddings

    def _embed_inputs(self, input_ids, inputs_embeds, seq, past_length, ids_name: str, training: bool):
        """Scaled token embeddings (or the given ones) plus the positions ``past_length ...``, normalized (the caller
        checked the length)."""
        if inputs_embeds is None:
            inputs_embeds = lookup_token_ids(self.token_table, input_ids, self.config.vocab_size, ids_name)
            if self.embed_scale != 1.0:
                inputs_embeds = inputs_embeds * self.embed_scale
        inputs_embeds = tf.convert_to_tensor(inputs_embeds)
        positions = tf.range(seq) + tf.cast(past_length, tf.int32) + self.config.position_offset
        hidden_states = inputs_embeds + tf.cast(gather(self.embed_positions.embeddings, positions),
                                                inputs_embeds.dtype)
        return self.dropout(self.layernorm_embedding(hidden_states), training=training)


class TFBartEncoder(_TFBartStack):
    def __init__(self, config: BartConfig, embed_tokens: keras.layers.Embedding | None = None, **kwargs):
        super().__init__(config, embed_tokens, **kwargs)
        self.layers = [TFBartEncoderLayer(config, name=f"layers_{i}", dtype=self.dtype_policy)
                       for i in range(config.encoder_layers)]
        self.built = True

    def call(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None, output_attentions=False,
             output_hidden_states=False, return_dict=True, training=False):
        config = self.config
        batch, seq = input_shape(input_ids, inputs_embeds, "input_ids", "inputs_embeds")
        check_length(seq, config.max_position_embeddings)
        hidden_states = self._embed_inputs(input_ids, inputs_embeds, seq, 0, "input_ids", training)
        mask = None
        if attention_mask is not None:
            mask = additive_mask(padding_keep_mask(attention_mask, batch, seq, seq, "attention_mask"),
                                 hidden_states.dtype)
        head_masks = head_mask_per_layer(head_mask, config.encoder_layers, config.encoder_attention_heads,
                                         hidden_states.dtype)
        all_hidden = [] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer, layer_head_mask in zip(self.layers, head_masks, strict=True):
            if output_hidden_states:
                all_hidden.append(hidden_states)
            output, probs = run_layer(self, layer, hidden_states, attention_mask=mask, head_mask=layer_head_mask,
                                      training=training)
            hidden_states = after_layer_drop(layer_dropped(config.encoder_layerdrop, training), hidden_states, output)
            if output_attentions:
                all_attentions.append(probs)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        out = BaseModelOutput(last_hidden_state=hidden_states, hidden_states=tuple_or_none(all_hidden),
                              attentions=tuple_or_none(all_attentions))
        return returned(out, return_dict, config)


class TFBartDecoder(_TFBartStack):
    """Causal layers with cross-attention over the encoder output, and a dynamic or static cache.

    A StaticCache given as ``past_key_values`` always comes back in the output, advanced by the new tokens
    (``use_cache`` is implied): a compiled generation step returns what the next one takes.

    The decoder of the seq2seq models (shared table) calls its inputs ``decoder_input_ids``,
    ``decoder_attention_mask``, ... in errors; BartForCausalLM's (own table) ``input_ids``, ``attention_mask``.
    """

    def __init__(self, config: BartConfig, embed_tokens: keras.layers.Embedding | None = None, **kwargs):
        super().__init__(config, embed_tokens, **kwargs)
        self.input_prefix = "" if embed_tokens is None else "decoder_"
        self.layers = [TFBartDecoderLayer(config, name=f"layers_{i}", dtype=self.dtype_policy)
                       for i in range(config.decoder_layers)]
        self.built = True

    def call(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
             head_mask=None, cross_attn_head_mask=None, past_key_values=None, inputs_embeds=None, use_cache=False,
             output_attentions=False, output_hidden_states=False, training=False):
        config, prefix = self.config, self.input_prefix
        batch, seq = input_shape(input_ids, inputs_embeds, f"{prefix}input_ids", f"{prefix}inputs_embeds")
        static = isinstance(past_key_values, StaticCache)
        past_layers = self._past_layers(past_key_values, batch)
        if static:
            # init_cache checked max_length against the positions; each write checks the room left.
            past_length, use_cache = past_key_values.index, True
        else:
            past_length = dim(tf.convert_to_tensor(past_layers[0][0]), 2) if past_layers is not None else 0
            check_length(seq + past_length, config.max_position_embeddings)
        hidden_states = self._embed_inputs(input_ids, inputs_embeds, seq, past_length, f"{prefix}input_ids",
                                           training)
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
            output, self_probs, cross_probs, layer_cache = run_layer(
                self, layer, hidden_states, attention_mask=mask, encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_mask, head_mask=head_masks[i], cross_attn_head_mask=cross_head_masks[i],
                past_key_value=past_layers[i] if past_layers is not None else None,
                cache_index=past_length if static else None, training=training,
            )
            hidden_states = after_layer_drop(layer_dropped(config.decoder_layerdrop, training), hidden_states, output)
            if output_attentions:
                all_self.append(self_probs)
                if all_cross is not None:
                    all_cross.append(cross_probs)
            if use_cache:
                cache.append(layer_cache)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        if use_cache:
            cache = StaticCache(tuple(cache), past_length + seq) if static else tuple(cache)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, past_key_values=cache, hidden_states=tuple_or_none(all_hidden),
            attentions=tuple_or_none(all_self), cross_attentions=tuple_or_none(all_cross),
        )

    def _past_layers(self, past_key_values, batch) -> tuple | None:
        """The per-layer entries of a dynamic cache or a StaticCache, checked for structure."""
        if past_key_values is None:
            return None
        layers = past_key_values.layers if isinstance(past_key_values, StaticCache) else past_key_values
        check_cache_layers(layers, self.config.decoder_layers, "decoder_layers")
        if any(len(entry) not in (2, 4) for entry in layers):
            raise ValueError("past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per decoder "
                             "layer, each [batch, heads, seq, head_dim]")
        check_cache_keys(list(tf.convert_to_tensor(layers[0][0]).shape), batch)
        return tuple(layers)

    def _self_attention_mask(self, attention_mask, past_key_values, batch, seq, past_length, dtype):
        """The additive causal mask [batch, 1, seq, keys]: keys are the cached ones and the new ones, or, with a
        StaticCache, all its slots (``attention_mask`` must then cover them all)."""
        if isinstance(past_key_values, StaticCache):
            keep = static_cache_keep_mask(attention_mask, past_length, seq, past_key_values.max_length, batch, dtype)
            return additive_mask(keep, dtype)
        if attention_mask is None:
            attention_mask = tf.ones([batch, past_length + seq], dtype)
        attention_mask, name = tf.convert_to_tensor(attention_mask), f"{self.input_prefix}attention_mask"
        check_rank(name, list(attention_mask.shape), 2, "batch, past + sequence length")
        padding_keep_mask(attention_mask, batch, seq, past_length + seq, name)  # checks the shape
        return additive_mask(causal_keep_mask(tf.cast(attention_mask, dtype), seq), dtype)

    def _cross_attention_mask(self, encoder_attention_mask, encoder_hidden_states, batch, seq, dtype):
        """The additive padding mask [batch, 1, seq, encoder keys] of the cross-attention (None: no padding)."""
        if encoder_hidden_states is None:
            return None
        _check_same_batch(batch, encoder_hidden_states)
        if encoder_attention_mask is None:
            return None
        name = "attention_mask" if self.input_prefix else "encoder_attention_mask"
        keep = padding_keep_mask(encoder_attention_mask, batch, seq, dim(encoder_hidden_states, 1), name)
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
        return new_static_cache(config.decoder_layers, batch_size, heads, max_length, config.d_model // heads,
                                self.compute_dtype, cross)


def _check_same_batch(batch, encoder_hidden_states) -> None:
    check_encoder_hidden_states(list(encoder_hidden_states.shape), batch)


class TFBartClassificationHead(Block):
    """dropout, dense, tanh, dropout, out_proj: classifies the pooled <eos> representation."""

    def __init__(self, config: BartConfig, **kwargs):
        super().__init__(**kwargs)
        dtype, d_model, std = self.dtype_policy, config.d_model, config.init_std
        self.dense = dense(d_model, d_model, std, "dense", dtype)
        self.dropout = keras.layers.Dropout(config.classifier_dropout or 0.0, dtype=dtype)
        self.out_proj = dense(config.num_labels, d_model, std, "out_proj", dtype)
        self.built = True

    def call(self, features, training=False):
        x = self.dropout(tf.tanh(self.dense(self.dropout(features, training=training))), training=training)
        return self.out_proj(x)


# ----------------------------------------------------------------------------------------------------------------
# Models


class TFBartPreTrainedModel(TFPreTrainedModel):
    config_class = BartConfig
    base_model_prefix = "model"

    def weights_spec(self):
        return weights_spec(self.config)

    def get_encoder(self) -> TFBartEncoder:
        return self.get_base_model().encoder

    def get_decoder(self) -> TFBartDecoder:
        return self.get_base_model().decoder

    def init_cache(self, batch_size: int, max_length: int, encoder_outputs=None) -> StaticCache:
        """A StaticCache for compiled generation: ``max_length`` zero slots per decoder layer and index 0.

        With ``encoder_outputs`` (an output, a tuple or the encoder's last hidden state) each layer's
        cross-attention keys and values are computed once and stored as its 3rd and 4th entries. Pass the cache
        as ``past_key_values`` with an ``attention_mask`` (decoder_attention_mask for the seq2seq models) over all
        ``max_length`` slots; each call writes at the cache's index and returns it advanced.
        """
        encoder_hidden_states = None
        if encoder_outputs is not None:
            encoder_hidden_states = tf.convert_to_tensor(as_encoder_output(encoder_outputs).last_hidden_state)
        return self.get_decoder().init_cache(batch_size, max_length, encoder_hidden_states)


class TFBartModel(TFBartPreTrainedModel):
    """The encoder-decoder without a head; returns the decoder's last hidden state (and the encoder's)."""

    serving_inputs = SEQ2SEQ_SERVING_INPUTS

    def __init__(self, config: BartConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        dtype = self.dtype_policy
        self.shared = embedding(config.vocab_size, config.d_model, config.init_std, "shared", dtype,
                                config.pad_token_id)
        self.encoder = TFBartEncoder(config, self.shared, name="encoder", dtype=dtype)
        self.decoder = TFBartDecoder(config, self.shared, name="decoder", dtype=dtype)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
             head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
             past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None, use_cache=None,
             output_attentions=None, output_hidden_states=None, return_dict=None, training=False):
        config = self.config
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError("give decoder_input_ids or decoder_inputs_embeds, or input_ids to build them from")
            decoder_input_ids = shift_tokens_right(input_ids, config.pad_token_id, config.decoder_start_token_id)
        output_attentions = self.config_default("output_attentions", output_attentions)
        output_hidden_states = self.config_default("output_hidden_states", output_hidden_states)
        use_cache = self.config_default("use_cache", use_cache)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, inputs_embeds=inputs_embeds,
                output_attentions=output_attentions, output_hidden_states=output_hidden_states, training=training,
            )
        else:
            encoder_outputs = as_encoder_output(encoder_outputs)
        decoded = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=tf.convert_to_tensor(encoder_outputs.last_hidden_state),
            encoder_attention_mask=attention_mask, head_mask=decoder_head_mask,
            cross_attn_head_mask=cross_attn_head_mask, past_key_values=past_key_values,
            inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, training=training,
        )
        out = Seq2SeqModelOutput(
            last_hidden_state=decoded.last_hidden_state, past_key_values=decoded.past_key_values,
            decoder_hidden_states=decoded.hidden_states, decoder_attentions=decoded.attentions,
            cross_attentions=decoded.cross_attentions, encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states, encoder_attentions=encoder_outputs.attentions,
        )
        return returned(out, return_dict, config)


# The encoder-decoder heads' output fields, passed through from BartModel.
class TFBartForConditionalGeneration(TFGenerationMixin, TFBartPreTrainedModel):
    """Summarization, translation, denoising: decoder logits over the vocabulary plus ``final_logits_bias``."""

    serving_inputs = SEQ2SEQ_SERVING_INPUTS

    def __init__(self, config: BartConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        dtype = self.dtype_policy
        self.model = TFBartModel(config, dtype=dtype, name="model")
        if not config.tie_word_embeddings:
            self.lm_head = dense(config.vocab_size, config.d_model, config.init_std, "lm_head", dtype, use_bias=False)
        # A buffer in transformers (never trained), saved under its own name.
        self.final_logits_bias = self.add_weight(name="final_logits_bias", shape=(1, config.vocab_size),
                                                 initializer="zeros", trainable=False)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
             head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
             past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None, labels=None, use_cache=None,
             output_attentions=None, output_hidden_states=None, return_dict=None, training=False):
        config = self.config
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id,
                                                       "labels")
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, head_mask=head_mask, decoder_head_mask=decoder_head_mask,
            cross_attn_head_mask=cross_attn_head_mask, encoder_outputs=encoder_outputs,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=True, training=training,
        )
        hidden = outputs.last_hidden_state
        if config.tie_word_embeddings:
            logits = tied_logits(hidden, self.model.shared.embeddings)
        else:
            logits = self.lm_head(hidden)
        logits = logits + tf.cast(self.final_logits_bias, logits.dtype)
        out = Seq2SeqLMOutput(logits=logits, **seq2seq_fields(outputs))
        return returned(self.with_loss(out, labels), return_dict, config)

    def head_loss(self, labels, output):
        return token_loss(output.logits, labels)

    def inputs_from_targets(self, inputs, targets):
        """Decoder inputs from Keras targets, built as from labels in the inputs (unless the inputs hold some)."""
        if "labels" not in targets or {"decoder_input_ids", "decoder_inputs_embeds"} & set(inputs):
            return {}
        config = self.config
        return {"decoder_input_ids": shift_tokens_right(targets["labels"], config.pad_token_id,
                                                        config.decoder_start_token_id, "labels")}


class TFBartForSequenceClassification(TFBartPreTrainedModel):
    """Classifies from the decoder's hidden state at the last <eos> token of each row (the encoder's input)."""

    def __init__(self, config: BartConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        dtype = self.dtype_policy
        self.model = TFBartModel(config, dtype=dtype, name="model")
        self.classification_head = TFBartClassificationHead(config, name="classification_head", dtype=dtype)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
             head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
             inputs_embeds=None, decoder_inputs_embeds=None, labels=None, use_cache=None, output_attentions=None,
             output_hidden_states=None, return_dict=None, training=False):
        if input_ids is None and inputs_embeds is not None:
            raise NotImplementedError(
                f"{type(self).__name__} pools at the <eos> tokens of input_ids: pass input_ids, not inputs_embeds"
            )
        if labels is not None:
            use_cache = False
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, head_mask=head_mask, decoder_head_mask=decoder_head_mask,
            cross_attn_head_mask=cross_attn_head_mask, encoder_outputs=encoder_outputs, inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        pooled = _last_eos_states(input_ids, outputs.last_hidden_state, self.config.eos_token_id)
        out = Seq2SeqSequenceClassifierOutput(logits=self.classification_head(pooled, training=training),
                                              **seq2seq_fields(outputs))
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return sequence_classification_loss(self.config, output.logits, labels)


_EOS_COUNT_MESSAGE = "All examples must have the same number of <eos> tokens."


def _last_eos_states(input_ids, hidden_states, eos_token_id: int):
    """The hidden state at the last <eos> of each row [batch, d_model]; rows must hold equally many <eos>."""
    input_ids = tf.convert_to_tensor(input_ids)
    length, decoder_length = input_ids.shape[1], hidden_states.shape[1]
    if length is not None and decoder_length is not None and length != decoder_length:
        raise ValueError(
            f"the decoder sequence ({decoder_length}) must be as long as input_ids ({length}): "
            f"the <eos> positions of input_ids select the decoder states"
        )
    is_eos = tf.cast(input_ids == tf.cast(eos_token_id, input_ids.dtype), tf.int32)
    counts = tf.reduce_sum(is_eos, axis=1)
    if tf.executing_eagerly():
        counts_seen = np.unique(counts.numpy())
        if len(counts_seen) > 1:
            raise ValueError(_EOS_COUNT_MESSAGE)
        if counts_seen.size and counts_seen[0] == 0:
            raise ValueError(f"input_ids hold no <eos> token (id {eos_token_id}) to classify from")
        checks = []
    else:
        checks = [tf.debugging.assert_equal(counts, counts[0], message=_EOS_COUNT_MESSAGE),
                  tf.debugging.assert_positive(counts, message=f"input_ids hold no <eos> token (id {eos_token_id}) "
                                                                f"to classify from")]
    with tf.control_dependencies(checks):
        # 1 + the index of each <eos>, 0 elsewhere: the row maximum is 1 + the last one's index.
        last = tf.reduce_max(is_eos * (tf.range(dim(input_ids, 1)) + 1)[None, :], axis=1) - 1
    return tf.gather(hidden_states, last, batch_dims=1)


class TFBartForQuestionAnswering(TFBartPreTrainedModel):
    """Extractive QA: start and end logits per decoder position (the config's ``num_labels`` becomes 2)."""

    def __init__(self, config: BartConfig, *, dtype=None, name=None):
        config.num_labels = 2  # as transformers does
        super().__init__(config, dtype=dtype, name=name)
        dtype = self.dtype_policy
        self.model = TFBartModel(config, dtype=dtype, name="model")
        self.qa_outputs = dense(2, config.d_model, config.init_std, "qa_outputs", dtype)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
             head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
             start_positions=None, end_positions=None, inputs_embeds=None, decoder_inputs_embeds=None,
             use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None, training=False):
        labels = None
        if start_positions is not None and end_positions is not None:
            labels = {"start_positions": start_positions, "end_positions": end_positions}
            use_cache = False
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, head_mask=head_mask, decoder_head_mask=decoder_head_mask,
            cross_attn_head_mask=cross_attn_head_mask, encoder_outputs=encoder_outputs, inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        start_logits, end_logits = tf.unstack(self.qa_outputs(outputs.last_hidden_state), num=2, axis=-1)
        out = Seq2SeqQuestionAnsweringModelOutput(start_logits=start_logits, end_logits=end_logits,
                                                  **seq2seq_fields(outputs))
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return span_loss(output.start_logits, output.end_logits, labels["start_positions"], labels["end_positions"])


class TFBartDecoderWrapper(Block):
    """Holds BartForCausalLM's decoder under ``model.decoder``, as transformers does (so checkpoints fit)."""

    def __init__(self, config: BartConfig, **kwargs):
        super().__init__(**kwargs)
        self.decoder = TFBartDecoder(config, name="decoder", dtype=self.dtype_policy)
        self.built = True


class TFBartForCausalLM(TFGenerationMixin, TFBartPreTrainedModel):
    """The decoder alone as a language model (cross-attention when ``encoder_hidden_states`` are given).

    As in transformers, the loss compares logits and labels at the same position: pass labels already shifted.
    """

    def __init__(self, config: BartConfig, *, dtype=None, name=None):
        config.is_decoder, config.is_encoder_decoder = True, False  # as transformers does
        super().__init__(config, dtype=dtype, name=name)
        dtype = self.dtype_policy
        self.model = TFBartDecoderWrapper(config, name="model", dtype=dtype)
        if not config.tie_word_embeddings:
            self.lm_head = dense(config.vocab_size, config.d_model, config.init_std, "lm_head", dtype, use_bias=False)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
             head_mask=None, cross_attn_head_mask=None, past_key_values=None, inputs_embeds=None, labels=None,
             use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None, training=False):
        outputs = self.get_base_model().decoder(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, head_mask=head_mask,
            cross_attn_head_mask=cross_attn_head_mask, past_key_values=past_key_values, inputs_embeds=inputs_embeds,
            use_cache=self.config_default("use_cache", use_cache),
            output_attentions=self.config_default("output_attentions", output_attentions),
            output_hidden_states=self.config_default("output_hidden_states", output_hidden_states), training=training,
        )
        hidden = outputs.last_hidden_state
        if self.config.tie_word_embeddings:
            logits = tied_logits(hidden, self.model.decoder.token_table)
        else:
            logits = self.lm_head(hidden)
        out = CausalLMOutputWithCrossAttentions(
            logits=logits, past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, cross_attentions=outputs.cross_attentions,
        )
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return token_loss(output.logits, labels)
