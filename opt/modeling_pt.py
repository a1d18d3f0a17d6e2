"""OPT in PyTorch.

Module attribute names are Hugging Face's, so ``named_parameters()`` are the canonical checkpoint names. Both of
OPT's layouts: opt-125m's (layer norm before each block, a final layer norm) and opt-350m's (layer norm after each
block, ``project_in`` / ``project_out`` between a narrower word embedding and the hidden size). Positions come from
the attention mask, so a left-padded row gives its unpadded outputs.

Two caches: the per-layer (key, value) tuples of transformers (grown by concatenation), and a ``StaticCache`` from
``init_cache`` with preallocated slots, whose steps keep their shapes under ``torch.compile``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..common.backend_pt import check_ids, check_indices, run_layer
from ..common.cache import StaticCache
from ..common.layers_pt import (
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
    static_cache_slots,
)
from ..common.modeling_pt import PreTrainedModel
from ..common.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
    tuple_or_none,
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
from ..generation.mixin_pt import GenerationMixin
from .config import OPTConfig
from .weights import weights_spec


def position_ids_from_attention_mask(attention_mask: torch.Tensor, past_length, seq: int) -> torch.Tensor:
    """OPT numbers the tokens the mask keeps from 0 (padding gets -1), counted over the cached slots too, so a
    left-padded row has the positions of the unpadded row; the positions of the ``seq`` slots from ``past_length``
    on (before the offset of 2). A tensor ``past_length`` (a StaticCache's index) is used as a tensor index, so a
    compiled step's graph does not depend on it."""
    positions = (torch.cumsum(attention_mask, dim=1) * attention_mask - 1).long()
    if isinstance(past_length, torch.Tensor):
        return positions.index_select(1, static_cache_slots(past_length, seq))
    return positions[:, past_length:past_length + seq]


# ----------------------------------------------------------------------------------------------------------------
# Blocks


class OPTDecoderLayer(nn.Module):
    """Self-attention and feed-forward, each a residual block; layer norm before (opt-125m) or after (opt-350m)."""

    def __init__(self, config: OPTConfig):
        super().__init__()
        hidden, affine, eps = config.hidden_size, config.layer_norm_elementwise_affine, config.layer_norm_eps
        self.pre_layer_norm = config.do_layer_norm_before
        self.dropout = nn.Dropout(config.dropout)
        # OPT scales the queries before the product, as fairseq does.
        self.self_attn = ProjectedAttention(hidden, config.num_attention_heads, dropout=config.attention_dropout,
                                            bias=config.enable_bias, scale_query=True)
        self.activation_fn = activation(config.activation_function)
        self.self_attn_layer_norm = nn.LayerNorm(hidden, eps, elementwise_affine=affine)
        self.fc1 = nn.Linear(hidden, config.ffn_dim, bias=config.enable_bias)
        self.fc2 = nn.Linear(config.ffn_dim, hidden, bias=config.enable_bias)
        self.final_layer_norm = nn.LayerNorm(hidden, eps, elementwise_affine=affine)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, past_key_value=None, output_attentions=False,
                cache_index=None):
        """Returns (output, attention probabilities or None, this layer's cache entry)."""
        attended, probs, key_value = self.self_attn(
            self._pre(self.self_attn_layer_norm, hidden_states), attention_mask, head_mask,
            past_key_value=past_key_value, output_attentions=output_attentions, cache_index=cache_index,
        )
        hidden_states = self._post(self.self_attn_layer_norm, hidden_states + self.dropout(attended))
        fed = self.fc2(self.activation_fn(self.fc1(self._pre(self.final_layer_norm, hidden_states))))
        hidden_states = self._post(self.final_layer_norm, hidden_states + self.dropout(fed))
        return hidden_states, probs, key_value

    def _pre(self, norm, hidden_states):
        """The block's input: normalized first in the pre-layer-norm layout."""
        return norm(hidden_states) if self.pre_layer_norm else hidden_states

    def _post(self, norm, hidden_states):
        """The residual sum: normalized in the post-layer-norm layout."""
        return hidden_states if self.pre_layer_norm else norm(hidden_states)


