"""Tokenizer features as transformers users call them: pad (and transformers' own data collators on top of it),
add_tokens / add_special_tokens with save and reload, sliding windows (stride + return_overflowing_tokens),
offsets and special-token masks, model_max_length from tokenizer_config.json with transformers' too-long warning.

Each is compared with transformers 4.57.6 on roberta-base's real files (tests/data/roberta-base, see its SOURCE.md),
for RoBERTa (RobertaTokenizerFast), BART (BartTokenizerFast) and OPT (the GPT2TokenizerFast that transformers'
AutoTokenizer builds from facebook/opt-*'s files).
"""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from tokenizers import AddedToken

from rosettazoo.bart import BartTokenizer
from rosettazoo.opt import OPTTokenizer
from rosettazoo.roberta import RobertaTokenizer

DATA = Path(__file__).resolve().parents[1] / "data" / "roberta-base"
FAMILIES = ["roberta", "bart", "opt"]

# facebook/opt-125m's tokenizer settings beside its vocab.json and merges.txt.
_OPT_SPECIAL = {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": True, "rstrip": False,
                "single_word": False}
_OPT_TOKENIZER_CONFIG = {"add_bos_token": True, "add_prefix_space": False, "bos_token": _OPT_SPECIAL,
                         "eos_token": _OPT_SPECIAL, "unk_token": _OPT_SPECIAL,
                         "pad_token": {**_OPT_SPECIAL, "content": "<pad>"}, "errors": "replace"}

QUESTIONS = ["What is the capital of France?", "Who wrote it?", "Why?"]
CONTEXTS = [
    "Paris is the capital and most populous city of France, with many museums, bridges and cafés along the Seine.",
    "The novel was written in 1851 by Herman Melville; it tells of a whale, a captain and his obsession.",
    "short",
]
TEXTS = ["a b c", "hello there, world", "a much longer sentence here, with some more words 🤗 in it", ""]


def _copy_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(DATA / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def opt_folder(tmp_path_factory):
    folder = _copy_files(tmp_path_factory.mktemp("opt"))
    (folder / "tokenizer_config.json").write_text(json.dumps(_OPT_TOKENIZER_CONFIG))
    (folder / "config.json").write_text(json.dumps({"model_type": "opt"}))
    return folder


def _load(family: str, opt_folder: Path, **kwargs):
    """(ours, transformers' fast tokenizer) of a family, both fresh (tests below change them)."""
    if family == "roberta":
        return (RobertaTokenizer.from_pretrained(DATA, **kwargs),
                transformers.RobertaTokenizerFast.from_pretrained(DATA, **kwargs))
    if family == "bart":
        return BartTokenizer.from_pretrained(DATA, **kwargs), transformers.BartTokenizerFast.from_pretrained(DATA,
                                                                                                          **kwargs)
    theirs = transformers.AutoTokenizer.from_pretrained(opt_folder, **kwargs)
    assert isinstance(theirs, transformers.GPT2TokenizerFast)
    return OPTTokenizer.from_pretrained(opt_folder, **kwargs), theirs


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request, opt_folder):
    return _load(request.param, opt_folder)


def _plain(value):
    return np.asarray(value).tolist() if hasattr(value, "shape") else value


def _assert_same(got, expected):
    assert list(got) == list(expected)
    for key in expected:
        assert _plain(got[key]) == _plain(expected[key]), key


# ---------------------------------------------------------------------- pad


PAD_CALLS = [
    {},
    {"padding": "longest", "padding_side": "left"},
    {"padding": "max_length", "max_length": 24},
    {"padding": True, "pad_to_multiple_of": 8},
    {"padding": "max_length", "max_length": 5},  # longer rows stay as they are: pad never truncates
    {"padding": False},
    {"return_tensors": "np"},
    {"return_tensors": "pt", "padding_side": "left", "pad_to_multiple_of": 4},
]


