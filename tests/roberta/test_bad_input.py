"""Bad input gets the same clear error in PyTorch, TensorFlow and Flax."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import torch  # noqa: E402

import rosettazoo.roberta as zoo  # noqa: E402
from rosettazoo.common.config import ConfigError  # noqa: E402
from tests.harness import run  # noqa: E402

PREFIXES = {"pt": "", "tf": "TF", "flax": "Flax"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-roberta")
    config = zoo.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=37, max_position_embeddings=20)
    torch.manual_seed(0)
    zoo.RobertaForMaskedLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(checkpoint):
    return {fw: getattr(zoo, f"{prefix}RobertaForMaskedLM").from_pretrained(checkpoint) for fw, prefix in PREFIXES.items()}


FRAMEWORKS = list(PREFIXES)
GOOD_IDS = np.array([[0, 5, 6, 7, 2]])


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("bad_id", [99, 1000, -1])
def test_out_of_vocabulary_ids(framework, bad_id, models):
    ids = GOOD_IDS.copy()
    ids[0, 2] = bad_id
    with pytest.raises(ValueError, match=rf"input_ids holds token id {bad_id}, outside the vocabulary \[0, 99\)"):
        run(framework, models[framework], {"input_ids": ids})


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sequence_longer_than_positions(framework, models):
    ids = np.full((1, 19), 5)  # 20 positions, numbered from pad_token_id + 1 = 2, leave room for 18 tokens
    with pytest.raises(ValueError, match="sequence length 19 exceeds the 18 positions"):
        run(framework, models[framework], {"input_ids": ids})
    run(framework, models[framework], {"input_ids": ids[:, :18]})


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_attention_mask_of_the_wrong_shape(framework, models):
    with pytest.raises(ValueError, match=r"attention_mask has shape \[1, 4\]"):
        run(framework, models[framework], {"input_ids": GOOD_IDS, "attention_mask": np.ones((1, 4), dtype=np.int64)})


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_config_with_a_wrong_type(framework, checkpoint, tmp_path):
    for name in ("model.safetensors",):
        (tmp_path / name).write_bytes((checkpoint / name).read_bytes())
    values = json.loads((checkpoint / "config.json").read_text())
    values["num_attention_heads"] = "four"
    (tmp_path / "config.json").write_text(json.dumps(values))
    cls = getattr(zoo, f"{PREFIXES[framework]}RobertaForMaskedLM")
    with pytest.raises(ConfigError, match="num_attention_heads must be int, got 'four'"):
        cls.from_pretrained(tmp_path)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_truncated_safetensors(framework, checkpoint, tmp_path):
    (tmp_path / "config.json").write_text((checkpoint / "config.json").read_text())
    data = (checkpoint / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    cls = getattr(zoo, f"{PREFIXES[framework]}RobertaForMaskedLM")
    with pytest.raises(Exception, match="model.safetensors") as info:
        cls.from_pretrained(tmp_path)
    assert "re-" in str(info.value)  # says to re-download or re-save


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_misshapen_weights_are_named(framework, checkpoint, tmp_path):
    from safetensors.numpy import load_file, save_file

    from rosettazoo.conversion import WeightsError

    (tmp_path / "config.json").write_text((checkpoint / "config.json").read_text())
    tensors = load_file(checkpoint / "model.safetensors")
    tensors["roberta.encoder.layer.1.intermediate.dense.weight"] = np.zeros((36, 32), dtype=np.float32)
    del tensors["roberta.encoder.layer.0.output.LayerNorm.bias"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    cls = getattr(zoo, f"{PREFIXES[framework]}RobertaForMaskedLM")
    with pytest.raises(WeightsError) as info:
        cls.from_pretrained(tmp_path)
    message = str(info.value)
    assert "roberta.encoder.layer.0.output.LayerNorm.bias" in message
    assert "roberta.encoder.layer.1.intermediate.dense.weight is [36, 32] but the model needs [37, 32]" in message