class OPTDecoder(nn.Module):
    """Token and position embeddings, the decoder layers, and the final layer norm / ``project_out``."""

    def __init__(self, config: OPTConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.word_embed_proj_dim, config.pad_token_id)
        self.embed_positions = nn.Embedding(config.max_position_embeddings + config.position_offset, config.hidden_size)
        projected = config.word_embed_proj_dim != config.hidden_size
        self.project_out = nn.Linear(config.hidden_size, config.word_embed_proj_dim, bias=False) if projected else None
        self.project_in = nn.Linear(config.word_embed_proj_dim, config.hidden_size, bias=False) if projected else None
        # Only pre-LN models end with a LayerNorm; _remove_final_layer_norm keeps checkpoints fine-tuned without it.
        if config.do_layer_norm_before and not config._remove_final_layer_norm:
            self.final_layer_norm = nn.LayerNorm(config.hidden_size, config.layer_norm_eps,
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
            past_length, use_cache, past_layers = past_key_values.index, True, past_key_values.layers
            attention_mask, keep = self._static_masks(past_key_values, attention_mask, batch, seq, device)
        else:
            past_length, past_layers = _past_length(past_key_values, batch, config.num_hidden_layers), past_key_values
            check_sequence_length(past_length + seq, config.max_position_embeddings)
            attention_mask = self._padding_mask(attention_mask, batch, past_length + seq, device)
            keep = causal_keep_mask(attention_mask, seq)
        if inputs_embeds is None:
            check_ids(input_ids, config.vocab_size)
            inputs_embeds = self.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = position_ids_from_attention_mask(attention_mask, past_length, seq)
        else:
            check_shape("position_ids", position_ids.shape, (batch, seq), "batch, sequence")
            check_indices(position_ids, config.max_position_embeddings, "position_ids", "max_position_embeddings",
                          low=-1)
        if self.project_in is not None:
            inputs_embeds = self.project_in(inputs_embeds)
        hidden_states = inputs_embeds + self.embed_positions(position_ids + config.position_offset)
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
            if layer_dropped(config.layerdrop, self.training):
                if use_cache:
                    cache.append(past)
                continue
            hidden_states, probs, key_value = run_layer(self, layer, hidden_states, mask, head_masks[i], past,
                                                        output_attentions, past_length if static else None)
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
            past_key_values=StaticCache(tuple(cache), past_length + seq) if static else tuple_or_none(cache),
            hidden_states=tuple_or_none(all_hidden),
            attentions=tuple_or_none(all_attentions),
        )

    def _static_masks(self, cache: StaticCache, attention_mask, batch: int, seq: int, device):
        """(the [batch, max_length] padding mask, the keep mask of the new queries) for a StaticCache call.
        init_cache checked its slots against the positions; the room left is checked before any is read."""
        max_length = cache.max_length
        check_cache_layers(cache, self.config.num_hidden_layers)
        check_static_cache_room(cache.index, seq, max_length)
        if attention_mask is None:
            attention_mask = torch.ones((batch, max_length), dtype=torch.long, device=device)
        return attention_mask, static_cache_keep_mask(attention_mask, cache.index, seq, max_length, batch)

    @staticmethod
    def _padding_mask(attention_mask, batch: int, key_length: int, device) -> torch.Tensor:
        """The 2D mask over cached and new tokens (all ones when none is given): positions come from it."""
        if attention_mask is None:
            return torch.ones((batch, key_length), dtype=torch.long, device=device)
        check_rank("attention_mask", attention_mask.shape, 2, "batch, past + sequence length")
        check_shape("attention_mask", attention_mask.shape, (batch, key_length), "batch, past + sequence length")
        check_binary_mask(torch.unique(attention_mask).double().cpu().numpy())
        return attention_mask


def _past_length(past_key_values, batch: int, num_layers: int) -> int:
    """Cached positions in ``past_key_values`` (one (key, value) [batch, heads, past, head_dim] per layer)."""
    if past_key_values is None:
        return 0
    if len(past_key_values) != num_layers:
        raise ValueError(f"past_key_values holds {len(past_key_values)} layers but the model has {num_layers}")
    key = past_key_values[0][0]
    check_cache_keys(tuple(key.shape), batch)
    return key.shape[2]


# ----------------------------------------------------------------------------------------------------------------
# Models


class OPTPreTrainedModel(PreTrainedModel):
    config_class = OPTConfig
    base_model_prefix = "model"

    def weights_spec(self):
        return weights_spec(self.config)

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



class OPTModel(OPTPreTrainedModel):
    """The bare decoder: its last hidden state has ``word_embed_proj_dim`` features."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self.decoder = OPTDecoder(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                position_ids=None):
        out = self.decoder(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=self.config_default("use_cache", use_cache),
            output_attentions=self.config_default("output_attentions", output_attentions),
            output_hidden_states=self.config_default("output_hidden_states", output_hidden_states),
            position_ids=position_ids,
        )
        return self.returned(out, return_dict)


class OPTForCausalLM(GenerationMixin, OPTPreTrainedModel):
    """Next-token logits; ``lm_head`` is the token embedding matrix unless ``tie_word_embeddings`` is False."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self.model = OPTModel(config)
        self.lm_head = nn.Linear(config.word_embed_proj_dim, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                position_ids=None):
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, position_ids=position_ids,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        out = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                     hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return self.returned(out, return_dict)


class OPTForSequenceClassification(OPTPreTrainedModel):
    """Classifies the last token that is not padding (any padding side), as transformers does."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self.model = OPTModel(config)
        self.score = nn.Linear(config.word_embed_proj_dim, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                position_ids=None):
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, position_ids=position_ids,
        )
        logits = self.score(outputs.last_hidden_state)
        batch = logits.shape[0]
        pooled = logits[torch.arange(batch, device=logits.device), self._last_token(input_ids, logits)]
        loss = sequence_classification_loss(self.config, pooled, labels) if labels is not None else None
        out = SequenceClassifierOutputWithPast(loss=loss, logits=pooled, past_key_values=outputs.past_key_values,
                                               hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return self.returned(out, return_dict)

    def _last_token(self, input_ids, logits):
        """Per row, the index of the rightmost non-pad token (0 for a row of padding only), or the last position
        when padding cannot be told: no pad_token_id (then only one row is allowed, as in transformers) or
        inputs_embeds instead of ids."""
        batch = logits.shape[0]
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
    """Extractive QA: start and end logits per token. ``use_cache`` is accepted, but the output has no cache."""

    def __init__(self, config: OPTConfig):
        super().__init__(config)
        self.model = OPTModel(config)
        self.qa_outputs = nn.Linear(config.word_embed_proj_dim, 2)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, past_key_values=None, inputs_embeds=None,
                start_positions=None, end_positions=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, position_ids=None):
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, head_mask=head_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=False, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, position_ids=position_ids,
        )
        out = question_answering_output(self.qa_outputs(outputs.last_hidden_state), outputs, start_positions,
                                        end_positions)
        return self.returned(out, return_dict)
