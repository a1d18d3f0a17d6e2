"""I-BERT (integer-only RoBERTa) in TensorFlow / Keras 3 (``TF`` prefix).

The same blocks as ``modeling_pt.py``, as Keras layers on attributes with Hugging Face's module names, so the
variable paths (the quantization buffers included) map to canonical checkpoint names. Every encoder block passes
(tensor, scaling factor) pairs and one block of ``quant_tf.py`` picks its path from ``training``: float
(``quant_mode=False``), simulated fake quantization (quant_mode while training, as in Keras ``fit``) or integer
arithmetic (quant_mode in inference, where the tensors between the embedding lookup and the last layer are integer
dtypes). Integer activations are dequantized only where they leave the encoder; the pooler and the heads always
run in float, as in Hugging Face.

Eager, ``tf.function`` (and XLA) and Keras ``fit`` give the same integers. A graph cannot look at values, so it
always takes the general 64-bit requantization that eager calls skip for small values; tracing the integer path
(thousands of small integer ops) takes seconds, running it afterwards does not.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ..common.backend_tf import Block, check_length, checked_indices, checked_token_ids, dim, indices_in_range, run_layer
from ..common.encoder_heads_tf import (
    TFEncoderForMaskedLM,
    TFEncoderForMultipleChoice,
    TFEncoderForQuestionAnswering,
    TFEncoderForSequenceClassification,
    TFEncoderForTokenClassification,
    TFEncoderHead,
)
from ..common.layers_tf import (
    Pooler,
    additive_mask,
    head_mask_per_layer,
    input_shape,
    merge_heads,
    padding_keep_mask,
    split_heads,
)
from ..common.modeling_tf import TFPreTrainedModel, returned, unpack_inputs
from ..common.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    tuple_or_none,
)
from . import quant
from .config import IBertConfig
from .quant_tf import OPS, IntGELU, IntLayerNorm, IntSoftmax, QuantAct, QuantEmbedding, QuantLinear
from .weights import weights_spec


def as_float(x, scale):
    """An integer activation as the float32 value Hugging Face's simulation holds (x_int * scale); floats as given."""
    return quant.dequantize(OPS, x, scale) if OPS.is_integer(x) else x


def position_ids_from_input_ids(input_ids, padding_idx: int):
    """Real tokens count from ``padding_idx + 1`` in order; padding keeps position ``padding_idx``."""
    is_token = tf.cast(input_ids != padding_idx, input_ids.dtype)
    return tf.cumsum(is_token, axis=1) * is_token + padding_idx


def rows_in_range(config: IBertConfig, input_ids, token_type_ids, position_ids):
    """[batch] bool, True where every index the caller gave lies in its table; None eagerly (a bad one raised)."""
    if tf.executing_eagerly():
        return None
    given = ((input_ids, config.vocab_size), (token_type_ids, config.type_vocab_size),
             (position_ids, config.max_position_embeddings))
    valid = [tf.reduce_all(indices_in_range(ids, 0, size), axis=-1) for ids, size in given if ids is not None]
    return tf.reduce_all(tf.stack(valid), axis=0) if valid else None


def nan_in_invalid_rows(outputs, valid_rows):
    """``outputs`` (nested float tensors [batch, ...]) with NaN in the rows ``valid_rows`` rejects: integer
    inference cannot carry the NaN of a bad index's embedding row, so its float outputs are marked here."""
    if valid_rows is None:
        return outputs

    def mark(x):
        valid = tf.reshape(valid_rows, [-1] + [1] * (x.shape.rank - 1))
        return tf.where(valid, x, tf.cast(float("nan"), x.dtype))

    return tf.nest.map_structure(lambda x: None if x is None else mark(x), outputs)


def check_binary_head_mask(head_mask) -> None:
    """Integer probabilities can be kept or silenced, not scaled by a fraction."""
    message = ("head_mask must hold only 0 (silence a head) and 1 (keep it) in integer inference "
               "(quant_mode without training): integer probabilities cannot be scaled by a fraction")
    binary = tf.reduce_all((head_mask == 0) | (head_mask == 1))
    if tf.executing_eagerly():
        if not bool(binary):
            raise ValueError(message)
    else:
        tf.debugging.assert_equal(binary, True, message=message)


