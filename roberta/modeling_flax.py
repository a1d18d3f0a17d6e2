"""RoBERTa and RoBERTa-PreLayerNorm in Flax (linen), with the attribute names of Hugging Face's PyTorch modules.

One set of blocks serves both families: ``pre_layer_norm`` moves each layer norm in front of its sublayer
("norm and add", fairseq's ``--encoder-normalize-before``) and adds a final ``LayerNorm`` after the encoder.
The ``FlaxRobertaPreLayerNorm*`` classes only set that switch, the config class and the parameter prefix.

Linen modules (``Flax...Module`` and the blocks) compute; the public classes are thin model objects holding
``module``, ``params`` and ``config``, called as ``model(input_ids, attention_mask=..., params=..., train=...)``.

A decoder (``is_decoder``) takes two caches: the per-layer (key, value) tuples of transformers (grown by
concatenation), and a ``StaticCache`` from ``init_cache`` with preallocated slots, whose steps keep their shapes:
a jitted step function compiles once.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..common.backend_flax import Embed, checkpointed, dense, layer_norm
from ..common.cache import StaticCache
from ..common.encoder_heads_flax import (
    FlaxEncoderForMaskedLM,
    FlaxEncoderForMultipleChoice,
    FlaxEncoderForQuestionAnswering,
    FlaxEncoderForSequenceClassification,
    FlaxEncoderForTokenClassification,
    FlaxEncoderHead,
)
from ..common.layers_flax import (
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
)
from ..common.modeling_flax import FlaxPreTrainedModel
from ..common.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
)
from ..common.validation import (
    check_cache_layers,
    check_sequence_length,
    check_static_cache_decoder,
    check_static_cache_length,
)
from ..generation.mixin_flax import FlaxGenerationMixin
from .config import RobertaConfig, RobertaPreLayerNormConfig
from .weights import weights_spec

Array = Any
# A layer's cache entry: (self_k, self_v) or (self_k, self_v, cross_k, cross_v), each [batch, heads, seq, head_dim].
LayerCache = tuple[Array, ...]


class _Block(nn.Module):
    """Fields every RoBERTa block carries."""

    config: RobertaConfig
    pre_layer_norm: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def _dense(self, features: int, use_bias: bool = True):
        return dense(features, self.config.initializer_range, self.dtype, self.param_dtype, use_bias=use_bias)

    def _layer_norm(self):
        return layer_norm(self.config.layer_norm_eps, self.dtype, self.param_dtype)

    def _embed(self, num_embeddings: int, features: int, padding_idx: int | None = None):
        return Embed(num_embeddings, features, self.config.initializer_range, self.dtype, self.param_dtype,
                     padding_idx=padding_idx)


def position_ids_from_input_ids(input_ids: Array, padding_idx: int, past_length: int = 0) -> Array:
    """RoBERTa numbers real tokens from ``padding_idx + 1`` (after the cached ones); padding keeps ``padding_idx``."""
    is_token = (input_ids != padding_idx).astype(jnp.int32)
    return (jnp.cumsum(is_token, axis=1) + past_length) * is_token + padding_idx


def position_ids_from_slot_mask(slot_mask: Array, padding_idx: int, index: Array, seq: int) -> Array:
    """With a StaticCache: RoBERTa's numbering of the slots ``slot_mask`` [batch, max_length] keeps (from
    ``padding_idx + 1``; padding keeps ``padding_idx``), for the ``seq`` slots written from ``index`` (which may be
    traced). It equals the numbering of the input ids on an unpadded row, and gives a left-padded row the
    positions of its unpadded row."""
    mask = jnp.asarray(slot_mask, jnp.int32)
    positions = padding_idx + jnp.cumsum(mask, axis=1) * mask
    return jax.lax.dynamic_slice_in_dim(positions, jnp.asarray(index, jnp.int32), seq, axis=1)


class FlaxRobertaEmbeddings(_Block):
    def setup(self):
        c = self.config
        # As PyTorch's padding_idx: lookups of the pad token (and of its position, which padding takes) pass no
        # gradient to that row.
        self.word_embeddings = self._embed(c.vocab_size, c.hidden_size, c.pad_token_id)
        self.position_embeddings = self._embed(c.max_position_embeddings, c.hidden_size, c.pad_token_id)
        self.token_type_embeddings = self._embed(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = self._layer_norm()
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def __call__(self, input_ids, token_type_ids, position_ids, inputs_embeds, past_length: int, deterministic: bool):
        c = self.config
        if inputs_embeds is None:
            self.word_embeddings.check(input_ids, "input_ids")
            inputs_embeds = self.word_embeddings(input_ids)
        inputs_embeds = jnp.asarray(inputs_embeds, self.dtype)
        batch, seq = inputs_embeds.shape[:2]
        if token_type_ids is None:
            token_type_ids = jnp.zeros((batch, seq), jnp.int32)
        self.token_type_embeddings.check(token_type_ids, "token_type_ids", "type_vocab_size")
        x = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if c.position_embedding_type == "absolute":
            if position_ids is None:
                position_ids = self._default_position_ids(input_ids, batch, seq, past_length)
            self.position_embeddings.check(position_ids, "position_ids", "max_position_embeddings")
            x = x + self.position_embeddings(position_ids)
        else:
            # Hugging Face keeps the table with relative positions too; touch it so it exists, loads and saves.
            _ = self.position_embeddings.embedding
        return self.dropout(self.LayerNorm(x), deterministic=deterministic)

    def _default_position_ids(self, input_ids, batch, seq, past_length):
        padding_idx = self.config.pad_token_id
        if input_ids is not None:
            return position_ids_from_input_ids(input_ids, padding_idx, past_length)
        # Embeddings give no padding to skip: number them in order (Hugging Face ignores the cache here too).
        first = padding_idx + 1
        return jnp.broadcast_to(jnp.arange(first, first + seq), (batch, seq))


class FlaxRobertaSelfAttention(_Block):
    position_embedding_type: str = "absolute"

    def setup(self):
        c = self.config
        self.num_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = self._dense(c.hidden_size)
        self.key = self._dense(c.hidden_size)
        self.value = self._dense(c.hidden_size)
        if self.position_embedding_type != "absolute":
            self.distance_embedding = self._embed(2 * c.max_position_embeddings - 1, self.head_dim)

    def __call__(self, hidden_states, attention_mask, head_mask, key_value_states=None,
                 past_key_value: LayerCache | None = None,
                 cache_index: Array | None = None, deterministic: bool = True, output_attentions: bool = False):
        """Returns (context [batch, seq, hidden], probabilities or None, (k, v) [batch, heads, keys, head_dim]).

        ``cache_index`` (a StaticCache's) writes the new keys and values into the slots of ``past_key_value`` from that index
        instead of appending them.
        """
        query = split_heads(self.query(hidden_states), self.num_heads)
        key, value = keys_and_values(self.project_key_value, hidden_states, key_value_states, past_key_value,
                                     cache_index)
        rate = self.config.attention_probs_dropout_prob
        context, probs = eager_attention(
            query, key, value, attention_mask, dropout=rate, head_mask=head_mask,
            extra_scores=self._relative_scores(query, key, cache_index),
            dropout_rng=None if deterministic or rate == 0.0 else self.make_rng("dropout"),
        )
        return merge_heads(context), probs if output_attentions else None, (key, value)

    def project_key_value(self, source):
        """Keys and values [batch, heads, len, head_dim] of ``source``."""
        return split_heads(self.key(source), self.num_heads), split_heads(self.value(source), self.num_heads)

    def _relative_scores(self, query, key, cache_index):
        """Scores from the learned query-key distance embeddings (Shaw et al.; Huang et al. for key_query).

        The queries are the last positions, after any cached keys, or with a StaticCache its slots from
        ``cache_index`` (its keys are all its slots, the ones not written yet being masked). (transformers 4.x
        places every query at the last key whenever a cache is in use, which is wrong for multi-token passes;
        one-token steps agree.)
        """
        if self.position_embedding_type == "absolute":
            return []
        query_length, key_length = query.shape[2], key.shape[2]
        first_query = key_length - query_length if cache_index is None else jnp.asarray(cache_index, jnp.int32)
        query_positions = (first_query + jnp.arange(query_length))[:, None]
        distance = query_positions - jnp.arange(key_length)[None, :]
        table = self.distance_embedding(distance + self.config.max_position_embeddings - 1).astype(query.dtype)
        table = jnp.broadcast_to(table, (query_length,) + table.shape[1:])
        scores = [jnp.einsum("bhqd,qkd->bhqk", query, table)]
        if self.position_embedding_type == "relative_key_query":
            scores.append(jnp.einsum("bhkd,qkd->bhqk", key, table))
        return scores


class FlaxRobertaResidualOutput(_Block):
    """dense -> dropout -> add the block input, then LayerNorm unless pre-layer-norm normalized the input already.

    Serves as both ``attention.output`` and the layer's ``output`` (transformers' SelfOutput and Output).
    """

    def setup(self):
        self.dense = self._dense(self.config.hidden_size)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        if not self.pre_layer_norm:
            self.LayerNorm = self._layer_norm()

    def __call__(self, hidden_states, residual, deterministic: bool):
        hidden_states = self.dropout(self.dense(hidden_states), deterministic=deterministic) + residual
        return hidden_states if self.pre_layer_norm else self.LayerNorm(hidden_states)


class FlaxRobertaAttention(_Block):
    position_embedding_type: str = "absolute"

    def setup(self):
        self.self = FlaxRobertaSelfAttention(self.config, self.pre_layer_norm, self.dtype, self.param_dtype,
                                             self.position_embedding_type)
        self.output = FlaxRobertaResidualOutput(self.config, self.pre_layer_norm, self.dtype, self.param_dtype)
        if self.pre_layer_norm:
            self.LayerNorm = self._layer_norm()

    def __call__(self, hidden_states, attention_mask, head_mask, key_value_states=None, past_key_value=None,
                 cache_index=None, deterministic=True, output_attentions=False):
        normed = self.LayerNorm(hidden_states) if self.pre_layer_norm else hidden_states
        context, probs, key_value = self.self(
            normed, attention_mask=attention_mask, head_mask=head_mask, key_value_states=key_value_states,
            past_key_value=past_key_value, cache_index=cache_index, deterministic=deterministic,
            output_attentions=output_attentions,
        )
        return self.output(context, residual=hidden_states, deterministic=deterministic), probs, key_value


class FlaxRobertaIntermediate(_Block):
    def setup(self):
        if self.pre_layer_norm:
            self.LayerNorm = self._layer_norm()
        self.dense = self._dense(self.config.intermediate_size)

    def __call__(self, hidden_states):
        if self.pre_layer_norm:
            hidden_states = self.LayerNorm(hidden_states)
        return activation(self.config.hidden_act)(self.dense(hidden_states))


class FlaxRobertaLayer(_Block):
    def setup(self):
        c = self.config
        blocks = (c, self.pre_layer_norm, self.dtype, self.param_dtype)
        self.attention = FlaxRobertaAttention(*blocks, position_embedding_type=c.position_embedding_type)
        if c.add_cross_attention:
            if not c.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True in the config")
            self.crossattention = FlaxRobertaAttention(*blocks, position_embedding_type="absolute")
        self.intermediate = FlaxRobertaIntermediate(*blocks)
        self.output = FlaxRobertaResidualOutput(*blocks)

    def __call__(self, hidden_states, attention_mask, head_mask, encoder_hidden_states, encoder_attention_mask,
                 past_key_value: LayerCache | None, cache_index: Array | None, deterministic: bool,
                 output_attentions: bool):
        """Returns (output, self-attention probs, cross-attention probs, cache entry of this layer).

        ``past_key_value``: (key, value[, cross_key, cross_value]); ``cache_index``: where a StaticCache writes.
        """
        self_past = past_key_value[:2] if past_key_value is not None else None
        hidden_states, self_probs, cache = self.attention(
            hidden_states, attention_mask=attention_mask, head_mask=head_mask, past_key_value=self_past,
            cache_index=cache_index, deterministic=deterministic, output_attentions=output_attentions,
        )
        cross_probs = None
        if self.config.is_decoder and encoder_hidden_states is not None:
            if not self.config.add_cross_attention:
                raise ValueError("encoder_hidden_states were passed, but the model has no cross-attention layers: "
                                 "set add_cross_attention=True in the config")
            cross_past = past_key_value[2:] if past_key_value is not None and len(past_key_value) == 4 else None
            hidden_states, cross_probs, cross_cache = self.crossattention(
                hidden_states, attention_mask=encoder_attention_mask, head_mask=head_mask,
                key_value_states=encoder_hidden_states, past_key_value=cross_past, deterministic=deterministic,
                output_attentions=output_attentions,
            )
            cache = cache + cross_cache
        hidden_states = self.output(self.intermediate(hidden_states), residual=hidden_states, deterministic=deterministic)
        return hidden_states, self_probs, cross_probs, cache


class FlaxRobertaLayerCollection(_Block):
    """The ``encoder.layer`` list: children named "0", "1", ... as PyTorch's ModuleList."""

    gradient_checkpointing: bool = False

    def setup(self):
        layer = checkpointed(FlaxRobertaLayer, self.gradient_checkpointing, static_argnums=(8, 9))
        self.layers = [layer(self.config, self.pre_layer_norm, self.dtype, self.param_dtype, name=str(i))
                       for i in range(self.config.num_hidden_layers)]

    def __call__(self, hidden_states, attention_mask, head_mask, encoder_hidden_states, encoder_attention_mask,
                 past_key_values, cache_index, deterministic, output_attentions, output_hidden_states):
        all_hidden, all_self, all_cross, cache = [], [], [], []
        head_masks = head_mask_per_layer(head_mask, len(self.layers), self.config.num_attention_heads)
        for i, layer in enumerate(self.layers):
            all_hidden.append(hidden_states)
            hidden_states, self_probs, cross_probs, layer_cache = layer(
                hidden_states, attention_mask, head_masks[i], encoder_hidden_states, encoder_attention_mask,
                None if past_key_values is None else past_key_values[i], cache_index, deterministic,
                output_attentions)
            all_self.append(self_probs)
            all_cross.append(cross_probs)
            cache.append(layer_cache)
        all_hidden.append(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            past_key_values=tuple(cache),
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_self) if output_attentions else None,
            cross_attentions=tuple(all_cross) if output_attentions and all_cross[0] is not None else None,
        )


