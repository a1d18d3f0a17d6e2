"""OPT in Flax (linen), with the attribute names of Hugging Face's PyTorch modules.

Both of OPT's layouts: opt-125m's (layer norm before each block, a final layer norm) and opt-350m's (layer norm
after each block, ``project_in`` / ``project_out`` between a narrower word embedding and the hidden size).
Positions come from the attention mask, so a left-padded row gives its unpadded outputs.

Two caches: the per-layer (key, value) tuples of transformers (grown by concatenation), and a ``StaticCache`` from
``init_cache`` with preallocated slots, whose steps keep their shapes: a jitted step function compiles once.
"""

from __future__ import annotations

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
    causal_lm_loss,
    check_static_cache_room,
    head_mask_per_layer,
    input_shape,
    layer_dropped,
    new_static_cache,
    question_answering_output,
    sequence_classification_loss,
    static_cache_keep_mask,
)
from ..common.modeling_flax import FlaxPreTrainedModel, flatten_params, unflatten_params
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
    check_sequence_length,
    check_shape,
    check_static_cache_length,
)
from ..generation.mixin_flax import FlaxGenerationMixin
from .config import OPTConfig
from .weights import weights_spec

Array = Any


def position_ids_from_attention_mask(attention_mask: Array, past_length: Array, seq: int) -> Array:
    """OPT numbers the tokens the mask keeps from 0 (padding gets -1), counted over the cached slots too; the
    positions of the ``seq`` slots from ``past_length`` on (before the offset of 2). ``past_length`` may be traced
    (a StaticCache's index)."""
    mask = jnp.asarray(attention_mask, jnp.int32)
    positions = jnp.cumsum(mask, axis=1) * mask - 1
    # A row whose mask holds values other than 0/1 gets position -2, outside the table: compiled code then turns the
    # row into NaN (eager calls refuse such a mask before this).
    binary = jnp.all((attention_mask == 0) | (attention_mask == 1), axis=1, keepdims=True)
    positions = jnp.where(binary, positions, -2)
    return jax.lax.dynamic_slice_in_dim(positions, jnp.asarray(past_length, jnp.int32), seq, axis=1)


class _Block(nn.Module):
    """Fields every OPT block carries; ``gradient_checkpointing`` runs the layers under it with ``nn.remat``."""

    config: OPTConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    gradient_checkpointing: bool = False

    def _dense(self, features: int, use_bias: bool, name=None):
        return dense(features, self.config.init_std, self.dtype, self.param_dtype, use_bias=use_bias, name=name)

    def _layer_norm(self):
        return layer_norm(self.config.layer_norm_eps, self.dtype, self.param_dtype,
                          affine=self.config.layer_norm_elementwise_affine)


class FlaxOPTDecoderLayer(_Block):
    """Self-attention and feed-forward, each a residual block; layer norm before (opt-125m) or after (opt-350m)."""

    def setup(self):
        c = self.config
        # OPT scales the query before the product, as fairseq did (transformers keeps that order).
        self.self_attn = ProjectedAttention(c.hidden_size, c.num_attention_heads, c.init_std, c.attention_dropout,
                                            c.enable_bias, scale_query=True, dtype=self.dtype,
                                            param_dtype=self.param_dtype)
        self.self_attn_layer_norm = self._layer_norm()
        self.fc1 = self._dense(c.ffn_dim, c.enable_bias)
        self.fc2 = self._dense(c.hidden_size, c.enable_bias)
        self.final_layer_norm = self._layer_norm()
        self.dropout = nn.Dropout(c.dropout)

    def __call__(self, hidden_states, attention_mask, head_mask, past_key_value, cache_index, deterministic: bool,
                 output_attentions: bool):
        """Returns (output, attention probabilities or None, this layer's cache entry)."""
        attended, probs, cache = self.self_attn(
            self._pre(self.self_attn_layer_norm, hidden_states), attention_mask, head_mask,
            past_key_value=past_key_value, cache_index=cache_index, deterministic=deterministic,
            output_attentions=output_attentions,
        )
        hidden_states = self._post(self.self_attn_layer_norm,
                                   hidden_states + self.dropout(attended, deterministic=deterministic))
        fed = self.fc2(activation(self.config.activation_function)(
            self.fc1(self._pre(self.final_layer_norm, hidden_states))))
        hidden_states = self._post(self.final_layer_norm,
                                   hidden_states + self.dropout(fed, deterministic=deterministic))
        return hidden_states, probs, cache

    def _pre(self, norm, hidden_states):
        """The block's input: normalized first in the pre-layer-norm layout."""
        return norm(hidden_states) if self.config.do_layer_norm_before else hidden_states

    def _post(self, norm, hidden_states):
        """The residual sum: normalized in the post-layer-norm layout."""
        return hidden_states if self.config.do_layer_norm_before else norm(hidden_states)


