"""Saves are atomic for the whole checkpoint: a failure at any write step leaves the old checkpoint or the new one.

``Steps`` counts every write step of a save (each staged file written, fsync, rename, removal, folder creation) and
fails at step k; each test runs the save once to count its steps, then once per k over a fresh copy of the old
checkpoint, loads what is left, and checks it is wholly old (failed before the commit) or wholly new (after it).
The next save of the folder must then finish or discard the interrupted one and leave no stray file.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from rosettazoo.common.checkpoint import open_checkpoint, save_checkpoint
from rosettazoo.common.config import CONFIG_NAME
from rosettazoo.common.hub import resolve_optional_file
from rosettazoo.common.io import JOURNAL_NAME, STAGING_NAME, FolderSave
from rosettazoo.generation.config import GENERATION_CONFIG_NAME, GenerationConfig
from tests.common.save_faults import Fault, Steps, arrays_state, listing, numbered, weights_state

torch = pytest.importorskip("torch")
zoo_opt = pytest.importorskip("rosettazoo.opt")



@pytest.fixture(autouse=True)
def fsync_without_disk(monkeypatch):
    """fsync calls are still made (and counted by ``Steps``) but not sent to the disk: the tests check where a save
    flushes, not the disk, and they save hundreds of times (a flush costs ~10 ms here)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def check_every_step(tmp_path, write_old, write_new, state, *, expect_steps=None):
    """Fail ``write_new`` over the checkpoint ``write_old`` writes at each of its steps; each time what loads is
    wholly old (failure up to the commit) or wholly new (after it), and the next save leaves a clean folder."""
    reference = tmp_path / "reference"
    write_old(reference)
    old = state(reference)
    with Steps() as counted:
        write_new(reference)
    new, clean = state(reference), listing(reference)
    assert old != new
    if expect_steps is not None:
        assert len(counted.log) >= expect_steps, counted.log
    outcomes = set()
    for k in range(1, len(counted.log) + 1):
        folder = tmp_path / f"fail-at-{k}"
        write_old(folder)
        with pytest.raises(Fault), Steps(fail_at=k):
            write_new(folder)
        label = f"failure at step {k} ({counted.log[k - 1]}) of {counted.log}"
        loaded = state(folder)
        assert loaded == (old if k <= counted.commit else new), label
        outcomes.add("old" if loaded == old else "new")
        if os.path.exists(folder / STAGING_NAME / JOURNAL_NAME):
            # Committed but unfinished: readers saw the new files through the journal without writing.
            assert loaded == new and os.path.exists(folder / STAGING_NAME / JOURNAL_NAME), label
        write_new(folder)  # finishes or discards the interrupted save, then saves
        assert state(folder) == new and listing(folder) == clean, label
    assert outcomes == {"old", "new"}
    return counted


# ---------------------------------------------------------------------------------------------------- numpy level


