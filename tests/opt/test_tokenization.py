"""OPTTokenizer against published ids and transformers 4.57.6 on OPT's tokenizer files.

The facebook/opt-* repositories hold vocab.json + merges.txt (GPT-2's BPE, the files roberta-base ships) and a
tokenizer_config.json with ``add_bos_token: true``; transformers' AutoTokenizer makes a GPT2TokenizerFast of them.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import transformers

from rosettazoo.opt import OPTTokenizer

DATA = Path(__file__).resolve().parents[1] / "data" / "roberta-base"  # see its SOURCE.md

# facebook/opt-125m's tokenizer files besides vocab.json and merges.txt.
_SPECIAL = {"content": "</s>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
            "__type": "AddedToken"}
_PAD = {**_SPECIAL, "content": "<pad>"}
OPT_TOKENIZER_CONFIG = {"errors": "replace", "unk_token": _SPECIAL, "bos_token": _SPECIAL, "eos_token": _SPECIAL,
                        "pad_token": _PAD, "add_prefix_space": False, "add_bos_token": True,
                        "special_tokens_map_file": None, "name_or_path": "patrickvonplaten/opt-30b"}
OPT_SPECIAL_TOKENS_MAP = {"bos_token": _SPECIAL, "eos_token": _SPECIAL, "unk_token": _SPECIAL, "pad_token": _PAD}

TEXTS = [
    "A photo of a cat",
    "Hello world",
    " Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and   inner   spaces, trailing  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "naïve café, Ünïcödé façade; Straße",
    "東京は日本の首都です。 Привет мир! مرحبا",
    "emoji 🤗👍🏽 and family 👨‍👩‍👧 flags 🇫🇷",
    "I can't, won't; they're 'quoted' \"double\" — dash … ellipsis",
    "</s>already special <pad> tokens<s> <unk> <mask>",
    "",
    "x" * 300,
]
PAIRS = [("Hello world", "Second one"), ("What is the capital of France?", "Paris."), ("", "only the second")]
BATCH = ["short", "a somewhat longer sentence with several words in it", "mid length text here", ""]
COMBOS = [
    {"padding": True},
    {"padding": "longest", "padding_side": "left", "return_special_tokens_mask": True},
    {"padding": "max_length", "max_length": 16, "truncation": True, "return_offsets_mapping": True},
    {"truncation": True, "max_length": 5},
    {"padding": True, "add_special_tokens": False, "return_length": True},
    {"padding": True, "return_token_type_ids": True, "pad_to_multiple_of": 8},
]


def _copy_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(DATA / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def vocab_only_folder(tmp_path_factory):
    return _copy_vocab(tmp_path_factory.mktemp("opt-vocab-merges"))


@pytest.fixture(scope="module")
def opt_folder(tmp_path_factory):
    """What facebook/opt-125m holds for its tokenizer (and config.json, which AutoTokenizer reads)."""
    folder = _copy_vocab(tmp_path_factory.mktemp("opt-hub"))
    (folder / "tokenizer_config.json").write_text(json.dumps(OPT_TOKENIZER_CONFIG))
    (folder / "special_tokens_map.json").write_text(json.dumps(OPT_SPECIAL_TOKENS_MAP))
    (folder / "config.json").write_text(json.dumps({"model_type": "opt"}))
    return folder


@pytest.fixture(scope="module")
def ours(vocab_only_folder):
    return OPTTokenizer.from_pretrained(vocab_only_folder)


@pytest.fixture(scope="module")
def hf_fast(opt_folder):
    tokenizer = transformers.AutoTokenizer.from_pretrained(opt_folder)
    assert isinstance(tokenizer, transformers.GPT2TokenizerFast)
    return tokenizer


@pytest.fixture(scope="module")
def hf_slow(opt_folder):
    return transformers.GPT2Tokenizer.from_pretrained(opt_folder)


def test_published_ids_from_vocab_and_merges_only(ours, vocab_only_folder):
    assert sorted(p.name for p in vocab_only_folder.iterdir()) == ["merges.txt", "vocab.json"]
    assert ours("A photo of a cat")["input_ids"] == [2, 250, 1345, 9, 10, 4758]
    assert ours.encode("A photo of a cat") == [2, 250, 1345, 9, 10, 4758]
    assert (ours.bos_token_id, ours.eos_token_id, ours.unk_token_id, ours.pad_token_id) == (2, 2, 2, 1)


def test_hub_files_give_the_same_tokenizer(ours, opt_folder):
    hub = OPTTokenizer.from_pretrained(opt_folder)
    kwargs = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    assert dict(hub(TEXTS, **kwargs)) == dict(ours(TEXTS, **kwargs))
    assert hub.special_tokens_map == ours.special_tokens_map


def test_importable_from_the_package():
    import rosettazoo.opt as opt

    assert opt.OPTTokenizer is OPTTokenizer


@pytest.mark.parametrize("text", TEXTS, ids=[str(i) for i in range(len(TEXTS))])
def test_single_text_matches_transformers(text, ours, hf_fast, hf_slow):
    kwargs = {"return_special_tokens_mask": True, "return_token_type_ids": True}
    got = ours(text, return_offsets_mapping=True, **kwargs)
    assert dict(got) == dict(hf_fast(text, return_offsets_mapping=True, **kwargs))
    # transformers' slow tokenizer leaves the BOS out of its token types (one too few): compare the rest.
    slow_kwargs = {"return_special_tokens_mask": True}
    assert dict(ours(text, **slow_kwargs)) == dict(hf_slow(text, **slow_kwargs))
    assert got["input_ids"][0] == 2 and len(got["input_ids"]) == len(ours.tokenize(text)) + 1  # BOS, no EOS
    assert ours.tokenize(text) == hf_fast.tokenize(text) == hf_slow.tokenize(text)


@pytest.mark.parametrize("pair", PAIRS, ids=[p[0][:12] for p in PAIRS])
def test_pairs_match_transformers_fast(pair, ours, hf_fast):
    # AutoTokenizer's fast tokenizer is the reference: "</s> A B" with token types 0 then 1. (transformers' slow
    # GPT2Tokenizer would put a second </s> before B.)
    kwargs = {"return_special_tokens_mask": True, "return_token_type_ids": True, "return_offsets_mapping": True}
    got = ours(*pair, **kwargs)
    assert dict(got) == dict(hf_fast(*pair, **kwargs))
    n_first = len(ours.tokenize(pair[0]))
    assert got["token_type_ids"] == [0] * (n_first + 1) + [1] * (len(got["input_ids"]) - n_first - 1)
    assert ours.num_special_tokens_to_add() == ours.num_special_tokens_to_add(pair=True) == 1


@pytest.mark.parametrize("kwargs", COMBOS, ids=[str(i) for i in range(len(COMBOS))])
def test_padding_and_truncation_match_transformers(kwargs, ours, hf_fast):
    assert dict(ours(BATCH, **kwargs)) == dict(hf_fast(BATCH, **kwargs))
    assert dict(ours(BATCH[1], **kwargs)) == dict(hf_fast(BATCH[1], **kwargs))


def test_left_padding_for_generation(ours, hf_fast):
    got = ours(["A photo of a cat", "A cat"], padding=True, padding_side="left", return_tensors="np")
    np.testing.assert_array_equal(got["input_ids"], [[2, 250, 1345, 9, 10, 4758], [1, 1, 1, 2, 250, 4758]])
    np.testing.assert_array_equal(got["attention_mask"], [[1] * 6, [0, 0, 0, 1, 1, 1]])
    expected = hf_fast(["A photo of a cat", "A cat"], padding=True, padding_side="left", return_tensors="np")
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def test_special_tokens_match_transformers(ours, hf_fast):
    for role in ("bos", "eos", "unk", "pad", "sep", "cls", "mask"):
        assert getattr(ours, f"{role}_token") == getattr(hf_fast, f"{role}_token"), role
        assert getattr(ours, f"{role}_token_id") == getattr(hf_fast, f"{role}_token_id"), role
    assert ours.special_tokens_map == hf_fast.special_tokens_map
    assert ours.all_special_ids == hf_fast.all_special_ids
    assert ours.vocab_size == hf_fast.vocab_size and len(ours) == len(hf_fast)


@pytest.mark.parametrize("text", TEXTS, ids=[str(i) for i in range(len(TEXTS))])
def test_decode_matches_transformers(text, ours, hf_fast):
    ids = ours(text)["input_ids"]
    if "<" not in text:
        assert ours.decode(ids, skip_special_tokens=True) == text
    for kwargs in ({}, {"skip_special_tokens": True}, {"clean_up_tokenization_spaces": True}):
        assert ours.decode(ids, **kwargs) == hf_fast.decode(ids, **kwargs), kwargs


def test_save_pretrained_loads_in_transformers(ours, tmp_path):
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "GPT2Tokenizer" and config["add_bos_token"] is True
    kwargs = {"padding": True, "return_special_tokens_mask": True}
    expected = dict(ours(TEXTS, **kwargs))
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(auto, transformers.GPT2TokenizerFast)
    assert dict(auto(TEXTS, **kwargs)) == expected
    assert dict(auto(*PAIRS[0])) == dict(ours(*PAIRS[0]))
    assert dict(transformers.GPT2Tokenizer.from_pretrained(tmp_path)(TEXTS, **kwargs)) == expected
    again = OPTTokenizer.from_pretrained(tmp_path)
    assert dict(again(TEXTS, **kwargs)) == expected and again.special_tokens_map == ours.special_tokens_map