@pytest.mark.parametrize("kwargs", PAD_CALLS, ids=[str(i) for i in range(len(PAD_CALLS))])
def test_pad_a_list_of_encodings_matches_transformers(kwargs, pair):
    ours, theirs = pair
    extras = {"return_special_tokens_mask": True, "return_token_type_ids": True}
    features = [dict(ours(text, **extras)) for text in TEXTS]
    assert features == [dict(theirs(text, **extras)) for text in TEXTS]
    expected = theirs.pad([dict(f) for f in features], **kwargs)
    _assert_same(ours.pad([dict(f) for f in features], **kwargs), expected)
    batch = {key: [f[key] for f in features] for key in features[0]}  # a dict of lists pads alike
    _assert_same(ours.pad(batch, **kwargs), expected)


def test_pad_attention_mask_choices(pair):
    ours, theirs = pair
    no_mask = [{"input_ids": ours(text)["input_ids"]} for text in TEXTS]
    for kwargs in ({"return_attention_mask": False}, {"return_attention_mask": True}, {}):
        _assert_same(ours.pad([dict(f) for f in no_mask], **kwargs), theirs.pad([dict(f) for f in no_mask], **kwargs))
    # A mask that is there is padded with its input_ids even with return_attention_mask=False (transformers
    # would leave it ragged, unusable as a tensor).
    padded = ours.pad([dict(ours(text)) for text in TEXTS], return_attention_mask=False)
    assert padded["attention_mask"] == ours(TEXTS, padding=True)["attention_mask"]


def test_pad_one_encoding_matches_transformers(pair):
    ours, theirs = pair
    single = dict(ours("hello there"))
    for kwargs in ({}, {"padding": "max_length", "max_length": 8, "padding_side": "left"},
                   {"pad_to_multiple_of": 8, "return_tensors": "np"}):
        _assert_same(ours.pad(dict(single), **kwargs), theirs.pad(dict(single), **kwargs))


def test_pad_keeps_the_kind_of_tensor_it_is_given(pair):
    ours, theirs = pair
    rows = [ours(text)["input_ids"] for text in TEXTS]
    from_torch = [{"input_ids": torch.tensor(r), "labels": 1.5} for r in rows]
    got, expected = ours.pad(from_torch), theirs.pad(from_torch)
    for key in expected:
        assert isinstance(got[key], torch.Tensor) and got[key].dtype == expected[key].dtype, key
    _assert_same(got, expected)
    padded = ours(TEXTS, padding=True, return_tensors="np")
    again = ours.pad(dict(padded), padding="max_length", max_length=20)
    assert isinstance(again["input_ids"], np.ndarray) and again["input_ids"].shape == (len(TEXTS), 20)
    _assert_same(again, theirs.pad(dict(padded), padding="max_length", max_length=20))


def test_pad_to_jax_arrays(pair):
    # Compared with transformers' numpy output and JAX's default integer (int32), the dtype transformers gives.
    # (return_tensors="tf" goes through the same code as the call's, tested in tests/roberta/test_tokenization.py;
    # importing TensorFlow here would cost ten seconds.)
    ours, theirs = pair
    features = [dict(ours(text)) for text in TEXTS]
    got = ours.pad(features, return_tensors="jax")
    expected = theirs.pad([dict(f) for f in features], return_tensors="np")
    assert all(got[key].dtype.name == "int32" for key in got)
    _assert_same({key: np.asarray(value) for key, value in got.items()}, expected)


def test_pad_equals_padding_in_the_call(pair):
    # Offsets included: pad fills them with (0, 0) as the call's own padding does (transformers' pad leaves them).
    ours, _ = pair
    extras = {"return_special_tokens_mask": True, "return_offsets_mapping": True, "return_token_type_ids": True}
    for kwargs in ({"padding": True}, {"padding": "max_length", "max_length": 20, "padding_side": "left"}):
        padded = ours.pad([dict(ours(text, **extras)) for text in TEXTS], **kwargs)
        assert dict(padded) == dict(ours(TEXTS, **extras, **kwargs))


