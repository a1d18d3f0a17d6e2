"""OPT's exceptions to the generic weight rules."""

from __future__ import annotations

from ..conversion.rules import WeightsSpec
from .config import OPTConfig


def weights_spec(config: OPTConfig) -> WeightsSpec:
    tied = {"lm_head.weight": "model.decoder.embed_tokens.weight"} if config.tie_word_embeddings else {}
    return WeightsSpec(base_model_prefix="model", tied=tied, ignored=(), new_heads=())