# ----------------------------------------------------------------------------------------------------------------
# Quantized building blocks with transformers' bit widths


def _linear(config: IBertConfig, in_features: int, out_features: int, name: str, dtype) -> QuantLinear:
    return QuantLinear(in_features, out_features, bias=True, weight_bit=quant.WEIGHT_BIT, bias_bit=quant.BIAS_BIT,
                       per_channel=True, quant_mode=config.quant_mode,
                       kernel_initializer=keras.initializers.RandomNormal(stddev=config.initializer_range),
                       name=name, dtype=dtype)


def _act(config: IBertConfig, name: str, dtype, bits: int = quant.ACT_BIT) -> QuantAct:
    return QuantAct(bits, quant_mode=config.quant_mode, name=name, dtype=dtype)


def _layer_norm(config: IBertConfig, dtype) -> IntLayerNorm:
    return IntLayerNorm(config.hidden_size, eps=config.layer_norm_eps, output_bit=quant.LN_OUTPUT_BIT,
                        quant_mode=config.quant_mode, force_dequant=config.force_dequant, name="LayerNorm", dtype=dtype)


def _embedding(config: IBertConfig, num_embeddings: int, name: str, dtype, padding_idx: int | None = None):
    return QuantEmbedding(num_embeddings, config.hidden_size, padding_idx=padding_idx, weight_bit=quant.WEIGHT_BIT,
                          quant_mode=config.quant_mode,
                          embeddings_initializer=keras.initializers.RandomNormal(stddev=config.initializer_range),
                          name=name, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# Encoder. Each block builds its variables in __init__ (sizes come from the config), so it is built from the start.


class TFIBertEmbeddings(Block):
    """Word + token type + position embeddings, each sum requantized to 16 bits, then I-LayerNorm and 8 bits."""

    def __init__(self, config: IBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.padding_idx = config.pad_token_id
        dtype = self.dtype_policy
        self.word_embeddings = _embedding(config, config.vocab_size, "word_embeddings", dtype, self.padding_idx)
        self.token_type_embeddings = _embedding(config, config.type_vocab_size, "token_type_embeddings", dtype)
        self.position_embeddings = _embedding(config, config.max_position_embeddings, "position_embeddings", dtype,
                                              self.padding_idx)
        self.embeddings_act1 = _act(config, "embeddings_act1", dtype, quant.EMBEDDING_ACT_BIT)
        # unused, as in Hugging Face: kept for its buffers
        self.embeddings_act2 = _act(config, "embeddings_act2", dtype, quant.EMBEDDING_ACT_BIT)
        self.LayerNorm = _layer_norm(config, dtype)
        self.output_activation = _act(config, "output_activation", dtype)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)
        self.built = True

    def call(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, training=False):
        config = self.config
        if inputs_embeds is None:
            input_ids = checked_token_ids(input_ids, config.vocab_size)
            inputs_embeds, embeds_scale = self.word_embeddings(input_ids, training=training)
        else:
            embeds_scale = None
        batch, seq = dim(inputs_embeds, 0), dim(inputs_embeds, 1)
        if position_ids is None:
            position_ids = self._default_position_ids(input_ids, batch, seq)
        else:
            position_ids = checked_indices(position_ids, config.max_position_embeddings, "position_ids",
                                           "max_position_embeddings")
        if token_type_ids is None:
            token_type_ids = tf.zeros([batch, seq], tf.int32)
        else:
            token_type_ids = checked_indices(token_type_ids, config.type_vocab_size, "token_type_ids",
                                             "type_vocab_size")
        # Hugging Face requantizes both sums with embeddings_act1 (its range statistics move twice per call).
        token_types, token_types_scale = self.token_type_embeddings(token_type_ids, training=training)
        x, scale = self.embeddings_act1(inputs_embeds, embeds_scale, identity=token_types,
                                        identity_scaling_factor=token_types_scale, training=training)
        positions, positions_scale = self.position_embeddings(position_ids, training=training)
        x, scale = self.embeddings_act1(x, scale, identity=positions, identity_scaling_factor=positions_scale,
                                        training=training)
        x, scale = self.LayerNorm(x, scale, training=training)
        return self.output_activation(self.dropout(x, training=training), scale, training=training)

    def _default_position_ids(self, input_ids, batch, seq):
        if input_ids is not None:
            return position_ids_from_input_ids(input_ids, self.padding_idx)
        # Embeddings show no padding to skip: number every position.
        first = self.padding_idx + 1
        return tf.broadcast_to(tf.range(first, first + seq)[None, :], [batch, seq])


class TFIBertSelfAttention(Block):
    """Multi-head self-attention over 8-bit queries, keys and values with the integer softmax."""

    def __init__(self, config: IBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        dtype, hidden = self.dtype_policy, config.hidden_size
        self.query = _linear(config, hidden, hidden, "query", dtype)
        self.key = _linear(config, hidden, hidden, "key", dtype)
        self.value = _linear(config, hidden, hidden, "value", dtype)
        self.query_activation = _act(config, "query_activation", dtype)
        self.key_activation = _act(config, "key_activation", dtype)
        self.value_activation = _act(config, "value_activation", dtype)
        self.output_activation = _act(config, "output_activation", dtype)
        self.dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, dtype=dtype)
        self.softmax = IntSoftmax(quant.ACT_BIT, quant_mode=config.quant_mode, force_dequant=config.force_dequant,
                                  name="softmax", dtype=dtype)
        self.built = True

    def call(self, hidden_states, scale, attention_mask=None, head_mask=None, input_scale=None, training=False):
        """Returns (context, its scale, probabilities, their scale). ``input_scale``: see ``TFIBertLayer``."""
        query, query_scale = self.query_activation(*self.query(hidden_states, scale, input_scale, training=training),
                                                   training=training)
        key, key_scale = self.key_activation(*self.key(hidden_states, scale, input_scale, training=training),
                                             training=training)
        value, value_scale = self.value_activation(*self.value(hidden_states, scale, input_scale, training=training),
                                                   training=training)
        query, key, value = (split_heads(x, self.num_heads) for x in (query, key, value))
        scores, scores_scale = quant.attention_scores(OPS, query, key, query_scale, key_scale, self.head_size)
        probs, probs_scale = self.softmax(scores, scores_scale, attention_mask=attention_mask, training=training)
        probs = self.dropout(probs, training=training)  # inactive in inference, so integer probabilities pass as they are
        if head_mask is not None:
            probs = probs * (tf.cast(head_mask, tf.int32) if OPS.is_integer(probs) else head_mask)
        context, context_scale = quant.attention_context(OPS, probs, value, probs_scale, value_scale)
        context, context_scale = self.output_activation(merge_heads(context), context_scale, training=training)
        return context, context_scale, probs, probs_scale


class TFIBertResidualOutput(Block):
    """dense -> dropout -> add the block input (requantized to 22 bits) -> I-LayerNorm -> 8 bits.

    Serves as both ``attention.output`` and the layer's ``output`` (transformers' SelfOutput and Output).
    """

    def __init__(self, config: IBertConfig, input_size: int, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        self.dense = _linear(config, input_size, config.hidden_size, "dense", dtype)
        self.ln_input_act = _act(config, "ln_input_act", dtype, quant.LN_INPUT_BIT)
        self.LayerNorm = _layer_norm(config, dtype)
        self.output_activation = _act(config, "output_activation", dtype)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)
        self.built = True

    def call(self, hidden_states, scale, residual, residual_scale, training=False):
        hidden_states, scale = self.dense(hidden_states, scale, training=training)
        hidden_states, scale = self.ln_input_act(self.dropout(hidden_states, training=training), scale,
                                                 identity=residual, identity_scaling_factor=residual_scale,
                                                 training=training)
        hidden_states, scale = self.LayerNorm(hidden_states, scale, training=training)
        return self.output_activation(hidden_states, scale, training=training)


class TFIBertAttention(Block):
    def __init__(self, config: IBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.self = TFIBertSelfAttention(config, name="self", dtype=self.dtype_policy)
        self.output = TFIBertResidualOutput(config, config.hidden_size, name="output", dtype=self.dtype_policy)
        self.built = True

    def call(self, hidden_states, scale, attention_mask=None, head_mask=None, input_scale=None, training=False):
        context, context_scale, probs, probs_scale = self.self(hidden_states, scale, attention_mask, head_mask,
                                                               input_scale, training=training)
        residual = hidden_states
        if input_scale is not None:  # HF rounds the residual to the handed scale's grid
            residual = quant.rescale(OPS, hidden_states, input_scale, scale)
        output, output_scale = self.output(context, context_scale, residual, scale, training=training)
        return output, output_scale, probs, probs_scale


class TFIBertIntermediate(Block):
    def __init__(self, config: IBertConfig, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        self.dense = _linear(config, config.hidden_size, config.intermediate_size, "dense", dtype)
        self.intermediate_act_fn = IntGELU(quant_mode=config.quant_mode, force_dequant=config.force_dequant,
                                           name="intermediate_act_fn", dtype=dtype)
        self.output_activation = _act(config, "output_activation", dtype)
        self.built = True

    def call(self, hidden_states, scale, training=False):
        hidden_states, scale = self.dense(hidden_states, scale, training=training)
        hidden_states, scale = self.intermediate_act_fn(hidden_states, scale)
        return self.output_activation(hidden_states, scale, training=training)


class TFIBertLayer(Block):
    def __init__(self, config: IBertConfig, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        self.attention = TFIBertAttention(config, name="attention", dtype=dtype)
        self.intermediate = TFIBertIntermediate(config, name="intermediate", dtype=dtype)
        self.output = TFIBertResidualOutput(config, config.intermediate_size, name="output", dtype=dtype)
        self.pre_intermediate_act = _act(config, "pre_intermediate_act", dtype)
        self.pre_output_act = _act(config, "pre_output_act", dtype)
        self.built = True

    def call(self, hidden_states, scale, attention_mask=None, head_mask=None, input_scale=None, training=False):
        """Returns (output, its scale, attention probabilities, their scale).

        transformers (like the authors' fairseq code) hands every layer the embeddings' scale as ``scale``, not
        the previous layer's (transformers issue 26738), and checkpoints were trained so: later layers quantize
        their bias on that grid and round their residual to it. The simulated path holds float values and follows
        directly; in integer inference the integers are in their own ``input_scale``, and the layer converts
        exactly where HF divides by the handed scale, so both paths compute what Hugging Face computes.
        """
        attended, attended_scale, probs, probs_scale = self.attention(hidden_states, scale, attention_mask, head_mask,
                                                                      input_scale, training=training)
        # The feed-forward block and its residual both take the requantized attention output, as in Hugging Face.
        attended, attended_scale = self.pre_intermediate_act(attended, attended_scale, training=training)
        intermediate, intermediate_scale = self.intermediate(attended, attended_scale, training=training)
        intermediate, intermediate_scale = self.pre_output_act(intermediate, intermediate_scale, training=training)
        output, output_scale = self.output(intermediate, intermediate_scale, attended, attended_scale,
                                           training=training)
        return output, output_scale, probs, probs_scale


class TFIBertEncoder(Block):
    def __init__(self, config: IBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.layer = [TFIBertLayer(config, name=f"layer_{i}", dtype=self.dtype_policy)
                      for i in range(config.num_hidden_layers)]
        self.gradient_checkpointing = False
        self.built = True

    def call(self, hidden_states, scale, attention_mask=None, head_masks=None, output_attentions=False,
             output_hidden_states=False, training=False):
        """Hidden states and attentions come out as floats (dequantized in integer inference)."""
        all_hidden = [] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        embeddings_scale = scale
        for layer, head_mask in zip(self.layer, head_masks):
            if output_hidden_states:
                all_hidden.append(as_float(hidden_states, scale))
            # every layer is handed the embeddings' scale, as in Hugging Face (see TFIBertLayer)
            input_scale = scale if OPS.is_integer(hidden_states) else None
            hidden_states, scale, probs, probs_scale = run_layer(self, layer, hidden_states, embeddings_scale,
                                                                 attention_mask, head_mask, input_scale,
                                                                 training=training)
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


class TFIBertPreTrainedModel(TFPreTrainedModel):
    """Checkpoints hold the quantization state too: the buffers are non-trainable variables on the attribute tree,
    so they load and save next to the weights under Hugging Face's names."""

    config_class = IBertConfig
    base_model_prefix = "ibert"

    def __init__(self, config: IBertConfig, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        if config.quant_mode and self.compute_dtype != "float32":
            raise ValueError(f"a quantized I-BERT (quant_mode=True) computes its scales in float32 and its values in "
                             f"integers; load it in float32, not {self.compute_dtype}")

    def weights_spec(self):
        return weights_spec(self.config, self.base_model_prefix)


class TFIBertModel(TFIBertPreTrainedModel):
    """The bare encoder: quantized embeddings and layers, optional float pooler."""

    def __init__(self, config: IBertConfig, add_pooling_layer: bool = True, *, dtype=None, name=None):
        super().__init__(config, dtype=dtype, name=name)
        dtype = self.dtype_policy
        self.embeddings = TFIBertEmbeddings(config, name="embeddings", dtype=dtype)
        self.encoder = TFIBertEncoder(config, name="encoder", dtype=dtype)
        self.pooler = Pooler(config, name="pooler", dtype=dtype) if add_pooling_layer else None
        self.built = True

    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None, training=False):
        config = self.config
        output_attentions = self.config_default("output_attentions", output_attentions)
        output_hidden_states = self.config_default("output_hidden_states", output_hidden_states)
        input_shape(input_ids, inputs_embeds)  # exactly one of them, of the right rank
        reference = input_ids if input_ids is not None else inputs_embeds
        batch, seq = dim(reference, 0), dim(reference, 1)
        check_length(seq, config.max_sequence_length)
        mask = None
        if attention_mask is not None:
            keep = padding_keep_mask(attention_mask, batch, seq, seq, "attention_mask")
            mask = additive_mask(keep, self.compute_dtype)
        head_masks = head_mask_per_layer(head_mask, config.num_hidden_layers, config.num_attention_heads,
                                         self.compute_dtype)
        if head_mask is not None and config.quant_mode and not training:
            check_binary_head_mask(tf.convert_to_tensor(head_mask))

        hidden_states, scale = self.embeddings(input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                                               inputs_embeds=inputs_embeds, training=training)
        encoded = self.encoder(hidden_states, scale, mask, head_masks, output_attentions=output_attentions,
                               output_hidden_states=output_hidden_states, training=training)
        sequence_output, all_hidden, all_probs = nan_in_invalid_rows(
            (encoded.last_hidden_state, encoded.hidden_states, encoded.attentions),
            rows_in_range(config, input_ids, token_type_ids, position_ids))
        out = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
            hidden_states=all_hidden,
            attentions=all_probs,
        )
        return returned(out, return_dict, config)


# ----------------------------------------------------------------------------------------------------------------
# Heads: the shared encoder heads (common/encoder_heads_tf.py) on I-BERT's base model (float in every path, as in
# Hugging Face)


class _TFIBertHead(TFEncoderHead, TFIBertPreTrainedModel):
    """The family's head base. As transformers' I-BERT, the heads ignore classifier_dropout, and the base model is
    an encoder only."""

    reads_classifier_dropout = False
    base_takes_encoder_states = False

    @classmethod
    def base_model_class(cls) -> type[TFIBertModel]:
        """The bare model, which head models hold under ``base_model_prefix``."""
        return TFIBertModel


class TFIBertForMaskedLM(TFEncoderForMaskedLM, _TFIBertHead):
    @unpack_inputs
    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             training=False):
        """transformers' IBertForMaskedLM signature: no cross-attention inputs."""
        return super().call(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds, labels=labels,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=return_dict,
            training=training,
        )


class TFIBertForSequenceClassification(TFEncoderForSequenceClassification, _TFIBertHead):
    pass


class TFIBertForMultipleChoice(TFEncoderForMultipleChoice, _TFIBertHead):
    pass


class TFIBertForTokenClassification(TFEncoderForTokenClassification, _TFIBertHead):
    pass


class TFIBertForQuestionAnswering(TFEncoderForQuestionAnswering, _TFIBertHead):
    pass