@pytest.mark.parametrize(("old_shards", "new_shards"), [(1, 2), (2, 1), (3, 2)])
def test_save_checkpoint_fails_at_every_step(tmp_path, old_shards, new_shards):
    old, new = numbered("abc", 0.0), numbered("abcd", 100.0)
    nbytes = 60 * 4

    def save(tensors, shards):
        limit = None if shards == 1 else nbytes * -(-len(tensors) // shards)
        return lambda folder: save_checkpoint(folder, tensors, overwrite=True, max_shard_size=limit)

    counted = check_every_step(tmp_path, save(old, old_shards), save(new, new_shards), weights_state)
    assert sum(step.startswith("write ") for step in counted.log) == new_shards + (new_shards > 1)


def test_files_and_folders_are_flushed_before_the_commit_and_after_the_moves(tmp_path):
    save_checkpoint(tmp_path, numbered("a", 0.0))
    with Steps() as counted:
        save_checkpoint(tmp_path, numbered("abc", 1.0), max_shard_size=500, overwrite=True)
    shards = [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    assert counted.log == [
        "mkdir",  # the staging folder
        f"write {shards[0]}", "fsync", f"write {shards[1]}", "fsync", "write model.safetensors.index.json", "fsync",
        "fsync",  # the staging folder: the staged files' names
        "fsync", "replace", "fsync",  # the journal, its rename into place (the commit), the staging folder
        "replace", "replace", "replace", "remove",  # the new files moved into place, the old single file removed
        "fsync",  # the folder: the moves are durable before the journal goes
        "remove", "rmdir", "fsync",  # the journal, the staging folder, the folder
    ]


# ---------------------------------------------------------------------------------------------------- model level

TINY_OPT = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 37,
            "max_position_embeddings": 40}


def tiny_opt(activation: str, seed: int, max_length: int):
    torch.manual_seed(seed)
    model = zoo_opt.OPTForCausalLM(zoo_opt.OPTConfig(**TINY_OPT, activation_function=activation))
    model.generation_config.max_length = max_length
    return model


def checkpoint_state(folder) -> tuple:
    """What loading sees: config.json, generation_config.json and the weights."""
    generation = resolve_optional_file(folder, GENERATION_CONFIG_NAME)
    return (
        zoo_opt.OPTConfig.from_pretrained(folder).to_dict(),
        GenerationConfig.from_json_file(generation).to_dict() if generation else None,
        weights_state(folder),
    )


@pytest.mark.parametrize(("old_limit", "new_limit"), [(None, "20KB"), ("20KB", None)])
def test_model_save_pretrained_fails_at_every_step(tmp_path, old_limit, new_limit):
    old, new = tiny_opt("relu", 0, 20), tiny_opt("gelu", 1, 33)
    counted = check_every_step(
        tmp_path,
        lambda folder: old.save_pretrained(folder, overwrite=True, max_shard_size=old_limit),
        lambda folder: new.save_pretrained(folder, overwrite=True, max_shard_size=new_limit),
        checkpoint_state,
    )
    written = {step.removeprefix("write ") for step in counted.log if step.startswith("write ")}
    assert {CONFIG_NAME, GENERATION_CONFIG_NAME} <= written


def test_a_new_checkpoint_without_generation_config_removes_the_old_one(tmp_path):
    tiny_opt("relu", 0, 20).save_pretrained(tmp_path)
    torch.manual_seed(0)
    roberta = pytest.importorskip("rosettazoo.roberta")
    model = roberta.RobertaForMaskedLM(roberta.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                                                             num_attention_heads=4, intermediate_size=37))
    model.save_pretrained(tmp_path, overwrite=True)
    assert listing(tmp_path) == [CONFIG_NAME, "model.safetensors"]


# ---------------------------------------------------------------------------------------------------- ownership


def test_old_index_naming_other_files_deletes_only_checkpoint_files(tmp_path):
    folder = tmp_path / "model"
    save_checkpoint(folder, numbered("abc", 0.0), max_shard_size=300)
    for name in ("README.md", "vocab.json"):
        (folder / name).write_text("keep me")
    (tmp_path / "outside.safetensors").write_text("keep me")
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"].update({"x": "README.md", "y": "vocab.json", "z": "../outside.safetensors"})
    index_path.write_text(json.dumps(index))
    (folder / "model-00007-of-00009.safetensors").write_text("an orphan shard of an older save")
    new = numbered("ab", 10.0)
    save_checkpoint(folder, new, overwrite=True)
    assert listing(folder) == ["README.md", "model.safetensors", "vocab.json"]
    assert (folder / "README.md").read_text() == (folder / "vocab.json").read_text() == "keep me"
    assert (tmp_path / "outside.safetensors").read_text() == "keep me"
    assert weights_state(folder) == arrays_state(new)


