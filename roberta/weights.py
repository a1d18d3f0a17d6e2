"""RoBERTa's and RoBERTa-PreLayerNorm's exceptions to the generic weight rules."""

from __future__ import annotations

from ..conversion.rules import WeightsSpec
from .config import RobertaConfig

# Buffers some checkpoints carry that are not weights.
_BUFFERS = (r"(^|\.)position_ids$", r"(^|\.)token_type_ids$")


def weights_spec(config: RobertaConfig, base_model_prefix: str = "roberta") -> WeightsSpec:
    tied = {"lm_head.decoder.bias": "lm_head.bias"}
    if config.tie_word_embeddings:
        tied["lm_head.decoder.weight"] = f"{base_model_prefix}.embeddings.word_embeddings.weight"
    return WeightsSpec(base_model_prefix=base_model_prefix, tied=tied, ignored=_BUFFERS, new_heads=(r"^pooler\.",))