class FlaxRobertaEncoder(_Block):
    """Holds the layers under the name ``layer`` (``encoder.layer.0...``, as in PyTorch)."""

    gradient_checkpointing: bool = False

    def setup(self):
        self.layer = FlaxRobertaLayerCollection(self.config, self.pre_layer_norm, self.dtype, self.param_dtype,
                                                gradient_checkpointing=self.gradient_checkpointing)

    def __call__(self, *args):
        return self.layer(*args)


class FlaxRobertaModule(_Block):
    """The bare encoder (or decoder, with ``is_decoder``): embeddings, layers, [final LayerNorm], [pooler]."""

    add_pooling_layer: bool = True
    gradient_checkpointing: bool = False
    label_names = ()  # class constant: the base model takes no labels

    def setup(self):
        blocks = (self.config, self.pre_layer_norm, self.dtype, self.param_dtype)
        self.embeddings = FlaxRobertaEmbeddings(*blocks)
        self.encoder = FlaxRobertaEncoder(*blocks, gradient_checkpointing=self.gradient_checkpointing)
        if self.pre_layer_norm:
            self.LayerNorm = self._layer_norm()
        if self.add_pooling_layer:
            self.pooler = Pooler(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None,
                 use_cache=None, output_attentions=None, output_hidden_states=None, deterministic: bool = True):
        c = self.config
        output_attentions = c.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = c.output_hidden_states if output_hidden_states is None else output_hidden_states
        use_cache = (c.use_cache if use_cache is None else use_cache) if c.is_decoder else False

        batch, seq = input_shape(input_ids, inputs_embeds)
        check_cache_layers(past_key_values, c.num_hidden_layers)
        static = isinstance(past_key_values, StaticCache)
        if static:
            static_mask, position_ids = self._static_cache_inputs(
                past_key_values, attention_mask, position_ids, encoder_hidden_states, batch, seq)
            past_length, use_cache = past_key_values.index, True
        else:
            past_length = self._past_length(past_key_values)
            check_sequence_length(seq + past_length, c.max_sequence_length)

        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_length,
                                     deterministic)
        if static:
            mask = static_mask
        else:
            mask = self._self_attention_mask(attention_mask, batch, seq, past_length, self.dtype)
        encoder_mask = None
        if c.is_decoder and encoder_hidden_states is not None:
            encoder_mask = self._encoder_attention_mask(encoder_attention_mask, encoder_hidden_states, seq, self.dtype)
            encoder_hidden_states = jnp.asarray(encoder_hidden_states, self.dtype)

        encoded = self.encoder(
            embeddings, mask, head_mask, encoder_hidden_states, encoder_mask,
            past_key_values.layers if static else past_key_values, past_length if static else None, deterministic,
            output_attentions, output_hidden_states)
        sequence_output = encoded.last_hidden_state
        if self.pre_layer_norm:
            sequence_output = self.LayerNorm(sequence_output)
        if static:
            past = StaticCache(encoded.past_key_values, past_length + seq)
        else:
            past = encoded.past_key_values if use_cache else None
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.add_pooling_layer else None,
            hidden_states=encoded.hidden_states,
            past_key_values=past,
            attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions,
        )

    def _static_cache_inputs(self, cache: StaticCache, attention_mask, position_ids, encoder_hidden_states,
                             batch: int, seq: int):
        """(the additive mask of the new queries over all slots, their position ids) for a call with a
        StaticCache; ``attention_mask`` [batch, max_length] covers every slot (None keeps them all)."""
        c = self.config
        if encoder_hidden_states is not None:
            raise NotImplementedError("a StaticCache does not hold cross-attention keys yet: give no "
                                      "encoder_hidden_states with it (add_cross_attention models use the tuple cache)")
        _check_static_cache_slots(c, cache.max_length)
        check_static_cache_room(cache.index, seq, cache.max_length)
        if attention_mask is None:
            attention_mask = jnp.ones((batch, cache.max_length), jnp.int32)
        keep = static_cache_keep_mask(attention_mask, cache.index, seq, cache.max_length, batch)
        if position_ids is None:
            position_ids = position_ids_from_slot_mask(attention_mask, c.pad_token_id, cache.index, seq)
        return additive_mask(keep, self.dtype), position_ids

    def _self_attention_mask(self, attention_mask, batch, seq, past_length, dtype):
        """The additive self-attention mask [batch, 1, seq or 1, past + seq], or None when nothing is masked."""
        key_length = past_length + seq
        if attention_mask is None:
            if not self.config.is_decoder or seq == 1:
                return None
            attention_mask = jnp.ones((batch, key_length), jnp.int32)
        keep = padding_keep_mask(attention_mask, batch, seq, key_length, "attention_mask")
        if self.config.is_decoder and np.ndim(attention_mask) == 2:
            keep = causal_keep_mask(attention_mask, seq)
        return additive_mask(keep, dtype)

    def _encoder_attention_mask(self, encoder_attention_mask, encoder_hidden_states, seq, dtype):
        if encoder_attention_mask is None:
            return None
        batch, encoder_length = np.shape(encoder_hidden_states)[:2]
        keep = padding_keep_mask(encoder_attention_mask, batch, seq, encoder_length, "encoder_attention_mask")
        return additive_mask(keep, dtype)

    def _past_length(self, past_key_values) -> int:
        if past_key_values is None:
            return 0
        if any(len(entry) not in (2, 4) for entry in past_key_values):
            raise ValueError("past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per layer, "
                             "each [batch, heads, seq, head_dim]")
        return past_key_values[0][0].shape[2]