def test_weights_in_another_format_are_part_of_the_old_checkpoint(tmp_path):
    torch.save({"a": torch.zeros(3)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(FileExistsError, match="pytorch_model.bin; pass overwrite=True"):
        save_checkpoint(tmp_path, numbered("a", 0.0))
    assert listing(tmp_path) == ["pytorch_model.bin"]
    save_checkpoint(tmp_path, numbered("a", 0.0), overwrite=True)
    assert listing(tmp_path) == ["model.safetensors"]


def test_a_refused_save_changes_nothing(tmp_path):
    tiny_opt("relu", 0, 20).save_pretrained(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in listing(tmp_path)}
    with pytest.raises(FileExistsError, match="pass overwrite=True to replace the checkpoint"):
        tiny_opt("gelu", 1, 33).save_pretrained(tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in listing(tmp_path)} == before


def test_stale_temporaries_are_cleaned_by_the_next_save(tmp_path):
    (tmp_path / STAGING_NAME).mkdir()
    (tmp_path / STAGING_NAME / "model.safetensors").write_bytes(b"half a file from a killed save")
    (tmp_path / ".tmp-k2j4h5g1-model.safetensors").write_bytes(b"an older version's temporary")
    (tmp_path / ".tmp-k2j4h5g1-notes.txt").write_text("not a temporary of ours")
    save_checkpoint(tmp_path, numbered("a", 0.0))
    assert listing(tmp_path) == [".tmp-k2j4h5g1-notes.txt", "model.safetensors"]


def test_an_unreadable_journal_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, numbered("a", 0.0))
    (tmp_path / STAGING_NAME).mkdir()
    (tmp_path / STAGING_NAME / JOURNAL_NAME).write_text(json.dumps({"move": ["../escape"], "delete": []}))
    with pytest.raises(OSError, match="not a save journal that rosettazoo wrote.*delete"):
        open_checkpoint(tmp_path)
    with pytest.raises(OSError, match="not a save journal"):
        save_checkpoint(tmp_path, numbered("a", 1.0), overwrite=True)


def test_two_saves_of_one_folder_exclude_each_other(tmp_path):
    with FolderSave(tmp_path, {"config.json"}.__contains__) as save:
        save.stage_text("config.json", "{}\n")
        with pytest.raises(BlockingIOError, match="another save .* is in progress"):
            save_checkpoint(tmp_path, numbered("a", 0.0))
    assert listing(tmp_path) == ["config.json"]


# ---------------------------------------------------------------------------------------------------- permissions


def test_files_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        tiny_opt("relu", 0, 20).save_pretrained(tmp_path / "model", max_shard_size="20KB")
        GenerationConfig(num_beams=2).save_pretrained(tmp_path / "generation")
    finally:
        os.umask(previous)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) >= 5
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: 0o644 for path in files}


# ---------------------------------------------------------------------------------------------------- a file path


def test_saving_to_a_file_path_is_a_clear_error(tmp_path):
    path = tmp_path / "model.bin"
    path.write_text("a file")
    savers = {
        "save_checkpoint": lambda: save_checkpoint(path, numbered("a", 0.0)),
        "PT model": lambda: tiny_opt("relu", 0, 20).save_pretrained(path),
        "config": lambda: zoo_opt.OPTConfig(**TINY_OPT).save_pretrained(path),
        "generation config": lambda: GenerationConfig().save_pretrained(path),
    }
    for label, save in savers.items():
        with pytest.raises(NotADirectoryError, match=f"cannot save to {path}: it is a file.*pass the path of a folder"):
            save()
        assert path.read_text() == "a file", label


# ---------------------------------------------------------------------------------------------------- tokenizers


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    """A byte-level BPE tokenizer with a 265-token vocabulary (roberta-base's takes seconds to load and save)."""
    from tokenizers import pre_tokenizers

    roberta = pytest.importorskip("rosettazoo.roberta")
    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o")]
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *sorted(pre_tokenizers.ByteLevel.alphabet()),
              *("".join(merge) for merge in merges), "<mask>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return roberta.RobertaTokenizer, folder


def test_tokenizer_save_fails_at_every_step(tmp_path, tiny_tokenizer):
    tokenizer_class, folder = tiny_tokenizer
    old = tokenizer_class.from_pretrained(folder)
    new = tokenizer_class.from_pretrained(folder, model_max_length=77)
    new.add_tokens(["<brand-new>"])

    def state(folder):
        tokenizer = tokenizer_class.from_pretrained(folder)
        return tokenizer.model_max_length, len(tokenizer), tokenizer.encode("hello <brand-new>")

    check_every_step(tmp_path, lambda folder: old.save_pretrained(folder, overwrite=True),
                     lambda folder: new.save_pretrained(folder, overwrite=True), state, expect_steps=10)


def test_tokenizer_save_to_a_file_path_is_a_clear_error(tmp_path, tiny_tokenizer):
    tokenizer_class, folder = tiny_tokenizer
    path = tmp_path / "tokenizer"
    path.write_text("a file")
    with pytest.raises(NotADirectoryError, match="it is a file"):
        tokenizer_class.from_pretrained(folder).save_pretrained(path)
    assert path.read_text() == "a file"


