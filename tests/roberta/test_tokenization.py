"""RobertaTokenizer against published ids and transformers 4.57.6 (fast and slow) on roberta-base's real files."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import transformers

from rosettazoo.common.tokenization import BatchEncoding, clean_up_tokenization
from rosettazoo.roberta import RobertaTokenizer, RobertaTokenizerFast

# transformers' own warning for one of the compared combinations (max_length with padding=True and no truncation).
pytestmark = pytest.mark.filterwarnings("ignore:`max_length` is ignored:UserWarning")

# The folder `shared` beside the repository root (CI clones the repository with shared/ beside it).
DATA = Path(__file__).resolve().parents[1] / "data" / "roberta-base"  # see its SOURCE.md

TEXTS = [
    "Hello world",
    " Hello world",
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and   inner   spaces, trailing  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "naïve café, Ünïcödé façade; Straße",
    "東京は日本の首都です。 Привет мир! مرحبا",
    "emoji 🤗👍🏽 and family 👨‍👩‍👧 flags 🇫🇷",
    "I can't, won't; they're 'quoted' \"double\" — dash … ellipsis",
    "numbers 1234567890 3.14159 1e-5 $100",
    "The capital of France is <mask>.",
    "a <mask> b<mask>c  <mask>  d",
    "<s>already</s> special <pad> <unk> tokens",
    "",
    " ",
    "x" * 300,
]
PAIRS = [
    ("Hello world", "Second one"),
    ("What is the capital of France?", "Paris is the capital of France."),
    ("emoji 🤗", "  spaced   out  "),
    ("", "only the second"),
    ("a <mask> question", "an answer <mask>"),
]


@pytest.fixture(scope="module")
def ours():
    return RobertaTokenizer.from_pretrained(DATA)


@pytest.fixture(scope="module")
def hf_fast():
    return transformers.RobertaTokenizerFast.from_pretrained(DATA)


@pytest.fixture(scope="module")
def hf_slow():
    return transformers.RobertaTokenizer.from_pretrained(DATA)


@pytest.fixture(scope="module")
def vocab_only_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocab-merges")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(DATA / name, folder / name)
    return folder


def test_data_files_are_there():
    assert (DATA / "tokenizer.json").is_file(), f"missing tokenizer test data at {DATA}"


def test_fast_name_is_the_same_class():
    assert RobertaTokenizerFast is RobertaTokenizer


@pytest.mark.parametrize("source", ["tokenizer.json", "vocab+merges"])
def test_published_ids(source, ours, vocab_only_folder):
    tok = ours if source == "tokenizer.json" else RobertaTokenizer.from_pretrained(vocab_only_folder)
    assert tok("Hello world")["input_ids"] == [0, 31414, 232, 2]
    assert tok(" Hello world").input_ids == [0, 20920, 232, 2]
    assert tok.encode("Hello world") == [0, 31414, 232, 2]


def test_vocab_merges_folder_equals_tokenizer_json(ours, vocab_only_folder):
    from_vocab = RobertaTokenizer.from_pretrained(vocab_only_folder)
    kwargs = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    assert dict(from_vocab(TEXTS, **kwargs)) == dict(ours(TEXTS, **kwargs))
    assert from_vocab.get_vocab() == ours.get_vocab()
    assert from_vocab.mask_token_id == 50264


@pytest.mark.parametrize("text", TEXTS)
def test_single_text_matches_transformers(text, ours, hf_fast, hf_slow):
    kwargs = {"return_special_tokens_mask": True, "return_token_type_ids": True}
    expected = dict(hf_fast(text, return_offsets_mapping=True, **kwargs))
    assert dict(ours(text, return_offsets_mapping=True, **kwargs)) == expected
    assert dict(ours(text, **kwargs)) == dict(hf_slow(text, **kwargs))
    # transformers' slow tokenize gives vocabulary strings ("<mask>"); its fast one keeps the space that <mask>
    # absorbed (" <mask>", not a token of the vocabulary). Ours gives the vocabulary strings, so they map back.
    tokens = ours.tokenize(text)
    assert tokens == hf_slow.tokenize(text)
    assert tokens == [t.lstrip() if t.strip() == "<mask>" else t for t in hf_fast.tokenize(text)]
    assert ours.convert_tokens_to_ids(tokens) == expected["input_ids"][1:-1]


@pytest.mark.parametrize("pair", PAIRS, ids=[p[0][:12] for p in PAIRS])
def test_pairs_match_transformers(pair, ours, hf_fast, hf_slow):
    kwargs = {"return_special_tokens_mask": True, "return_token_type_ids": True}
    got = ours(*pair, return_offsets_mapping=True, **kwargs)
    assert dict(got) == dict(hf_fast(*pair, return_offsets_mapping=True, **kwargs))
    assert dict(ours(*pair, **kwargs)) == dict(hf_slow(*pair, **kwargs))
    assert set(got["token_type_ids"]) == {0}  # RoBERTa has no token types
    n_first = len(ours.tokenize(pair[0]))
    assert got["input_ids"][n_first + 1:n_first + 3] == [2, 2]  # <s> A </s></s> B </s>


def test_batch_of_pairs_matches_transformers(ours, hf_fast):
    firsts, seconds = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    assert dict(ours(firsts, seconds)) == dict(hf_fast(firsts, seconds))
    plain = {"add_special_tokens": False}
    assert dict(ours(firsts, seconds, **plain)) == dict(hf_fast(firsts, seconds, **plain))


BATCH = ["short", "a somewhat longer sentence with several words in it", "mid length text here", ""]
COMBOS = [
    {"padding": True},
    {"padding": "longest", "padding_side": "left"},
    {"padding": "max_length", "max_length": 16},
    {"padding": "max_length", "max_length": 16, "truncation": True},
    {"padding": True, "pad_to_multiple_of": 8},
    {"padding": "max_length", "max_length": 16, "truncation": True, "pad_to_multiple_of": 8},
    {"truncation": True, "max_length": 5},
    {"max_length": 6},  # max_length alone truncates, as in transformers
    {"padding": True, "max_length": 6},  # with padding it does not
    {"padding": True, "truncation": "longest_first", "max_length": 7, "return_special_tokens_mask": True},
    {"padding": "do_not_pad", "truncation": "do_not_truncate"},
    {"padding": True, "add_special_tokens": False, "return_offsets_mapping": True, "return_length": True},
    {"padding": True, "return_attention_mask": False, "return_token_type_ids": True},
    {"padding": True, "truncation": True, "max_length": 4, "padding_side": "left", "return_offsets_mapping": True},
]


@pytest.mark.parametrize("kwargs", COMBOS, ids=[str(i) for i in range(len(COMBOS))])
def test_padding_and_truncation_match_transformers(kwargs, ours, hf_fast, hf_slow):
    expected = dict(hf_fast(BATCH, **kwargs))
    assert dict(ours(BATCH, **kwargs)) == expected
    assert dict(ours(BATCH[1], **kwargs)) == dict(hf_fast(BATCH[1], **kwargs))
    if not kwargs.get("return_offsets_mapping"):  # the slow tokenizer has no offsets
        assert dict(ours(BATCH, **kwargs)) == dict(hf_slow(BATCH, **kwargs))


PAIR_FIRSTS = ["a b c d e f g h i j", "one two", "x y z w v u t s r q p o", ""]
PAIR_SECONDS = ["k l m", "three four five six seven eight nine ten eleven", "n o p q r s t u v w x y", "pp qq"]
PAIR_COMBOS = [
    {"truncation": True, "max_length": 10},
    {"truncation": "longest_first", "max_length": 9, "padding": True},
    {"truncation": "longest_first", "max_length": 12, "padding": "max_length"},
    {"truncation": "only_second", "max_length": 18, "padding": True, "padding_side": "left"},
    {"truncation": True, "max_length": 8, "return_offsets_mapping": True, "return_special_tokens_mask": True},
]


@pytest.mark.parametrize("kwargs", PAIR_COMBOS, ids=[str(i) for i in range(len(PAIR_COMBOS))])
def test_pair_truncation_matches_transformers_fast(kwargs, ours, hf_fast):
    # The fast tokenizer (tokenizers' rules) is the reference: for pairs cut on both sides, transformers' slow
    # tokenizer drops tokens one at a time and can split the budget the other way round.
    assert dict(ours(PAIR_FIRSTS, PAIR_SECONDS, **kwargs)) == dict(hf_fast(PAIR_FIRSTS, PAIR_SECONDS, **kwargs))


def test_only_first_truncation_matches_transformers(ours, hf_fast, hf_slow):
    firsts, seconds = ["a b c d e f g h i j k l", "one two three four five"], ["k l", "m"]
    kwargs = {"truncation": "only_first", "max_length": 8, "padding": True}
    expected = dict(hf_fast(firsts, seconds, **kwargs))
    assert dict(ours(firsts, seconds, **kwargs)) == expected == dict(hf_slow(firsts, seconds, **kwargs))


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncation_side_matches_transformers(side, hf_fast):
    ours = RobertaTokenizer.from_pretrained(DATA, truncation_side=side)
    theirs = transformers.RobertaTokenizerFast.from_pretrained(DATA, truncation_side=side)
    kwargs = {"truncation": True, "max_length": 6}
    assert dict(ours(BATCH, **kwargs)) == dict(theirs(BATCH, **kwargs))
    assert dict(ours(PAIR_FIRSTS, PAIR_SECONDS, **kwargs)) == dict(theirs(PAIR_FIRSTS, PAIR_SECONDS, **kwargs))


def test_model_max_length_bounds_truncation(hf_fast):
    ours = RobertaTokenizer.from_pretrained(DATA, model_max_length=8)
    theirs = transformers.RobertaTokenizerFast.from_pretrained(DATA, model_max_length=8)
    assert ours.model_max_length == 8
    for kwargs in ({"truncation": True}, {"padding": "max_length", "truncation": True}):
        got = ours(BATCH, **kwargs)
        assert dict(got) == dict(theirs(BATCH, **kwargs))
        assert max(len(ids) for ids in got["input_ids"]) == 8


def test_padding_side_attribute(ours):
    left = RobertaTokenizer.from_pretrained(DATA, padding_side="left")
    assert ours.padding_side == "right"
    got = left(["a", "a b c"], padding=True)
    assert got["input_ids"][0] == [1, 1, 0, 102, 2]
    assert got["attention_mask"][0] == [0, 0, 1, 1, 1]


# transformers' dtypes: int64 for numpy and torch; TensorFlow's and JAX's default integer (int32) for the others.
@pytest.mark.parametrize("return_tensors", ["np", "pt", "tf", "jax"])
def test_return_tensors_match_transformers(return_tensors, ours, hf_fast):
    kwargs = {"padding": True, "return_tensors": return_tensors, "return_special_tokens_mask": True}
    got = ours(BATCH, **kwargs)
    if return_tensors == "tf":
        # conftest sets USE_TF=0 so transformers (the PyTorch oracle) never loads TensorFlow: compare with its numpy
        # output and TF's int32, the dtype transformers gives TF tensors.
        import tensorflow as tf

        expected = hf_fast(BATCH, **{**kwargs, "return_tensors": "np"})
        assert all(isinstance(got[key], tf.Tensor) and got[key].dtype == tf.int32 for key in expected)
    else:
        expected = hf_fast(BATCH, **kwargs)
        for key in expected:
            assert type(got[key]) is type(expected[key]), key
            assert str(got[key].dtype) == str(expected[key].dtype), key
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(expected[key]))
    single = ours("Hello world", return_tensors=return_tensors)
    np.testing.assert_array_equal(np.asarray(single.input_ids), [[0, 31414, 232, 2]])


def test_offsets_as_tensor(ours, hf_fast):
    kwargs = {"padding": True, "return_tensors": "np", "return_offsets_mapping": True}
    got, expected = ours(BATCH, **kwargs), hf_fast(BATCH, **kwargs)
    assert got["offset_mapping"].shape == (len(BATCH), got["input_ids"].shape[1], 2)
    np.testing.assert_array_equal(got["offset_mapping"], expected["offset_mapping"])


def test_ragged_batch_cannot_become_a_tensor(ours):
    with pytest.raises(ValueError, match="padding=True"):
        ours(["a", "a b c"], return_tensors="np")


def test_unknown_return_tensors(ours):
    with pytest.raises(ValueError, match="return_tensors must be one of"):
        ours("a", return_tensors="mx")


def test_missing_framework_names_the_extra(ours, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail as if torch were not installed
    with pytest.raises(ImportError, match=r"rosettazoo\[torch\]"):
        ours("a", return_tensors="pt")


def test_batch_encoding_access(ours):
    got = ours(["a b", "c"], padding=True)
    assert isinstance(got, BatchEncoding) and isinstance(got, dict)
    assert got.input_ids is got["input_ids"]
    assert list(got) == ["input_ids", "attention_mask"]
    with pytest.raises(AttributeError, match="input_ids"):
        getattr(got, "token_type_ids")  # noqa: B009 (the attribute access is what is tested)


def test_batch_encoding_to_device(ours):
    got = ours(["a b", "c"], padding=True, return_tensors="pt").to("cpu")
    assert isinstance(got, BatchEncoding) and got.input_ids.device.type == "cpu"
    with pytest.raises(TypeError, match='return_tensors="pt"'):
        ours("a").to("cpu")


def test_mask_absorbs_the_space_on_its_left(ours, hf_fast):
    ids = ours("The capital of France is <mask>.")["input_ids"]
    assert ids == [0, 133, 812, 9, 1470, 16, 50264, 4, 2]
    assert ids == hf_fast("The capital of France is <mask>.")["input_ids"]
    assert ours.tokenize("is <mask>") == ["is", "<mask>"]
    # A mask token given as a plain string keeps that behaviour.
    rebuilt = RobertaTokenizer.from_pretrained(DATA, mask_token="<mask>")
    assert rebuilt("is <mask>")["input_ids"] == [0, 354, 50264, 2]


def test_add_prefix_space_matches_transformers():
    ours = RobertaTokenizer.from_pretrained(DATA, add_prefix_space=True)
    theirs = transformers.RobertaTokenizerFast.from_pretrained(DATA, add_prefix_space=True)
    assert ours("Hello world")["input_ids"] == [0, 20920, 232, 2]
    kwargs = {"return_offsets_mapping": True}
    assert dict(ours(TEXTS, **kwargs)) == dict(theirs(TEXTS, **kwargs))
    words = [["Hello", "world", "!"], ["naïve", "<mask>", "café"]]
    got = ours(words, is_split_into_words=True, padding=True, return_offsets_mapping=True)
    assert dict(got) == dict(theirs(words, is_split_into_words=True, padding=True, return_offsets_mapping=True))
    single = ours(["Hello", "world"], is_split_into_words=True)
    assert single["input_ids"] == [0, 20920, 232, 2]


def test_split_into_words_needs_prefix_space(ours):
    with pytest.raises(ValueError, match="add_prefix_space=True"):
        ours(["Hello", "world"], is_split_into_words=True)


def test_special_tokens_match_transformers(ours, hf_fast):
    for role in ("bos", "eos", "sep", "cls", "unk", "pad", "mask"):
        assert getattr(ours, f"{role}_token") == getattr(hf_fast, f"{role}_token"), role
        assert getattr(ours, f"{role}_token_id") == getattr(hf_fast, f"{role}_token_id"), role
    assert (ours.bos_token_id, ours.pad_token_id, ours.eos_token_id, ours.unk_token_id) == (0, 1, 2, 3)
    assert ours.mask_token_id == 50264
    assert ours.all_special_tokens == hf_fast.all_special_tokens
    assert ours.all_special_ids == hf_fast.all_special_ids
    assert ours.special_tokens_map == hf_fast.special_tokens_map
    assert ours.vocab_size == hf_fast.vocab_size == 50265
    assert len(ours) == len(hf_fast)
    assert ours.model_max_length == hf_fast.model_max_length
    assert ours.num_special_tokens_to_add() == 2 and ours.num_special_tokens_to_add(pair=True) == 4


def test_setting_a_special_token(ours):
    tok = RobertaTokenizer.from_pretrained(DATA)
    tok.pad_token = "</s>"
    assert tok.pad_token_id == 2
    assert tok(["a", "a b"], padding=True)["input_ids"][0] == [0, 102, 2, 2]
    tok.pad_token_id = 1
    assert tok.pad_token == "<pad>"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.pad_token_id = 10**6
    tok.pad_token = None
    with pytest.raises(ValueError, match="no pad_token"):
        tok(["a", "a b"], padding=True)
    assert ours.pad_token == "<pad>"  # other instances are untouched


def test_token_id_conversions_match_transformers(ours, hf_fast):
    tokens = ["Hello", "Ġworld", "<mask>", "<s>", "not-a-token-at-all"]
    assert ours.convert_tokens_to_ids(tokens) == hf_fast.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("Hello") == 31414
    assert ours.convert_tokens_to_ids("not-a-token-at-all") == ours.unk_token_id
    ids = [0, 31414, 232, 50264, 2, 99999]
    assert ours.convert_ids_to_tokens(ids) == hf_fast.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == hf_fast.convert_ids_to_tokens(
        ids, skip_special_tokens=True)
    assert ours.convert_ids_to_tokens(31414) == "Hello"
    assert ours.convert_tokens_to_string(["Hello", "Ġworld"]) == "Hello world"
    assert ours.tokenize("Hello", "world", add_special_tokens=True) == ["<s>", "Hello", "</s>", "</s>", "world", "</s>"]


@pytest.mark.parametrize("text", TEXTS)
def test_decode_round_trip_and_matches_transformers(text, ours, hf_fast, hf_slow):
    ids = ours(text)["input_ids"]
    if "<" not in text:  # special tokens in the text are dropped by skip_special_tokens (and <mask> eats a space)
        assert ours.decode(ids, skip_special_tokens=True) == text
    for kwargs in ({}, {"skip_special_tokens": True}, {"clean_up_tokenization_spaces": True}):
        expected = hf_fast.decode(ids, **kwargs)
        assert ours.decode(ids, **kwargs) == expected == hf_slow.decode(ids, **kwargs), kwargs


def test_clean_up_tokenization_spaces():
    cleaned = clean_up_tokenization("Hello , world . I do n't know , it 's fine !")
    assert cleaned == "Hello, world. I don't know, it's fine!"
    ours = RobertaTokenizer.from_pretrained(DATA, clean_up_tokenization_spaces=True)
    theirs = transformers.RobertaTokenizerFast.from_pretrained(DATA, clean_up_tokenization_spaces=True)
    ids = ours("Hello , world . I do n't know")["input_ids"]
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    assert ours.decode(ids, skip_special_tokens=True) == "Hello, world. I don't know"
    raw = ours.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert raw == "Hello , world . I do n't know"


def test_batch_decode_accepts_arrays_and_tensors(ours, hf_fast):
    import torch

    encoded = ours(TEXTS[:6], padding=True, return_tensors="np")["input_ids"]
    expected = hf_fast.batch_decode(encoded, skip_special_tokens=True)
    assert expected == TEXTS[:6]
    assert ours.batch_decode(encoded, skip_special_tokens=True) == expected
    assert ours.batch_decode(torch.from_numpy(encoded), skip_special_tokens=True) == expected
    assert ours.batch_decode(encoded.tolist(), skip_special_tokens=True) == expected
    assert ours.decode(torch.tensor([0, 31414, 232, 2])) == "<s>Hello world</s>"
    assert ours.decode(np.int64(31414)) == "Hello"
    assert ours.decode(31414) == "Hello"


def test_text_target_gives_labels(ours):
    got = ours(["translate this", "and this"], text_target=["la cible", "et celle-ci, plus longue"], padding=True)
    assert list(got) == ["input_ids", "attention_mask", "labels"]
    assert got["labels"] == ours(["la cible", "et celle-ci, plus longue"], padding=True)["input_ids"]
    only_target = ours(text_target="la cible")
    assert dict(only_target) == dict(ours("la cible"))


def test_save_pretrained_loads_in_transformers(ours, tmp_path):
    paths = ours.save_pretrained(tmp_path)
    names = {Path(p).name for p in paths}
    assert names == {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    assert (tmp_path / "merges.txt").read_text() == (DATA / "merges.txt").read_text()
    assert json.loads((tmp_path / "vocab.json").read_text()) == json.loads((DATA / "vocab.json").read_text())
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "RobertaTokenizer" and config["added_tokens_decoder"]["50264"]["lstrip"]
    fast = transformers.RobertaTokenizerFast.from_pretrained(tmp_path)
    slow = transformers.RobertaTokenizer.from_pretrained(tmp_path)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(auto, transformers.RobertaTokenizerFast)
    kwargs = {"padding": True, "return_special_tokens_mask": True}
    expected = dict(ours(TEXTS, **kwargs))
    assert dict(fast(TEXTS, **kwargs)) == expected
    assert dict(slow(TEXTS, **kwargs)) == expected
    assert dict(fast(*PAIRS[1])) == dict(ours(*PAIRS[1]))
    assert fast.mask_token == slow.mask_token == "<mask>"


def test_save_pretrained_round_trip_keeps_settings(tmp_path):
    tok = RobertaTokenizer.from_pretrained(DATA, model_max_length=64, padding_side="left", add_prefix_space=True)
    tok.save_pretrained(tmp_path)
    again = RobertaTokenizer.from_pretrained(tmp_path)
    assert (again.model_max_length, again.padding_side, again.add_prefix_space) == (64, "left", True)
    assert dict(again(TEXTS, padding=True)) == dict(tok(TEXTS, padding=True))
    theirs = transformers.RobertaTokenizerFast.from_pretrained(tmp_path)
    assert (theirs.model_max_length, theirs.padding_side) == (64, "left")
    assert dict(theirs(TEXTS, padding=True)) == dict(tok(TEXTS, padding=True))


def test_save_pretrained_refuses_to_overwrite(ours, tmp_path):
    ours.save_pretrained(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("fast", [True, False])
def test_loads_what_transformers_saves(fast, ours, hf_fast, hf_slow, tmp_path):
    (hf_fast if fast else hf_slow).save_pretrained(tmp_path)  # the slow one writes no tokenizer.json
    loaded = RobertaTokenizer.from_pretrained(tmp_path)
    kwargs = {"padding": True, "return_special_tokens_mask": True, "return_offsets_mapping": True}
    assert dict(loaded(TEXTS, **kwargs)) == dict(ours(TEXTS, **kwargs))
    assert loaded.mask_token_id == 50264


def test_special_tokens_map_file_is_read(tmp_path):
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "</s>"}))
    assert RobertaTokenizer.from_pretrained(tmp_path).pad_token_id == 2
    assert RobertaTokenizer.from_pretrained(tmp_path, pad_token="<pad>").pad_token_id == 1


def test_older_tokenizer_config_keys(tmp_path):
    # Files saved by older transformers: file paths, name_or_path, AddedToken dicts with "__type".
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(DATA / name, tmp_path / name)
    mask = {"__type": "AddedToken", "content": "<mask>", "lstrip": True, "normalized": True, "rstrip": False,
            "single_word": False}
    config = {"tokenizer_file": "/elsewhere/tokenizer.json", "special_tokens_map_file": "/elsewhere/map.json",
              "name_or_path": "roberta-base", "errors": "replace", "mask_token": mask, "model_max_length": 512}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tok = RobertaTokenizer.from_pretrained(tmp_path)
    assert tok.name_or_path == str(tmp_path) and tok.model_max_length == 512
    assert tok("is <mask>")["input_ids"] == [0, 354, 50264, 2]


def test_loads_a_hub_id_from_the_cache(tmp_path, monkeypatch):
    # A hand-made Hugging Face cache holding only vocab.json and merges.txt (as the facebook/opt-* repositories).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--someone--roberta-tokenizer"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(DATA / name, snapshot / name)
    tok = RobertaTokenizer.from_pretrained("someone/roberta-tokenizer", cache_dir=tmp_path)
    assert tok("Hello world")["input_ids"] == [0, 31414, 232, 2]
    with pytest.raises(FileNotFoundError, match="someone/other"):
        RobertaTokenizer.from_pretrained("someone/other", cache_dir=tmp_path)


def test_missing_files_are_named(tmp_path):
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"tokenizer.json or vocab.json \+ merges.txt"):
        RobertaTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("call, message", [
    (lambda t: t("a", padding="sideways"), "padding must be one of"),
    (lambda t: t("a", truncation="middle"), "truncation must be one of"),
    (lambda t: t("a", padding=True, padding_side="up"), "padding_side must be"),
    (lambda t: t(["a", "b"], ["c"]), "text_pair must match"),
    (lambda t: t("a", ["b"]), "text_pair must match"),
    (lambda t: t(42), "text must be a str"),
    (lambda t: t("a b c d", truncation="only_second", max_length=3), "needs a text_pair"),
    (lambda t: t("a", "b c d e f", truncation="only_first", max_length=5), "cannot reach the max length"),
    (lambda t: t("a", "b", truncation=True, max_length=3), "special tokens"),
    (lambda t: t(["a", "b"], padding="max_length", truncation=True, max_length=6, pad_to_multiple_of=4),
     "multiple of pad_to_multiple_of"),
    (lambda t: t(), "pass `text`"),
    (lambda t: t.tokenize(["a", "b"]), "one text"),
])
def test_bad_calls_are_clear(call, message, ours):
    with pytest.raises(ValueError, match=message):
        call(ours)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="unexpected keyword"):
        RobertaTokenizer.from_pretrained(DATA, mask_tokn="<mask>")
    with pytest.raises(ValueError, match="tokenizer_file, or both"):
        RobertaTokenizer(vocab_file=DATA / "vocab.json")