@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_data_collators_work_with_ours(family, opt_folder):
    ours, theirs = _load(family, opt_folder)
    with_labels = [dict(ours(text), labels=i) for i, text in enumerate(TEXTS)]
    for kwargs in ({"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 24, "return_tensors": "np"}):
        collate, oracle = (transformers.DataCollatorWithPadding(t, **kwargs) for t in (ours, theirs))
        _assert_same(collate(with_labels), oracle([dict(f) for f in with_labels]))
    seq2seq = [dict(ours(text), labels=ours(text[::-1])["input_ids"]) for text in TEXTS]
    collate, oracle = (transformers.DataCollatorForSeq2Seq(t, pad_to_multiple_of=4) for t in (ours, theirs))
    _assert_same(collate(seq2seq), oracle([dict(f) for f in seq2seq]))
    if ours.mask_token is not None:  # masked language modelling: RoBERTa and BART
        collate, oracle = (transformers.DataCollatorForLanguageModeling(t, mlm_probability=0.5) for t in (ours, theirs))
        features = [dict(ours(text)) for text in TEXTS]
        torch.manual_seed(0)
        got = collate(features)
        torch.manual_seed(0)
        _assert_same(got, oracle([dict(f) for f in features]))


# ---------------------------------------------------------------------- added tokens

ADDED_TEXT = "Hello newtok1 and <x> then  spaced, a <mask> b <y>end"


def _extend(tokenizer) -> list[int]:
    """The same additions on ours and on transformers'; returns the counts each call reports."""
    return [
        tokenizer.add_tokens(["newtok1", "Hello", AddedToken("  spaced", lstrip=True)]),
        tokenizer.add_tokens("newtok1"),  # already there
        tokenizer.add_special_tokens({"additional_special_tokens": ["<x>"]}),
        tokenizer.add_special_tokens({"additional_special_tokens": ["<y>"]}, replace_additional_special_tokens=False),
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_added_tokens_match_transformers(family, opt_folder):
    ours, theirs = _load(family, opt_folder)
    size = len(ours)
    assert _extend(ours) == _extend(theirs)
    assert len(ours) == len(theirs) == size + 4 and ours.vocab_size == theirs.vocab_size == size
    assert ours.get_added_vocab() == theirs.get_added_vocab()
    assert ours.convert_tokens_to_ids(["newtok1", "<x>", "<y>"]) == [size, size + 2, size + 3]
    assert ours.additional_special_tokens == theirs.additional_special_tokens == ["<x>", "<y>"]
    assert ours.special_tokens_map == theirs.special_tokens_map
    assert ours.all_special_tokens == theirs.all_special_tokens
    assert ours.all_special_ids == theirs.all_special_ids
    kwargs = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    expected = theirs([ADDED_TEXT, "newtok1"], [" <y> q", "x"], **kwargs)
    assert dict(ours([ADDED_TEXT, "newtok1"], [" <y> q", "x"], **kwargs)) == dict(expected)
    for ids in expected["input_ids"]:
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)
    assert ours.convert_ids_to_tokens(expected["input_ids"][0]) == theirs.convert_ids_to_tokens(
        expected["input_ids"][0])


@pytest.mark.parametrize("family", FAMILIES)
def test_added_tokens_are_saved_and_reloaded(family, opt_folder, tmp_path):
    ours, theirs = _load(family, opt_folder)
    _extend(ours)
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["additional_special_tokens"] == ["<x>", "<y>"]
    assert config["added_tokens_decoder"][str(len(ours) - 4)]["content"] == "newtok1"
    expected = dict(ours(ADDED_TEXT, return_special_tokens_mask=True))
    again = type(ours).from_pretrained(tmp_path)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert auto.is_fast
    for loaded in (again, auto):
        assert len(loaded) == len(ours) and loaded.special_tokens_map == ours.special_tokens_map
        assert dict(loaded(ADDED_TEXT, return_special_tokens_mask=True)) == expected
    (tmp_path / "tokenizer.json").unlink()  # vocab.json + merges.txt + the added tokens of tokenizer_config.json
    from_vocab = type(ours).from_pretrained(tmp_path)
    assert dict(from_vocab(ADDED_TEXT, return_special_tokens_mask=True)) == expected
    if family == "roberta":  # transformers' slow tokenizers read the same keys (one family keeps the test short)
        slow = transformers.RobertaTokenizer.from_pretrained(tmp_path)
        assert len(slow) == len(ours) and slow(ADDED_TEXT)["input_ids"] == expected["input_ids"]


@pytest.mark.parametrize("fast", [True, False])
def test_loads_added_tokens_that_transformers_saved(fast, tmp_path):
    cls = transformers.RobertaTokenizerFast if fast else transformers.RobertaTokenizer
    theirs = cls.from_pretrained(DATA)
    _extend(theirs)
    theirs.save_pretrained(tmp_path)
    ours = RobertaTokenizer.from_pretrained(tmp_path)
    assert len(ours) == len(theirs) and ours.special_tokens_map == theirs.special_tokens_map
    assert ours(ADDED_TEXT)["input_ids"] == theirs(ADDED_TEXT)["input_ids"]
    # Folders from older transformers: vocab.json, merges.txt, added_tokens.json and special_tokens_map.json.
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).unlink(missing_ok=True)
    legacy, oracle = RobertaTokenizer.from_pretrained(tmp_path), transformers.RobertaTokenizer.from_pretrained(tmp_path)
    assert len(legacy) == len(oracle) == len(theirs) and legacy.special_tokens_map == oracle.special_tokens_map
    assert legacy.get_added_vocab() == oracle.get_added_vocab()  # "Hello" (a BPE token) is not in added_tokens.json
    assert legacy(ADDED_TEXT)["input_ids"] == oracle(ADDED_TEXT)["input_ids"] == theirs(ADDED_TEXT)["input_ids"]


def test_a_new_role_token_changes_the_template_as_transformers_slow_does():
    # transformers' fast RoBERTa keeps its old <s> in the template after add_special_tokens({"cls_token": ...});
    # its slow tokenizer (and ours) use the new token.
    ours, slow = RobertaTokenizer.from_pretrained(DATA), transformers.RobertaTokenizer.from_pretrained(DATA)
    new = {"cls_token": "<cls>", "sep_token": "<sep>", "pad_token": "<newpad>"}
    assert ours.add_special_tokens(new) == slow.add_special_tokens(new) == 3
    assert ours.cls_token_id == slow.cls_token_id == 50265 and ours.pad_token_id == slow.pad_token_id == 50267
    kwargs = {"padding": True, "return_special_tokens_mask": True}
    assert dict(ours(QUESTIONS, CONTEXTS, **kwargs)) == dict(slow(QUESTIONS, CONTEXTS, **kwargs))


# ---------------------------------------------------------------------- sliding windows

WINDOW_CALLS = [
    {"truncation": "only_second", "max_length": 24, "stride": 6, "return_offsets_mapping": True, "padding": True},
    {"truncation": "only_second", "max_length": 20, "stride": 4, "padding": "max_length", "padding_side": "left",
     "return_special_tokens_mask": True, "return_tensors": "np"},
    {"truncation": "longest_first", "max_length": 16, "stride": 2, "return_length": True},
    {"truncation": "only_first", "max_length": 30, "stride": 3, "return_token_type_ids": True},
]


@pytest.mark.parametrize("kwargs", WINDOW_CALLS, ids=[str(i) for i in range(len(WINDOW_CALLS))])
def test_question_answering_windows_match_transformers(kwargs, pair):
    ours, theirs = pair
    firsts, seconds = (CONTEXTS, QUESTIONS) if kwargs["truncation"] == "only_first" else (QUESTIONS, CONTEXTS)
    got = ours(firsts, seconds, return_overflowing_tokens=True, **kwargs)
    expected = theirs(firsts, seconds, return_overflowing_tokens=True, **kwargs)
    _assert_same(got, expected)
    assert len(set(_plain(got["overflow_to_sample_mapping"]))) == len(QUESTIONS) < len(got["input_ids"])


@pytest.mark.parametrize("side", ["right", "left"])
def test_windows_of_one_text_match_transformers(side, pair):
    ours, theirs = pair
    ours.truncation_side = theirs.truncation_side = side
    try:
        for text in (CONTEXTS[0], "short"):  # "short" fits: one row, still a batch
            kwargs = {"truncation": True, "max_length": 10, "stride": 3, "return_overflowing_tokens": True,
                      "return_offsets_mapping": True, "return_special_tokens_mask": True}
            got = ours(text, **kwargs)
            assert dict(got) == dict(theirs(text, **kwargs))
            assert got["overflow_to_sample_mapping"] == [0] * len(got["input_ids"])
    finally:
        ours.truncation_side = theirs.truncation_side = "right"


def test_windows_overlap_by_stride():
    ours = RobertaTokenizer.from_pretrained(DATA)
    whole = ours(CONTEXTS[0], add_special_tokens=False)["input_ids"]
    windows = ours(CONTEXTS[0], add_special_tokens=False, truncation=True, max_length=8, stride=3,
                   return_overflowing_tokens=True)["input_ids"]
    assert windows[0] == whole[:8] and windows[1] == whole[5:13]
    assert [w[-3:] for w in windows[:-1]] == [w[:3] for w in windows[1:]]
    assert windows[-1][-1] == whole[-1]


# ---------------------------------------------------------------------- offsets and special tokens masks


@pytest.mark.parametrize("family", FAMILIES)
def test_offsets_and_special_tokens_mask_match_transformers(family, opt_folder):
    ours, theirs = _load(family, opt_folder, add_prefix_space=True)
    kwargs = {"return_offsets_mapping": True, "return_special_tokens_mask": True, "padding": True}
    assert dict(ours(QUESTIONS, CONTEXTS, **kwargs)) == dict(theirs(QUESTIONS, CONTEXTS, **kwargs))
    assert dict(ours(TEXTS, **kwargs, padding_side="left")) == dict(theirs(TEXTS, **kwargs, padding_side="left"))
    words = [["naïve", "café", "<mask>"], ["a", "b"]]
    split = {"is_split_into_words": True, **kwargs}
    assert dict(ours(words, **split)) == dict(theirs(words, **split))
    ids = ours(TEXTS[2])["input_ids"]
    assert ours.get_special_tokens_mask(ids, already_has_special_tokens=True) == theirs.get_special_tokens_mask(
        ids, already_has_special_tokens=True)


# ---------------------------------------------------------------------- model_max_length


@pytest.fixture(scope="module")
def limited_folder(tmp_path_factory):
    """roberta-base as published: its tokenizer_config.json sets model_max_length 512."""
    folder = tmp_path_factory.mktemp("roberta-512")
    shutil.copy(DATA / "tokenizer.json", folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    return folder


LONG = "word " * 600
MAX_LENGTH_CALLS = [
    ({}, True),
    ({"padding": True}, True),
    ({"verbose": False}, False),
    ({"truncation": True}, False),
    ({"max_length": 700}, False),
    ({"padding": "max_length"}, False),
]


@pytest.mark.parametrize("kwargs, warns", MAX_LENGTH_CALLS, ids=[str(i) for i in range(len(MAX_LENGTH_CALLS))])
def test_model_max_length_warning_as_transformers(kwargs, warns, limited_folder, caplog):
    ours = RobertaTokenizer.from_pretrained(limited_folder)
    theirs = transformers.RobertaTokenizerFast.from_pretrained(limited_folder)
    assert ours.model_max_length == theirs.model_max_length == 512
    with caplog.at_level(logging.WARNING, logger="rosettazoo"):
        got = ours([LONG, "short"], **kwargs)
        ours([LONG], **kwargs)  # once per tokenizer
    assert dict(got) == dict(theirs([LONG, "short"], **kwargs))
    said = theirs.deprecation_warnings.get("sequence-length-is-longer-than-the-specified-maximum", False)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("rosettazoo")]
    assert said == warns and len(messages) == int(warns)
    if warns:
        assert len(got["input_ids"][0]) == len(ours.tokenize(LONG)) + 2 > 512  # warned, not truncated
        assert messages[0] == ("Token indices sequence length is longer than the specified maximum sequence length "
                               f"for this model ({len(got['input_ids'][0])} > 512). Running this sequence through the "
                               "model will result in indexing errors")
    elif kwargs.get("truncation"):
        assert len(got["input_ids"][0]) == 512
