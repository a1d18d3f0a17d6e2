"""I-BERT's exceptions to the generic weight rules: RoBERTa's tied LM head, plus quantization buffers that a
checkpoint may lack (one saved before quantization-aware training, or converted from RoBERTa)."""

from __future__ import annotations

from ..conversion.rules import WeightsSpec
from ..roberta.weights import TF_RENAMES, tf_layer_links  # TF names as RoBERTa's: transformers has no TF I-BERT
from .config import IBertConfig

# Buffers some checkpoints carry that are not weights.
_IGNORED = (r"(^|\.)position_ids$", r"(^|\.)token_type_ids$")

# Quantization state, saved under Hugging Face's names; a checkpoint without it starts the model uncalibrated.
QUANT_BUFFERS = ("x_min", "x_max", "act_scaling_factor", "weight_scaling_factor", "weight_integer",
                 "fc_scaling_factor", "bias_integer", "shift")
_OPTIONAL = (r"\.(" + "|".join(QUANT_BUFFERS) + r")$",)


def weights_spec(config: IBertConfig, base_model_prefix: str = "ibert") -> WeightsSpec:
    tied = {"lm_head.decoder.bias": "lm_head.bias"}
    if config.tie_word_embeddings:
        tied["lm_head.decoder.weight"] = f"{base_model_prefix}.embeddings.word_embeddings.weight"
    return WeightsSpec(base_model_prefix=base_model_prefix, tied=tied, ignored=_IGNORED, new_heads=(r"^pooler\.",),
                       optional=_OPTIONAL, tf_renames=TF_RENAMES, tf_layer_links=tf_layer_links(base_model_prefix))
