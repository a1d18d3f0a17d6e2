"""Every checkpoint layout without transformers: tf_model.h5 and flax_model.msgpack (single and sharded) written
and read back bit-exact by the framework-free converter, flax.serialization's own msgpack read both ways, and
bad files refused with errors that name the file and the tensor, leaving the destination untouched.

transformers' TF and Flax classes reading and writing these files: test_formats_hf.py.
"""

import json
import os

import h5py
import ml_dtypes
import numpy as np
import pytest
import torch

from rosettazoo import roberta
from rosettazoo.common import formats
from rosettazoo.common.checkpoint import open_checkpoint
from rosettazoo.common.formats import CheckpointError
from rosettazoo.conversion import WeightsError, convert_checkpoint
from tests.conversion.tiny_models import FAMILIES

# safetensors -> h5 -> msgpack -> bin -> safetensors
CHAIN = ("tf", "flax", "pytorch", "safetensors")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{family: folder} of a tiny random model each, saved by our PyTorch class (config.json + safetensors)."""
    folders = {}
    for family, build in FAMILIES.items():
        torch.manual_seed(0)
        folders[family] = tmp_path_factory.mktemp(family)
        build().save_pretrained(folders[family])
    return folders


def read_all(folder) -> dict[str, np.ndarray]:
    with open_checkpoint(folder) as checkpoint:
        return {name: np.array(checkpoint[name]) for name in checkpoint}


def assert_bit_exact(expected: dict, folder) -> None:
    actual = read_all(folder)
    assert sorted(actual) == sorted(expected)
    for name, array in expected.items():
        assert actual[name].dtype == array.dtype and actual[name].shape == array.shape, name
        assert actual[name].tobytes() == array.tobytes(), name


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_through_every_format_is_bit_exact(saved, family, tmp_path):
    source = saved[family]
    expected = read_all(source)
    for step, fmt in enumerate(CHAIN):
        destination = tmp_path / f"{step}-{fmt}"
        convert_checkpoint(source, destination, format=fmt)
        assert os.path.exists(destination / formats.checkpoint_format(fmt).single_name)
        assert_bit_exact(expected, destination)
        source = destination


def test_sharded_bfloat16_round_trip_is_bit_exact(saved, tmp_path):
    source = tmp_path / "bf16"
    convert_checkpoint(saved["bart"], source, dtype="bfloat16")
    expected = read_all(source)
    for step, fmt in enumerate(CHAIN):
        destination = tmp_path / f"{step}-{fmt}"
        convert_checkpoint(source, destination, format=fmt, max_shard_size="3KB")
        fmt = formats.checkpoint_format(fmt)
        with open(destination / fmt.index_name) as f:
            assert len(set(json.load(f)["weight_map"].values())) > 3
        assert_bit_exact(expected, destination)
        source = destination


def test_files_name_tensors_as_transformers_tf_and_flax_classes(saved, tmp_path):
    convert_checkpoint(saved["roberta"], tmp_path / "tf", format="tf")
    with h5py.File(tmp_path / "tf" / "tf_model.h5") as f:
        assert sorted(n.decode() for n in f.attrs["layer_names"]) == ["lm_head", "roberta"]
        roberta_weights = [n.decode() for n in f["roberta"].attrs["weight_names"]]
        head_weights = [n.decode() for n in f["lm_head"].attrs["weight_names"]]
    assert "tf_model/roberta/encoder/layer_._1/attention/self/query/kernel:0" in roberta_weights
    assert "tf_model/roberta/embeddings/word_embeddings/weight:0" in roberta_weights
    assert "tf_model/roberta/embeddings/position_embeddings/embeddings:0" in roberta_weights
    # The tied LM head lists the embeddings it holds, as Keras does (else transformers calls them new).
    assert "tf_model/lm_head/layer_norm/gamma:0" in head_weights
    assert "tf_model/roberta/embeddings/LayerNorm/beta:0" in head_weights
    convert_checkpoint(saved["bart"], tmp_path / "flax", format="flax")
    shard = formats.FLAX.open(str(tmp_path / "flax" / "flax_model.msgpack"))
    assert {"model/shared/embedding", "model/encoder/layers/1/fc1/kernel", "final_logits_bias",
            "model/decoder/layers/0/encoder_attn_layer_norm/scale"} <= set(shard.names)
    assert shard.shape("model/encoder/layers/1/fc1/kernel") == (32, 37)  # [in, out]
    shard.close()


def test_flax_serialization_reads_what_we_write_and_we_read_what_it_writes(tmp_path, monkeypatch):
    serialization = pytest.importorskip("flax.serialization")
    tree = {"a": {"kernel": np.arange(10, dtype=np.float32).reshape(2, 5), "scalar": np.float32(3.5)},
            "ids": np.arange(7, dtype=np.int64), "half": np.linspace(0, 1, 6).astype(ml_dtypes.bfloat16),
            "empty": np.zeros((0, 3), np.float16), "zero_d": np.array(2.0, np.float64)}
    # Arrays past the chunk size are split in pieces by both writers: tiny sizes exercise it.
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 16)
    (tmp_path / "flax.msgpack").write_bytes(serialization.msgpack_serialize(tree))
    shard = formats.FLAX.open(str(tmp_path / "flax.msgpack"))
    assert sorted(shard.names) == ["a/kernel", "a/scalar", "empty", "half", "ids", "zero_d"]
    for name in shard.names:
        want = np.asarray(tree[name.split("/")[0]]["scalar" if name.endswith("scalar") else "kernel"]
                          if name.startswith("a/") else tree[name])
        got = shard.read(name)
        assert got.dtype == want.dtype and got.shape == want.shape == shard.shape(name), name
        assert got.tobytes() == want.tobytes(), name
    shard.close()

    monkeypatch.setattr(formats, "_MAX_CHUNK_BYTES", 16)
    flat = {"a/kernel": tree["a"]["kernel"], "ids": tree["ids"], "half": tree["half"], "zero_d": tree["zero_d"]}
    formats.FLAX.write(str(tmp_path / "ours.msgpack"), flat)
    restored = serialization.msgpack_restore((tmp_path / "ours.msgpack").read_bytes())
    for name, want in flat.items():
        got = np.asarray(restored["a"]["kernel"] if name == "a/kernel" else restored[name])
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(), name
    shard = formats.FLAX.open(str(tmp_path / "ours.msgpack"))
    assert all(shard.read(name).tobytes() == flat[name].tobytes() for name in flat)
    shard.close()


def test_h5_name_lists_are_split_past_the_attribute_limit(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "_H5_ATTRIBUTE_LIMIT", 600)
    convert_checkpoint(saved["roberta"], tmp_path / "tf", format="tf")
    with h5py.File(tmp_path / "tf" / "tf_model.h5") as f:
        assert "weight_names" not in f["roberta"].attrs and "weight_names1" in f["roberta"].attrs
    assert_bit_exact(read_all(saved["roberta"]), tmp_path / "tf")


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def tf_and_flax(saved, tmp_path_factory):
    """RoBERTa in tf_model.h5 and flax_model.msgpack, single and sharded (and sharded safetensors)."""
    root = tmp_path_factory.mktemp("formats")
    convert_checkpoint(saved["roberta"], root / "safetensors-sharded", max_shard_size="8KB")
    for fmt in ("tf", "flax"):
        convert_checkpoint(saved["roberta"], root / fmt, format=fmt)
        convert_checkpoint(saved["roberta"], root / f"{fmt}-sharded", format=fmt, max_shard_size="8KB")
    return root


def copy_folder(source, destination):
    destination.mkdir()
    for name in os.listdir(source):
        (destination / name).write_bytes((source / name).read_bytes())
    return destination


def assert_refused(source, tmp_path, error, *fragments):
    """Reading ``source`` and converting it both raise ``error`` naming each fragment, and write nothing."""
    with pytest.raises(error) as raised:
        with open_checkpoint(source) as checkpoint:
            for name in checkpoint:
                checkpoint[name]
    for fragment in fragments:
        assert fragment in str(raised.value)
    destination = tmp_path / "destination"
    with pytest.raises(error):
        convert_checkpoint(source, destination, format="safetensors")
    assert not destination.exists() or os.listdir(destination) == []


@pytest.mark.parametrize("fmt", ["tf", "flax"])
def test_truncated_file_names_the_file(tf_and_flax, tmp_path, fmt):
    folder = copy_folder(tf_and_flax / fmt, tmp_path / "truncated")
    path = folder / formats.checkpoint_format(fmt).single_name
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    assert_refused(folder, tmp_path, CheckpointError, str(path), "truncated")


def test_truncated_msgpack_names_the_tensor(tf_and_flax, tmp_path):
    folder = copy_folder(tf_and_flax / "flax", tmp_path / "truncated")
    path = folder / "flax_model.msgpack"
    data = path.read_bytes()
    cut = data.index(b"query") + 400  # inside the first query kernel's bytes
    path.write_bytes(data[:cut])
    assert_refused(folder, tmp_path, CheckpointError, str(path), "roberta/encoder/layer/0/attention/self/query/kernel")


@pytest.mark.parametrize("fmt", ["tf", "flax"])
def test_corrupt_file_names_the_file(tf_and_flax, tmp_path, fmt):
    folder = copy_folder(tf_and_flax / fmt, tmp_path / "corrupt")
    path = folder / formats.checkpoint_format(fmt).single_name
    data = bytearray(path.read_bytes())
    data[:64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    assert_refused(folder, tmp_path, CheckpointError, str(path))


def test_msgpack_with_a_foreign_value_names_the_tensor(tmp_path):
    (tmp_path / "flax_model.msgpack").write_bytes(b"\x81\xa1a\x81\xa1b\xa5hello")  # {"a": {"b": "hello"}}
    with pytest.raises(CheckpointError, match="a msgpack str where a params tree holds a map or an array at a/b"):
        open_checkpoint(tmp_path)


@pytest.mark.parametrize("fmt", ["tf", "flax"])
def test_index_naming_a_missing_shard_names_it_and_a_tensor(tf_and_flax, tmp_path, fmt):
    folder = copy_folder(tf_and_flax / f"{fmt}-sharded", tmp_path / "missing")
    fmt = formats.checkpoint_format(fmt)
    with open(folder / fmt.index_name) as f:
        weight_map = json.load(f)["weight_map"]
    lost = fmt.shard_name(2, len(set(weight_map.values())))
    (folder / lost).unlink()
    first = sorted(name for name, shard in weight_map.items() if shard == lost)[0]
    assert_refused(folder, tmp_path, FileNotFoundError, str(folder / fmt.index_name), lost, first)


@pytest.mark.parametrize("fmt", ["safetensors", "flax"])
@pytest.mark.parametrize("shard", ["../outside.msgpack", "/etc/passwd", "sub/../../x.msgpack"])
def test_index_naming_a_path_outside_the_folder_is_refused(tf_and_flax, tmp_path, fmt, shard):
    folder = copy_folder(tf_and_flax / f"{fmt}-sharded", tmp_path / "escape")
    index = folder / formats.checkpoint_format(fmt).index_name
    content = json.loads(index.read_text())
    name = next(iter(content["weight_map"]))
    content["weight_map"][name] = shard
    index.write_text(json.dumps(content))
    assert_refused(folder, tmp_path, CheckpointError, str(index), repr(shard), "outside the checkpoint's folder")


def test_h5_tensor_of_the_wrong_shape_names_the_file_and_tensor(tf_and_flax, tmp_path):
    folder = copy_folder(tf_and_flax / "tf", tmp_path / "misshapen")
    path = folder / "tf_model.h5"
    weight = "tf_model/roberta/encoder/layer_._0/intermediate/dense/kernel:0"
    with h5py.File(path, "r+") as f:
        del f["roberta"][weight]
        f["roberta"].create_dataset(weight, data=np.zeros((32, 36), np.float32))
    with pytest.raises(WeightsError) as raised:
        roberta.RobertaForMaskedLM.from_pretrained(folder)
    message = str(raised.value)
    assert str(path) in message and "roberta.encoder.layer.0.intermediate.dense.weight is [36, 32]" in message


def test_msgpack_tree_that_does_not_fit_the_model_names_the_file_and_tensors(saved, tmp_path):
    convert_checkpoint(saved["opt"], tmp_path / "opt", format="flax")
    (tmp_path / "opt" / "config.json").write_text((saved["roberta"] / "config.json").read_text())
    with pytest.raises(WeightsError) as raised:
        roberta.RobertaForMaskedLM.from_pretrained(tmp_path / "opt")
    message = str(raised.value)
    assert str(tmp_path / "opt" / "flax_model.msgpack") in message
    assert "roberta.embeddings.word_embeddings.weight" in message


def test_missing_h5py_names_the_extra(tf_and_flax, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "rosettazoo\[formats\]"'):
        formats.TF.open(str(tf_and_flax / "tf" / "tf_model.h5"))
