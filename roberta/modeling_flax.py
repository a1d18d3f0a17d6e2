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

from ..common.cache import StaticCache
from ..common.layers_flax import (
    ClassificationHead,
    Embed,
    LMHead,
    Pooler,
    activation,
    additive_mask,
    attention,
    attention_bias,
    causal_lm_loss,
    check_static_cache_room,
    checkpointed,
    cross_entropy,
    dense,
    layer_head_masks,
    layer_norm,
    new_static_cache,
    question_answering_output,
    sequence_classification_loss,
    static_cache_keep_mask,
    static_cache_update,
)
from ..common.modeling_flax import FlaxPreTrainedModel
from ..common.outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from ..common.validation import (
    check_cache_layers,
    check_rank,
    check_sequence_length,
    check_static_cache_decoder,
    check_static_cache_length,
    input_shape,
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


def create_position_ids(input_ids: Array, padding_idx: int, past_length: int = 0) -> Array:
    """RoBERTa positions: real tokens count from ``padding_idx + 1`` (after the cache); padding keeps ``padding_idx``.

    As Hugging Face computes them, also with a cache: the past length is added to the running count.
    """
    real = (input_ids != padding_idx).astype(jnp.int32)
    return (jnp.cumsum(real, axis=1) + past_length) * real + padding_idx


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
                position_ids = (create_position_ids(input_ids, c.pad_token_id, past_length) if input_ids is not None
                                else jnp.broadcast_to(jnp.arange(seq) + c.pad_token_id + 1, (batch, seq)))
            self.position_embeddings.check(position_ids, "position_ids", "max_position_embeddings")
            x = x + self.position_embeddings(position_ids)
        else:
            # Hugging Face keeps the table with relative positions too; touch it so it exists, loads and saves.
            _ = self.position_embeddings.embedding
        return self.dropout(self.LayerNorm(x), deterministic=deterministic)


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

    def _heads(self, x):
        return x.reshape(x.shape[:2] + (self.num_heads, self.head_dim))

    def __call__(self, hidden_states, bias, head_mask, key_value_states=None, past: LayerCache | None = None,
                 cache_index: Array | None = None, deterministic: bool = True, output_attentions: bool = False):
        """Returns (context [batch, seq, hidden], probabilities or None, (k, v) [batch, heads, keys, head_dim]).

        ``cache_index`` (a StaticCache's) writes the new keys and values into the slots of ``past`` from that index
        instead of appending them.
        """
        query = self._heads(self.query(hidden_states))
        if key_value_states is not None and past is not None:
            # Cross-attention keys and values depend only on the encoder output: computed once, then cached.
            key, value = (jnp.swapaxes(t, 1, 2) for t in past)
        else:
            source = hidden_states if key_value_states is None else key_value_states
            key, value = self._heads(self.key(source)), self._heads(self.value(source))
            if past is not None:
                key, value = self._after_past(past, key, value, cache_index)
        offset = None
        if self.position_embedding_type != "absolute":
            offset = self._relative_scores(query, key, cache_index)
        rate = self.config.attention_probs_dropout_prob
        context, probs = attention(
            query, key, value, bias, score_offset=offset, head_mask=head_mask, dropout_rate=rate,
            dropout_rng=None if deterministic or rate == 0.0 else self.make_rng("dropout"),
            output_attentions=output_attentions,
        )
        context = context.reshape(context.shape[:2] + (-1,))
        return context, probs, (jnp.swapaxes(key, 1, 2), jnp.swapaxes(value, 1, 2))

    @staticmethod
    def _after_past(past: LayerCache, key, value, cache_index):
        """The cached keys and values with the new ones [batch, seq, heads, head_dim]: appended, or written into a
        StaticCache's slots from ``cache_index``."""
        if cache_index is None:
            return (jnp.concatenate([jnp.swapaxes(past[0], 1, 2).astype(key.dtype), key], axis=1),
                    jnp.concatenate([jnp.swapaxes(past[1], 1, 2).astype(value.dtype), value], axis=1))
        written = static_cache_update(past[0], past[1], jnp.swapaxes(key, 1, 2), jnp.swapaxes(value, 1, 2),
                                      cache_index)
        return tuple(jnp.swapaxes(t, 1, 2) for t in written)

    def _relative_scores(self, query, key, cache_index):
        """Scores from the learned query-key distance embeddings (Shaw et al.; Huang et al. for key_query).

        The queries are the last positions, after any cached keys, or with a StaticCache its slots from
        ``cache_index`` (its keys are all its slots, the ones not written yet being masked). (transformers 4.x
        places every query at the last key whenever a cache is in use, which is wrong for multi-token passes;
        one-token steps agree.)
        """
        query_length, key_length = query.shape[1], key.shape[1]
        first_query = key_length - query_length if cache_index is None else jnp.asarray(cache_index, jnp.int32)
        query_positions = (first_query + jnp.arange(query_length))[:, None]
        distance = query_positions - jnp.arange(key_length)[None, :]
        table = self.distance_embedding(distance + self.config.max_position_embeddings - 1).astype(query.dtype)
        table = jnp.broadcast_to(table, (query_length,) + table.shape[1:])
        scores = jnp.einsum("bqnd,qkd->bnqk", query, table)
        if self.position_embedding_type == "relative_key_query":
            scores = scores + jnp.einsum("bknd,qkd->bnqk", key, table)
        return scores


class FlaxRobertaResidual(_Block):
    """dense -> dropout -> add the block input, then LayerNorm (post-LN) or nothing (pre-LN normalized earlier).

    Serves as both ``attention.output`` and the layer's ``output``.
    """

    def setup(self):
        self.dense = self._dense(self.config.hidden_size)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        if not self.pre_layer_norm:
            self.LayerNorm = self._layer_norm()

    def __call__(self, hidden_states, block_input, deterministic: bool):
        x = self.dropout(self.dense(hidden_states), deterministic=deterministic) + block_input
        return x if self.pre_layer_norm else self.LayerNorm(x)


class FlaxRobertaAttention(_Block):
    position_embedding_type: str = "absolute"

    def setup(self):
        self.self = FlaxRobertaSelfAttention(self.config, self.pre_layer_norm, self.dtype, self.param_dtype,
                                             self.position_embedding_type)
        self.output = FlaxRobertaResidual(self.config, self.pre_layer_norm, self.dtype, self.param_dtype)
        if self.pre_layer_norm:
            self.LayerNorm = self._layer_norm()

    def __call__(self, hidden_states, bias, head_mask, key_value_states=None, past=None, cache_index=None,
                 deterministic=True, output_attentions=False):
        normed = self.LayerNorm(hidden_states) if self.pre_layer_norm else hidden_states
        context, probs, cache = self.self(normed, bias, head_mask, key_value_states, past, cache_index, deterministic,
                                          output_attentions)
        return self.output(context, hidden_states, deterministic), probs, cache


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
        self.output = FlaxRobertaResidual(*blocks)

    def __call__(self, hidden_states, bias, head_mask, encoder_hidden_states, encoder_bias, past: LayerCache | None,
                 cache_index: Array | None, deterministic: bool, output_attentions: bool):
        """Returns (output, self-attention probabilities, cross-attention probabilities, this layer's cache)."""
        attended, self_probs, cache = self.attention(hidden_states, bias, head_mask, None,
                                                     None if past is None else past[:2], cache_index, deterministic,
                                                     output_attentions)
        cross_probs = None
        if self.config.is_decoder and encoder_hidden_states is not None:
            if not self.config.add_cross_attention:
                raise ValueError("encoder_hidden_states were passed, but the model has no cross-attention layers: "
                                 "set add_cross_attention=True in the config")
            cross_past = past[2:] if past is not None and len(past) == 4 else None
            attended, cross_probs, cross_cache = self.crossattention(
                attended, encoder_bias, head_mask, encoder_hidden_states, cross_past, None, deterministic,
                output_attentions)
            cache = cache + cross_cache
        output = self.output(self.intermediate(attended), attended, deterministic)
        return output, self_probs, cross_probs, cache


class FlaxRobertaLayerCollection(_Block):
    """The ``encoder.layer`` list: children named "0", "1", ... as PyTorch's ModuleList."""

    gradient_checkpointing: bool = False

    def setup(self):
        layer = checkpointed(FlaxRobertaLayer, self.gradient_checkpointing, static_argnums=(8, 9))
        self.layers = [layer(self.config, self.pre_layer_norm, self.dtype, self.param_dtype, name=str(i))
                       for i in range(self.config.num_hidden_layers)]

    def __call__(self, hidden_states, bias, head_mask, encoder_hidden_states, encoder_bias, past_key_values,
                 cache_index, deterministic, output_attentions, output_hidden_states):
        all_hidden, all_self, all_cross, cache = [], [], [], []
        head_masks = layer_head_masks(head_mask, len(self.layers), self.config.num_attention_heads)
        for i, layer in enumerate(self.layers):
            all_hidden.append(hidden_states)
            hidden_states, self_probs, cross_probs, layer_cache = layer(
                hidden_states, bias, head_masks[i], encoder_hidden_states, encoder_bias,
                None if past_key_values is None else past_key_values[i], cache_index, deterministic,
                output_attentions)
            all_self.append(self_probs)
            all_cross.append(cross_probs)
            cache.append(layer_cache)
        all_hidden.append(hidden_states)
        return (
            hidden_states,
            tuple(all_hidden) if output_hidden_states else None,
            tuple(all_self) if output_attentions else None,
            tuple(all_cross) if output_attentions and all_cross[0] is not None else None,
            tuple(cache),
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
        static = isinstance(past_key_values, StaticCache)
        if static:
            static_bias, position_ids = self._static_cache_inputs(
                past_key_values, attention_mask, position_ids, encoder_hidden_states, batch, seq)
            past_length, past_layers, use_cache = past_key_values.index, past_key_values.layers, True
        else:
            past_length = self._past_length(past_key_values)
            past_layers = self._empty_cache(batch) if use_cache and past_key_values is None else past_key_values
            check_sequence_length(seq + past_length, c.max_sequence_length)

        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_length, deterministic)
        if static:
            bias = static_bias
        else:
            bias = attention_bias(attention_mask, batch, seq, past_length + seq, causal=c.is_decoder,
                                  dtype=self.dtype)
        encoder_bias = None
        if c.is_decoder and encoder_hidden_states is not None:
            encoder_bias = attention_bias(encoder_attention_mask, batch, seq, encoder_hidden_states.shape[1],
                                          causal=False, dtype=self.dtype, name="encoder_attention_mask")
            encoder_hidden_states = jnp.asarray(encoder_hidden_states, self.dtype)

        sequence, all_hidden, all_self, all_cross, cache = self.encoder(
            hidden, bias, head_mask, encoder_hidden_states, encoder_bias, past_layers, past_length if static else None,
            deterministic, output_attentions, output_hidden_states)
        if self.pre_layer_norm:
            sequence = self.LayerNorm(sequence)
        if static:
            past = StaticCache(cache, past_length + seq)
        else:
            past = cache if use_cache else None
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence,
            pooler_output=self.pooler(sequence) if self.add_pooling_layer else None,
            hidden_states=all_hidden,
            past_key_values=past,
            attentions=all_self,
            cross_attentions=all_cross,
        )

    def _static_cache_inputs(self, cache: StaticCache, attention_mask, position_ids, encoder_hidden_states,
                             batch: int, seq: int):
        """(the attention bias of the new queries over all slots, their position ids) for a call with a
        StaticCache; ``attention_mask`` [batch, max_length] covers every slot (None keeps them all)."""
        c = self.config
        if encoder_hidden_states is not None:
            raise NotImplementedError("a StaticCache does not hold cross-attention keys yet: give no "
                                      "encoder_hidden_states with it (add_cross_attention models use the tuple cache)")
        _check_static_cache_slots(c, cache.max_length)
        if len(cache.layers) != c.num_hidden_layers:
            raise ValueError(f"the StaticCache holds {len(cache.layers)} layers but the model has "
                             f"{c.num_hidden_layers}")
        check_static_cache_room(cache.index, seq, cache.max_length)
        if attention_mask is None:
            attention_mask = jnp.ones((batch, cache.max_length), jnp.int32)
        keep = static_cache_keep_mask(attention_mask, cache.index, seq, cache.max_length, batch)
        if position_ids is None:
            position_ids = position_ids_from_slot_mask(attention_mask, c.pad_token_id, cache.index, seq)
        return additive_mask(keep, self.dtype), position_ids

    def _empty_cache(self, batch: int) -> tuple[LayerCache, ...]:
        """Zero-length self-attention caches: a first pass with ``use_cache`` runs as a cached pass (as in HF)."""
        c = self.config
        empty = jnp.zeros((batch, c.num_attention_heads, 0, c.hidden_size // c.num_attention_heads), self.dtype)
        return ((empty, empty),) * c.num_hidden_layers

    def _past_length(self, past_key_values) -> int:
        if past_key_values is None:
            return 0
        check_cache_layers(past_key_values, self.config.num_hidden_layers)
        if any(len(entry) not in (2, 4) for entry in past_key_values):
            raise ValueError("past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per layer, "
                             "each [batch, heads, seq, head_dim]")
        return past_key_values[0][0].shape[2]


# ---------------------------------------------------------------------------------------------------------------
# Heads


class _Head(_Block):
    """A head on the base model, held under ``base_model_prefix`` ("roberta" or "roberta_prelayernorm")."""

    base_model_prefix: str = "roberta"
    gradient_checkpointing: bool = False
    add_pooling_layer = False  # class constants, not module fields
    label_names = ("labels",)

    def base(self) -> FlaxRobertaModule:
        return FlaxRobertaModule(self.config, self.pre_layer_norm, self.dtype, self.param_dtype,
                                 add_pooling_layer=self.add_pooling_layer,
                                 gradient_checkpointing=self.gradient_checkpointing, name=self.base_model_prefix)

    def _dropout(self, rate: float | None) -> nn.Dropout:
        return nn.Dropout(self.config.hidden_dropout_prob if rate is None else rate)


class _LMHeadModule(_Head):
    def setup(self):
        self.backbone = self.base()
        self.lm_head = LMHead(self.config, self.dtype, self.param_dtype)

    def _logits(self, sequence_output):
        words = self.backbone.variables["params"]["embeddings"]["word_embeddings"]["embedding"]
        return self.lm_head(sequence_output, words)


class FlaxRobertaForMaskedLMModule(_LMHeadModule):
    def __call__(self, labels=None, **inputs):
        outputs = self.backbone(**inputs)
        logits = self._logits(outputs.last_hidden_state)
        return MaskedLMOutput(
            loss=None if labels is None else cross_entropy(logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


class FlaxRobertaForCausalLMModule(_LMHeadModule):
    def __call__(self, labels=None, **inputs):
        if labels is not None:
            inputs["use_cache"] = False  # as Hugging Face: training on labels returns no cache
        outputs = self.backbone(**inputs)
        logits = self._logits(outputs.last_hidden_state)
        return CausalLMOutputWithCrossAttentions(
            loss=None if labels is None else causal_lm_loss(logits, labels), logits=logits,
            past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, cross_attentions=outputs.cross_attentions,
        )


class FlaxRobertaForSequenceClassificationModule(_Head):
    def setup(self):
        self.backbone = self.base()
        self.classifier = ClassificationHead(self.config, self.dtype, self.param_dtype, rate=self.config.classifier_dropout)

    def __call__(self, labels=None, **inputs):
        outputs = self.backbone(**inputs)
        logits = self.classifier(outputs.last_hidden_state, inputs.get("deterministic", True))
        return SequenceClassifierOutput(
            loss=None if labels is None else sequence_classification_loss(self.config, logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


class FlaxRobertaForTokenClassificationModule(_Head):
    def setup(self):
        self.backbone = self.base()
        self.dropout = self._dropout(self.config.classifier_dropout)
        self.classifier = self._dense(self.config.num_labels)

    def __call__(self, labels=None, **inputs):
        outputs = self.backbone(**inputs)
        hidden = self.dropout(outputs.last_hidden_state, deterministic=inputs.get("deterministic", True))
        logits = self.classifier(hidden)
        return TokenClassifierOutput(
            loss=None if labels is None else cross_entropy(logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


class FlaxRobertaForMultipleChoiceModule(_Head):
    """Scores each of ``num_choices`` sequences; inputs are [batch, num_choices, sequence]."""

    add_pooling_layer = True

    def setup(self):
        self.backbone = self.base()
        self.dropout = self._dropout(None)
        self.classifier = self._dense(1)

    def __call__(self, labels=None, **inputs):
        ids, embeds = inputs.get("input_ids"), inputs.get("inputs_embeds")
        if ids is not None:
            check_rank("input_ids", np.shape(ids), 3, "[batch, num_choices, sequence]")
        elif embeds is not None:
            check_rank("inputs_embeds", np.shape(embeds), 4, "[batch, num_choices, sequence, hidden]")
        num_choices = (ids if ids is not None else embeds).shape[1]
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids"):
            if inputs.get(name) is not None:
                inputs[name] = jnp.reshape(inputs[name], (-1, np.shape(inputs[name])[-1]))
        if embeds is not None:
            inputs["inputs_embeds"] = jnp.reshape(embeds, (-1,) + np.shape(embeds)[-2:])
        outputs = self.backbone(**inputs)
        pooled = self.dropout(outputs.pooler_output, deterministic=inputs.get("deterministic", True))
        logits = self.classifier(pooled).reshape(-1, num_choices)
        return MultipleChoiceModelOutput(
            loss=None if labels is None else cross_entropy(logits, labels),
            logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


class FlaxRobertaForQuestionAnsweringModule(_Head):
    label_names = ("start_positions", "end_positions")

    def setup(self):
        self.backbone = self.base()
        self.qa_outputs = self._dense(self.config.num_labels)

    def __call__(self, start_positions=None, end_positions=None, **inputs):
        outputs = self.backbone(**inputs)
        return question_answering_output(self.qa_outputs(outputs.last_hidden_state), outputs,
                                         start_positions, end_positions)


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
        if issubclass(self.module_class, _Head):
            module_kwargs["base_model_prefix"] = self.base_model_prefix
        module = self.module_class(config, self.pre_layer_norm, jnp.dtype(dtype), jnp.dtype(param_dtype),
                                   **module_kwargs)
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
        targets = {"labels": labels, "start_positions": start_positions, "end_positions": end_positions}
        targets = {name: value for name, value in targets.items() if value is not None}
        unknown = sorted(set(targets) - set(self.module_class.label_names))
        if unknown:
            raise TypeError(f"{type(self).__name__} takes no {', '.join(unknown)}")
        return self.apply_module(
            params, dropout_rng, train, return_dict, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, head_mask=head_mask,
            inputs_embeds=inputs_embeds, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, past_key_values=past_key_values, use_cache=use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, **targets,
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