# ---------------------------------------------------------------------------------------------------------------
# Heads


class _FlaxRobertaHead(FlaxEncoderHead):
    """The family's head base: the shared encoder heads (common/encoder_heads_flax.py) on RoBERTa's base module."""

    pre_layer_norm: bool = False
    reads_classifier_dropout = True  # a class setting, not a module field

    @classmethod
    def base_model_class(cls) -> type[FlaxRobertaModule]:
        """The bare model's module (one for both families: ``pre_layer_norm`` is a field)."""
        return FlaxRobertaModule


class FlaxRobertaForMaskedLMModule(FlaxEncoderForMaskedLM, _FlaxRobertaHead):
    pass


class FlaxRobertaForCausalLMModule(_FlaxRobertaHead):
    def setup(self):
        self._add_base_model(add_pooling_layer=False)
        self.lm_head = LMHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, labels=None, **inputs):
        if labels is not None:
            inputs["use_cache"] = False  # as Hugging Face: training on labels returns no cache
        outputs = self.base_model(**inputs)
        logits = self.lm_head(outputs.last_hidden_state, self._word_embeddings())
        return CausalLMOutputWithCrossAttentions(
            loss=None if labels is None else causal_lm_loss(logits, labels), logits=logits,
            past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, cross_attentions=outputs.cross_attentions,
        )


