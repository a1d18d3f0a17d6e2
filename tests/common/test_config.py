import json

import pytest

from rosettazoo.common.config import ConfigError
from rosettazoo.roberta import RobertaConfig, RobertaPreLayerNormConfig


def test_defaults_are_roberta_base():
    config = RobertaConfig()
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (50265, 768, 12, 12)
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (1, 0, 2)
    assert config.layer_norm_eps == 1e-12 and config.position_embedding_type == "absolute"
    assert config.num_labels == 2 and config.label2id == {"LABEL_0": 0, "LABEL_1": 1}
    assert config.max_sequence_length == 510


def test_round_trip_keeps_unknown_keys(tmp_path):
    config = RobertaConfig(hidden_size=32, num_attention_heads=4, num_labels=3, my_custom_key=[1, 2])
    config.save_pretrained(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    assert values["model_type"] == "roberta" and values["my_custom_key"] == [1, 2]
    assert values["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    again = RobertaConfig.from_pretrained(tmp_path)
    assert again == config and again.extra["my_custom_key"] == [1, 2] and again.num_labels == 3


def test_save_refuses_to_overwrite(tmp_path):
    RobertaConfig().save_pretrained(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        RobertaConfig().save_pretrained(tmp_path)
    RobertaConfig(hidden_size=64, num_attention_heads=4).save_pretrained(tmp_path, overwrite=True)
    assert RobertaConfig.from_pretrained(tmp_path).hidden_size == 64


def test_reads_hf_written_config(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.RobertaPreLayerNormConfig(hidden_size=48, num_attention_heads=6, num_labels=4).save_pretrained(tmp_path)
    config = RobertaPreLayerNormConfig.from_pretrained(tmp_path)
    assert config.hidden_size == 48 and config.num_labels == 4 and config.model_type == "roberta-prelayernorm"
    assert "transformers_version" in config.extra
    ours = tmp_path / "ours"
    config.save_pretrained(ours)
    assert transformers.AutoConfig.from_pretrained(ours).to_dict()["hidden_size"] == 48


@pytest.mark.parametrize(
    "values, message",
    [
        ({"hidden_size": "768"}, r"hidden_size must be int, got '768'"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "multiple of num_attention_heads"),
        ({"layer_norm_eps": True}, "layer_norm_eps must be float"),
        ({"hidden_act": "mish"}, "hidden_act must be one of"),
        ({"position_embedding_type": "rotary"}, "position_embedding_type must be one of"),
        ({"hidden_dropout_prob": 1.5}, r"must be in \[0, 1\]"),
        ({"pad_token_id": 100, "vocab_size": 50}, "pad_token_id"),
        ({"num_hidden_layers": 0}, "num_hidden_layers must be positive"),
        ({"model_type": "bart"}, "model_type 'roberta'"),
        ({"problem_type": "ranking"}, "problem_type must be one of"),
        ({"id2label": {"a": "x"}}, "id2label keys must be integers"),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        RobertaConfig(**values)


def test_malformed_json_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "roberta", "hidden_size": 32,')
    with pytest.raises(ConfigError, match="config.json is not valid UTF-8 JSON"):
        RobertaConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "roberta", "vocab_size": 12.5}')
    with pytest.raises(ConfigError, match="config.json: RobertaConfig.vocab_size must be int"):
        RobertaConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="config.json must hold a JSON object"):
        RobertaConfig.from_pretrained(tmp_path)


def test_overrides_apply_on_load(tmp_path):
    RobertaConfig(num_attention_heads=4, hidden_size=32).save_pretrained(tmp_path)
    assert RobertaConfig.from_pretrained(tmp_path, num_labels=5, is_decoder=True).num_labels == 5
