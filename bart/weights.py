"""BART's exceptions to the generic weight rules."""

from __future__ import annotations

from ..conversion.rules import WeightsSpec
from .config import BartConfig

# fairseq's version buffers, kept by some checkpoints; not weights.
_BUFFERS = (r"(^|\.)(encoder|decoder)\.version$",)
# transformers' TF BART creates the shared embedding as a top-level layer named "model.shared", outside the
# model's scope, so its variable is model.shared/model.shared/embeddings:0.
_TF_RENAMES = ((r"^model/shared/embeddings$", "model.shared/model.shared/embeddings"),)


def weights_spec(config: BartConfig, base_model_prefix: str = "model") -> WeightsSpec:
    # One embedding matrix serves the encoder, the decoder and (tied) the LM head; older checkpoints store only
    # one of its names, e.g. model.decoder.embed_tokens.weight.
    shared = f"{base_model_prefix}.shared.weight"
    tied = {f"{base_model_prefix}.{stack}.embed_tokens.weight": shared for stack in ("encoder", "decoder")}
    if config.tie_word_embeddings:
        tied["lm_head.weight"] = shared
    # final_logits_bias is a zero buffer that some checkpoints lack; a missing one stays zero.
    return WeightsSpec(base_model_prefix=base_model_prefix, tied=tied, ignored=_BUFFERS,
                       optional=(r"^final_logits_bias$",), tf_renames=_TF_RENAMES)
