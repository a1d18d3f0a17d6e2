"""OPT in PyTorch.

A decoder-only transformer: token embeddings (optionally projected from ``word_embed_proj_dim`` to
``hidden_size``), learned positions numbered from the attention mask, and layers that normalize before each block
(opt-125m, 1.3b and up) or after it (opt-350m). Module attribute names are Hugging Face's, so
``named_parameters()`` are the canonical checkpoint names.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..common.cache import StaticCache
from ..common.layers_pt import (
    ProjectedAttention,
    activation,
    additive_mask,
    causal_keep_mask,
    causal_lm_loss,
    check_ids,
    check_static_cache_room,
    head_mask_per_layer,
    layer_dropped,
    new_static_cache,
    run_layer,
    sequence_classification_loss,
    span_logits_and_loss,
    static_cache_keep_mask,
    static_cache_slots,
    tuple_or_none,
)
from ..common.modeling_pt import PreTrainedModel
from ..common.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutputWithPast,
)
from ..common.validation import (
    check_binary_mask,
    check_rank,
    check_sequence_length,
    check_shape,
    check_static_cache_length,
    input_shape,
)
from ..generation.mixin_pt import GenerationMixin
from .config import POSITION_OFFSET, OPTConfig
from .weights import weights_spec


def position_ids_from_attention_mask(attention_mask: torch.Tensor, past_length: int = 0) -> torch.Tensor:
    """Real tokens count 0, 1, 2, ... from the first unmasked one (padding gets -1), so a left-padded row has the
    positions of the unpadded row; the new tokens are the last ones, after ``past_length`` cached positions."""
    positions = (torch.cumsum(attention_mask, dim=1) * attention_mask - 1).long()
    return positions[:, past_length:]


def static_position_ids(attention_mask: torch.Tensor, index: torch.Tensor, seq: int) -> torch.Tensor:
    """``position_ids_from_attention_mask`` for ``seq`` tokens written at a StaticCache's ``index``: the mask covers
    every slot, and the positions are taken by a tensor index, so the step's graph does not depend on it."""
    return position_ids_from_attention_mask(attention_mask).index_select(1, static_cache_slots(index, seq))


# ----------------------------------------------------------------------------------------------------------------
# Blocks


class OPTLearnedPositionalEmbedding(nn.Embedding):
    """Learned positions; position p is row p + 2 (fairseq kept the first two rows)."""

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__(num_positions + POSITION_OFFSET, embedding_dim)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(position_ids + POSITION_OFFSET)


class OPTDecoderLayer(nn.Module):
    """Self-attention and feed-forward blocks with residuals; LayerNorm before each block when
    ``do_layer_norm_before`` (pre-LN), after each residual sum otherwise (post-LN, opt-350m)."""

    def __init__(self, config: OPTConfig):
        super().__init__()
        hidden, affine = config.hidden_size, config.layer_norm_elementwise_affine
        self.pre_layer_norm = config.do_layer_norm_before
        self.dropout = config.dropout
        # OPT scales the queries before the product, as fairseq does.
        self.self_attn = ProjectedAttention(hidden, config.num_attention_heads, dropout=config.attention_dropout,
                                            bias=config.enable_bias, scale_query=True)
        self.activation_fn = activation(config.activation_function)
        self.self_attn_layer_norm = nn.LayerNorm(hidden, elementwise_affine=affine)
        self.fc1 = nn.Linear(hidden, config.ffn_dim, bias=config.enable_bias)
        self.fc2 = nn.Linear(config.ffn_dim, hidden, bias=config.enable_bias)
        self.final_layer_norm = nn.LayerNorm(hidden, elementwise_affine=affine)

    def forward(self, hidden_states, mask=None, head_mask=None, past_key_value=None, output_attentions=False,
                cache_index=None):
        """Returns (output, attention probabilities or None, this layer's (key, value)); ``cache_index``: where a
        StaticCache writes."""
        attended, probs, key_value = self.self_attn(
            self._normed(hidden_states, self.self_attn_layer_norm, before=True), mask, head_mask,
            past_key_value=past_key_value, output_attentions=output_attentions, cache_index=cache_index,
        )
        hidden_states = self._residual(attended, hidden_states, self.self_attn_layer_norm)
        fed = self.fc2(self.activation_fn(self.fc1(self._normed(hidden_states, self.final_layer_norm, before=True))))
        return self._residual(fed, hidden_states, self.final_layer_norm), probs, key_value

    def _normed(self, hidden_states, norm: nn.LayerNorm, before: bool):
        return norm(hidden_states) if self.pre_layer_norm == before else hidden_states

    def _residual(self, update, residual, norm: nn.LayerNorm):
        hidden_states = residual + F.dropout(update, p=self.dropout, training=self.training)
        return self._normed(hidden_states, norm, before=False)


