"""Checkpoint reading and writing: safetensors and pytorch_model.bin, single and sharded, local and from the cache."""

import json
import os
import sys

import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from rosettazoo.common.checkpoint import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    open_checkpoint,
    parse_size,
    save_checkpoint,
)
from tests.common.hub_cache import make_cache


def sample_tensors():
    rng = np.random.default_rng(0)
    return {
        "embeddings.weight": rng.standard_normal((10, 4)).astype(np.float32),
        "dense.weight": rng.standard_normal((4, 4)).astype(ml_dtypes.bfloat16),
        "dense.bias": rng.standard_normal(4).astype(np.float16),
        "position_ids": np.arange(6, dtype=np.int64).reshape(1, 6),
        "mask": np.array([True, False, True]),
        "scale": np.array(2.5, dtype=np.float32),
    }


def assert_same(expected, reader):
    assert sorted(reader) == sorted(expected)
    for name, want in expected.items():
        got = reader[name]
        assert got.dtype == want.dtype and reader.dtype(name) == want.dtype, name
        assert got.shape == want.shape and reader.shape(name) == want.shape, name
        assert got.tobytes() == want.tobytes(), name


def files_in(folder):
    return sorted(os.listdir(folder))


def test_round_trip_keeps_dtypes_and_bits(tmp_path):
    tensors = sample_tensors()
    save_checkpoint(tmp_path, tensors)
    assert files_in(tmp_path) == [SAFE_WEIGHTS_NAME]  # no temporary file left behind
    with safe_open(tmp_path / SAFE_WEIGHTS_NAME, "numpy") as f:
        assert f.metadata() == {"format": "pt"}
    with open_checkpoint(tmp_path) as reader:
        assert_same(tensors, reader)
        assert reader["dense.weight"].dtype == np.dtype(ml_dtypes.bfloat16)
        assert reader.description == f"checkpoint {tmp_path / SAFE_WEIGHTS_NAME}"
        assert "dense.bias" in reader and "nothing" not in reader and len(reader) == len(tensors)
        with pytest.raises(KeyError, match="nothing"):
            reader["nothing"]


def test_non_contiguous_arrays_are_saved(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_checkpoint(tmp_path, {"t": matrix.T})
    with open_checkpoint(tmp_path) as reader:
        np.testing.assert_array_equal(reader["t"], matrix.T)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(None, None), (100, 100), ("100", 100), ("10MB", 10**7), ("2GB", 2 * 10**9), ("1.5KB", 1500), ("2GiB", 2 * 2**30),
     ("5 mb", 5 * 10**6)],
)
def test_parse_size(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["abc", "3XB", "-1MB", "0", 0, -5, True, 1.5, "MB"])
def test_parse_size_rejects(size):
    with pytest.raises(ValueError, match="max_shard_size"):
        parse_size(size)


def test_sharded_like_hugging_face(tmp_path):
    tensors = {f"layer.{i}.weight": np.full((10, 10), i, dtype=np.float32) for i in range(5)}  # 400 bytes each
    tensors["big"] = np.zeros(300, dtype=np.float32)  # 1200 bytes: a shard of its own
    save_checkpoint(tmp_path, tensors, max_shard_size="1KB")
    shards = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    assert files_in(tmp_path) == sorted([*shards, SAFE_WEIGHTS_INDEX_NAME])
    index = json.loads((tmp_path / SAFE_WEIGHTS_INDEX_NAME).read_text())
    assert index["metadata"] == {"total_size": 5 * 400 + 1200}
    assert index["weight_map"] == {
        "layer.0.weight": shards[0], "layer.1.weight": shards[0], "layer.2.weight": shards[1],
        "layer.3.weight": shards[1], "layer.4.weight": shards[2], "big": shards[3],
    }
    for shard in shards:
        with safe_open(tmp_path / shard, "numpy") as f:
            assert f.metadata() == {"format": "pt"}
    with open_checkpoint(tmp_path) as reader:
        assert_same(tensors, reader)
        assert reader.description == f"checkpoint {tmp_path / SAFE_WEIGHTS_INDEX_NAME} (4 shards)"


def test_small_checkpoint_under_the_limit_is_one_file(tmp_path):
    save_checkpoint(tmp_path, sample_tensors(), max_shard_size="2GB")
    assert files_in(tmp_path) == [SAFE_WEIGHTS_NAME]


def test_empty_mapping_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no tensors"):
        save_checkpoint(tmp_path, {})


