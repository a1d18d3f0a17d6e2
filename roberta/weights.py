"""RoBERTa's and RoBERTa-PreLayerNorm's exceptions to the generic weight rules."""

from __future__ import annotations

from ..conversion.rules import WeightsSpec
from .config import RobertaConfig

# Buffers some checkpoints carry that are not weights.
_BUFFERS = (r"(^|\.)position_ids$", r"(^|\.)token_type_ids$")
# transformers' TF classes number layers as layer_._0 and keep the word embeddings' legacy variable name "weight".
TF_RENAMES = ((r"(^|/)layer\.(\d+)(?=/|$)", r"\1layer_._\2"), (r"/word_embeddings/embeddings$", "/word_embeddings/weight"))


def tf_layer_links(base_model_prefix: str) -> dict[str, str]:
    """transformers' TF LM head holds the embeddings layer whose word embeddings it is tied to."""
    return {"lm_head": f"^{base_model_prefix}/embeddings/"}


def weights_spec(config: RobertaConfig, base_model_prefix: str = "roberta") -> WeightsSpec:
    tied = {"lm_head.decoder.bias": "lm_head.bias"}
    if config.tie_word_embeddings:
        tied["lm_head.decoder.weight"] = f"{base_model_prefix}.embeddings.word_embeddings.weight"
    return WeightsSpec(base_model_prefix=base_model_prefix, tied=tied, ignored=_BUFFERS, new_heads=(r"^pooler\.",),
                       tf_renames=TF_RENAMES, tf_layer_links=tf_layer_links(base_model_prefix))
