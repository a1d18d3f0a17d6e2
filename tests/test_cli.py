"""The ``rosettazoo`` command line and its API: convert between every format and dtype, and describe checkpoints."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from rosettazoo.common.checkpoint import open_checkpoint, save_checkpoint
from rosettazoo.common.formats import FORMATS
from rosettazoo.conversion import checkpoint_info, convert_checkpoint
from rosettazoo.conversion.cli import main
from tests.harness import Oracle

DATA = Path(__file__).parent / "data" / "roberta-base"
TINY = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 37, "max_position_embeddings": 40}
TOKENIZER_FILES = ["vocab.json", "merges.txt", "tokenizer.json"]


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """transformers' tiny RobertaForMaskedLM saved as safetensors, with a tokenizer and a generation config."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    model = Oracle(TINY, weights_seed=None).hf_model("Roberta", "ForMaskedLM")  # transformers' own init
    folder = tmp_path_factory.mktemp("hf")
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(DATA / name, folder / name)
    (folder / "generation_config.json").write_text('{"max_length": 7}\n')
    return model, folder


def numpy_model(folder, tensors, config=None):
    save_checkpoint(folder, tensors)
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "roberta", "torch_dtype": "float32"}))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_converts_and_loads_bit_exact(hf_model, tmp_path, fmt):
    torch = pytest.importorskip("torch")
    from rosettazoo.roberta import RobertaForMaskedLM

    model, source = hf_model
    report = convert_checkpoint(source, tmp_path / fmt, format=fmt)
    assert report.format == fmt and sorted(report.copied) == sorted(["generation_config.json", *TOKENIZER_FILES])
    assert FORMATS[fmt].single_name in os.listdir(tmp_path / fmt)
    shard = FORMATS[fmt].open(str(tmp_path / fmt / FORMATS[fmt].single_name))
    try:  # tf_model.h5 and flax_model.msgpack name tensors as transformers' TF and Flax classes do
        query = {"safetensors": "roberta.encoder.layer.0.attention.self.query.weight",
                 "tf": "roberta/encoder/layer_._0/attention/self/query/kernel:0",  # the reader strips the model scope
                 "flax": "roberta/encoder/layer/0/attention/self/query/kernel"}
        assert query.get(fmt, query["safetensors"]) in shard.names, sorted(shard.names)[:5]
    finally:
        shard.close()
    back = convert_checkpoint(tmp_path / fmt, tmp_path / "back")  # and back to safetensors
    assert back.format == "safetensors"
    loaded = RobertaForMaskedLM.from_pretrained(tmp_path / "back")
    for name, tensor in model.state_dict().items():
        if name in loaded.state_dict():
            assert torch.equal(loaded.state_dict()[name], tensor), name
    for name in ["config.json", "generation_config.json", *TOKENIZER_FILES]:
        assert (tmp_path / "back" / name).read_bytes() == (source / name).read_bytes(), name


def test_dtype_updates_config_so_transformers_auto_loads_it(hf_model, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    _, source = hf_model
    assert main(["convert", str(source), str(tmp_path / "bf16"), "--dtype", "bfloat16", "--max-shard-size", "20KB"]) == 0
    captured = capsys.readouterr()
    assert "tensors" in captured.err and "B/s" in captured.err  # tqdm's bar: bytes and the tensor count
    assert f"wrote {tmp_path / 'bf16'}: " in captured.out and "as safetensors, with generation_config.json" in captured.out
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "bf16", dtype="auto")
    assert hf.dtype == torch.bfloat16
    # An older config's torch_dtype is updated too (older transformers read only that key).
    numpy_model(tmp_path / "src", {"w": np.ones(3, np.float32)})
    convert_checkpoint(tmp_path / "src", tmp_path / "f16", dtype="float16")
    written = json.loads((tmp_path / "f16" / "config.json").read_text())
    assert written["dtype"] == written["torch_dtype"] == "float16"