def test_tokenizer_and_model_in_one_folder_keep_each_other(tmp_path, tiny_tokenizer):
    tokenizer_class, folder = tiny_tokenizer
    tokenizer = tokenizer_class.from_pretrained(folder)
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "added_tokens.json").write_text('{"<stale>": 50265}')
    tiny_opt("relu", 0, 20).save_pretrained(tmp_path)
    tiny_opt("gelu", 1, 20).save_pretrained(tmp_path, overwrite=True)
    tokenizer.save_pretrained(tmp_path, overwrite=True)  # replaces its own files only, the stale one included
    assert listing(tmp_path) == sorted([CONFIG_NAME, GENERATION_CONFIG_NAME, "model.safetensors", "merges.txt",
                                        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
                                        "vocab.json"])


# ---------------------------------------------------------------------------------------------------- converter


def test_converter_overwrite_fails_at_every_step(tmp_path):
    from rosettazoo.conversion.cli import main

    sources = {}
    for label, activation, seed, max_length in (("old", "relu", 0, 20), ("new", "gelu", 1, 33)):
        sources[label] = tmp_path / f"source-{label}"
        tiny_opt(activation, seed, max_length).save_pretrained(sources[label])

    def convert(label, *options):
        def run(folder):
            if main([str(sources[label]), str(folder), "--overwrite", *options]) != 0:
                raise Fault("the converter failed")  # its error went to stderr; the fault loop expects Fault
        return run

    check_every_step(tmp_path / "runs", convert("old"), convert("new", "--max-shard-size", "20KB"), checkpoint_state)


# ---------------------------------------------------------------------------------------------------- each framework


def framework_round(tmp_path, model_class, old_folder, new_folder):
    """Load old and new checkpoints into ``model_class``, then fail its save of the new over the old at steps
    around the commit; ``from_pretrained`` of what is left gives wholly the old model or wholly the new one."""
    old, new = model_class.from_pretrained(old_folder), model_class.from_pretrained(new_folder)

    def state(model):
        return model.config.activation_function, model.generation_config.max_length, arrays_state(model.numpy_weights())

    expected = {"old": state(old), "new": state(new)}
    assert expected["old"] != expected["new"]
    counting = tmp_path / "counting"
    shutil.copytree(old_folder, counting)
    with Steps() as counted:
        new.save_pretrained(counting, overwrite=True, max_shard_size="20KB")
    first_write = next(i for i, step in enumerate(counted.log, 1) if step.startswith("write "))
    for k in (first_write, counted.commit, counted.commit + 3):  # mid-staging, the commit, mid-moves
        folder = tmp_path / f"fail-at-{k}"
        shutil.copytree(old_folder, folder)
        with pytest.raises(Fault), Steps(fail_at=k):
            new.save_pretrained(folder, overwrite=True, max_shard_size="20KB")
        loaded = model_class.from_pretrained(folder)
        assert state(loaded) == expected["old" if k <= counted.commit else "new"], f"step {k}: {counted.log}"
    path = tmp_path / "a-file"
    path.write_text("a file")
    with pytest.raises(NotADirectoryError, match="it is a file"):
        old.save_pretrained(path)


@pytest.fixture(scope="module")
def old_and_new(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    tiny_opt("relu", 0, 20).save_pretrained(folder / "old")
    tiny_opt("gelu", 1, 33).save_pretrained(folder / "new", max_shard_size="20KB")
    return folder / "old", folder / "new"


def test_pt_model_save_is_atomic(tmp_path, old_and_new):
    framework_round(tmp_path, zoo_opt.OPTForCausalLM, *old_and_new)


@pytest.mark.tf
def test_tf_model_save_is_atomic(tmp_path, old_and_new):
    pytest.importorskip("tensorflow")
    framework_round(tmp_path, zoo_opt.TFOPTForCausalLM, *old_and_new)


@pytest.mark.flax
def test_flax_model_save_is_atomic(tmp_path, old_and_new):
    pytest.importorskip("flax")
    framework_round(tmp_path, zoo_opt.FlaxOPTForCausalLM, *old_and_new)
