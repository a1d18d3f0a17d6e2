"""RoBERTa and RoBERTa-PreLayerNorm in TensorFlow / Keras 3 (``TF`` prefix).

The same blocks as ``modeling_pt.py``, as Keras layers stored on attributes with Hugging Face's module names,
so the variable paths map to canonical checkpoint names. ``pre_layer_norm`` switches between RoBERTa's
"add, then norm" and fairseq's ``--encoder-normalize-before`` (norm before each sublayer, one after the encoder).

A decoder (``is_decoder``) takes two caches: the per-layer (key, value) tuples of transformers (grown by
concatenation), and a ``StaticCache`` from ``init_cache`` with preallocated slots, whose steps keep their shapes
under ``tf.function(jit_compile=True)``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ..common.backend_tf import (
    Block,
    check_length,
    dense,
    dim,
    embedding,
    gather,
    layer_norm,
    lookup_indices,
    lookup_token_ids,
    run_layer,
)
from ..common.cache import StaticCache
from ..common.encoder_heads_tf import (
    TFEncoderForMaskedLM,
    TFEncoderForMultipleChoice,
    TFEncoderForQuestionAnswering,
    TFEncoderForSequenceClassification,
    TFEncoderForTokenClassification,
    TFEncoderHead,
)
from ..common.layers_tf import (
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
from ..common.modeling_tf import TFPreTrainedModel, returned, unpack_inputs
from ..common.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    tuple_or_none,
)
from ..common.validation import (
    check_cache_layers,
    check_static_cache_decoder,
    check_static_cache_length,
)
from ..generation.mixin_tf import TFGenerationMixin
from .config import RobertaConfig, RobertaPreLayerNormConfig
from .weights import weights_spec


def position_ids_from_input_ids(input_ids, padding_idx: int, past_length=0):
    """RoBERTa numbers real tokens from ``padding_idx + 1`` (after the cached ones); padding keeps ``padding_idx``."""
    is_token = tf.cast(input_ids != padding_idx, input_ids.dtype)
    return (tf.cumsum(is_token, axis=1) + tf.cast(past_length, input_ids.dtype)) * is_token + padding_idx


def position_ids_from_slot_mask(slot_mask, padding_idx: int, index, seq: int):
    """With a StaticCache: RoBERTa's numbering of the slots ``slot_mask`` [batch, max_length] keeps (from
    ``padding_idx + 1``; padding keeps ``padding_idx``), for the ``seq`` slots written from ``index`` (which may be
    traced). It equals the numbering of the input ids on an unpadded row, and gives a left-padded row the
    positions of its unpadded row."""
    mask = tf.cast(slot_mask, tf.int32)
    positions = padding_idx + tf.cumsum(mask, axis=1) * mask
    return tf.gather(positions, tf.cast(index, tf.int32) + tf.range(seq), axis=1)


# ----------------------------------------------------------------------------------------------------------------
# Blocks. Each builds its variables in __init__ (sizes come from the config), so it is built from the start.


class TFRobertaEmbeddings(Block):
    def __init__(self, config: RobertaConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.padding_idx = config.pad_token_id
        std, dtype, hidden = config.initializer_range, self.dtype_policy, config.hidden_size
        self.word_embeddings = embedding(config.vocab_size, hidden, std, "word_embeddings", dtype, self.padding_idx)
        self.position_embeddings = embedding(
            config.max_position_embeddings, hidden, std, "position_embeddings", dtype, self.padding_idx
        )
        self.token_type_embeddings = embedding(config.type_vocab_size, hidden, std, "token_type_embeddings", dtype)
        self.LayerNorm = layer_norm(hidden, config.layer_norm_eps, "LayerNorm", dtype)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)
        self.built = True

    def call(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, past_length=0,
             training=False):
        config = self.config
        if inputs_embeds is None:
            inputs_embeds = lookup_token_ids(self.word_embeddings.embeddings, input_ids, config.vocab_size)
        batch, seq = dim(inputs_embeds, 0), dim(inputs_embeds, 1)
        # Ids the caller gave are checked; the ones made here are in range by construction.
        if token_type_ids is None:
            token_types = self.token_type_embeddings.embeddings[0]  # type 0 everywhere, broadcast over the batch
        else:
            token_types = lookup_indices(self.token_type_embeddings.embeddings, token_type_ids,
                                         config.type_vocab_size, "token_type_ids", "type_vocab_size")
        embeddings = inputs_embeds + token_types
        if config.position_embedding_type == "absolute":
            table = self.position_embeddings.embeddings
            if position_ids is None:
                positions = gather(table, self._default_position_ids(input_ids, batch, seq, past_length))
            else:
                positions = lookup_indices(table, position_ids, config.max_position_embeddings, "position_ids",
                                           "max_position_embeddings")
            embeddings = embeddings + positions
        return self.dropout(self.LayerNorm(embeddings), training=training)

    def _default_position_ids(self, input_ids, batch, seq, past_length):
        if input_ids is not None:
            return position_ids_from_input_ids(input_ids, self.padding_idx, past_length)
        # Embeddings give no padding to skip: number them in order (Hugging Face ignores the cache here too).
        first = self.padding_idx + 1
        return tf.broadcast_to(tf.range(first, first + seq)[None, :], [batch, seq])


class TFRobertaSelfAttention(Block):
    """Multi-head attention; cross-attention when ``key_value_states`` (the encoder output) is given."""

    def __init__(self, config: RobertaConfig, position_embedding_type: str, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.position_embedding_type = position_embedding_type
        std, dtype, hidden = config.initializer_range, self.dtype_policy, config.hidden_size
        self.query = dense(hidden, hidden, std, "query", dtype)
        self.key = dense(hidden, hidden, std, "key", dtype)
        self.value = dense(hidden, hidden, std, "value", dtype)
        self.dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, dtype=dtype)
        if position_embedding_type != "absolute":
            self.max_position_embeddings = config.max_position_embeddings
            self.distance_embedding = embedding(
                2 * config.max_position_embeddings - 1, self.head_size, std, "distance_embedding", dtype
            )
        self.built = True

    def call(self, hidden_states, attention_mask=None, head_mask=None, key_value_states=None, past_key_value=None,
             cache_index=None, training=False):
        """``cache_index`` (a StaticCache's) writes the new keys and values into the slots of ``past_key_value``
        from that index instead of appending them."""
        query = split_heads(self.query(hidden_states), self.num_heads)
        key, value = keys_and_values(self.project_key_value, hidden_states, key_value_states, past_key_value,
                                     cache_index)
        context, probs = eager_attention(
            query, key, value, attention_mask, dropout=self.dropout, training=training, head_mask=head_mask,
            extra_scores=self._relative_scores(query, key, cache_index),
        )
        return merge_heads(context), probs, (key, value)

    def project_key_value(self, source):
        """Keys and values [batch, heads, len, head_dim] of ``source`` (the encoder output, for a cache)."""
        return split_heads(self.key(source), self.num_heads), split_heads(self.value(source), self.num_heads)

    def _relative_scores(self, query, key, cache_index) -> list:
        """Scores from the learned query-key distance embeddings (Shaw et al.; Huang et al. for key_query)."""
        if self.position_embedding_type == "absolute":
            return []
        query_length, key_length = dim(query, 2), dim(key, 2)
        # The queries come after the cached keys: the last positions, or a StaticCache's slots from its index
        # (its keys are all its slots, the ones not written yet being masked).
        first_query = key_length - query_length if cache_index is None else tf.cast(cache_index, tf.int32)
        query_positions = first_query + tf.range(query_length)
        distance = query_positions[:, None] - tf.range(key_length)[None, :]
        table = tf.gather(self.distance_embedding.embeddings, distance + self.max_position_embeddings - 1)
        table = tf.cast(table, query.dtype)
        scores = [tf.einsum("bhld,lrd->bhlr", query, table)]
        if self.position_embedding_type == "relative_key_query":
            scores.append(tf.einsum("bhrd,lrd->bhlr", key, table))
        return scores


class TFRobertaResidualOutput(Block):
    """dense -> dropout -> add the block input, then LayerNorm unless pre-layer-norm normalized the input already.

    Serves as both ``attention.output`` and the layer's ``output`` (transformers' SelfOutput and Output).
    """

    def __init__(self, config: RobertaConfig, input_size: int, pre_layer_norm: bool, **kwargs):
        super().__init__(**kwargs)
        self.pre_layer_norm = pre_layer_norm
        dtype = self.dtype_policy
        self.dense = dense(config.hidden_size, input_size, config.initializer_range, "dense", dtype)
        if not pre_layer_norm:
            self.LayerNorm = layer_norm(config.hidden_size, config.layer_norm_eps, "LayerNorm", dtype)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)
        self.built = True

    def call(self, hidden_states, residual, training=False):
        hidden_states = self.dropout(self.dense(hidden_states), training=training) + residual
        return hidden_states if self.pre_layer_norm else self.LayerNorm(hidden_states)


class TFRobertaAttention(Block):
    """Self- or cross-attention with its output block; pre-layer-norm normalizes the input first."""

    def __init__(self, config: RobertaConfig, position_embedding_type: str, pre_layer_norm: bool, **kwargs):
        super().__init__(**kwargs)
        self.pre_layer_norm = pre_layer_norm
        dtype = self.dtype_policy
        self.self = TFRobertaSelfAttention(config, position_embedding_type, name="self", dtype=dtype)
        self.output = TFRobertaResidualOutput(config, config.hidden_size, pre_layer_norm, name="output", dtype=dtype)
        if pre_layer_norm:
            self.LayerNorm = layer_norm(config.hidden_size, config.layer_norm_eps, "LayerNorm", dtype)
        self.built = True

    def call(self, hidden_states, attention_mask=None, head_mask=None, key_value_states=None, past_key_value=None,
             cache_index=None, training=False):
        normed = self.LayerNorm(hidden_states) if self.pre_layer_norm else hidden_states
        context, probs, key_value = self.self(
            normed, attention_mask=attention_mask, head_mask=head_mask, key_value_states=key_value_states,
            past_key_value=past_key_value, cache_index=cache_index, training=training,
        )
        return self.output(context, residual=hidden_states, training=training), probs, key_value


class TFRobertaIntermediate(Block):
    def __init__(self, config: RobertaConfig, pre_layer_norm: bool, **kwargs):
        super().__init__(**kwargs)
        self.pre_layer_norm = pre_layer_norm
        dtype = self.dtype_policy
        if pre_layer_norm:
            self.LayerNorm = layer_norm(config.hidden_size, config.layer_norm_eps, "LayerNorm", dtype)
        self.dense = dense(config.intermediate_size, config.hidden_size, config.initializer_range, "dense", dtype)
        self.intermediate_act_fn = activation(config.hidden_act)
        self.built = True

    def call(self, hidden_states):
        if self.pre_layer_norm:
            hidden_states = self.LayerNorm(hidden_states)
        return self.intermediate_act_fn(self.dense(hidden_states))


class TFRobertaLayer(Block):
    def __init__(self, config: RobertaConfig, pre_layer_norm: bool, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        self.attention = TFRobertaAttention(
            config, config.position_embedding_type, pre_layer_norm, name="attention", dtype=dtype
        )
        if config.add_cross_attention:
            if not config.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True: cross-attention is a decoder layer")
            self.crossattention = TFRobertaAttention(
                config, "absolute", pre_layer_norm, name="crossattention", dtype=dtype
            )
        self.intermediate = TFRobertaIntermediate(config, pre_layer_norm, name="intermediate", dtype=dtype)
        self.output = TFRobertaResidualOutput(config, config.intermediate_size, pre_layer_norm, name="output", dtype=dtype)
        self.built = True

    def call(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
             encoder_attention_mask=None, past_key_value=None, cache_index=None, training=False):
        """Returns (output, self-attention probs, cross-attention probs, cache entry of this layer).

        ``past_key_value``: (key, value[, cross_key, cross_value]); ``cache_index``: where a StaticCache writes.
        """
        self_past = past_key_value[:2] if past_key_value is not None else None
        hidden_states, self_probs, cache = self.attention(
            hidden_states, attention_mask=attention_mask, head_mask=head_mask, past_key_value=self_past,
            cache_index=cache_index, training=training,
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
                key_value_states=encoder_hidden_states, past_key_value=cross_past, training=training,
            )
            cache = cache + cross_cache
        hidden_states = self.output(self.intermediate(hidden_states), residual=hidden_states, training=training)
        return hidden_states, self_probs, cross_probs, cache


class TFRobertaEncoder(Block):
    def __init__(self, config: RobertaConfig, pre_layer_norm: bool, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.layer = [
            TFRobertaLayer(config, pre_layer_norm, name=f"layer_{i}", dtype=self.dtype_policy)
            for i in range(config.num_hidden_layers)
        ]
        self.gradient_checkpointing = False
        self.built = True

    def call(self, hidden_states, attention_mask=None, head_masks=None, encoder_hidden_states=None,
             encoder_attention_mask=None, past_key_values=None, cache_index=None, use_cache=False,
             output_attentions=False, output_hidden_states=False, training=False):
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
                self, layer, hidden_states, attention_mask=attention_mask, head_mask=head_masks[i],
                encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
                past_key_value=past_key_values[i] if past_key_values is not None else None, cache_index=cache_index,
                training=training,
            )
            if output_attentions:
                all_self.append(self_probs)
                if all_cross is not None and cross_probs is not None:
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


class TFRobertaPreTrainedModel(TFPreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"
    pre_layer_norm = False

    def weights_spec(self):
        return weights_spec(self.config, self.base_model_prefix)

    def init_cache(self, batch_size: int, max_length: int) -> StaticCache:
        """A StaticCache of ``max_length`` zero slots per layer for compiled generation (index 0); a decoder's only.

        Pass it as ``past_key_values`` with an ``attention_mask`` of [batch_size, max_length] (0 for padding; what
        it says of slots not yet written does not matter); each call writes its tokens at the cache's index and
        returns the cache advanced past them. Positions then come from that mask, so a left-padded row gets the
        positions of its unpadded row.
        """
        config = self.config
        _check_static_cache_slots(config, max_length)
        return new_static_cache(config.num_hidden_layers, batch_size, config.num_attention_heads, max_length,
                                config.hidden_size // config.num_attention_heads, self.dtype_policy.compute_dtype)


class TFRobertaModel(TFRobertaPreTrainedModel):
    """The bare encoder (or decoder, with ``is_decoder``): embeddings, layers, optional pooler."""

    def __init__(self, config: RobertaConfig, add_pooling_layer: bool = True, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        dtype = self.dtype_policy
        self.embeddings = TFRobertaEmbeddings(config, name="embeddings", dtype=dtype)
        self.encoder = TFRobertaEncoder(config, self.pre_layer_norm, name="encoder", dtype=dtype)
        if self.pre_layer_norm:
            self.LayerNorm = layer_norm(config.hidden_size, config.layer_norm_eps, "LayerNorm", dtype)
        self.pooler = Pooler(config, name="pooler", dtype=dtype) if add_pooling_layer else None
        self.built = True

    @unpack_inputs
    def call(
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
        training=False,
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
                past_key_values, attention_mask, position_ids, encoder_hidden_states, batch, seq
            )
            past_length, use_cache = past_key_values.index, True
        else:
            past_length = self._past_length(past_key_values)
            check_length(seq + past_length, config.max_sequence_length)

        embeddings = self.embeddings(
            input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
            past_length=past_length, training=training,
        )
        if static:
            mask = static_mask
        else:
            mask = self._self_attention_mask(attention_mask, batch, seq, past_length, embeddings.dtype)
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
            output_hidden_states=output_hidden_states, training=training,
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
        return returned(out, return_dict, config)

    def _static_cache_inputs(self, cache: StaticCache, attention_mask, position_ids, encoder_hidden_states, batch,
                             seq: int):
        """(the additive mask of the new queries over all slots, their position ids) for a call with a StaticCache;
        ``attention_mask`` [batch, max_length] covers every slot (None keeps them all)."""
        config = self.config
        if encoder_hidden_states is not None:
            raise NotImplementedError("a StaticCache does not hold cross-attention keys yet: give no "
                                      "encoder_hidden_states with it (add_cross_attention models use the tuple cache)")
        _check_static_cache_slots(config, cache.max_length)
        check_static_cache_room(cache.index, seq, cache.max_length)
        if attention_mask is None:
            attention_mask = tf.ones([batch, cache.max_length], tf.int32)
        dtype = self.compute_dtype
        keep = static_cache_keep_mask(attention_mask, cache.index, seq, cache.max_length, batch, dtype)
        if position_ids is None:
            position_ids = position_ids_from_slot_mask(attention_mask, config.pad_token_id, cache.index, seq)
        return additive_mask(keep, dtype), position_ids

    def _self_attention_mask(self, attention_mask, batch, seq, past_length, dtype):
        """The additive self-attention mask [batch, 1, seq or 1, past + seq], or None when nothing is masked."""
        key_length = past_length + seq
        if attention_mask is None:
            if not self.config.is_decoder:
                return None
            attention_mask = tf.ones([batch, key_length], dtype)
        attention_mask = tf.cast(attention_mask, dtype)
        keep = padding_keep_mask(attention_mask, batch, seq, key_length, "attention_mask")
        if self.config.is_decoder and attention_mask.shape.rank == 2:
            keep = causal_keep_mask(attention_mask, seq)
        return additive_mask(keep, dtype)

    def _encoder_attention_mask(self, encoder_attention_mask, encoder_hidden_states, seq, dtype):
        if encoder_attention_mask is None:
            return None
        batch, encoder_length = dim(encoder_hidden_states, 0), dim(encoder_hidden_states, 1)
        keep = padding_keep_mask(encoder_attention_mask, batch, seq, encoder_length, "encoder_attention_mask")
        return additive_mask(keep, dtype)

    def _past_length(self, past_key_values) -> int:
        if past_key_values is None:
            return 0
        if any(len(entry) not in (2, 4) for entry in past_key_values):
            raise ValueError("past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per layer, "
                             "each [batch, heads, seq, head_dim]")
        return dim(past_key_values[0][0], 2)


class _TFRobertaHead(TFEncoderHead, TFRobertaPreTrainedModel):
    """The family's head base: the shared encoder heads (common/encoder_heads_tf.py) on RoBERTa's base model."""

    reads_classifier_dropout = True
    base_takes_encoder_states = True

    @classmethod
    def base_model_class(cls) -> type[TFRobertaModel]:
        """The bare model of this family, which head models hold under ``base_model_prefix``."""
        return TFRobertaPreLayerNormModel if cls.pre_layer_norm else TFRobertaModel


class TFRobertaForMaskedLM(TFEncoderForMaskedLM, _TFRobertaHead):
    pass


class TFRobertaForCausalLM(TFGenerationMixin, _TFRobertaHead):
    """Left-to-right language model; set ``is_decoder=True`` for causal attention."""

    def __init__(self, config: RobertaConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        self._add_base_model(add_pooling_layer=False)
        self.lm_head = LMHead(config, name="lm_head", dtype=self.dtype_policy)
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
             past_key_values=None, use_cache=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, training=False):
        outputs = self.get_base_model()(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values, use_cache=False if labels is not None else use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        out = CausalLMOutputWithCrossAttentions(
            logits=self.lm_head(outputs.last_hidden_state, word_embeddings=self._word_embeddings()),
            past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, cross_attentions=outputs.cross_attentions,
        )
        return returned(self.with_loss(out, labels), return_dict, self.config)

    def head_loss(self, labels, output):
        return causal_lm_loss(output.logits, labels)


class TFRobertaForSequenceClassification(TFEncoderForSequenceClassification, _TFRobertaHead):
    pass


class TFRobertaForMultipleChoice(TFEncoderForMultipleChoice, _TFRobertaHead):
    pass


class TFRobertaForTokenClassification(TFEncoderForTokenClassification, _TFRobertaHead):
    pass


class TFRobertaForQuestionAnswering(TFEncoderForQuestionAnswering, _TFRobertaHead):
    pass


# ----------------------------------------------------------------------------------------------------------------
# RoBERTa-PreLayerNorm: the same models with the pre-layer-norm switch on and their own config and prefix.


class TFRobertaPreLayerNormPreTrainedModel(TFRobertaPreTrainedModel):
    config_class = RobertaPreLayerNormConfig
    base_model_prefix = "roberta_prelayernorm"
    pre_layer_norm = True


class TFRobertaPreLayerNormModel(TFRobertaPreLayerNormPreTrainedModel, TFRobertaModel):
    """The bare RoBERTa-PreLayerNorm encoder, with a final LayerNorm after the last layer."""


class TFRobertaPreLayerNormForMaskedLM(TFRobertaPreLayerNormPreTrainedModel, TFRobertaForMaskedLM):
    pass


class TFRobertaPreLayerNormForCausalLM(TFRobertaPreLayerNormPreTrainedModel, TFRobertaForCausalLM):
    pass


class TFRobertaPreLayerNormForSequenceClassification(TFRobertaPreLayerNormPreTrainedModel,
                                                     TFRobertaForSequenceClassification):
    pass


class TFRobertaPreLayerNormForMultipleChoice(TFRobertaPreLayerNormPreTrainedModel, TFRobertaForMultipleChoice):
    pass


class TFRobertaPreLayerNormForTokenClassification(TFRobertaPreLayerNormPreTrainedModel,
                                                  TFRobertaForTokenClassification):
    pass


class TFRobertaPreLayerNormForQuestionAnswering(TFRobertaPreLayerNormPreTrainedModel, TFRobertaForQuestionAnswering):
    pass


def _check_static_cache_slots(config: RobertaConfig, max_length: int) -> None:
    check_static_cache_decoder(config)
    check_static_cache_length(max_length, config.max_sequence_length, "max_position_embeddings - pad_token_id - 1")
