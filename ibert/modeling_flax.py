"""I-BERT (integer-only RoBERTa) in Flax (linen), with the attribute names of Hugging Face's PyTorch modules.

Every encoder block passes (array, scaling factor) pairs and one block of ``quant_flax.py`` picks its path: float
(``quant_mode=False``), simulated fake quantization (quant_mode with ``train=True``) or integer arithmetic
(quant_mode in inference, where the arrays between the embedding lookup and the last layer are integer dtypes).
Integer activations are dequantized only where they leave the encoder; the pooler and the heads run in float.

The range statistics and Hugging Face's other quantization buffers live in the variable collection
``"quant_stats"``: a model object holds ``params`` and ``quant_stats``, and ``model(..., train=True)`` returns
``(output, new_quant_stats)``. Both flatten with "." to canonical checkpoint names.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..common.backend_flax import check_indices, checkpointed, concrete
from ..common.encoder_heads_flax import (
    FlaxEncoderForMaskedLM,
    FlaxEncoderForMultipleChoice,
    FlaxEncoderForQuestionAnswering,
    FlaxEncoderForSequenceClassification,
    FlaxEncoderForTokenClassification,
    FlaxEncoderHead,
)
from ..common.layers_flax import (
    Pooler,
    additive_mask,
    head_mask_per_layer,
    input_shape,
    merge_heads,
    padding_keep_mask,
    split_heads,
)
from ..common.modeling_flax import FlaxPreTrainedModel, Params, flatten_params, unflatten_params
from ..common.outputs import BaseModelOutputWithPastAndCrossAttentions, BaseModelOutputWithPoolingAndCrossAttentions
from ..common.pretrained import save_pretrained_arrays
from ..common.validation import check_sequence_length
from . import quant
from .config import IBertConfig
from .quant_flax import OPS, STATS, IntGELU, IntLayerNorm, IntSoftmax, QuantAct, QuantEmbedding, QuantLinear
from .weights import weights_spec

Array = Any


def as_float(x: Array, scale) -> Array:
    """An integer activation as the float32 value Hugging Face's simulation holds (x_int * scale); floats as given."""
    return quant.dequantize(OPS, x, scale) if OPS.is_integer(x) else x


def position_ids_from_input_ids(input_ids: Array, padding_idx: int) -> Array:
    """Real tokens count from ``padding_idx + 1`` in order; padding keeps position ``padding_idx``."""
    is_token = (jnp.asarray(input_ids, jnp.int32) != padding_idx).astype(jnp.int32)
    return jnp.cumsum(is_token, axis=1) * is_token + padding_idx


def rows_in_range(config: IBertConfig, input_ids, token_type_ids, position_ids) -> Array | None:
    """[batch] bool, True where every index the caller gave lies in its table; None when all are known now (a bad
    one raised)."""
    given = ((input_ids, config.vocab_size), (token_type_ids, config.type_vocab_size),
             (position_ids, config.max_position_embeddings))
    traced = [(jnp.asarray(ids), size) for ids, size in given if ids is not None and concrete(ids) is None]
    if not traced:
        return None
    return jnp.all(jnp.stack([jnp.all((ids >= 0) & (ids < size), axis=-1) for ids, size in traced]), axis=0)


def nan_in_invalid_rows(outputs, valid_rows: Array | None):
    """``outputs`` (a pytree of float arrays [batch, ...]) with NaN in the rows ``valid_rows`` rejects: integer
    inference cannot carry the NaN of a bad index's embedding row, so its float outputs are marked here."""
    if valid_rows is None:
        return outputs
    return jax.tree_util.tree_map(
        lambda x: jnp.where(valid_rows.reshape((-1,) + (1,) * (x.ndim - 1)), x, jnp.asarray(jnp.nan, x.dtype)), outputs)


