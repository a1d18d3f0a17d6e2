"""BartTokenizer against published ids and transformers 4.57.6 (fast and slow) on roberta-base's real files.

BART's tokenizer is RoBERTa's (same vocabulary, merges and templates): the shared machinery is tested in
tests/roberta/test_tokenization.py; here, that BART's class gives transformers' BART results, text targets
included, and saves files that transformers loads as a BART tokenizer.
"""

import json
import shutil
from pathlib import Path

import pytest
import transformers

from rosettazoo.bart import BartTokenizer, BartTokenizerFast

# The folder `shared` beside the repository root (CI clones the repository with shared/ beside it).
DATA = Path(__file__).resolve().parents[1] / "data" / "roberta-base"  # see its SOURCE.md

# transformers warns that roberta-base's tokenizer_config names RobertaTokenizer, not a BART class: intended here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TEXTS = [
    "Hello world",
    " Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "naïve café, Ünïcödé façade; Straße",
    "emoji 🤗👍🏽 and 東京 Привет",
    "My friends are <mask> but they eat too many carbs.",
    "",
]
PAIRS = [("Hello world", "Second one"), ("a <mask> question", "an answer <mask>")]


@pytest.fixture(scope="module")
def ours():
    return BartTokenizer.from_pretrained(DATA)


@pytest.fixture(scope="module")
def hf_fast():
    return transformers.BartTokenizerFast.from_pretrained(DATA)


@pytest.fixture(scope="module")
def hf_slow():
    return transformers.BartTokenizer.from_pretrained(DATA)


def test_fast_name_is_the_same_class():
    assert BartTokenizerFast is BartTokenizer


@pytest.mark.parametrize("source", ["tokenizer.json", "vocab+merges"])
def test_published_ids(source, ours, tmp_path):
    tok = ours
    if source == "vocab+merges":
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(DATA / name, tmp_path / name)
        tok = BartTokenizer.from_pretrained(tmp_path)
    assert tok("Hello world")["input_ids"] == [0, 31414, 232, 2]
    assert tok(" Hello world")["input_ids"] == [0, 20920, 232, 2]
    assert tok.mask_token_id == 50264


def test_texts_and_pairs_match_transformers(ours, hf_fast, hf_slow):
    kwargs = {"padding": True, "return_special_tokens_mask": True, "return_token_type_ids": True}
    expected = dict(hf_fast(TEXTS, return_offsets_mapping=True, **kwargs))
    assert dict(ours(TEXTS, return_offsets_mapping=True, **kwargs)) == expected
    assert dict(ours(TEXTS, **kwargs)) == dict(hf_slow(TEXTS, **kwargs))
    for pair in PAIRS:
        assert dict(ours(*pair, **kwargs)) == dict(hf_fast(*pair, **kwargs)) == dict(hf_slow(*pair, **kwargs))
    truncated = {"truncation": True, "max_length": 6, "padding": "max_length"}
    assert dict(ours(TEXTS, **truncated)) == dict(hf_fast(TEXTS, **truncated))


def test_special_tokens_match_transformers(ours, hf_fast):
    for role in ("bos", "eos", "sep", "cls", "unk", "pad", "mask"):
        assert getattr(ours, f"{role}_token_id") == getattr(hf_fast, f"{role}_token_id"), role
    assert ours.all_special_tokens == hf_fast.all_special_tokens
    assert (ours.bos_token_id, ours.pad_token_id, ours.eos_token_id) == (0, 1, 2)  # BartConfig's defaults


def test_text_target_gives_labels_as_transformers(ours, hf_fast):
    sources = ["translate this", "and this one too"]
    targets = ["la cible", "et celle-ci, plus longue <mask>"]
    for kwargs in ({}, {"padding": True}, {"padding": True, "truncation": True, "max_length": 5}):
        got = ours(sources, text_target=targets, **kwargs)
        assert list(got) == ["input_ids", "attention_mask", "labels"]
        assert dict(got) == dict(hf_fast(sources, text_target=targets, **kwargs)), kwargs
    assert dict(ours(text_target="la cible")) == dict(hf_fast(text_target="la cible"))


def test_decode_matches_transformers(ours, hf_fast):
    ids = ours(TEXTS, padding=True)["input_ids"]
    for kwargs in ({}, {"skip_special_tokens": True}):
        assert ours.batch_decode(ids, **kwargs) == hf_fast.batch_decode(ids, **kwargs)


def test_save_pretrained_loads_in_transformers_as_bart(ours, tmp_path):
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BartTokenizer"
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(auto, transformers.BartTokenizerFast)
    slow = transformers.BartTokenizer.from_pretrained(tmp_path)
    kwargs = {"padding": True, "return_special_tokens_mask": True}
    assert dict(auto(TEXTS, **kwargs)) == dict(slow(TEXTS, **kwargs)) == dict(ours(TEXTS, **kwargs))
    again = BartTokenizer.from_pretrained(tmp_path)
    assert dict(again(TEXTS, **kwargs)) == dict(ours(TEXTS, **kwargs))
