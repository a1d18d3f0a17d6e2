"""PyTorch building blocks shared by every family: the vocabulary ``layers_tf`` and ``layers_flax`` share (same
names, parameters and layouts; framework-only helpers live in ``backend_pt``).

Each function follows transformers 4.57.6's arithmetic (same operations in the same order), so models built
from them agree with Hugging Face's to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .backend_pt import sdpa_attention
from .cache import StaticCache
from .config import PretrainedConfig
from .outputs import QuestionAnsweringModelOutput
from .validation import (
    check_mask_shape,
    check_sequence_classification_labels,
    check_shape,
    check_span_positions,
    check_token_labels,
    infer_problem_type,
    input_shape,
)

__all__ = [
    "ACTIVATIONS", "activation",
    "input_shape", "layer_dropped",
    "additive_mask", "padding_keep_mask", "causal_keep_mask", "head_mask_per_layer",
    "split_heads", "merge_heads", "eager_attention", "keys_and_values", "ProjectedAttention",
    "new_static_cache", "static_cache_slots", "static_cache_update", "check_static_cache_room",
    "static_cache_keep_mask",
    "token_loss", "causal_lm_loss", "sequence_classification_loss", "span_loss", "question_answering_output",
    "Pooler", "LMHead", "ClassificationHead",
]

# ----------------------------------------------------------------------------------------------------------------
# Activations: one per name in common/activations.py.


def _gelu_python(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def _gelu_fast(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _gelu_pytorch_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_python": _gelu_python,
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": _gelu_pytorch_tanh,
    "gelu_fast": _gelu_fast,
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None


# ----------------------------------------------------------------------------------------------------------------
# Attention masks. A "keep" mask holds 1 where attention is allowed; the additive form holds 0 there and the
# dtype's most negative finite value elsewhere, as Hugging Face builds it, so fully masked rows agree too.


def additive_mask(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (1.0 - keep.to(dtype)) * torch.finfo(dtype).min


def padding_keep_mask(mask: torch.Tensor, batch: int, query_length: int, key_length: int, name: str) -> torch.Tensor:
    """A 2D [batch, keys] or 3D [batch, queries, keys] mask as a [batch, 1, queries or 1, keys] keep mask."""
    check_mask_shape(name, tuple(mask.shape), batch, query_length, key_length)
    return mask[:, None, None, :] if mask.dim() == 2 else mask[:, None, :, :]


def causal_keep_mask(mask: torch.Tensor, query_length: int) -> torch.Tensor:
    """Combine a 2D padding mask [batch, past + queries] with the causal mask: [batch, 1, queries, past + queries].

    The queries are the last ``query_length`` positions; every cached position before them stays visible.
    """
    key_length = mask.shape[1]
    past_length = key_length - query_length
    key_positions = torch.arange(key_length, device=mask.device)
    query_positions = torch.arange(past_length, key_length, device=mask.device)
    causal = (key_positions[None, :] <= query_positions[:, None]).to(mask.dtype)
    return causal[None, None, :, :] * mask[:, None, None, :]


# ----------------------------------------------------------------------------------------------------------------
# Attention.


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim]."""
    batch, seq, _ = x.shape
    return x.view(batch, seq, num_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim]."""
    batch, heads, seq, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * head_dim)


def eager_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout: float = 0.0,
    head_mask: torch.Tensor | None = None,
    extra_scores: Sequence[torch.Tensor] = (),
    scale: float | None = None,
    training: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out, returning (context [batch, heads, q, head_dim], probabilities [batch, heads, q, k]).

    ``extra_scores`` (relative position scores) are added one by one to the raw scores before scaling. With
    ``scale=None`` the scores are divided by sqrt(head_dim) as BERT-style models do; otherwise multiplied by it.
    """
    scores = torch.matmul(query, key.transpose(-1, -2))
    for extra in extra_scores:
        scores = scores + extra
    scores = scores / math.sqrt(query.shape[-1]) if scale is None else scores * scale
    if mask is not None:
        scores = scores + mask
    probs = F.softmax(scores, dim=-1)
    probs = F.dropout(probs, p=dropout, training=training)
    if head_mask is not None:
        probs = probs * head_mask
    return torch.matmul(probs, value), probs