def test_refuses_to_overwrite(tmp_path):
    save_checkpoint(tmp_path, {"a": np.ones(3, np.float32)})
    before = (tmp_path / SAFE_WEIGHTS_NAME).read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_checkpoint(tmp_path, {"a": np.zeros(3, np.float32)})
    assert (tmp_path / SAFE_WEIGHTS_NAME).read_bytes() == before
    save_checkpoint(tmp_path, {"a": np.zeros(3, np.float32)}, overwrite=True)
    with open_checkpoint(tmp_path) as reader:
        np.testing.assert_array_equal(reader["a"], np.zeros(3))


def test_refuses_to_overwrite_a_sharded_checkpoint(tmp_path):
    save_checkpoint(tmp_path, {"a": np.ones(100, np.float32), "b": np.ones(100, np.float32)}, max_shard_size=400)
    with pytest.raises(FileExistsError, match=SAFE_WEIGHTS_INDEX_NAME):
        save_checkpoint(tmp_path, {"a": np.zeros(3, np.float32)})
    assert SAFE_WEIGHTS_NAME not in files_in(tmp_path)


def write_three_shards(folder, overwrite=False):
    tensors = {name: np.full(100, i, np.float32) for i, name in enumerate("abc")}
    save_checkpoint(folder, tensors, max_shard_size=400, overwrite=overwrite)
    assert len([n for n in files_in(folder) if n.startswith("model-")]) == 3
    return tensors


def test_overwrite_sharded_with_single_removes_old_shards(tmp_path):
    write_three_shards(tmp_path)
    (tmp_path / "notes.txt").write_text("not ours")
    save_checkpoint(tmp_path, {"x": np.ones(2, np.float32)}, overwrite=True)
    assert files_in(tmp_path) == [SAFE_WEIGHTS_NAME, "notes.txt"]


def test_overwrite_single_with_sharded_removes_the_single_file(tmp_path):
    save_checkpoint(tmp_path, {"x": np.ones(2, np.float32)})
    tensors = write_three_shards(tmp_path, overwrite=True)
    assert SAFE_WEIGHTS_NAME not in files_in(tmp_path)  # it would shadow the index
    with open_checkpoint(tmp_path) as reader:
        assert_same(tensors, reader)


def test_overwrite_sharded_with_fewer_shards(tmp_path):
    write_three_shards(tmp_path)
    tensors = {"a": np.zeros(100, np.float32), "b": np.ones(100, np.float32)}
    save_checkpoint(tmp_path, tensors, max_shard_size=400, overwrite=True)
    assert files_in(tmp_path) == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", SAFE_WEIGHTS_INDEX_NAME
    ]
    with open_checkpoint(tmp_path) as reader:
        assert_same(tensors, reader)


class FailingMapping(dict):
    """A lazy mapping (sizes from shape/dtype) that fails on reading ``fail_on``, as a crash midway would."""

    def __init__(self, tensors, fail_on):
        super().__init__(tensors)
        self.fail_on = fail_on

    def __getitem__(self, name):
        if name == self.fail_on:
            raise RuntimeError("disk full")
        return super().__getitem__(name)

    def shape(self, name):
        return super().__getitem__(name).shape

    def dtype(self, name):
        return super().__getitem__(name).dtype


def test_failed_overwrite_keeps_the_old_checkpoint(tmp_path):
    old = write_three_shards(tmp_path)
    before = files_in(tmp_path)
    new = FailingMapping({name: np.zeros(100, np.float32) for name in "wxyz"}, fail_on="z")
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(tmp_path, new, max_shard_size=800, overwrite=True)
    # The new first shard was staged before the failure; the save is atomic, so the folder is exactly as before.
    assert files_in(tmp_path) == before
    with open_checkpoint(tmp_path) as reader:
        assert_same(old, reader)


def test_old_index_naming_files_outside_the_folder_deletes_nothing_there(tmp_path):
    folder = tmp_path / "model"
    write_three_shards(folder)
    outside = tmp_path / "precious.safetensors"
    outside.write_text("keep me")
    index = json.loads((folder / SAFE_WEIGHTS_INDEX_NAME).read_text())
    index["weight_map"]["a"] = "../precious.safetensors"
    (folder / SAFE_WEIGHTS_INDEX_NAME).write_text(json.dumps(index))
    save_checkpoint(folder, {"x": np.ones(2, np.float32)}, overwrite=True)
    assert outside.read_text() == "keep me"