class OPTDecoder(nn.Module):
    def __init__(self, config: OPTConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.word_embed_proj_dim, config.pad_token_id)
        self.embed_positions = OPTLearnedPositionalEmbedding(config.max_position_embeddings, config.hidden_size)
        projected = config.word_embed_proj_dim != config.hidden_size
        self.project_out = nn.Linear(config.hidden_size, config.word_embed_proj_dim, bias=False) if projected else None
        self.project_in = nn.Linear(config.word_embed_proj_dim, config.hidden_size, bias=False) if projected else None
        # Only pre-LN models end with a LayerNorm; _remove_final_layer_norm keeps checkpoints fine-tuned without it.
        if config.do_layer_norm_before and not config._remove_final_layer_norm:
            self.final_layer_norm = nn.LayerNorm(config.hidden_size,
                                                 elementwise_affine=config.layer_norm_elementwise_affine)
        else:
            self.final_layer_norm = None
        self.layers = nn.ModuleList([OPTDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                use_cache=False, output_attentions=False, output_hidden_states=False, position_ids=None):
        """``past_key_values``: the legacy tuple cache, or a StaticCache from ``init_cache`` (then
        ``attention_mask`` covers all its slots, ``use_cache`` is implied and the cache comes back advanced)."""
        config = self.config
        batch, seq = input_shape(input_ids, inputs_embeds)
        static = isinstance(past_key_values, StaticCache)
        device = (input_ids if inputs_embeds is None else inputs_embeds).device
        # Checked in the order TF and Flax check them (cache and mask, then ids), so a batch with several faults
        # gets the same error in every framework.
        if static:
            # init_cache checked its slots against the positions; the room left is checked before any is read.
            cache_index, use_cache, past_layers = past_key_values.index, True, past_key_values.layers
            max_length = past_key_values.max_length
            check_static_cache_room(cache_index, seq, max_length)
            if attention_mask is None:
                attention_mask = torch.ones((batch, max_length), dtype=torch.long, device=device)
            keep = static_cache_keep_mask(attention_mask, cache_index, seq, max_length, batch)
        else:
            cache_index, past_layers = None, past_key_values
            past_length = _past_length(past_key_values, batch, len(self.layers))
            check_sequence_length(past_length + seq, config.max_position_embeddings)
            attention_mask = self._padding_mask(attention_mask, batch, past_length + seq, device)
            keep = causal_keep_mask(attention_mask, seq)
        if inputs_embeds is None:
            check_ids(input_ids, config.vocab_size)
            inputs_embeds = self.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = (static_position_ids(attention_mask, cache_index, seq) if static
                            else position_ids_from_attention_mask(attention_mask, past_length))
        else:
            _check_position_ids(position_ids, batch, seq, config.max_position_embeddings)
        if self.project_in is not None:
            inputs_embeds = self.project_in(inputs_embeds)
        hidden_states = inputs_embeds + self.embed_positions(position_ids)
        mask = additive_mask(keep, hidden_states.dtype)
        head_masks = head_mask_per_layer(head_mask, config.num_hidden_layers, config.num_attention_heads,
                                         hidden_states.dtype)

        all_hidden = [] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        cache = [] if use_cache else None
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden.append(hidden_states)
            past = past_layers[i] if past_layers is not None else None
            if layer_dropped(self, config.layerdrop):
                if use_cache:
                    cache.append(past)
                continue
            hidden_states, probs, key_value = run_layer(self, layer, hidden_states, mask, head_masks[i], past,
                                                        output_attentions, cache_index)
            if output_attentions:
                all_attentions.append(probs)
            if use_cache:
                cache.append(key_value)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        if self.project_out is not None:
            hidden_states = self.project_out(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            past_key_values=StaticCache(tuple(cache), cache_index + seq) if static else tuple_or_none(cache),
            hidden_states=tuple_or_none(all_hidden),
            attentions=tuple_or_none(all_attentions),
        )

    @staticmethod
    def _padding_mask(attention_mask, batch: int, key_length: int, device) -> torch.Tensor:
        """The 2D mask over cached and new tokens (all ones when none is given): positions come from it."""
        if attention_mask is None:
            return torch.ones((batch, key_length), dtype=torch.long, device=device)
        check_rank("attention_mask", attention_mask.shape, 2, "batch, past + sequence length")
        check_shape("attention_mask", attention_mask.shape, (batch, key_length), "batch, past + sequence length")
        check_binary_mask(torch.unique(attention_mask).double().cpu().numpy())
        return attention_mask


def _check_position_ids(position_ids, batch: int, seq: int, max_positions: int) -> None:
    """Positions run from -1 (what OPT gives padding) to max_position_embeddings - 1."""
    check_shape("position_ids", position_ids.shape, (batch, seq), "batch, sequence")
    if position_ids.numel() and (int(position_ids.min()) < -1 or int(position_ids.max()) >= max_positions):
        bad = int(position_ids.min()) if int(position_ids.min()) < -1 else int(position_ids.max())
        raise ValueError(f"position_ids holds {bad}, outside [-1, {max_positions}) allowed by max_position_embeddings")


def _past_length(past_key_values, batch: int, num_layers: int) -> int:
    """Cached positions in ``past_key_values`` (one (key, value) [batch, heads, past, head_dim] per layer)."""
    if past_key_values is None:
        return 0
    if len(past_key_values) != num_layers:
        raise ValueError(f"past_key_values holds {len(past_key_values)} layers but the model has {num_layers}")
    key = past_key_values[0][0]
    if key.dim() != 4 or key.shape[0] != batch:
        raise ValueError(f"past_key_values keys must have shape [batch={batch}, heads, past length, head_dim], "
                         f"got {list(key.shape)}")
    return key.shape[2]


# ----------------------------------------------------------------------------------------------------------------
# Models


class OPTPreTrainedModel(PreTrainedModel):
    config_class = OPTConfig
    base_model_prefix = "model"

    def weights_spec(self):
        return weights_spec(self.config)

    def initializer_std(self) -> float:
        return self.config.init_std

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.decoder.embed_tokens

    def init_cache(self, batch_size: int, max_length: int) -> StaticCache:
        """A StaticCache of ``max_length`` zero slots per layer for compiled generation (index 0).

        Pass it as ``past_key_values`` with an ``attention_mask`` of [batch_size, max_length] (0 for padding);
        each call writes its tokens at the cache's index and returns the cache advanced past them.
        """
        config = self.config
        check_static_cache_length(max_length, config.max_position_embeddings)
        heads = config.num_attention_heads
        return new_static_cache(config.num_hidden_layers, batch_size, heads, max_length, config.hidden_size // heads,
                                self.dtype, self.device)

    def _add_base_model(self) -> None:
        self.model = OPTModel(self.config)


    def _decode(self, input_ids, attention_mask, head_mask, past_key_values, inputs_embeds, use_cache,
                output_attentions, output_hidden_states, position_ids) -> BaseModelOutputWithPast:
        """The decoder's output, with the config's defaults for the flags left None."""
        return self.base_model.decoder(
            input_ids, attention_mask, head_mask, past_key_values, inputs_embeds,
            use_cache=self.config_default("use_cache", use_cache),
            output_attentions=self.config_default("output_attentions", output_attentions),
            output_hidden_states=self.config_default("output_hidden_states", output_hidden_states),
            position_ids=position_ids,
        )


class OPTModel(OPTPreTrainedModel):
    """The bare decoder; returns its last hidden state (of size ``word_embed_proj_dim``) and its cache."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self.decoder = OPTDecoder(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                position_ids=None):
        out = self._decode(input_ids, attention_mask, head_mask, past_key_values, inputs_embeds, use_cache,
                           output_attentions, output_hidden_states, position_ids)
        return self.returned(out, return_dict)


class OPTForCausalLM(GenerationMixin, OPTPreTrainedModel):
    """The language model: logits over the vocabulary from the (tied) token embeddings."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self._add_base_model()
        self.lm_head = nn.Linear(config.word_embed_proj_dim, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                position_ids=None):
        outputs = self._decode(input_ids, attention_mask, head_mask, past_key_values, inputs_embeds, use_cache,
                               output_attentions, output_hidden_states, position_ids)
        logits = self.lm_head(outputs.last_hidden_state)
        loss = causal_lm_loss(logits, labels, self.config.vocab_size) if labels is not None else None
        out = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                     hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return self.returned(out, return_dict)


class OPTForSequenceClassification(OPTPreTrainedModel):
    """Classifies each sequence from its last token that is not padding (any padding side), as GPT-2 does."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self._add_base_model()
        self.score = nn.Linear(config.word_embed_proj_dim, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                position_ids=None):
        outputs = self._decode(input_ids, attention_mask, head_mask, past_key_values, inputs_embeds, use_cache,
                               output_attentions, output_hidden_states, position_ids)
        logits = self.score(outputs.last_hidden_state)
        batch = logits.shape[0]
        pooled = logits[torch.arange(batch, device=logits.device), self._last_token(input_ids, batch)]
        loss = sequence_classification_loss(self.config, pooled, labels) if labels is not None else None
        out = SequenceClassifierOutputWithPast(loss=loss, logits=pooled, past_key_values=outputs.past_key_values,
                                               hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return self.returned(out, return_dict)

    def _last_token(self, input_ids, batch: int):
        """Index of the rightmost non-pad token per row (0 for a row of padding only), or -1 (the last position)
        when padding cannot be told: no pad_token_id (then only one row is allowed, as in transformers) or
        inputs_embeds instead of ids."""
        pad_token_id = self.config.pad_token_id
        if pad_token_id is None:
            if batch != 1:
                raise ValueError("Cannot handle batch sizes > 1 if no padding token is defined.")
            return -1
        if input_ids is None:
            return -1
        is_token = (input_ids != pad_token_id).int()
        indices = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
        return (indices * is_token).argmax(-1)


class OPTForQuestionAnswering(OPTPreTrainedModel):
    """Extractive QA: start and end logits per token. ``use_cache`` is accepted as in transformers, but the
    output has no cache field, so none is built."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self._add_base_model()
        self.qa_outputs = nn.Linear(config.word_embed_proj_dim, 2)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                start_positions=None, end_positions=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, position_ids=None):
        outputs = self._decode(input_ids, attention_mask, head_mask, past_key_values, inputs_embeds, False,
                               output_attentions, output_hidden_states, position_ids)
        start_logits, end_logits, loss = span_logits_and_loss(self.qa_outputs(outputs.last_hidden_state),
                                                              start_positions, end_positions)
        out = QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                           hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return self.returned(out, return_dict)