def test_float16_overflow_is_refused_or_clipped_and_counted(tmp_path, capsys):
    big = np.array([1.0, 1e5, -7e4, 65519.0, np.inf, -np.inf], np.float32)
    numpy_model(tmp_path / "src", {"big": big, "bf": big.astype(ml_dtypes.bfloat16), "ok": np.ones(2, np.float32)})
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--dtype", "bfloat16", "--quiet"]) == 0
    before = {name: (tmp_path / "dst" / name).read_bytes() for name in os.listdir(tmp_path / "dst")}
    args = ["convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--dtype", "float16", "--overwrite", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    # bfloat16's 65519 is 65536: three values of "bf" overflow, the first tensor read.
    assert "bf holds 3 finite value(s) beyond float16's range (+-65504), which would become inf" in err
    assert "--clip-float16" in err
    # The failed conversion left the earlier one as it was.
    assert {name: (tmp_path / "dst" / name).read_bytes() for name in os.listdir(tmp_path / "dst")} == before
    assert main([*args, "--clip-float16"]) == 0
    assert "clipped 5 value(s) beyond float16's range to +-65504 in 2 tensor(s): bf (3), big (2)" in capsys.readouterr().out
    with open_checkpoint(tmp_path / "dst") as checkpoint:
        expected = np.array([1.0, 65504, -65504, 65504, np.inf, -np.inf], np.float16)  # 65519 rounds to 65504
        np.testing.assert_array_equal(checkpoint["big"], expected)
        np.testing.assert_array_equal(checkpoint["bf"], expected)


def test_never_overwrites_without_the_flag(hf_model, tmp_path, capsys):
    _, source = hf_model
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "vocab.json").write_text("mine")
    (tmp_path / "dst" / "notes.txt").write_text("mine")
    assert main(["convert", str(source), str(tmp_path / "dst"), "--quiet"]) == 2
    assert "already holds vocab.json; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "dst")) == ["notes.txt", "vocab.json"]
    assert main(["convert", str(source), str(tmp_path / "dst"), "--quiet", "--overwrite"]) == 0
    assert (tmp_path / "dst" / "vocab.json").read_bytes() == (source / "vocab.json").read_bytes()
    assert (tmp_path / "dst" / "notes.txt").read_text() == "mine"  # not the conversion's file: left alone


def test_info_describes_a_sharded_checkpoint(hf_model, tmp_path, capsys):
    model, source = hf_model
    convert_checkpoint(source, tmp_path / "m", dtype="float16", max_shard_size="30KB")
    info = checkpoint_info(tmp_path / "m")
    assert (info.family, info.model_type, info.architectures) == ("Roberta", "roberta", ["RobertaForMaskedLM"])
    assert info.parameters == {"float16": sum(p.numel() for p in model.parameters())}  # tied ones once
    index, *shards = info.formats["safetensors"]
    assert index == f"model.safetensors.index.json ({len(shards)} shards)" and len(shards) > 1
    assert info.heads == ["RobertaModel", "RobertaForMaskedLM", "RobertaForCausalLM"]
    assert info.tokenizer_files == ["tokenizer.json", "vocab.json", "merges.txt"]
    assert info.unexplained == [] and info.config_dtype == "float16"
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "family:        Roberta (model_type 'roberta')" in out and "unexplained:   none" in out


def test_info_names_tensors_the_config_does_not_explain_and_the_heads(tmp_path):
    config = {"model_type": "roberta", "vocab_size": 10, "num_hidden_layers": 1, "num_labels": 3}
    tensors = {
        "roberta.embeddings.word_embeddings.weight": np.zeros((12, 4), np.float32),
        "roberta.encoder.layer.0.output.dense.weight": np.zeros((4, 4), np.float32),
        "roberta.encoder.layer.1.output.dense.weight": np.zeros((4, 4), np.float32),
        "classifier.weight": np.zeros((3, 4), np.float32),
        "adapter.weight": np.zeros(2, ml_dtypes.bfloat16),
    }
    numpy_model(tmp_path, tensors, config)
    info = checkpoint_info(tmp_path)
    assert info.heads == ["RobertaModel", "RobertaForTokenClassification"]  # 3 rows: a tagger of num_labels
    assert info.parameters == {"float32": 48 + 16 + 16 + 12, "bfloat16": 2}
    assert sorted(info.unexplained) == [
        "adapter.weight: no Roberta class has a module 'adapter'",
        "roberta.embeddings.word_embeddings.weight: 12 rows, but the config's vocab_size is 10",
        "roberta.encoder.layer.1.output.dense.weight: layer 1, but the config has 1 encoder layers",
    ]


def test_command_line_entry_points(hf_model, tmp_path):
    _, source = hf_model
    done = subprocess.run([sys.executable, "-m", "rosettazoo", "info", str(source)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "heads:         RobertaModel, RobertaForMaskedLM" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, "-m", "rosettazoo.conversion", "convert", str(source), str(tmp_path / "d"), "--format",
                           "pytorch", "--dtype", "int8"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--dtype: invalid choice: 'int8'" in done.stderr
