"""BART's config, compatible with Hugging Face ``config.json``."""

from __future__ import annotations

from typing import ClassVar

from ..common.activations import ACTIVATIONS
from ..common.config import ConfigError, Field, PretrainedConfig


class BartConfig(PretrainedConfig):
    """BART's hyper-parameters with transformers 4.x defaults (those of bart-large).

    Encoder and decoder have their own depth, heads and feed-forward width, so distilbart's asymmetric stacks fit.
    """

    model_type = "bart"
    position_offset: ClassVar[int] = 2  # position p is row p + 2 of the table (fairseq kept the first two rows)
    layer_norm_eps: ClassVar[float] = 1e-5  # PyTorch's nn.LayerNorm default, which BART uses (not in config.json)
    positions_count_slots = True
    default_num_labels = 3
    fields = {
        "vocab_size": Field(int, 50265),
        "max_position_embeddings": Field(int, 1024),
        "d_model": Field(int, 1024),
        "encoder_layers": Field(int, 12),
        "encoder_ffn_dim": Field(int, 4096),
        "encoder_attention_heads": Field(int, 16),
        "decoder_layers": Field(int, 12),
        "decoder_ffn_dim": Field(int, 4096),
        "decoder_attention_heads": Field(int, 16),
        "encoder_layerdrop": Field(float, 0.0),
        "decoder_layerdrop": Field(float, 0.0),
        "activation_function": Field(str, "gelu", choices=ACTIVATIONS),
        "dropout": Field(float, 0.1),
        "attention_dropout": Field(float, 0.0),
        "activation_dropout": Field(float, 0.0),
        "init_std": Field(float, 0.02),
        "classifier_dropout": Field(float, 0.0, optional=True),
        "scale_embedding": Field(bool, False),
        "use_cache": Field(bool, True),
        "is_encoder_decoder": Field(bool, True),
        "pad_token_id": Field(int, 1, optional=True),
        "bos_token_id": Field(int, 0, optional=True),
        "eos_token_id": Field(int, 2, optional=True),
        "decoder_start_token_id": Field(int, 2, optional=True),
        "forced_bos_token_id": Field(int, None, optional=True),
        "forced_eos_token_id": Field(int, 2, optional=True),
    }

    def validate(self) -> None:
        name = type(self).__name__
        self.require_positive(
            "vocab_size", "max_position_embeddings", "d_model", "encoder_layers", "encoder_ffn_dim",
            "encoder_attention_heads", "decoder_layers", "decoder_ffn_dim", "decoder_attention_heads",
        )
        self.require_std("init_std")
        self.require_probability("encoder_layerdrop", "decoder_layerdrop", "dropout", "attention_dropout",
                                 "activation_dropout", "classifier_dropout")
        for side in ("encoder", "decoder"):
            heads = getattr(self, f"{side}_attention_heads")
            if self.d_model % heads:
                raise ConfigError(f"{name}.d_model ({self.d_model}) must be a multiple of {side}_attention_heads ({heads})")
        for token in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, token)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ConfigError(f"{name}.{token} ({value}) must lie in [0, vocab_size={self.vocab_size})")

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.encoder_layers

    @property
    def num_attention_heads(self) -> int:
        return self.encoder_attention_heads

    @property
    def max_sequence_length(self) -> int:
        """The longest sequence the (learned) position table allows."""
        return self.max_position_embeddings

    @property
    def initializer_range(self) -> float:
        """transformers' name for the std of the init's normal draws, which BART calls init_std."""
        return self.init_std