class FlaxOPTLayerCollection(_Block):
    """The ``decoder.layers`` list: children named "0", "1", ... as PyTorch's ModuleList."""

    def setup(self):
        layer = checkpointed(FlaxOPTDecoderLayer, self.gradient_checkpointing, static_argnums=(6, 7))
        self.layers = [layer(self.config, self.dtype, self.param_dtype, name=str(i))
                       for i in range(self.config.num_hidden_layers)]

    def __call__(self, index: int, *args):
        return self.layers[index](*args)


class FlaxOPTDecoder(_Block):
    """Token and position embeddings, the decoder layers, and the final layer norm / ``project_out``."""

    def setup(self):
        c = self.config
        self.embed_tokens = Embed(c.vocab_size, c.word_embed_proj_dim, c.init_std, self.dtype, self.param_dtype,
                                  padding_idx=c.pad_token_id)
        # Position p is row p + 2 (fairseq kept two rows); padding is -1, so -2 and below are invalid.
        self.embed_positions = Embed(c.max_position_embeddings + c.position_offset, c.hidden_size, c.init_std,
                                     self.dtype, self.param_dtype, offset=c.position_offset, low=-1)
        if c.word_embed_proj_dim != c.hidden_size:
            self.project_out = self._dense(c.word_embed_proj_dim, use_bias=False)
            self.project_in = self._dense(c.hidden_size, use_bias=False)
        # Only the pre-layer-norm layout ends with a layer norm (unless an old checkpoint removed it).
        if c.do_layer_norm_before and not c._remove_final_layer_norm:
            self.final_layer_norm = self._layer_norm()
        self.layers = FlaxOPTLayerCollection(c, self.dtype, self.param_dtype, self.gradient_checkpointing)

    def __call__(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None,
                 inputs_embeds=None, use_cache=False, output_attentions=False, output_hidden_states=False,
                 position_ids=None, deterministic: bool = True):
        c = self.config
        batch, seq = input_shape(input_ids, inputs_embeds)
        static = isinstance(past_key_values, StaticCache)
        if static:
            past_length, past_layers = past_key_values.index, past_key_values.layers
            attention_mask, keep = self._static_masks(past_key_values, attention_mask, batch, seq)
        else:
            past_length, past_layers = _past_length(past_key_values, batch, c.num_hidden_layers), past_key_values
            check_sequence_length(past_length + seq, c.max_position_embeddings)
            attention_mask = self._padding_mask(attention_mask, batch, past_length + seq)
            keep = causal_keep_mask(attention_mask, seq)
        if inputs_embeds is None:
            self.embed_tokens.check(input_ids, "input_ids")
            inputs_embeds = self.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = position_ids_from_attention_mask(attention_mask, past_length, seq)
        else:
            check_shape("position_ids", np.shape(position_ids), (batch, seq), "batch, sequence")
            self.embed_positions.check(position_ids, "position_ids", "max_position_embeddings")
        inputs_embeds = jnp.asarray(inputs_embeds, self.dtype)
        if c.word_embed_proj_dim != c.hidden_size:
            inputs_embeds = self.project_in(inputs_embeds)
        hidden_states = inputs_embeds + self.embed_positions(position_ids)

        mask = additive_mask(keep, self.dtype)
        head_masks = head_mask_per_layer(head_mask, c.num_hidden_layers, c.num_attention_heads)
        all_hidden, all_attentions, cache = [], [], []
        for i in range(c.num_hidden_layers):
            all_hidden.append(hidden_states)
            output, probs, layer_cache = self.layers(
                i, hidden_states, mask, head_masks[i], past_layers[i] if past_layers is not None else None,
                past_length if static else None, deterministic, output_attentions,
            )
            dropped = layer_dropped(c.layerdrop, None if deterministic else self.make_rng("dropout"))
            hidden_states = after_layer_drop(dropped, hidden_states, output)
            all_attentions.append(probs)
            cache.append(layer_cache)
        if c.do_layer_norm_before and not c._remove_final_layer_norm:
            hidden_states = self.final_layer_norm(hidden_states)
        if c.word_embed_proj_dim != c.hidden_size:
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

    def _static_masks(self, cache: StaticCache, attention_mask, batch: int, seq: int):
        """(the [batch, max_length] padding mask, the keep mask of the new queries) for a StaticCache call.
        init_cache checked its slots against the positions; the room left is checked before any is read."""
        max_length = cache.max_length
        check_cache_layers(cache, self.config.num_hidden_layers)
        check_static_cache_room(cache.index, seq, max_length)
        index = concrete(cache.index)
        if index is not None:
            check_sequence_length(int(index) + seq, self.config.max_position_embeddings)
        if attention_mask is None:
            attention_mask = jnp.ones((batch, max_length), jnp.int32)
        return attention_mask, static_cache_keep_mask(attention_mask, cache.index, seq, max_length, batch)

    @staticmethod
    def _padding_mask(attention_mask, batch: int, key_length: int):
        """The 2D mask over cached and new tokens (all ones when none is given): positions come from it."""
        if attention_mask is None:
            return jnp.ones((batch, key_length), jnp.int32)
        check_rank("attention_mask", np.shape(attention_mask), 2, "batch, past + sequence length")
        check_shape("attention_mask", np.shape(attention_mask), (batch, key_length), "batch, past + sequence length")
        values = concrete(attention_mask)
        if values is not None:
            check_binary_mask(np.unique(values))
        return attention_mask