# ------------------------------------------------------------------------------------------------- reading errors


def test_truncated_safetensors_names_the_file(tmp_path):
    save_checkpoint(tmp_path, sample_tensors())
    path = tmp_path / SAFE_WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError) as err:
        open_checkpoint(tmp_path)
    assert str(path) in str(err.value) and "re-download or re-save" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"garbage that is not a safetensors file", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_corrupt_safetensors_names_the_file(tmp_path, content):
    (tmp_path / SAFE_WEIGHTS_NAME).write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        open_checkpoint(tmp_path)


def test_shards_are_opened_one_at_a_time(tmp_path):
    tensors = write_three_shards(tmp_path)
    broken = tmp_path / "model-00003-of-00003.safetensors"
    broken.write_bytes(b"broken")
    with open_checkpoint(tmp_path) as reader:  # opening reads no shard
        np.testing.assert_array_equal(reader["a"], tensors["a"])
        np.testing.assert_array_equal(reader["b"], tensors["b"])
        with pytest.raises(CheckpointError, match=str(broken)):
            reader["c"]


def test_index_naming_a_missing_shard(tmp_path):
    write_three_shards(tmp_path)
    os.remove(tmp_path / "model-00002-of-00003.safetensors")
    with pytest.raises(FileNotFoundError) as err:
        open_checkpoint(tmp_path)
    assert SAFE_WEIGHTS_INDEX_NAME in str(err.value) and "model-00002-of-00003.safetensors" in str(err.value)


def test_index_placing_a_tensor_in_the_wrong_shard(tmp_path):
    write_three_shards(tmp_path)
    index = json.loads((tmp_path / SAFE_WEIGHTS_INDEX_NAME).read_text())
    index["weight_map"]["a"] = "model-00002-of-00003.safetensors"
    (tmp_path / SAFE_WEIGHTS_INDEX_NAME).write_text(json.dumps(index))
    with open_checkpoint(tmp_path) as reader, pytest.raises(CheckpointError, match="holds a, but it does not"):
        reader["a"]


@pytest.mark.parametrize("content", ["{not json", '{"metadata": {}}', '{"weight_map": ["a"]}', '{"weight_map": {"a": 1}}'])
def test_broken_index(tmp_path, content):
    (tmp_path / SAFE_WEIGHTS_INDEX_NAME).write_text(content)
    with pytest.raises(CheckpointError, match="is not a checkpoint index"):
        open_checkpoint(tmp_path)


def test_no_checkpoint_lists_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        open_checkpoint(tmp_path)
    for name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME, "tf_model.h5",
                 "tf_model.h5.index.json", "flax_model.msgpack", "flax_model.msgpack.index.json"):
        assert name in str(err.value)


def test_empty_tf_and_flax_checkpoints_are_named(tmp_path):
    (tmp_path / "tf_model.h5").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'tf_model.h5'} is not a readable HDF5 file"):
        open_checkpoint(tmp_path)
    (tmp_path / "tf_model.h5").unlink()
    (tmp_path / "flax_model.msgpack").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'flax_model.msgpack'} is empty"):
        open_checkpoint(tmp_path)