def check_binary_head_mask(head_mask: Array | None) -> None:
    """Integer probabilities can be kept or silenced, not scaled by a fraction (checked when the values are known)."""
    values = concrete(head_mask)
    if values is not None and not np.isin(values, (0, 1)).all():
        raise ValueError("head_mask must hold only 0 (silence a head) and 1 (keep it) in integer inference "
                         "(quant_mode with train=False): integer probabilities cannot be scaled by a fraction")


# ----------------------------------------------------------------------------------------------------------------
# Quantized building blocks with transformers' bit widths


def _linear(config: IBertConfig, in_features: int, out_features: int) -> QuantLinear:
    return QuantLinear(in_features, out_features, bias=True, weight_bit=quant.WEIGHT_BIT, bias_bit=quant.BIAS_BIT,
                       per_channel=True, quant_mode=config.quant_mode, std=config.initializer_range)


def _act(config: IBertConfig, bits: int = quant.ACT_BIT) -> QuantAct:
    return QuantAct(bits, quant_mode=config.quant_mode)


def _layer_norm(config: IBertConfig) -> IntLayerNorm:
    return IntLayerNorm(config.hidden_size, eps=config.layer_norm_eps, output_bit=quant.LN_OUTPUT_BIT,
                        quant_mode=config.quant_mode, force_dequant=config.force_dequant)


def _embedding(config: IBertConfig, num_embeddings: int, padding_idx: int | None = None) -> QuantEmbedding:
    return QuantEmbedding(num_embeddings, config.hidden_size, padding_idx=padding_idx, weight_bit=quant.WEIGHT_BIT,
                          quant_mode=config.quant_mode, std=config.initializer_range)


# ----------------------------------------------------------------------------------------------------------------
# Encoder


class _Block(nn.Module):
    """Fields every I-BERT block carries; ``gradient_checkpointing`` runs the layers under it with ``nn.remat``."""

    config: IBertConfig
    gradient_checkpointing: bool = False


class FlaxIBertEmbeddings(_Block):
    """Word + token type + position embeddings, each sum requantized to 16 bits, then I-LayerNorm and 8 bits."""

    def setup(self):
        c = self.config
        self.word_embeddings = _embedding(self.config, c.vocab_size, c.pad_token_id)
        self.token_type_embeddings = _embedding(self.config, c.type_vocab_size)
        self.position_embeddings = _embedding(self.config, c.max_position_embeddings, c.pad_token_id)
        self.embeddings_act1 = _act(self.config, quant.EMBEDDING_ACT_BIT)
        self.embeddings_act2 = _act(self.config, quant.EMBEDDING_ACT_BIT)  # unused, as in Hugging Face: kept for its buffers
        self.LayerNorm = _layer_norm(self.config)
        self.output_activation = _act(self.config)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def __call__(self, input_ids, token_type_ids, position_ids, inputs_embeds, deterministic: bool):
        c, train = self.config, not deterministic
        _ = self.embeddings_act2.x_min  # creates its buffers
        if inputs_embeds is None:
            check_indices(input_ids, c.vocab_size, "input_ids")
            inputs_embeds, embeds_scale = self.word_embeddings(input_ids, train=train)
            batch, seq = jnp.shape(input_ids)
        else:
            inputs_embeds, embeds_scale = jnp.asarray(inputs_embeds, jnp.float32), None
            batch, seq = inputs_embeds.shape[:2]
        if position_ids is None:
            position_ids = self._default_position_ids(input_ids, batch, seq)
        else:
            check_indices(position_ids, c.max_position_embeddings, "position_ids", "max_position_embeddings")
        if token_type_ids is None:
            token_type_ids = jnp.zeros((batch, seq), jnp.int32)
        else:
            check_indices(token_type_ids, c.type_vocab_size, "token_type_ids", "type_vocab_size")
        # Hugging Face requantizes both sums with embeddings_act1 (its range statistics move twice per call).
        token_types, token_types_scale = self.token_type_embeddings(token_type_ids, train=train)
        x, scale = self.embeddings_act1(inputs_embeds, embeds_scale, identity=token_types,
                                        identity_scaling_factor=token_types_scale, train=train)
        positions, positions_scale = self.position_embeddings(position_ids, train=train)
        x, scale = self.embeddings_act1(x, scale, identity=positions, identity_scaling_factor=positions_scale,
                                        train=train)
        x, scale = self.LayerNorm(x, scale, train=train)
        return self.output_activation(self.dropout(x, deterministic=deterministic), scale, train=train)

    def _default_position_ids(self, input_ids, batch, seq):
        padding_idx = self.config.pad_token_id
        if input_ids is not None:
            return position_ids_from_input_ids(input_ids, padding_idx)
        # Embeddings show no padding to skip: number every position.
        first = padding_idx + 1
        return jnp.broadcast_to(jnp.arange(first, first + seq, dtype=jnp.int32), (batch, seq))


