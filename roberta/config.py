"""Configs of RoBERTa and RoBERTa-PreLayerNorm, compatible with Hugging Face ``config.json``."""

from __future__ import annotations

from ..common.activations import ACTIVATIONS
from ..common.config import ConfigError, Field, PretrainedConfig

POSITION_EMBEDDING_TYPES = ("absolute", "relative_key", "relative_key_query")


class RobertaConfig(PretrainedConfig):
    """RoBERTa's hyper-parameters with transformers 4.x defaults (those of roberta-base)."""

    model_type = "roberta"
    fields = {
        "vocab_size": Field(int, 50265),
        "hidden_size": Field(int, 768),
        "num_hidden_layers": Field(int, 12),
        "num_attention_heads": Field(int, 12),
        "intermediate_size": Field(int, 3072),
        "hidden_act": Field(str, "gelu", choices=ACTIVATIONS),
        "hidden_dropout_prob": Field(float, 0.1),
        "attention_probs_dropout_prob": Field(float, 0.1),
        "max_position_embeddings": Field(int, 512),
        "type_vocab_size": Field(int, 2),
        "initializer_range": Field(float, 0.02),
        "layer_norm_eps": Field(float, 1e-12),
        "pad_token_id": Field(int, 1, optional=True),
        "bos_token_id": Field(int, 0, optional=True),
        "eos_token_id": Field(int, 2, optional=True),
        "position_embedding_type": Field(str, "absolute", choices=POSITION_EMBEDDING_TYPES),
        "use_cache": Field(bool, True),
        "classifier_dropout": Field(float, None, optional=True),
    }

    def validate(self) -> None:
        name = type(self).__name__
        self.require_positive(
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
        )
        self.require_probability("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout")
        self.require_std("initializer_range")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{name}.hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"{name}.pad_token_id ({self.pad_token_id}) must lie in [0, vocab_size={self.vocab_size})")
        # RoBERTa numbers positions from pad_token_id + 1, so the table must hold at least one real position.
        first_position = (self.pad_token_id or 0) + 1
        if self.max_position_embeddings <= first_position:
            raise ConfigError(
                f"{name}.max_position_embeddings ({self.max_position_embeddings}) must exceed pad_token_id + 1 "
                f"({first_position}): RoBERTa positions start after the padding index"
            )

    @property
    def max_sequence_length(self) -> int:
        """The longest input the position table allows (positions start at ``pad_token_id + 1``)."""
        return self.max_position_embeddings - (self.pad_token_id or 0) - 1


class RobertaPreLayerNormConfig(RobertaConfig):
    """RoBERTa with layer norm before each sublayer (fairseq's ``--encoder-normalize-before``)."""

    model_type = "roberta-prelayernorm"