def head_mask_per_layer(head_mask: torch.Tensor | None, num_layers: int, num_heads: int, dtype: torch.dtype,
                        name: str = "head_mask"):
    """[heads] or [layers, heads] (1 keeps a head, 0 silences it) -> per layer [1, heads, 1, 1], or Nones."""
    if head_mask is None:
        return [None] * num_layers
    if head_mask.dim() == 1:
        check_shape(name, head_mask.shape, (num_heads,), "heads")
        head_mask = head_mask[None, :].expand(num_layers, -1)
    elif head_mask.dim() == 2:
        check_shape(name, head_mask.shape, (num_layers, num_heads), "layers, heads")
    else:
        raise ValueError(f"{name} must have shape [heads] or [layers, heads], got {list(head_mask.shape)}")
    return list(head_mask.to(dtype)[:, None, :, None, None])


# ----------------------------------------------------------------------------------------------------------------
# Static cache, for compiled generation. A StaticCache holds max_length preallocated slots per layer and the count
# already written (``index``, a 0-d int64 tensor), so every generation step has the same shapes; the index is a
# tensor and writes go through tensor-indexed ops, so a ``torch.compile``d step does not recompile as it advances.


def new_static_cache(num_layers: int, batch: int, num_heads: int, max_length: int, head_dim: int,
                     dtype: torch.dtype, device=None, cross_key_values=None) -> StaticCache:
    """Zeros [batch, heads, max_length, head_dim] per layer and index 0; ``cross_key_values`` (one (key, value)
    per layer, computed once from the encoder output) become each layer's 3rd and 4th entries.

    Every key and value is a tensor of its own: writes go into them in place. The cross entries are stored
    contiguous: every step reads them, and the attention kernel reads strided heads about 2x slower.
    """
    cross = ([tuple(t.contiguous() for t in key_value) for key_value in cross_key_values]
             if cross_key_values is not None else [()] * num_layers)

    def zeros():
        return torch.zeros((batch, num_heads, max_length, head_dim), dtype=dtype, device=device)

    layers = tuple((zeros(), zeros(), *key_value) for key_value in cross)
    return StaticCache(layers, torch.zeros((), dtype=torch.long, device=device))


def static_cache_slots(index: torch.Tensor, new: int) -> torch.Tensor:
    """The slots ``index ... index + new - 1`` that ``new`` tokens written at ``index`` occupy."""
    return index + torch.arange(new, device=index.device)