class FlaxIBertSelfAttention(_Block):
    """Multi-head self-attention over 8-bit queries, keys and values with the integer softmax."""

    def setup(self):
        c = self.config
        self.num_heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query = _linear(self.config, c.hidden_size, c.hidden_size)
        self.key = _linear(self.config, c.hidden_size, c.hidden_size)
        self.value = _linear(self.config, c.hidden_size, c.hidden_size)
        self.query_activation = _act(self.config)
        self.key_activation = _act(self.config)
        self.value_activation = _act(self.config)
        self.output_activation = _act(self.config)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)
        self.softmax = IntSoftmax(quant.ACT_BIT, quant_mode=c.quant_mode, force_dequant=c.force_dequant)

    def __call__(self, hidden_states, scale, attention_mask, head_mask, input_scale, deterministic: bool):
        """Returns (context, its scale, probabilities, their scale). ``input_scale``: see ``FlaxIBertLayer``."""
        train = not deterministic
        query, query_scale = self.query_activation(*self.query(hidden_states, scale, input_scale, train=train),
                                                   train=train)
        key, key_scale = self.key_activation(*self.key(hidden_states, scale, input_scale, train=train), train=train)
        value, value_scale = self.value_activation(*self.value(hidden_states, scale, input_scale, train=train),
                                                   train=train)
        query, key, value = (split_heads(x, self.num_heads) for x in (query, key, value))
        scores, scores_scale = quant.attention_scores(OPS, query, key, query_scale, key_scale, self.head_size)
        probs, probs_scale = self.softmax(scores, scores_scale, attention_mask=attention_mask, train=train)
        if not OPS.is_integer(probs):  # dropout acts in training only, so integer probabilities never meet it
            probs = self.dropout(probs, deterministic=deterministic)
        if head_mask is not None:
            probs = probs * (head_mask.astype(jnp.int32) if OPS.is_integer(probs) else head_mask)
        context, context_scale = quant.attention_context(OPS, probs, value, probs_scale, value_scale)
        context, context_scale = self.output_activation(merge_heads(context), context_scale, train=train)
        return context, context_scale, probs, probs_scale


class FlaxIBertResidualOutput(_Block):
    """dense -> dropout -> add the block input (requantized to 22 bits) -> I-LayerNorm -> 8 bits.

    Serves as both ``attention.output`` and the layer's ``output`` (transformers' SelfOutput and Output).
    """

    input_size: int = 0

    def setup(self):
        self.dense = _linear(self.config, self.input_size, self.config.hidden_size)
        self.ln_input_act = _act(self.config, quant.LN_INPUT_BIT)
        self.LayerNorm = _layer_norm(self.config)
        self.output_activation = _act(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)

    def __call__(self, hidden_states, scale, residual, residual_scale, deterministic: bool):
        train = not deterministic
        hidden_states, scale = self.dense(hidden_states, scale, train=train)
        if not OPS.is_integer(hidden_states):
            hidden_states = self.dropout(hidden_states, deterministic=deterministic)
        hidden_states, scale = self.ln_input_act(hidden_states, scale, identity=residual,
                                                 identity_scaling_factor=residual_scale, train=train)
        hidden_states, scale = self.LayerNorm(hidden_states, scale, train=train)
        return self.output_activation(hidden_states, scale, train=train)


