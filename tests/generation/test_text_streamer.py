"""TextStreamer: what it prints, word by word, for the calls generate makes (framework-neutral)."""

import numpy as np
import pytest

from rosettazoo.generation import TextStreamer

WORDS = {0: "<s>", 1: "Hello", 2: " world", 3: ",", 4: " again", 5: "\n", 6: "caf", 7: "\u00e9"}


class Tokenizer:
    """Decodes token ids by a fixed table; id 8 alone is half a character (decodes to U+FFFD, as byte-level BPE)."""

    def decode(self, ids, skip_special_tokens=False):
        text = ""
        for i, token in enumerate(ids):
            if token == 8:
                text += "" if i + 1 < len(ids) and ids[i + 1] == 9 else "\ufffd"
            elif token == 9:
                text += "\u00e9" if i and ids[i - 1] == 8 else "\ufffd"
            elif not (skip_special_tokens and token == 0):
                text += WORDS[token]
        return text


class Recorder(TextStreamer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pieces = []

    def on_finalized_text(self, text, stream_end=False):
        self.pieces.append((text, stream_end))


def feed(streamer, prompt, tokens):
    streamer.put(np.array([prompt]))
    for token in tokens:
        streamer.put(np.array([token]))
    streamer.end()
    return streamer.pieces


def test_prints_whole_words_as_they_complete_then_the_rest_at_the_end():
    pieces = feed(Recorder(Tokenizer()), [0, 1], [2, 3, 4])
    assert pieces == [("<s>Hello ", False), ("world, ", False), ("again", True)]
    assert "".join(text for text, _ in pieces) == "<s>Hello world, again"


def test_skip_prompt_and_decode_arguments():
    pieces = feed(Recorder(Tokenizer(), skip_prompt=True, skip_special_tokens=True), [0, 1], [2, 4])
    assert "".join(text for text, _ in pieces) == " world again"


def test_a_newline_flushes_the_line():
    pieces = feed(Recorder(Tokenizer(), skip_prompt=True), [0], [1, 5, 1])
    assert pieces[0] == ("Hello\n", False)
    assert "".join(text for text, _ in pieces) == "Hello\nHello"


def test_waits_for_the_rest_of_a_split_character():
    streamer = Recorder(Tokenizer(), skip_prompt=True)
    pieces = feed(streamer, [0], [2, 8, 9, 2])
    assert all("\ufffd" not in text for text, _ in pieces)
    assert "".join(text for text, _ in pieces) == " world\u00e9 world"


def test_refuses_a_batch():
    with pytest.raises(ValueError, match="batch of 1"):
        Recorder(Tokenizer()).put(np.array([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="batch of 1"):
        Recorder(Tokenizer(), skip_prompt=True).put(np.array([1, 2]))