def static_cache_update(cache_key: torch.Tensor, cache_value: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Write ``key``/``value`` [batch, heads, new, head_dim] into slots ``index ... index + new - 1`` of the cache
    tensors [batch, heads, max_length, head_dim], in place; returns them (cache_key, cache_value).

    Overflowing the cache raises eagerly; under ``torch.compile`` (which cannot raise on a value) the slots are
    clamped into range and the written keys and values become NaN, so the outputs show it.
    """
    max_length, new = cache_key.shape[2], key.shape[2]
    overflow = check_static_cache_room(index, new, max_length)
    slots = static_cache_slots(index, new)
    if overflow is not None:
        slots = slots.clamp(max=max_length - 1)
        key = torch.where(overflow, torch.nan, key)
        value = torch.where(overflow, torch.nan, value)
    cache_key.index_copy_(2, slots, key.to(cache_key.dtype))
    cache_value.index_copy_(2, slots, value.to(cache_value.dtype))
    return cache_key, cache_value


def check_static_cache_room(index: torch.Tensor, new: int, max_length: int) -> torch.Tensor | None:
    """Raise when writing ``new`` slots from ``index`` overflows; under ``torch.compile`` return the overflow flag
    instead (reading the index would break the graph)."""
    if torch.compiler.is_compiling():
        return index + new > max_length
    filled = int(index)
    if filled + new > max_length:
        raise ValueError(f"the StaticCache has {max_length} slots; writing {new} more would overflow it "
                         f"(see init_cache): {filled} are already filled")
    return None


def static_cache_keep_mask(attention_mask: torch.Tensor | None, index: torch.Tensor, query_length: int,
                           max_length: int, batch: int) -> torch.Tensor:
    """The [batch, 1, queries, max_length] keep mask of queries written at slots ``index ...``.

    Query i (slot index + i) sees slot j when j <= index + i (causal order; slots not yet written lie beyond) and
    ``attention_mask[:, j]`` is 1. ``attention_mask`` [batch, max_length] covers every slot (padding 0; what it
    says of future slots does not matter); None keeps them all.
    """
    if attention_mask is None:
        attention_mask = torch.ones((batch, max_length), dtype=torch.long, device=index.device)
    if tuple(attention_mask.shape) != (batch, max_length):
        raise ValueError(f"with a StaticCache, attention_mask must cover all {max_length} cache slots: shape "
                         f"[batch={batch}, {max_length}] (0 for padding), got {list(attention_mask.shape)}")
    query_slots = static_cache_slots(index, query_length)
    causal = torch.arange(max_length, device=index.device)[None, :] <= query_slots[:, None]
    return causal.to(attention_mask.dtype)[None, None, :, :] * attention_mask[:, None, None, :]


# ----------------------------------------------------------------------------------------------------------------
# Attention with k/v/q/out projections (BART, OPT).


class ProjectedAttention(nn.Module):
    """Multi-head attention with ``k_proj``, ``v_proj``, ``q_proj`` and ``out_proj`` (BART, OPT).

    Self-attention, or cross-attention when ``key_value_states`` (the encoder output) is given. The cache entry
    ``past_key_value`` is (key, value) [batch, heads, keys, head_dim]: self-attention appends the new keys to it,
    or, with ``cache_index`` (a StaticCache's), writes them into its preallocated slots from that index;
    cross-attention reuses it as is (the encoder's keys do not change while decoding). ``scale_query`` scales the
    query before the product, as fairseq's OPT does; otherwise the scores are scaled, as BART does.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 scale_query: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads})")
        self.num_heads = num_heads
        self.scaling = (embed_dim // num_heads) ** -0.5
        self.dropout = dropout
        self.scale_query = scale_query
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, hidden_states, mask=None, head_mask=None, key_value_states=None, past_key_value=None,
                output_attentions=False, cache_index=None):
        """Returns (output [batch, queries, embed_dim], probabilities or None, this layer's (key, value))."""
        query = self.q_proj(hidden_states)
        scale = self.scaling
        if self.scale_query:
            query, scale = query * self.scaling, 1.0
        query = split_heads(query, self.num_heads)
        key, value = keys_and_values(self.project_key_value, hidden_states, key_value_states, past_key_value,
                                     cache_index)
        if output_attentions or head_mask is not None:
            context, probs = eager_attention(query, key, value, mask, dropout=self.dropout, head_mask=head_mask,
                                             scale=scale, training=self.training)
        else:
            context = sdpa_attention(query, key, value, mask, dropout=self.dropout, scale=scale, training=self.training)
            probs = None
        return self.out_proj(merge_heads(context)), probs, (key, value)

    def project_key_value(self, source):
        """Keys and values [batch, heads, len, head_dim] of ``source`` (the encoder output, for a cache)."""
        return split_heads(self.k_proj(source), self.num_heads), split_heads(self.v_proj(source), self.num_heads)



def keys_and_values(project_key_value, hidden_states, key_value_states, past_key_value, cache_index):
    """An attention layer's keys and values with its cache entry: cross-attention reuses a cached entry as is (the
    encoder's keys do not change while decoding); self-attention appends to a dynamic entry or, with
    ``cache_index``, writes into a StaticCache's slots."""
    if key_value_states is not None and past_key_value is not None:
        return tuple(past_key_value)
    key, value = project_key_value(hidden_states if key_value_states is None else key_value_states)
    if past_key_value is None:
        return key, value
    if cache_index is not None:
        return static_cache_update(past_key_value[0], past_key_value[1], key, value, cache_index)
    return torch.cat([past_key_value[0], key], dim=2), torch.cat([past_key_value[1], value], dim=2)


# ----------------------------------------------------------------------------------------------------------------
# Losses, as Hugging Face computes them.


def token_loss(logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = -100) -> torch.Tensor:
    """Cross entropy over every position [..., classes]; labels equal to ``ignore_index`` are left out of the
    mean (NaN when all are)."""
    check_token_labels(tuple(labels.shape), labels.dtype, tuple(logits.shape))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=ignore_index)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy: position i predicts label i + 1; computed in float32."""
    check_token_labels(tuple(labels.shape), labels.dtype, tuple(logits.shape))
    return token_loss(logits[:, :-1].float(), labels[:, 1:])


def sequence_classification_loss(config: PretrainedConfig, logits: torch.Tensor, labels: torch.Tensor):
    """Regression (MSE), single-label (cross entropy) or multi-label (BCE with logits) by ``config.problem_type``.

    When the problem type is unset it is inferred as Hugging Face does and written to the config.
    """
    num_labels = config.num_labels
    if config.problem_type is None:
        config.problem_type = infer_problem_type(num_labels, labels.dtype)
    check_sequence_classification_labels(config.problem_type, tuple(labels.shape), labels.dtype, tuple(logits.shape))
    if config.problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze())
        return F.mse_loss(logits, labels)
    if config.problem_type == "single_label_classification":
        return token_loss(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels)


def span_loss(start_logits, end_logits, start_positions, end_positions) -> torch.Tensor:
    """Question answering: mean of start and end cross entropy; positions past the input are ignored."""
    check_span_positions("start_positions", tuple(start_positions.shape), start_positions.dtype, start_logits.shape[0])
    check_span_positions("end_positions", tuple(end_positions.shape), end_positions.dtype, end_logits.shape[0])
    if start_positions.dim() > 1:
        start_positions = start_positions.squeeze(-1)
    if end_positions.dim() > 1:
        end_positions = end_positions.squeeze(-1)
    ignored = start_logits.shape[1]
    start_loss = F.cross_entropy(start_logits, start_positions.clamp(0, ignored), ignore_index=ignored)
    end_loss = F.cross_entropy(end_logits, end_positions.clamp(0, ignored), ignore_index=ignored)
    return (start_loss + end_loss) / 2


def question_answering_output(logits, outputs, start_positions=None,
                              end_positions=None) -> QuestionAnsweringModelOutput:
    """An encoder or decoder-only model's question-answering output from its head's [batch, seq, 2] logits; the
    loss needs both positions."""
    start_logits, end_logits = logits.split(1, dim=-1)
    start_logits = start_logits.squeeze(-1).contiguous()
    end_logits = end_logits.squeeze(-1).contiguous()
    loss = None
    if start_positions is not None and end_positions is not None:
        loss = span_loss(start_logits, end_logits, start_positions, end_positions)
    return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                        hidden_states=outputs.hidden_states, attentions=outputs.attentions)


# ----------------------------------------------------------------------------------------------------------------
# Float heads of the RoBERTa-style encoders (RoBERTa, RoBERTa-PreLayerNorm, I-BERT). Attribute names are Hugging
# Face's, so parameters keep their checkpoint names (pooler.dense.weight, lm_head.decoder.weight, ...).


class Pooler(nn.Module):
    """tanh(dense(first token)): the sentence vector of the bare model."""

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class LMHead(nn.Module):
    """dense, exact GELU, LayerNorm, then the vocabulary projection (tied to the word embeddings by default)."""

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, features):
        x = nn.functional.gelu(self.dense(features))
        return self.decoder(self.layer_norm(x))


class ClassificationHead(nn.Module):
    """Sentence classification from the first token (<s>): dropout, dense, tanh, dropout, projection.
    ``dropout`` is the family's rate (RoBERTa: classifier_dropout, else hidden_dropout_prob; I-BERT: always
    hidden_dropout_prob)."""

    def __init__(self, config: PretrainedConfig, dropout: float):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features):
        x = self.dropout(features[:, 0, :])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


# ----------------------------------------------------------------------------------------------------------------
# Model plumbing shared by the families' forward passes.


def layer_dropped(layerdrop: float, training: bool) -> bool:
    """LayerDrop: in training skip a whole layer with probability ``layerdrop``. A draw is taken at every layer,
    as transformers does, so seeded training runs consume the same random numbers."""
    return training and bool(torch.rand([]) < layerdrop)