class FlaxIBertAttention(_Block):
    def setup(self):
        self.self = FlaxIBertSelfAttention(self.config)
        self.output = FlaxIBertResidualOutput(self.config, input_size=self.config.hidden_size)

    def __call__(self, hidden_states, scale, attention_mask, head_mask, input_scale, deterministic: bool):
        context, context_scale, probs, probs_scale = self.self(hidden_states, scale, attention_mask, head_mask, input_scale,
                                                               deterministic)
        residual = hidden_states
        if input_scale is not None:  # HF rounds the residual to the handed scale's grid
            residual = quant.rescale(OPS, hidden_states, input_scale, scale)
        output, output_scale = self.output(context, context_scale, residual, scale, deterministic)
        return output, output_scale, probs, probs_scale


class FlaxIBertIntermediate(_Block):
    def setup(self):
        c = self.config
        self.dense = _linear(self.config, c.hidden_size, c.intermediate_size)
        self.intermediate_act_fn = IntGELU(quant_mode=c.quant_mode, force_dequant=c.force_dequant)
        self.output_activation = _act(self.config)

    def __call__(self, hidden_states, scale, deterministic: bool):
        train = not deterministic
        hidden_states, scale = self.intermediate_act_fn(*self.dense(hidden_states, scale, train=train))
        return self.output_activation(hidden_states, scale, train=train)


class FlaxIBertLayer(_Block):
    def setup(self):
        c = self.config
        self.attention = FlaxIBertAttention(c)
        self.intermediate = FlaxIBertIntermediate(c)
        self.output = FlaxIBertResidualOutput(c, input_size=c.intermediate_size)
        self.pre_intermediate_act = _act(self.config)
        self.pre_output_act = _act(self.config)

    def __call__(self, hidden_states, scale, attention_mask, head_mask, input_scale, deterministic: bool):
        """Returns (output, its scale, attention probabilities, their scale).

        transformers (like the authors' fairseq code) hands every layer the embeddings' scale as ``scale``, not
        the previous layer's (transformers issue 26738), and checkpoints were trained so: later layers quantize
        their bias on that grid and round their residual to it. The simulated path holds float values and follows
        directly; in integer inference the integers are in their own ``input_scale``, and the layer converts
        exactly where HF divides by the handed scale, so both paths compute what Hugging Face computes.
        """
        train = not deterministic
        attended, attended_scale, probs, probs_scale = self.attention(hidden_states, scale, attention_mask, head_mask,
                                                                      input_scale, deterministic)
        # The feed-forward block and its residual both take the requantized attention output, as in Hugging Face.
        attended, attended_scale = self.pre_intermediate_act(attended, attended_scale, train=train)
        intermediate, intermediate_scale = self.intermediate(attended, attended_scale, deterministic)
        intermediate, intermediate_scale = self.pre_output_act(intermediate, intermediate_scale, train=train)
        output, output_scale = self.output(intermediate, intermediate_scale, attended, attended_scale, deterministic)
        return output, output_scale, probs, probs_scale


class FlaxIBertLayerCollection(_Block):
    """The ``encoder.layer`` list: children named "0", "1", ... as PyTorch's ModuleList."""

    def setup(self):
        layer = checkpointed(FlaxIBertLayer, self.gradient_checkpointing, static_argnums=(6,))
        self.layers = [layer(self.config, name=str(i)) for i in range(self.config.num_hidden_layers)]

    def __call__(self, hidden_states, scale, attention_mask, head_masks, deterministic, output_attentions,
                 output_hidden_states):
        """Hidden states and attentions come out as floats (dequantized in integer inference)."""
        all_hidden, all_probs = [], []
        embeddings_scale = scale
        for layer, head_mask in zip(self.layers, head_masks):
            if output_hidden_states:
                all_hidden.append(as_float(hidden_states, scale))
            # every layer is handed the embeddings' scale, as in Hugging Face (see FlaxIBertLayer)
            input_scale = scale if OPS.is_integer(hidden_states) else None
            hidden_states, scale, probs, probs_scale = layer(hidden_states, embeddings_scale, attention_mask, head_mask,
                                                             input_scale, deterministic)
            if output_attentions:
                all_probs.append(as_float(probs, probs_scale))
        sequence_output = as_float(hidden_states, scale)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=sequence_output,
            hidden_states=tuple(all_hidden) + (sequence_output,) if output_hidden_states else None,
            attentions=tuple(all_probs) if output_attentions else None,
        )


