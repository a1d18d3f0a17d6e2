"""IBertConfig: transformers 4.x's fields and defaults, and clear errors for what I-BERT cannot run."""

import json

import pytest
import transformers

from rosettazoo.common.config import ConfigError
from rosettazoo.ibert import IBertConfig


def test_defaults_and_fields_match_transformers():
    ours, theirs = IBertConfig(), transformers.IBertConfig()
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id",
                 "position_embedding_type", "quant_mode", "force_dequant"):
        assert getattr(ours, name) == getattr(theirs, name), name


def test_reads_and_writes_transformers_config(tmp_path):
    transformers.IBertConfig(hidden_size=32, num_attention_heads=4, quant_mode=True, force_dequant="gelu",
                             num_labels=5).save_pretrained(tmp_path / "hf")
    ours = IBertConfig.from_pretrained(tmp_path / "hf")
    assert (ours.hidden_size, ours.quant_mode, ours.force_dequant, ours.num_labels) == (32, True, "gelu", 5)
    assert ours.dequantized("gelu") and not ours.dequantized("softmax")
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.IBertConfig.from_pretrained(tmp_path / "ours")
    assert (back.quant_mode, back.force_dequant, back.model_type) == (True, "gelu", "ibert")


@pytest.mark.parametrize("values, message", [
    ({"hidden_act": "relu"}, "hidden_act must be 'gelu'"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type must be 'absolute'"),
    ({"force_dequant": "everything"}, "force_dequant must be one of"),
    ({"quant_mode": "yes"}, "quant_mode must be bool"),
    ({"is_decoder": True}, "encoder only"),
    ({"hidden_size": 30, "num_attention_heads": 4}, "multiple of num_attention_heads"),
])
def test_bad_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        IBertConfig(**values)


def test_config_of_another_family_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(ConfigError, match="model_type 'ibert'"):
        IBertConfig.from_pretrained(tmp_path)
