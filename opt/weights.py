"""OPT's exceptions to the generic weight rules."""

from __future__ import annotations

from ..conversion.rules import WeightsSpec
from .config import OPTConfig

# transformers' TF OPT keeps the token embeddings' legacy variable name "weight".
_TF_RENAMES = ((r"(^|/)embed_tokens/embeddings$", r"\1embed_tokens/weight"),)


def weights_spec(config: OPTConfig, base_model_prefix: str = "model") -> WeightsSpec:
    tied = {"lm_head.weight": f"{base_model_prefix}.decoder.embed_tokens.weight"} if config.tie_word_embeddings else {}
    return WeightsSpec(base_model_prefix=base_model_prefix, tied=tied, ignored=(), new_heads=(), tf_renames=_TF_RENAMES)
