"""``python -m rosettazoo.conversion SRC DST`` (the older spelling of ``rosettazoo convert``): any checkpoint in,
config.json + model.safetensors out."""

import json
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import torch
import transformers
from transformers import RobertaForMaskedLM

from rosettazoo.common.checkpoint import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, open_checkpoint, save_checkpoint
from rosettazoo.conversion.cli import main
from tests.common.hub_cache import make_cache

TINY = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 37, "max_position_embeddings": 40}


@pytest.fixture(scope="module")
def hf_bin_sharded(tmp_path_factory):
    torch.manual_seed(0)
    model = RobertaForMaskedLM(transformers.RobertaConfig(**TINY)).eval()
    folder = tmp_path_factory.mktemp("hf-bin")
    model.save_pretrained(folder, safe_serialization=False, max_shard_size="20KB")
    return model, folder


def numpy_source(folder, config=True):
    tensors = {
        "w": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
        "h": np.ones(5, dtype=np.float16),
        "b": np.full(2, 0.5, dtype=ml_dtypes.bfloat16),
        "ids": np.arange(4, dtype=np.int64),
        "flags": np.array([True, False]),
    }
    save_checkpoint(folder, tensors)
    if config:
        (folder / "config.json").write_text('{"model_type": "roberta",  "custom": [1, 2]}\n')
    return tensors


def test_hf_sharded_bin_to_sharded_bfloat16_safetensors(hf_bin_sharded, tmp_path, capsys):
    model, source = hf_bin_sharded
    assert main([str(source), str(tmp_path), "--dtype", "bfloat16", "--max-shard-size", "30KB"]) == 0
    assert f"wrote {tmp_path}" in capsys.readouterr().out
    written = json.loads((tmp_path / "config.json").read_text())  # the config says what the weights now are
    assert written == {**json.loads((source / "config.json").read_text()), "dtype": "bfloat16"}
    index = json.loads((tmp_path / SAFE_WEIGHTS_INDEX_NAME).read_text())
    assert len(set(index["weight_map"].values())) > 1
    state = model.state_dict()
    with open_checkpoint(tmp_path) as checkpoint:
        assert sorted(checkpoint) == sorted(state)  # the .bin's tied copies come along, as HF wrote them
        for name, tensor in state.items():
            assert checkpoint.dtype(name) == np.dtype(ml_dtypes.bfloat16)
            expected = tensor.to(torch.bfloat16).view(torch.int16).numpy()
            np.testing.assert_array_equal(checkpoint[name].view(np.int16), expected, err_msg=name)
    again, info = RobertaForMaskedLM.from_pretrained(tmp_path, dtype=torch.bfloat16, output_loading_info=True)
    assert not any(info.values()), info
    for name, tensor in state.items():
        assert torch.equal(again.state_dict()[name], tensor.to(torch.bfloat16)), name


def with_config(folder):
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "roberta"}')


def test_dtypes_are_kept_by_default(tmp_path):
    tensors = numpy_source(tmp_path / "src")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    assert sorted(os.listdir(tmp_path / "dst")) == ["config.json", SAFE_WEIGHTS_NAME]
    with open_checkpoint(tmp_path / "dst") as checkpoint:
        for name, array in tensors.items():
            assert checkpoint[name].dtype == array.dtype and checkpoint[name].tobytes() == array.tobytes(), name


def test_dtype_casts_floating_point_only(tmp_path):
    tensors = numpy_source(tmp_path / "src")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst"), "--dtype", "float16"]) == 0
    with open_checkpoint(tmp_path / "dst") as checkpoint:
        for name in ("w", "h", "b"):
            assert checkpoint[name].dtype == np.float16
            np.testing.assert_array_equal(checkpoint[name], tensors[name].astype(np.float16))
        assert checkpoint["ids"].dtype == np.int64 and checkpoint["flags"].dtype == np.bool_


def test_source_without_config_is_an_error(tmp_path, capsys):
    numpy_source(tmp_path / "src", config=False)
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 2
    assert "src has no config.json; the converter copies whole models" in capsys.readouterr().err
    assert not (tmp_path / "dst").exists()


def test_refuses_to_overwrite_unless_asked(tmp_path, capsys):
    numpy_source(tmp_path / "src")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    (tmp_path / "dst" / "config.json").write_text("mine")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "dst" / "config.json").read_text() == "mine"
    os.remove(tmp_path / "dst" / "config.json")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 2  # the weights are still there
    assert "overwrite" in capsys.readouterr().err
    assert main([str(tmp_path / "src"), str(tmp_path / "dst"), "--overwrite", "--max-shard-size", "40"]) == 0
    assert SAFE_WEIGHTS_NAME not in os.listdir(tmp_path / "dst")  # replaced by shards and their index
    assert (tmp_path / "dst" / "config.json").read_bytes() == (tmp_path / "src" / "config.json").read_bytes()


@pytest.mark.parametrize(
    ("make_source", "args", "message"),
    [
        (lambda src: None, [], "neither a local folder nor a valid hub id"),
        (lambda src: with_config(src), [], "has no model.safetensors"),
        (lambda src: numpy_source(src), ["--max-shard-size", "lots"], "max_shard_size"),
        (lambda src: (with_config(src), (src / SAFE_WEIGHTS_NAME).write_bytes(b"truncated")), [], "re-download or re-save"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, make_source, args, message):
    source = tmp_path / "src"
    make_source(source)
    assert main([str(source), str(tmp_path / "dst"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "dst").exists() or not os.listdir(tmp_path / "dst")


def test_bad_dtype_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), str(tmp_path / "dst"), "--dtype", "int8"])
    assert exit_info.value.code == 2 and "--dtype" in capsys.readouterr().err


def test_bin_without_torch_exits_2(tmp_path, monkeypatch, capsys):
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text('{"model_type": "roberta"}')
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main([str(tmp_path), str(tmp_path / "dst")]) == 2
    assert 'pip install "rosettazoo[torch]"' in capsys.readouterr().err


def test_hub_id_from_the_offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_cache(tmp_path / "cache", repo_id="org/tiny", files={})
    tensors = numpy_source(snapshot)
    assert main(["org/tiny", str(tmp_path / "dst"), "--cache-dir", str(tmp_path / "cache")]) == 0
    with open_checkpoint(tmp_path / "dst") as checkpoint:
        assert sorted(checkpoint) == sorted(tensors)
    assert main(["org/absent", str(tmp_path / "dst2"), "--cache-dir", str(tmp_path / "cache")]) == 2


def test_module_entry_point(tmp_path):
    numpy_source(tmp_path / "src")
    command = [sys.executable, "-m", "rosettazoo.conversion", str(tmp_path / "src"), str(tmp_path / "dst")]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "dst")) == ["config.json", SAFE_WEIGHTS_NAME]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "already" in done.stderr
