"""BART's exceptions to the generic weight rules."""

from __future__ import annotations

from ..conversion.rules import WeightsSpec
from .config import BartConfig

# fairseq's version buffers, kept by some checkpoints; not weights.
_BUFFERS = (r"(^|\.)(encoder|decoder)\.version$",)


def weights_spec(config: BartConfig) -> WeightsSpec:
    # One embedding matrix serves the encoder, the decoder and (tied) the LM head; older checkpoints store only
    # one of its names, e.g. model.decoder.embed_tokens.weight.
    tied = {
        "model.encoder.embed_tokens.weight": "model.shared.weight",
        "model.decoder.embed_tokens.weight": "model.shared.weight",
    }
    if config.tie_word_embeddings:
        tied["lm_head.weight"] = "model.shared.weight"
    # final_logits_bias is a zero buffer that some checkpoints lack; a missing one stays zero.
    return WeightsSpec(base_model_prefix="model", tied=tied, ignored=_BUFFERS, optional=(r"^final_logits_bias$",))
