"""Bad tokenizer files and bad tokenizer input give clear errors: the file and what is wrong with it, the input and
where in it; never a tokenizer that quietly tokenizes differently (an empty merges.txt used to split every word
into bytes) nor a raw JSONDecodeError / TypeError / Rust panic."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rosettazoo.bart import BartTokenizer
from rosettazoo.common.tokenization import TokenizerFileError
from rosettazoo.opt import OPTTokenizer
from rosettazoo.roberta import RobertaTokenizer

DATA = Path(__file__).resolve().parents[1] / "data" / "roberta-base"  # see its SOURCE.md
CLASSES = [RobertaTokenizer, BartTokenizer, OPTTokenizer]


@pytest.fixture(scope="module")
def tok():
    return RobertaTokenizer.from_pretrained(DATA)


def _folder(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


# ---------------------------------------------------------------------- files

MERGES_CASES = [
    ("", "holds no merges"),
    ("#version: 0.2\n", "holds no merges"),
    ("#version: 0.2\n\n", "holds no merges"),
    ("#version: 0.2\nĠ t\nĠ t h\n", "line 3 should be two tokens"),
    ("#version: 0.2\nĠ t\n\nh e\n", "line 3 should be two tokens"),
    ("#version: 0.2\nĠ zzzz\n", "has no token 'zzzz'"),
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("text, message", MERGES_CASES, ids=[str(i) for i in range(len(MERGES_CASES))])
def test_bad_merges_file_is_named(cls, text, message, tmp_path):
    folder = _folder(tmp_path, "vocab.json")
    (folder / "merges.txt").write_text(text, encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message) as caught:
        cls.from_pretrained(folder)
    assert str(folder / "merges.txt") in str(caught.value)


VOCAB_CASES = [
    ("", "is empty"),
    ("  \n", "is empty"),
    ("{}", "holds no tokens"),
    ('{"a": 0,', "is not valid JSON"),
    ('["a", "b"]', "should hold a JSON object .*got an array"),
    ('{"a": "zero"}', "id of 'a' must be a non-negative integer"),
    ('{"a": -1}', "id of 'a' must be a non-negative integer"),
    ('{"a": 0, "b": 0}', "gives id 0 to both 'a' and 'b'"),
]


@pytest.mark.parametrize("text, message", VOCAB_CASES, ids=[str(i) for i in range(len(VOCAB_CASES))])
def test_bad_vocab_file_is_named(text, message, tmp_path):
    folder = _folder(tmp_path, "merges.txt")
    (folder / "vocab.json").write_text(text, encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message) as caught:
        RobertaTokenizer.from_pretrained(folder)
    assert str(folder / "vocab.json") in str(caught.value)


def test_merges_of_another_vocabulary_are_refused(tmp_path):
    folder = _folder(tmp_path, "merges.txt")
    (folder / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "ab": 2}))
    with pytest.raises(TokenizerFileError, match=r"merges.txt line 2 .* vocab.json has no token .*do not belong"):
        RobertaTokenizer.from_pretrained(folder)


def _tokenizer_json(change) -> str:
    spec = json.loads((DATA / "tokenizer.json").read_text(encoding="utf-8"))
    change(spec)
    return json.dumps(spec)


TOKENIZER_JSON_CASES = [
    ("", "is empty"),
    ('{"version": "1.0", "model": ', "is not a valid tokenizer.json"),
    ("[1, 2]", "is not a valid tokenizer.json"),
    (_tokenizer_json(lambda s: s["model"].update(merges=[])), "empty model.merges"),
    (_tokenizer_json(lambda s: s.update(model={"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"})),
     "holds a WordLevel model"),
]


@pytest.mark.parametrize("text, message", TOKENIZER_JSON_CASES, ids=[str(i) for i in range(len(TOKENIZER_JSON_CASES))])
def test_bad_tokenizer_json_is_named(text, message, tmp_path):
    (tmp_path / "tokenizer.json").write_text(text, encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message) as caught:
        RobertaTokenizer.from_pretrained(tmp_path)
    assert str(tmp_path / "tokenizer.json") in str(caught.value)


CONFIG_CASES = [
    ("", "is empty"),
    ('{"model_max_length": 512,}', "is not valid JSON: .* line 1"),
    ('["model_max_length"]', "should hold a JSON object"),
    ('{"model_max_length": "512"}', "'model_max_length' must be a non-negative integer"),
    ('{"model_max_length": -1}', "'model_max_length' must be a non-negative integer"),
    ('{"model_max_length": 1.5}', "'model_max_length' must be a non-negative integer"),
    ('{"padding_side": "up"}', "'padding_side' must be 'left' or 'right'"),
    ('{"add_prefix_space": "yes"}', "'add_prefix_space' must be true or false"),
    ('{"mask_token": 5}', "'mask_token' must be a token"),
    ('{"pad_token": {"id": 1}}', "'pad_token' must be a token"),
    ('{"additional_special_tokens": "<x>"}', "'additional_special_tokens' must be a list of tokens"),
    ('{"added_tokens_decoder": {"x": {"content": "<x>"}}}', "'added_tokens_decoder' must map each id"),
    ('{"added_tokens_decoder": []}', "'added_tokens_decoder' must map each id"),
]


@pytest.mark.parametrize("text, message", CONFIG_CASES, ids=[str(i) for i in range(len(CONFIG_CASES))])
def test_bad_tokenizer_config_is_named(text, message, tmp_path):
    folder = _folder(tmp_path, "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(text, encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message) as caught:
        RobertaTokenizer.from_pretrained(folder)
    assert str(folder / "tokenizer_config.json") in str(caught.value)


def test_bad_special_tokens_map_is_named(tmp_path):
    folder = _folder(tmp_path, "tokenizer.json")
    (folder / "special_tokens_map.json").write_text('{"pad_token": ["<pad>"]}')
    with pytest.raises(TokenizerFileError, match=r"special_tokens_map.json: 'pad_token' must be a token"):
        RobertaTokenizer.from_pretrained(folder)


def test_a_float_model_max_length_means_the_integer(tmp_path):
    folder = _folder(tmp_path, "tokenizer.json")
    (folder / "tokenizer_config.json").write_text('{"model_max_length": 1e30}')
    assert RobertaTokenizer.from_pretrained(folder).model_max_length == int(1e30)


def test_added_token_ids_must_follow_the_vocabulary(tmp_path):
    folder = _folder(tmp_path, "vocab.json", "merges.txt")
    added = {"50270": {"content": "<x>", "special": True}}
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": added}))
    with pytest.raises(ValueError, match="gives '<x>' id 50270, but the vocabulary gives it id 50265"):
        RobertaTokenizer.from_pretrained(folder)


NOT_UTF8 = {
    "vocab.json": b'{"caf\xe9": 0}',
    "merges.txt": b"#version: 0.2\n\xff\xfe t\n",
    "tokenizer.json": b"{\"model\": \"\xc3\x28\"}",
    "tokenizer_config.json": b'{"pad_token": "\x80"}',
    "special_tokens_map.json": b'{"pad_token": "\x80"}',
    "added_tokens.json": b'{"\xe9": 50265}',
}


@pytest.mark.parametrize("name", list(NOT_UTF8))
def test_non_utf8_file_is_named(name, tmp_path):
    sources = ("vocab.json", "merges.txt") if name != "tokenizer.json" else ()
    folder = _folder(tmp_path, *(n for n in sources if n != name))
    (folder / name).write_bytes(NOT_UTF8[name])
    with pytest.raises(TokenizerFileError, match="is not UTF-8 text") as caught:
        RobertaTokenizer.from_pretrained(folder)
    assert str(folder / name) in str(caught.value)


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    folder = _folder(tmp_path, "tokenizer.json")
    (folder / "tokenizer_config.json").write_bytes(b"\xef\xbb\xbf" + b'{"model_max_length": 512}')
    assert RobertaTokenizer.from_pretrained(folder).model_max_length == 512


# ---------------------------------------------------------------------- input


@pytest.mark.parametrize("cls", CLASSES)
def test_lone_surrogate_in_text_says_where(cls):
    tok = cls.from_pretrained(DATA)
    with pytest.raises(ValueError, match=r"^text holds a lone surrogate '\\ud83d' at character 3"):
        tok("abc\ud83d def")
    with pytest.raises(ValueError, match=r"^text\[1\] holds a lone surrogate '\\udc00' at character 0"):
        tok(["fine", "\udc00x"], padding=True)
    with pytest.raises(ValueError, match=r"^text_pair\[0\] holds a lone surrogate"):
        tok(["a"], ["b\ud800"])
    with pytest.raises(ValueError, match=r"^text holds a lone surrogate"):
        tok.tokenize("x\udfff")
    with pytest.raises(ValueError, match=r"^text holds a lone surrogate"):
        tok(text_target="x\udfff")
    assert tok("a 🤗")["input_ids"] == tok("a \ud83e\udd17".encode("utf-16", "surrogatepass").decode("utf-16"))[
        "input_ids"]  # a proper pair is a character, not an error


def test_lone_surrogate_in_words_says_which_word():
    tok = RobertaTokenizer.from_pretrained(DATA, add_prefix_space=True)
    with pytest.raises(ValueError, match=r"^text\[1\]\[2\] holds a lone surrogate '\\ud800' at character 1"):
        tok([["a"], ["b", "c", "d\ud800"]], is_split_into_words=True)


@pytest.mark.parametrize("cls", CLASSES)
def test_decode_refuses_ids_outside_the_vocabulary(cls):
    tok = cls.from_pretrained(DATA)
    size = len(tok)
    with pytest.raises(ValueError, match=r"token id -1 at position 0 is outside the vocabulary \(ids 0\.\.50264\)"):
        tok.decode([-1])
    with pytest.raises(ValueError, match=f"token id {size} at position 2 is outside"):
        tok.decode(np.array([0, 5, size]))
    with pytest.raises(ValueError, match=r"token id 99999 at position 1 of sequence 1 is outside"):
        tok.batch_decode([[0, 1], [2, 99999]])
    assert tok.decode([size - 1]) == "<mask>"
    tok.add_tokens(["newtok"])
    assert tok.decode([size]) == "newtok"  # added tokens count


def test_stride_must_be_shorter_than_the_window(tok):
    with pytest.raises(ValueError, match=r"stride=6 must be smaller than the 6 tokens of the first sequence"):
        tok("a b c d e f g h i j k", truncation=True, max_length=8, stride=6, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match=r"stride=4 must be smaller than the 4 tokens of the second sequence"):
        tok("q q q q q q q q", "a b c d e f g h i j k", truncation="only_second", max_length=16, stride=4,
            return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="stride must be a non-negative integer"):
        tok("a", stride=-1)


@pytest.mark.parametrize("call, error, message", [
    (lambda t: t.add_tokens([3]), TypeError, "non-empty str or tokenizers.AddedToken"),
    (lambda t: t.add_tokens(""), TypeError, "non-empty str"),
    (lambda t: t.add_special_tokens({"mask": "<m>"}), ValueError, r"unknown keys \['mask'\]"),
    (lambda t: t.add_special_tokens({"pad_token": 1}), TypeError, "pad_token must be a str"),
    (lambda t: t.add_special_tokens({"additional_special_tokens": "<x>"}), TypeError, "must be a list of tokens"),
    (lambda t: t.pad({"attention_mask": [[1]]}), ValueError, "needs 'input_ids'"),
    (lambda t: t.pad("abc"), TypeError, "pad takes an encoding"),
    (lambda t: t.pad([]), TypeError, "pad takes an encoding"),
    (lambda t: t.pad([{"input_ids": [0, 2]}, {"input_ids": [0], "labels": 1}]), ValueError, "the same keys"),
    (lambda t: t.pad({"input_ids": [[0, 2], [0]], "attention_mask": [[1, 1]]}), ValueError,
     "2 input_ids rows but 1 for 'attention_mask'"),
    (lambda t: t.pad({"input_ids": [[0, 2], [0]], "attention_mask": [[1, 1], [1, 1]]}), ValueError,
     "'attention_mask' rows as long as their input_ids"),
    (lambda t: t.pad([{"input_ids": [0, 2], "labels": [5, 6]}, {"input_ids": [0], "labels": [5]}],
                     return_tensors="np"), ValueError, "rows of 'labels' to have one length"),
    (lambda t: t.pad([{"input_ids": [0], "id": "a"}, {"input_ids": [0], "id": None}], return_tensors="pt"),
     ValueError, "tensor of 'id'"),
    (lambda t: t.get_special_tokens_mask([0, 5, 2]), ValueError, "already_has_special_tokens=True"),
])
def test_bad_calls_are_clear(call, error, message, tok):
    with pytest.raises(error, match=message):
        call(tok)


def test_pad_without_a_pad_token():
    tok = RobertaTokenizer.from_pretrained(DATA, pad_token=None)
    with pytest.raises(ValueError, match="no pad_token"):
        tok.pad([{"input_ids": [0, 2]}, {"input_ids": [0]}])
    assert tok.pad([{"input_ids": [0, 2]}, {"input_ids": [0]}], padding=False)["input_ids"] == [[0, 2], [0]]


@pytest.mark.parametrize("kwargs, message", [
    ({"model_max_length": "512"}, "model_max_length must be a non-negative integer, got '512'"),
    ({"add_prefix_space": "no"}, "add_prefix_space must be true or false"),
    ({"trim_offsets": None}, "trim_offsets must be true or false"),
])
def test_bad_settings_given_in_code_are_clear(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RobertaTokenizer.from_pretrained(DATA, **kwargs)
