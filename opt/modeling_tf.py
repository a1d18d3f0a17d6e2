"""OPT in TensorFlow / Keras 3 (``TF`` prefix).

The module tree is Hugging Face's (``model.decoder.layers.0.self_attn.q_proj``), so variable paths map to canonical
checkpoint names. Both of OPT's layouts: opt-125m's (layer norm before each block, a final layer norm) and
opt-350m's (layer norm after each block, ``project_in`` / ``project_out`` between a narrower word embedding and
the hidden size). Positions come from the attention mask, so a left-padded row gives its unpadded outputs.

Two caches: the per-layer (key, value) tuples of transformers (grown by concatenation), and a ``StaticCache`` from
``init_cache`` with preallocated slots, whose steps keep their shapes under ``tf.function(jit_compile=True)``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..common.backend_tf import (
    Block,
    after_layer_drop,
    check_length,
    check_shape_compatible,
    dense,
    dim,
    embedding,
    known,
    layer_norm,
    lookup_indices,
    lookup_token_ids,
    run_layer,
    static_shape,
    tied_logits,
)
from ..common.cache import StaticCache
from ..common.layers_tf import (
    ProjectedAttention,
    activation,
    additive_mask,
    causal_keep_mask,
    causal_lm_loss,
    check_static_cache_room,
    head_mask_per_layer,
    input_shape,
    layer_dropped,
    new_static_cache,
    question_answering_output,
    sequence_classification_loss,
    span_loss,
    static_cache_keep_mask,
)
from ..common.modeling_tf import TFPreTrainedModel, returned, unpack_inputs
from ..common.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from ..common.validation import (
    check_binary_mask,
    check_cache_keys,
    check_cache_layers,
    check_rank,
    check_static_cache_length,
)
from ..generation.mixin_tf import TFGenerationMixin
from .config import OPTConfig
from .weights import weights_spec


def position_ids_from_attention_mask(attention_mask, past_length, seq):
    """OPT numbers the tokens the mask keeps from 0 (padding gets -1), counted over the cached slots too; the
    positions of the ``seq`` slots from ``past_length`` on (before the offset of 2)."""
    attention_mask = tf.convert_to_tensor(attention_mask)
    mask = tf.cast(attention_mask, tf.int32)
    positions = tf.cumsum(mask, axis=1) * mask - 1
    # A row whose mask holds values other than 0/1 gets position -2, outside the table: compiled code then turns the
    # row into NaN (eager calls refuse such a mask before this).
    if attention_mask.dtype != tf.bool:
        binary = tf.reduce_all((attention_mask == 0) | (attention_mask == 1), axis=1, keepdims=True)
        positions = tf.where(binary, positions, -2)
    return tf.gather(positions, tf.cast(past_length, tf.int32) + tf.range(seq), axis=1)


class TFOPTDecoderLayer(Block):
    """Self-attention and feed-forward, each a residual block; layer norm before (opt-125m) or after (opt-350m)."""

    def __init__(self, config: OPTConfig, **kwargs):
        super().__init__(**kwargs)
        dtype, std, hidden, bias = self.dtype_policy, config.init_std, config.hidden_size, config.enable_bias
        affine, eps = config.layer_norm_elementwise_affine, config.layer_norm_eps
        # OPT scales the query before the product, as fairseq did (transformers keeps that order).
        self.self_attn = ProjectedAttention(hidden, config.num_attention_heads, config.attention_dropout, std, bias,
                                            scale_query=True, name="self_attn", dtype=dtype)
        self.self_attn_layer_norm = layer_norm(hidden, eps, "self_attn_layer_norm", dtype, affine)
        self.fc1 = dense(config.ffn_dim, hidden, std, "fc1", dtype, bias)
        self.fc2 = dense(hidden, config.ffn_dim, std, "fc2", dtype, bias)
        self.final_layer_norm = layer_norm(hidden, eps, "final_layer_norm", dtype, affine)
        self.dropout = keras.layers.Dropout(config.dropout, dtype=dtype)
        self.activation_fn = activation(config.activation_function)
        self.pre_layer_norm = config.do_layer_norm_before
        self.built = True

    def call(self, hidden_states, attention_mask=None, head_mask=None, past_key_value=None, cache_index=None,
             training=False):
        """Returns (output, attention probabilities or None, this layer's cache entry)."""
        attended, probs, cache = self.self_attn(
            self._pre(self.self_attn_layer_norm, hidden_states), attention_mask=attention_mask, head_mask=head_mask,
            past_key_value=past_key_value, cache_index=cache_index, training=training,
        )
        hidden_states = self._post(self.self_attn_layer_norm, hidden_states + self.dropout(attended, training=training))
        fed = self.fc2(self.activation_fn(self.fc1(self._pre(self.final_layer_norm, hidden_states))))
        hidden_states = self._post(self.final_layer_norm, hidden_states + self.dropout(fed, training=training))
        return hidden_states, probs, cache

    def _pre(self, norm, hidden_states):
        """The block's input: normalized first in the pre-layer-norm layout."""
        return norm(hidden_states) if self.pre_layer_norm else hidden_states

    def _post(self, norm, hidden_states):
        """The residual sum: normalized in the post-layer-norm layout."""
        return hidden_states if self.pre_layer_norm else norm(hidden_states)


class TFOPTDecoder(Block):
    """Token and position embeddings, the decoder layers, and the final layer norm / ``project_out``."""

    def __init__(self, config: OPTConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        dtype, std, hidden, width = self.dtype_policy, config.init_std, config.hidden_size, config.word_embed_proj_dim
        self.embed_tokens = embedding(config.vocab_size, width, std, "embed_tokens", dtype, config.pad_token_id)
        self.embed_positions = embedding(config.max_position_embeddings + config.position_offset, hidden, std,
                                         "embed_positions", dtype)
        projected = width != hidden
        self.project_out = dense(width, hidden, std, "project_out", dtype, use_bias=False) if projected else None
        self.project_in = dense(hidden, width, std, "project_in", dtype, use_bias=False) if projected else None
        # Only the pre-layer-norm layout ends with a layer norm (unless an old checkpoint removed it).
        final = config.do_layer_norm_before and not config._remove_final_layer_norm
        self.final_layer_norm = (layer_norm(hidden, config.layer_norm_eps, "final_layer_norm", dtype,
                                            config.layer_norm_elementwise_affine) if final else None)
        self.layers = [TFOPTDecoderLayer(config, name=f"layers_{i}", dtype=dtype)
                       for i in range(config.num_hidden_layers)]
        self.gradient_checkpointing = False
        self.built = True

    def call(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
             use_cache=False, output_attentions=False, output_hidden_states=False, position_ids=None,
             training=False):
        config = self.config
        batch, seq = input_shape(input_ids, inputs_embeds)
        static = isinstance(past_key_values, StaticCache)
        dtype = self.compute_dtype
        if static:
            past_length, past_layers = past_key_values.index, past_key_values.layers
            attention_mask, keep = self._static_masks(past_key_values, attention_mask, batch, seq, dtype)
        else:
            past_length, past_layers = _past_length(past_key_values, batch, config.num_hidden_layers), past_key_values
            check_length(past_length + seq, config.max_position_embeddings)
            attention_mask = self._padding_mask(attention_mask, batch, past_length + seq)
            keep = causal_keep_mask(tf.cast(attention_mask, dtype), seq)
        if inputs_embeds is None:
            inputs_embeds = lookup_token_ids(self.embed_tokens.embeddings, input_ids, config.vocab_size)
        if position_ids is None:
            position_ids = position_ids_from_attention_mask(attention_mask, past_length, seq)
        elif tf.executing_eagerly():
            check_shape_compatible("position_ids", position_ids, [known(batch), known(seq)], "batch, sequence")
        if self.project_in is not None:
            inputs_embeds = self.project_in(inputs_embeds)
        # Positions run from -1 (padding) to max_position_embeddings - 1, at rows from position_offset - 1.
        positions = lookup_indices(self.embed_positions.embeddings, position_ids, config.max_position_embeddings,
                                   "position_ids", "max_position_embeddings", low=-1, offset=config.position_offset)
        hidden_states = tf.cast(inputs_embeds, dtype) + tf.cast(positions, dtype)

        mask = additive_mask(keep, dtype)
        head_masks = head_mask_per_layer(head_mask, config.num_hidden_layers, config.num_attention_heads, dtype)
        all_hidden, all_attentions, cache = [], [], []
        for i, layer in enumerate(self.layers):
            all_hidden.append(hidden_states)
            output, probs, layer_cache = run_layer(
                self, layer, hidden_states, attention_mask=mask, head_mask=head_masks[i],
                past_key_value=past_layers[i] if past_layers is not None else None,
                cache_index=past_length if static else None, training=training,
            )
            hidden_states = after_layer_drop(layer_dropped(config.layerdrop, training), hidden_states, output)
            all_attentions.append(probs)
            cache.append(layer_cache)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        if self.project_out is not None:
            hidden_states = self.project_out(hidden_states)
        all_hidden.append(hidden_states)

        if static:
            past = StaticCache(tuple(cache), past_length + seq)
        else:
            past = tuple(cache) if use_cache else None
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            past_key_values=past,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )

    def _static_masks(self, cache: StaticCache, attention_mask, batch, seq: int, dtype):
        """(the [batch, max_length] padding mask, the keep mask of the new queries) for a StaticCache call.
        init_cache checked its slots against the positions; the room left is checked before any is read."""
        max_length = cache.max_length
        check_cache_layers(cache, self.config.num_hidden_layers)
        check_static_cache_room(cache.index, seq, max_length)
        if attention_mask is None:
            attention_mask = tf.ones([batch, max_length], tf.int32)
        return attention_mask, static_cache_keep_mask(attention_mask, cache.index, seq, max_length, batch, dtype)

    @staticmethod
    def _padding_mask(attention_mask, batch, key_length):
        """The 2D mask over cached and new tokens (all ones when none is given): positions come from it."""
        if attention_mask is None:
            return tf.ones([batch, key_length], tf.int32)
        check_rank("attention_mask", static_shape(attention_mask), 2, "batch, past + sequence length")
        check_shape_compatible("attention_mask", attention_mask, [known(batch), known(key_length)],
                               "batch, past + sequence length")
        if tf.executing_eagerly():
            check_binary_mask(np.unique(np.asarray(attention_mask)))
        return attention_mask



def _past_length(past_key_values, batch, num_layers: int):
    """Cached positions in ``past_key_values`` (one (key, value) [batch, heads, past, head_dim] per layer)."""
    if past_key_values is None:
        return 0
    if len(past_key_values) != num_layers:
        raise ValueError(f"past_key_values holds {len(past_key_values)} layers but the model has {num_layers}")
    key = tf.convert_to_tensor(past_key_values[0][0])
    check_cache_keys(static_shape(key), batch)
    return dim(key, 2)


# ----------------------------------------------------------------------------------------------------------------
# Models


class TFOPTPreTrainedModel(TFPreTrainedModel):
    config_class = OPTConfig
    base_model_prefix = "model"

    def weights_spec(self):
        return weights_spec(self.config)

    def init_cache(self, batch_size: int, max_length: int) -> StaticCache:
        """A StaticCache of ``max_length`` zero slots per layer for compiled generation (index 0).

        Pass it as ``past_key_values`` with an ``attention_mask`` of [batch_size, max_length] (0 for padding);
        each call writes its tokens at the cache's index and returns the cache advanced past them.
        """
        config = self.config
        check_static_cache_length(max_length, config.max_position_embeddings)
        head_dim = config.hidden_size // config.num_attention_heads
        return new_static_cache(config.num_hidden_layers, batch_size, config.num_attention_heads, max_length,
                                head_dim, self.dtype_policy.compute_dtype)



class TFOPTModel(TFOPTPreTrainedModel):
    """The bare decoder: its last hidden state has ``word_embed_proj_dim`` features."""

    def __init__(self, config: OPTConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self.decoder = TFOPTDecoder(config, name="decoder", dtype=self.dtype_policy)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
             use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             position_ids=None, training=False):
        out = self.decoder(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=self.config_default("use_cache", use_cache),
            output_attentions=self.config_default("output_attentions", output_attentions),
            output_hidden_states=self.config_default("output_hidden_states", output_hidden_states),
            position_ids=position_ids, training=training,
        )
        return returned(out, return_dict, self.config)


class TFOPTForCausalLM(TFGenerationMixin, TFOPTPreTrainedModel):
    """Next-token logits; ``lm_head`` is the token embedding matrix unless ``tie_word_embeddings`` is False."""

    def __init__(self, config: OPTConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self.model = TFOPTModel(config, dtype=self.dtype_policy, name="model")
        if not config.tie_word_embeddings:
            self.lm_head = dense(config.vocab_size, config.word_embed_proj_dim, config.init_std, "lm_head",
                                 self.dtype_policy, use_bias=False)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
             labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             position_ids=None, training=False):
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, position_ids=position_ids, training=training,
        )
        hidden = outputs.last_hidden_state
        if self.config.tie_word_embeddings:
            logits = tied_logits(hidden, self.get_base_model().decoder.embed_tokens.embeddings)
        else:
            logits = self.lm_head(hidden)
        out = CausalLMOutputWithPast(logits=logits, past_key_values=outputs.past_key_values,
                                     hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return causal_lm_loss(output.logits, labels)


class TFOPTForSequenceClassification(TFOPTPreTrainedModel):
    """Classifies the last token that is not padding (any padding side), as transformers does."""

    def __init__(self, config: OPTConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self.model = TFOPTModel(config, dtype=self.dtype_policy, name="model")
        self.score = dense(config.num_labels, config.word_embed_proj_dim, config.init_std, "score",
                           self.dtype_policy, use_bias=False)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
             labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             position_ids=None, training=False):
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, position_ids=position_ids, training=training,
        )
        logits = self.score(outputs.last_hidden_state)
        out = SequenceClassifierOutputWithPast(
            logits=tf.gather(logits, self._last_token(input_ids, logits), axis=1, batch_dims=1),
            past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def _last_token(self, input_ids, logits):
        """Per row, the index of the rightmost non-pad token (0 for a row of padding only), or the last position
        when padding cannot be told: no pad_token_id (then only one row is allowed, as in transformers) or
        inputs_embeds instead of ids."""
        batch, seq = dim(logits, 0), dim(logits, 1)
        pad = self.config.pad_token_id
        if pad is None:
            if batch != 1:
                raise ValueError("Cannot handle batch sizes > 1 if no padding token is defined.")
            return tf.fill([batch], seq - 1)
        if input_ids is None:  # embeddings give no padding to find
            return tf.fill([batch], seq - 1)
        is_token = tf.cast(tf.convert_to_tensor(input_ids) != pad, tf.int32)
        return tf.reduce_max(tf.range(seq)[None, :] * is_token, axis=1)

    def head_loss(self, labels, output):
        return sequence_classification_loss(self.config, output.logits, labels)


class TFOPTForQuestionAnswering(TFOPTPreTrainedModel):
    """Extractive QA: start and end logits per token. ``use_cache`` is accepted, but the output has no cache."""

    def __init__(self, config: OPTConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self.model = TFOPTModel(config, dtype=self.dtype_policy, name="model")
        self.qa_outputs = dense(2, config.word_embed_proj_dim, config.init_std, "qa_outputs", self.dtype_policy)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
             start_positions=None, end_positions=None, use_cache=None, output_attentions=None,
             output_hidden_states=None, return_dict=None, position_ids=None, training=False):
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=False, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, position_ids=position_ids, training=training,
        )
        out = question_answering_output(self.qa_outputs(outputs.last_hidden_state), outputs, start_positions,
                                        end_positions)
        return returned(out, return_dict, self.config)

    def head_loss(self, labels, output):
        return span_loss(output.start_logits, output.end_logits, labels["start_positions"], labels["end_positions"])