class FlaxIBertEncoder(_Block):
    """Holds the layers under the name ``layer`` (``encoder.layer.0...``, as in PyTorch)."""

    def setup(self):
        self.layer = FlaxIBertLayerCollection(self.config, self.gradient_checkpointing)

    def __call__(self, *args):
        return self.layer(*args)


class FlaxIBertModule(_Block):
    """The bare encoder: quantized embeddings and layers, optional float pooler."""

    add_pooling_layer: bool = True
    label_names = ()  # class constant: the base model takes no labels

    def setup(self):
        self.embeddings = FlaxIBertEmbeddings(self.config)
        self.encoder = FlaxIBertEncoder(self.config, self.gradient_checkpointing)
        if self.add_pooling_layer:
            self.pooler = Pooler(self.config)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, output_attentions=None, output_hidden_states=None, deterministic: bool = True):
        c = self.config
        output_attentions = c.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = c.output_hidden_states if output_hidden_states is None else output_hidden_states
        batch, seq = input_shape(input_ids, inputs_embeds)
        check_sequence_length(seq, c.max_sequence_length)
        mask = None
        if attention_mask is not None:
            mask = additive_mask(padding_keep_mask(attention_mask, batch, seq, seq, "attention_mask"), jnp.float32)
        head_masks = head_mask_per_layer(head_mask, c.num_hidden_layers, c.num_attention_heads)
        integer = c.quant_mode and deterministic
        if integer:
            check_binary_head_mask(head_mask)
        # Integer inference keeps int64 accumulators between blocks: the whole encoder runs with 64-bit types.
        with jax.enable_x64(True) if integer else contextlib.nullcontext():
            hidden_states, scale = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds,
                                                   deterministic)
            encoded = self.encoder(hidden_states, scale, mask, head_masks, deterministic, output_attentions,
                                   output_hidden_states)
        sequence_output, all_hidden, all_probs = nan_in_invalid_rows(
            (encoded.last_hidden_state, encoded.hidden_states, encoded.attentions),
            rows_in_range(c, input_ids, token_type_ids, position_ids))
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.add_pooling_layer else None,
            hidden_states=all_hidden,
            attentions=all_probs,
        )


# ----------------------------------------------------------------------------------------------------------------
# Heads: the shared encoder heads (common/encoder_heads_flax.py) on I-BERT's base module (float in every path, as
# in Hugging Face)


class _FlaxIBertHead(FlaxEncoderHead):
    """The family's head base. As transformers' I-BERT, the heads ignore classifier_dropout."""

    reads_classifier_dropout = False  # a class setting, not a module field

    @classmethod
    def base_model_class(cls) -> type[FlaxIBertModule]:
        """The bare model's module, which head modules hold under ``base_model_prefix``."""
        return FlaxIBertModule


class FlaxIBertForMaskedLMModule(FlaxEncoderForMaskedLM, _FlaxIBertHead):
    pass


class FlaxIBertForSequenceClassificationModule(FlaxEncoderForSequenceClassification, _FlaxIBertHead):
    pass


class FlaxIBertForMultipleChoiceModule(FlaxEncoderForMultipleChoice, _FlaxIBertHead):
    pass


class FlaxIBertForTokenClassificationModule(FlaxEncoderForTokenClassification, _FlaxIBertHead):
    pass