def _past_length(past_key_values, batch: int, num_layers: int) -> int:
    """Cached positions in ``past_key_values`` (one (key, value) [batch, heads, past, head_dim] per layer)."""
    if past_key_values is None:
        return 0
    if len(past_key_values) != num_layers:
        raise ValueError(f"past_key_values holds {len(past_key_values)} layers but the model has {num_layers}")
    shape = np.shape(past_key_values[0][0])
    check_cache_keys(shape, batch)
    return shape[2]


# ---------------------------------------------------------------------------------------------------------------
# Modules: the base model and the heads


class FlaxOPTModule(_Block):
    """The bare decoder, held under ``decoder``; its last hidden state has ``word_embed_proj_dim`` features."""

    label_names = ()  # class constant: the base model takes no labels

    def setup(self):
        self.decoder = FlaxOPTDecoder(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)

    def __call__(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None,
                 inputs_embeds=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                 position_ids=None, deterministic: bool = True):
        c = self.config
        return self.decoder(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=c.use_cache if use_cache is None else use_cache,
            output_attentions=c.output_attentions if output_attentions is None else output_attentions,
            output_hidden_states=c.output_hidden_states if output_hidden_states is None else output_hidden_states,
            position_ids=position_ids, deterministic=deterministic,
        )


class _Head(_Block):
    """A head on the base model, held under ``model`` (``model.decoder...``)."""

    label_names = ("labels",)

    @property
    def base_model(self) -> FlaxOPTModule:
        return self.model


