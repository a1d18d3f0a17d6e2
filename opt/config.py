"""OPT's config, compatible with Hugging Face ``config.json``."""

from __future__ import annotations

from typing import ClassVar

from ..common.activations import ACTIVATIONS
from ..common.config import ConfigError, Field, PretrainedConfig


class OPTConfig(PretrainedConfig):
    """OPT's hyper-parameters with transformers 4.x defaults (those of opt-125m)."""

    model_type = "opt"
    position_offset: ClassVar[int] = 2  # position p is row p + 2 of the table (fairseq kept the first two rows)
    layer_norm_eps: ClassVar[float] = 1e-5  # PyTorch's nn.LayerNorm default, which OPT uses (not in config.json)
    fields = {
        "vocab_size": Field(int, 50272),
        "hidden_size": Field(int, 768),
        "num_hidden_layers": Field(int, 12),
        "ffn_dim": Field(int, 3072),
        "max_position_embeddings": Field(int, 2048),
        "do_layer_norm_before": Field(bool, True),
        "_remove_final_layer_norm": Field(bool, False),
        "word_embed_proj_dim": Field(int, None, optional=True),
        "dropout": Field(float, 0.1),
        "attention_dropout": Field(float, 0.0),
        "num_attention_heads": Field(int, 12),
        "activation_function": Field(str, "relu", choices=ACTIVATIONS),
        "layerdrop": Field(float, 0.0),
        "init_std": Field(float, 0.02),
        "use_cache": Field(bool, True),
        "pad_token_id": Field(int, 1, optional=True),
        "bos_token_id": Field(int, 2, optional=True),
        "eos_token_id": Field(int, 2, optional=True),
        "enable_bias": Field(bool, True),
        "layer_norm_elementwise_affine": Field(bool, True),
    }

    def validate(self) -> None:
        name = type(self).__name__
        if self.word_embed_proj_dim is None:
            self.word_embed_proj_dim = self.hidden_size
        self.require_positive("vocab_size", "hidden_size", "num_hidden_layers", "ffn_dim", "max_position_embeddings",
                              "num_attention_heads", "word_embed_proj_dim")
        self.require_std("init_std")
        self.require_probability("dropout", "attention_dropout", "layerdrop")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{name}.hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for token in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, token)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ConfigError(f"{name}.{token} ({value}) must lie in [0, vocab_size={self.vocab_size})")

    @property
    def max_sequence_length(self) -> int:
        """The longest sequence the (learned) position table allows."""
        return self.max_position_embeddings

    @property
    def initializer_range(self) -> float:
        """transformers' name for the std of the init's normal draws, which OPT calls init_std."""
        return self.init_std