class FlaxIBertForQuestionAnsweringModule(FlaxEncoderForQuestionAnswering, _FlaxIBertHead):
    pass


# ----------------------------------------------------------------------------------------------------------------
# Model objects


def initial_quant_stats(shapes: dict[str, Any]) -> dict[str, jax.Array]:
    """The buffers' values before calibration, as Hugging Face registers them: x_min -1e-5, x_max 1e-5, else 0."""
    start = {"x_min": -1e-5, "x_max": 1e-5}
    return {path: jnp.full(leaf.shape, start.get(path.rpartition(".")[2], 0.0), jnp.float32)
            for path, leaf in shapes.items()}


class FlaxIBertPreTrainedModel(FlaxPreTrainedModel):
    """Base of the I-BERT model objects: ``params`` (the "params" collection) and ``quant_stats`` (the range
    statistics and Hugging Face's other quantization buffers), config, from_pretrained / save_pretrained and the
    call. I-BERT computes in float32 (its scaling factors and simulated integers need it)."""

    config_class = IBertConfig
    base_model_prefix = "ibert"
    module_class: type[nn.Module] = FlaxIBertModule
    input_rank = 2  # of input_ids; multiple choice takes [batch, num_choices, sequence]

    def __init__(self, config: IBertConfig, input_shape: tuple[int, ...] | None = None, seed: int = 0,
                 dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, _do_init: bool = True, **module_kwargs):
        if jnp.dtype(dtype) != jnp.float32 or jnp.dtype(param_dtype) != jnp.float32:
            raise ValueError(f"{type(self).__name__} computes in float32 (its quantization scales need it), "
                             f"got dtype={jnp.dtype(dtype).name}, param_dtype={jnp.dtype(param_dtype).name}")
        self._abstract: dict[tuple[int, ...], Any] = {}
        self.quant_stats: Params | None = None
        if issubclass(self.module_class, FlaxEncoderHead):
            module_kwargs["base_model_prefix"] = self.base_model_prefix
        super().__init__(config, self.module_class(config, **module_kwargs),
                         input_shape=input_shape or (1,) * self.input_rank, seed=seed, _do_init=_do_init)
        if _do_init:
            self.quant_stats = self.init_quant_stats(self.input_shape)

    def weights_spec(self):
        return weights_spec(self.config, self.base_model_prefix)

    def dummy_inputs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        return {"input_ids": jnp.zeros(input_shape, jnp.int32)}

    # -- the two collections -----------------------------------------------------------------------------------

    def _abstract_variables(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """Both collections as shapes and dtypes (traced once per input shape)."""
        if input_shape not in self._abstract:
            def init(rng):
                return self.module.init({"params": rng}, **self.dummy_inputs(input_shape))

            self._abstract[input_shape] = jax.eval_shape(init, jax.random.PRNGKey(0))
        return self._abstract[input_shape]

    def _abstract_params(self, input_shape: tuple[int, ...]) -> Params:
        return self._abstract_variables(input_shape)["params"]

    def _abstract_stats(self, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        return flatten_params(self._abstract_variables(input_shape or self.input_shape)[STATS])

    def init_quant_stats(self, input_shape: tuple[int, ...] | None = None) -> Params:
        """Uncalibrated statistics: x_min -1e-5, x_max 1e-5, every other buffer 0."""
        return unflatten_params(initial_quant_stats(self._abstract_stats(input_shape)))

    def _require_stats(self, quant_stats: Params | None) -> Params:
        quant_stats = self.quant_stats if quant_stats is None else quant_stats
        if quant_stats is None:
            raise ValueError(f"{type(self).__name__} has no quant_stats: pass quant_stats= or call init_quant_stats()")
        return quant_stats

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """{dotted path: shape} of every parameter and buffer (the checkpoint's tensors)."""
        return {**super().parameter_shapes(), **{path: tuple(leaf.shape) for path, leaf in self._abstract_stats().items()}}

    def numpy_weights(self) -> dict[str, np.ndarray]:
        stats = {path: np.asarray(value) for path, value in flatten_params(self._require_stats(None)).items()}
        return {**super().numpy_weights(), **stats}

    # -- from_pretrained / save_pretrained ---------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any):
        """As ``FlaxPreTrainedModel.from_pretrained``; buffers the checkpoint lacks keep their initial values."""
        loaded = super().from_pretrained(name_or_path, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        flat = flatten_params(model.params)  # the base class loaded parameters and buffers together
        stats = initial_quant_stats(model._abstract_stats())
        stats.update({path: jnp.asarray(flat.pop(path), jnp.float32) for path in list(stats) if path in flat})
        model.params, model.quant_stats = unflatten_params(flat), unflatten_params(stats)
        return loaded

    def save_pretrained(self, folder: str | os.PathLike, *, overwrite: bool = False,
                        max_shard_size: int | str | None = None, params: Params | None = None,
                        quant_stats: Params | None = None) -> None:
        """Write config.json and model.safetensors with canonical names, buffers included."""
        tree = {**flatten_params(self._require_params(params)), **flatten_params(self._require_stats(quant_stats))}
        save_pretrained_arrays(folder, self.config, {path: np.asarray(value) for path, value in tree.items()},
                               self.weights_spec(), "flax", overwrite=overwrite, max_shard_size=max_shard_size)

    # -- calling -----------------------------------------------------------------------------------------------

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        params=None,
        quant_stats=None,
        dropout_rng=None,
        train: bool = False,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        labels=None,
        *,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
    ):
        """Run the model; a pure function of ``params`` and ``quant_stats`` (default: the model's own).

        ``train=True`` runs the training path (dropout, which needs ``dropout_rng``; fake quantization when
        ``quant_mode``), updates the statistics and returns ``(output, new_quant_stats)``. Otherwise the output
        alone; with ``quant_mode`` that is integer inference. Heads compute the loss from ``labels`` (question
        answering: ``start_positions`` and ``end_positions``) as Hugging Face does.
        """
        if train and dropout_rng is None:
            raise ValueError("train=True applies dropout and needs dropout_rng=jax.random.PRNGKey(...)")
        variables = {"params": self._require_params(params), STATS: self._require_stats(quant_stats)}
        inputs = self.checked_inputs(dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, deterministic=not train,
            labels=labels, start_positions=start_positions, end_positions=end_positions))
        if train:
            out, mutated = self.module.apply(variables, **inputs, rngs={"dropout": dropout_rng}, mutable=[STATS])
        else:
            out = self.module.apply(variables, **inputs)
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        out = out if return_dict else out.to_tuple()
        return (out, mutated[STATS]) if train else out


class FlaxIBertModel(FlaxIBertPreTrainedModel):
    """The bare model: last hidden state and (with ``add_pooling_layer``) the pooled <s> state."""

    module_class = FlaxIBertModule

    def __init__(self, config: IBertConfig, input_shape=None, seed: int = 0, dtype: Any = jnp.float32,
                 param_dtype: Any = jnp.float32, _do_init: bool = True, add_pooling_layer: bool = True):
        super().__init__(config, input_shape, seed, dtype, param_dtype, _do_init, add_pooling_layer=add_pooling_layer)


class FlaxIBertForMaskedLM(FlaxIBertPreTrainedModel):
    module_class = FlaxIBertForMaskedLMModule


class FlaxIBertForSequenceClassification(FlaxIBertPreTrainedModel):
    module_class = FlaxIBertForSequenceClassificationModule


class FlaxIBertForTokenClassification(FlaxIBertPreTrainedModel):
    module_class = FlaxIBertForTokenClassificationModule


class FlaxIBertForMultipleChoice(FlaxIBertPreTrainedModel):
    module_class = FlaxIBertForMultipleChoiceModule
    input_rank = 3


class FlaxIBertForQuestionAnswering(FlaxIBertPreTrainedModel):
    module_class = FlaxIBertForQuestionAnsweringModule