class FlaxRobertaForSequenceClassificationModule(FlaxEncoderForSequenceClassification, _FlaxRobertaHead):
    pass


class FlaxRobertaForMultipleChoiceModule(FlaxEncoderForMultipleChoice, _FlaxRobertaHead):
    pass


class FlaxRobertaForTokenClassificationModule(FlaxEncoderForTokenClassification, _FlaxRobertaHead):
    pass


class FlaxRobertaForQuestionAnsweringModule(FlaxEncoderForQuestionAnswering, _FlaxRobertaHead):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Model objects


class FlaxRobertaPreTrainedModel(FlaxPreTrainedModel):
    """Base of the RoBERTa model objects: params, config, from_pretrained / save_pretrained and the call."""

    config_class = RobertaConfig
    base_model_prefix = "roberta"
    pre_layer_norm = False
    module_class: type[nn.Module] = FlaxRobertaModule
    input_rank = 2  # of input_ids; multiple choice takes [batch, num_choices, sequence]

    def __init__(self, config: RobertaConfig, input_shape: tuple[int, ...] | None = None, seed: int = 0,
                 dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, _do_init: bool = True, **module_kwargs):
        if issubclass(self.module_class, FlaxEncoderHead):
            module_kwargs["base_model_prefix"] = self.base_model_prefix
        module = self.module_class(config, pre_layer_norm=self.pre_layer_norm, dtype=jnp.dtype(dtype),
                                   param_dtype=jnp.dtype(param_dtype), **module_kwargs)
        super().__init__(config, module, input_shape=input_shape or (1,) * self.input_rank, seed=seed, dtype=dtype,
                         param_dtype=param_dtype, _do_init=_do_init)

    def weights_spec(self):
        return weights_spec(self.config, self.base_model_prefix)

    def init_cache(self, batch_size: int, max_length: int) -> StaticCache:
        """A StaticCache of ``max_length`` zero slots per layer for compiled generation (index 0); a decoder's only.

        Pass it as ``past_key_values`` with an ``attention_mask`` of [batch_size, max_length] (0 for padding; what
        it says of slots not yet written does not matter); each call writes its tokens at the cache's index and
        returns the cache advanced past them, with the same shapes, so a jitted step compiles once. Positions then
        come from that mask, so a left-padded row gets the positions of its unpadded row.
        """
        c = self.config
        _check_static_cache_slots(c, max_length)
        return new_static_cache(c.num_hidden_layers, batch_size, c.num_attention_heads, max_length,
                                c.hidden_size // c.num_attention_heads, self.dtype)

    def dummy_inputs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        inputs = {"input_ids": jnp.zeros(input_shape, jnp.int32)}
        if self.config.add_cross_attention:
            batch, seq = int(np.prod(input_shape[:-1])), input_shape[-1]
            inputs["encoder_hidden_states"] = jnp.zeros((batch, seq, self.config.hidden_size), self.dtype)
        return inputs

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
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

        ``train=True`` enables dropout and needs ``dropout_rng``. ``past_key_values`` is a tuple over layers of
        (k, v) or (k, v, cross_k, cross_v), each [batch, heads, seq, head_dim], or (a decoder's) StaticCache from
        ``init_cache`` (``attention_mask`` then covers all its slots). Heads compute the loss from
        ``labels`` (question answering: ``start_positions`` and ``end_positions``) as Hugging Face does.
        """
        return self.apply_module(
            params, dropout_rng, train, return_dict, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, head_mask=head_mask,
            inputs_embeds=inputs_embeds, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, past_key_values=past_key_values, use_cache=use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, labels=labels,
            start_positions=start_positions, end_positions=end_positions,
        )


class FlaxRobertaModel(FlaxRobertaPreTrainedModel):
    """The bare model: last hidden state and (with ``add_pooling_layer``) the pooled <s> state."""

    module_class = FlaxRobertaModule

    def __init__(self, config: RobertaConfig, input_shape=None, seed: int = 0, dtype: Any = jnp.float32,
                 param_dtype: Any = jnp.float32, _do_init: bool = True, add_pooling_layer: bool = True):
        super().__init__(config, input_shape, seed, dtype, param_dtype, _do_init, add_pooling_layer=add_pooling_layer)


class FlaxRobertaForMaskedLM(FlaxRobertaPreTrainedModel):
    module_class = FlaxRobertaForMaskedLMModule


class FlaxRobertaForCausalLM(FlaxGenerationMixin, FlaxRobertaPreTrainedModel):
    """Left-to-right language model (set ``is_decoder=True``); returns the cache when ``use_cache``."""

    module_class = FlaxRobertaForCausalLMModule


class FlaxRobertaForSequenceClassification(FlaxRobertaPreTrainedModel):
    module_class = FlaxRobertaForSequenceClassificationModule


class FlaxRobertaForTokenClassification(FlaxRobertaPreTrainedModel):
    module_class = FlaxRobertaForTokenClassificationModule


class FlaxRobertaForMultipleChoice(FlaxRobertaPreTrainedModel):
    module_class = FlaxRobertaForMultipleChoiceModule
    input_rank = 3


class FlaxRobertaForQuestionAnswering(FlaxRobertaPreTrainedModel):
    module_class = FlaxRobertaForQuestionAnsweringModule


class FlaxRobertaPreLayerNormPreTrainedModel(FlaxRobertaPreTrainedModel):
    """RoBERTa-PreLayerNorm: the same blocks with layer norm before each sublayer, under "roberta_prelayernorm"."""

    config_class = RobertaPreLayerNormConfig
    base_model_prefix = "roberta_prelayernorm"
    pre_layer_norm = True


class FlaxRobertaPreLayerNormModel(FlaxRobertaPreLayerNormPreTrainedModel, FlaxRobertaModel):
    pass


class FlaxRobertaPreLayerNormForMaskedLM(FlaxRobertaPreLayerNormPreTrainedModel, FlaxRobertaForMaskedLM):
    pass


class FlaxRobertaPreLayerNormForCausalLM(FlaxRobertaPreLayerNormPreTrainedModel, FlaxRobertaForCausalLM):
    pass


class FlaxRobertaPreLayerNormForSequenceClassification(FlaxRobertaPreLayerNormPreTrainedModel,
                                                       FlaxRobertaForSequenceClassification):
    pass


class FlaxRobertaPreLayerNormForTokenClassification(FlaxRobertaPreLayerNormPreTrainedModel,
                                                    FlaxRobertaForTokenClassification):
    pass


class FlaxRobertaPreLayerNormForMultipleChoice(FlaxRobertaPreLayerNormPreTrainedModel, FlaxRobertaForMultipleChoice):
    pass


class FlaxRobertaPreLayerNormForQuestionAnswering(FlaxRobertaPreLayerNormPreTrainedModel,
                                                  FlaxRobertaForQuestionAnswering):
    pass


def _check_static_cache_slots(config: RobertaConfig, max_length: int) -> None:
    check_static_cache_decoder(config)
    check_static_cache_length(max_length, config.max_sequence_length, "max_position_embeddings - pad_token_id - 1")
