"""I-BERT's config, compatible with Hugging Face ``config.json`` (transformers 4.x ``IBertConfig``)."""

from __future__ import annotations

from ..common.config import ConfigError, Field
from ..roberta.config import RobertaConfig

FORCE_DEQUANT_CHOICES = ("none", "gelu", "softmax", "layernorm", "nonlinear")


class IBertConfig(RobertaConfig):
    """RoBERTa's hyper-parameters plus the quantization switches, with transformers 4.x defaults.

    quant_mode: run the quantized model (fake-quantized in training, integer arithmetic in inference).
    force_dequant: keep these non-linear blocks in float even when quantized ("gelu", "softmax", "layernorm",
        or "nonlinear" for all three).
    """

    model_type = "ibert"
    fields = {
        # classifier_dropout stays (RoBERTa's validation reads it) although I-BERT's heads use hidden_dropout_prob.
        **{name: field for name, field in RobertaConfig.fields.items() if name != "use_cache"},
        "vocab_size": Field(int, 30522),  # transformers' IBertConfig default (BERT's), not roberta-base's
        "hidden_act": Field(str, "gelu"),
        "position_embedding_type": Field(str, "absolute"),
        "quant_mode": Field(bool, False),
        "force_dequant": Field(str, "none", choices=FORCE_DEQUANT_CHOICES),
    }

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        if self.hidden_act != "gelu":
            raise ConfigError(f"{name}.hidden_act must be 'gelu' (I-BERT has an integer GELU only), got {self.hidden_act!r}")
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"{name}.position_embedding_type must be 'absolute' (I-BERT has no relative positions), "
                f"got {self.position_embedding_type!r}"
            )
        if self.is_decoder or self.add_cross_attention:
            raise ConfigError(f"{name}: I-BERT is an encoder only; set is_decoder and add_cross_attention to false")

    def dequantized(self, block: str) -> bool:
        """Whether ``block`` ("gelu", "softmax" or "layernorm") stays in float under ``force_dequant``."""
        return self.force_dequant in (block, "nonlinear")