class FlaxOPTForCausalLMModule(_Head):
    """Next-token logits; ``lm_head`` is the token embedding matrix unless ``tie_word_embeddings`` is False."""

    def setup(self):
        self.model = FlaxOPTModule(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)
        if not self.config.tie_word_embeddings:
            self.lm_head = self._dense(self.config.vocab_size, use_bias=False)

    def __call__(self, labels=None, **inputs):
        outputs = self.base_model(**inputs)
        hidden = outputs.last_hidden_state
        if self.config.tie_word_embeddings:
            logits = tied_logits(hidden, self.base_model.decoder.embed_tokens.embedding)
        else:
            logits = self.lm_head(hidden)
        return CausalLMOutputWithPast(
            loss=None if labels is None else causal_lm_loss(logits, labels), logits=logits,
            past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class FlaxOPTForSequenceClassificationModule(_Head):
    """Classifies the last token that is not padding (any padding side), as transformers does."""

    def setup(self):
        self.model = FlaxOPTModule(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)
        self.score = self._dense(self.config.num_labels, use_bias=False)

    def __call__(self, labels=None, **inputs):
        outputs = self.base_model(**inputs)
        logits = self.score(outputs.last_hidden_state)
        batch = logits.shape[0]
        pooled = logits[jnp.arange(batch), self._last_token(inputs.get("input_ids"), logits)]
        return SequenceClassifierOutputWithPast(
            loss=None if labels is None else sequence_classification_loss(self.config, pooled, labels),
            logits=pooled, past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _last_token(self, input_ids, logits):
        """Per row, the index of the rightmost non-pad token (0 for a row of padding only), or the last position
        when padding cannot be told: no pad_token_id (then only one row is allowed, as in transformers) or
        inputs_embeds instead of ids."""
        batch, seq = logits.shape[:2]
        pad = self.config.pad_token_id
        if pad is None and batch != 1:
            raise ValueError("Cannot handle batch sizes > 1 if no padding token is defined.")
        if pad is None or input_ids is None:
            return jnp.full((batch,), seq - 1)
        is_token = (jnp.asarray(input_ids) != pad).astype(jnp.int32)
        return jnp.argmax(jnp.arange(seq)[None, :] * is_token, axis=-1)


class FlaxOPTForQuestionAnsweringModule(_Head):
    """Extractive QA: start and end logits per token. ``use_cache`` is accepted, but the output has no cache."""

    label_names = ("start_positions", "end_positions")

    def setup(self):
        self.model = FlaxOPTModule(self.config, self.dtype, self.param_dtype, self.gradient_checkpointing)
        self.qa_outputs = self._dense(2, use_bias=True)

    def __call__(self, start_positions=None, end_positions=None, **inputs):
        outputs = self.base_model(**{**inputs, "use_cache": False})
        return question_answering_output(self.qa_outputs(outputs.last_hidden_state), outputs,
                                         start_positions, end_positions)


# ---------------------------------------------------------------------------------------------------------------
# Model objects


class FlaxOPTPreTrainedModel(FlaxPreTrainedModel):
    """Base of the OPT model objects: params, config, init_cache, from_pretrained / save_pretrained and the call."""

    config_class = OPTConfig
    base_model_prefix = "model"
    module_class: type[nn.Module] = FlaxOPTModule

    def __init__(self, config: OPTConfig, input_shape: tuple[int, int] = (1, 1), seed: int = 0,
                 dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, _do_init: bool = True):
        module = self.module_class(config, jnp.dtype(dtype), jnp.dtype(param_dtype))
        super().__init__(config, module, input_shape=input_shape, seed=seed, dtype=dtype, param_dtype=param_dtype,
                         _do_init=_do_init)

    def weights_spec(self):
        return weights_spec(self.config)

    def dummy_inputs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        return {"input_ids": jnp.zeros(input_shape, jnp.int32)}

    def init_weights(self, rng: jax.Array, input_shape: tuple[int, ...]):
        """As the base class, with the padding token's embedding zeroed (PyTorch's ``padding_idx``)."""
        params = super().init_weights(rng, input_shape)
        pad = self.config.pad_token_id
        if pad is None:
            return params
        flat = flatten_params(params)
        path = next(p for p in flat if p.endswith("decoder.embed_tokens.embedding"))
        flat[path] = flat[path].at[pad].set(0)
        return unflatten_params(flat)

    def init_cache(self, batch_size: int, max_length: int) -> StaticCache:
        """A StaticCache of ``max_length`` zero slots per layer for compiled generation (index 0).

        Pass it as ``past_key_values`` with an ``attention_mask`` of [batch_size, max_length] (0 for padding; what
        it says of slots not yet written does not matter); each call writes its tokens at the cache's index and
        returns the cache advanced past them, with the same shapes, so a jitted step compiles once.
        """
        c = self.config
        check_static_cache_length(max_length, c.max_position_embeddings)
        return new_static_cache(c.num_hidden_layers, batch_size, c.num_attention_heads, max_length,
                                c.hidden_size // c.num_attention_heads, self.dtype)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        head_mask=None,
        params=None,
        dropout_rng=None,
        train: bool = False,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        past_key_values=None,
        labels=None,
        *,
        inputs_embeds=None,
        use_cache=None,
        start_positions=None,
        end_positions=None,
    ):
        """Run the model; a pure function of ``params`` (default: ``self.params``).

        ``train=True`` enables dropout and LayerDrop and needs ``dropout_rng``. ``past_key_values`` is a tuple over
        layers of (key, value), each [batch, heads, past, head_dim] (``attention_mask`` then covers past and new
        tokens), or a StaticCache from ``init_cache`` (``attention_mask`` covers all its slots). Heads compute the
        loss from ``labels`` (question answering: ``start_positions`` and ``end_positions``) as transformers does.
        """
        return self.apply_module(
            params, dropout_rng, train, return_dict, input_ids=input_ids, attention_mask=attention_mask,
            head_mask=head_mask, past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            position_ids=position_ids, labels=labels, start_positions=start_positions, end_positions=end_positions,
        )


class FlaxOPTModel(FlaxOPTPreTrainedModel):
    """The bare decoder: its last hidden state has ``word_embed_proj_dim`` features."""

    module_class = FlaxOPTModule


class FlaxOPTForCausalLM(FlaxGenerationMixin, FlaxOPTPreTrainedModel):
    module_class = FlaxOPTForCausalLMModule


class FlaxOPTForSequenceClassification(FlaxOPTPreTrainedModel):
    module_class = FlaxOPTForSequenceClassificationModule


class FlaxOPTForQuestionAnswering(FlaxOPTPreTrainedModel):
    module_class = FlaxOPTForQuestionAnsweringModule