def test_safetensors_preferred_over_bin_and_single_over_index(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / WEIGHTS_NAME)
    save_file({"w": np.full(2, 2.0, np.float32)}, tmp_path / "model-00001-of-00001.safetensors")
    (tmp_path / SAFE_WEIGHTS_INDEX_NAME).write_text(json.dumps({"weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    with open_checkpoint(tmp_path) as reader:
        assert reader["w"].tolist() == [2.0, 2.0]
    save_file({"w": np.full(2, 1.0, np.float32)}, tmp_path / SAFE_WEIGHTS_NAME)
    with open_checkpoint(tmp_path) as reader:
        assert reader["w"].tolist() == [1.0, 1.0]


# ------------------------------------------------------------------------------------------------- pytorch_model.bin


def torch_state():
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(10, 4, generator=generator)
    return {
        "embeddings.weight": embeddings,
        "decoder.weight": embeddings,  # tied: one storage, two names, as transformers saves .bin files
        "dense.weight": torch.randn(4, 4, generator=generator).to(torch.bfloat16),
        "dense.bias": torch.randn(4, generator=generator).to(torch.float16),
        "transposed": torch.randn(3, 5, generator=generator).t(),
        "position_ids": torch.arange(6).reshape(1, 6),
    }


def assert_matches_torch(state, reader):
    assert sorted(reader) == sorted(state)
    for name, tensor in state.items():
        got = reader[name]
        assert got.shape == tuple(tensor.shape) and reader.shape(name) == tuple(tensor.shape), name
        if tensor.dtype == torch.bfloat16:
            assert got.dtype == np.dtype(ml_dtypes.bfloat16) and reader.dtype(name) == got.dtype
            np.testing.assert_array_equal(got.view(np.int16), tensor.view(torch.int16).numpy())
        else:
            assert got.dtype == reader.dtype(name)
            np.testing.assert_array_equal(got, tensor.numpy())


def test_bin_single(tmp_path):
    state = torch_state()
    torch.save(state, tmp_path / WEIGHTS_NAME)
    with open_checkpoint(tmp_path) as reader:
        assert reader.description == f"checkpoint {tmp_path / WEIGHTS_NAME}"
        assert list(reader) == list(state)  # the file's order
        assert_matches_torch(state, reader)


def test_bin_sharded(tmp_path):
    state = torch_state()
    names = list(state)
    weight_map = {}
    for i, part in enumerate((names[:2], names[2:5], names[5:]), start=1):
        shard = f"pytorch_model-0000{i}-of-00003.bin"
        torch.save({name: state[name] for name in part}, tmp_path / shard)
        weight_map.update(dict.fromkeys(part, shard))
    (tmp_path / WEIGHTS_INDEX_NAME).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    with open_checkpoint(tmp_path) as reader:
        assert_matches_torch(state, reader)


def test_bin_from_torch_before_1_6_is_read_without_mmap(tmp_path):
    state = torch_state()
    torch.save(state, tmp_path / WEIGHTS_NAME, _use_new_zipfile_serialization=False)
    with open_checkpoint(tmp_path) as reader:
        assert_matches_torch(state, reader)


def test_bin_is_read_with_weights_only_and_mmap(tmp_path, monkeypatch):
    torch.save(torch_state(), tmp_path / WEIGHTS_NAME)
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    with open_checkpoint(tmp_path) as reader:
        reader["dense.weight"]
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_bin_with_arbitrary_objects_is_refused(tmp_path, capsys):
    torch.save({"w": torch.zeros(2), "payload": Payload()}, tmp_path / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        open_checkpoint(tmp_path)
    assert "must never run" not in capsys.readouterr().out


def test_bin_that_is_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match="not a state dict"):
        open_checkpoint(tmp_path)


def test_truncated_bin_names_the_file(tmp_path):
    torch.save(torch_state(), tmp_path / WEIGHTS_NAME)
    path = tmp_path / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as err:
        open_checkpoint(tmp_path)
    assert str(path) in str(err.value) and "re-download or re-save" in str(err.value)


def test_bin_without_torch_says_how_to_convert(tmp_path, monkeypatch):
    torch.save({"w": torch.zeros(2)}, tmp_path / WEIGHTS_NAME)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were not installed
    with pytest.raises(ImportError) as err:
        open_checkpoint(tmp_path)
    message = str(err.value)
    assert str(tmp_path / WEIGHTS_NAME) in message
    assert 'pip install "rosettazoo[torch]"' in message and "python -m rosettazoo.conversion" in message


def test_bin_saved_by_us_as_safetensors_round_trip(tmp_path):
    state = torch_state()
    torch.save(state, tmp_path / WEIGHTS_NAME)
    with open_checkpoint(tmp_path) as reader:
        save_checkpoint(tmp_path / "out", reader, max_shard_size=100)
    with open_checkpoint(tmp_path / "out") as reader:
        assert_matches_torch(state, reader)


# ------------------------------------------------------------------------------------------------- hub ids


def test_hub_id_from_the_cache_sharded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_cache(tmp_path / "cache", files={})
    tensors = write_three_shards(snapshot)
    with open_checkpoint("org/tiny", cache_dir=tmp_path / "cache") as reader:
        assert_same(tensors, reader)
        assert str(snapshot) in reader.description


def test_hub_id_offline_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_cache(tmp_path / "cache")  # config.json only
    with pytest.raises(FileNotFoundError) as err:
        open_checkpoint("org/tiny", cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "org/tiny" in message and SAFE_WEIGHTS_NAME in message and WEIGHTS_NAME in message
    assert "while online" in message

