"""``generate(..., streamer=)``: the streamer gets the prompt, then each new token as it is chosen, then ``end()``
once, in PyTorch, TensorFlow and Flax; together what it got is the returned sequence (and PyTorch's ids without a
streamer). Beam search refuses a streamer. ``TextStreamer`` prints the returned text."""

import numpy as np
import pytest

from rosettazoo.generation import TextStreamer

from . import models
from .models import FRAMEWORKS, Recorder, generate

PROMPTS = {"opt": np.array([[5, 6, 7, 8, 9]]), "bart": np.array([[5, 6, 7, 8, 9, 10, 2]])}
SETTINGS = dict(max_new_tokens=8)


@pytest.mark.parametrize("family", ["opt", "bart"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_streamer_receives_the_prompt_then_each_token(framework, family):
    ids = PROMPTS[family]
    streamer = Recorder()
    got = generate(family, framework, ids, streamer=streamer, **SETTINGS)
    assert streamer.ends == 1
    prompt, *tokens = streamer.puts
    decoder_prompt = ids if family == "opt" else np.array([[2]])  # BART decodes from decoder_start_token_id
    np.testing.assert_array_equal(prompt, decoder_prompt)
    assert all(t.shape == (1,) for t in tokens)
    assert 1 <= len(tokens) <= SETTINGS["max_new_tokens"]
    np.testing.assert_array_equal(streamer.row(), got[0])
    np.testing.assert_array_equal(got, generate(family, "pt", ids, **SETTINGS))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_beam_search_refuses_a_streamer(framework, monkeypatch):
    model = models.model("opt", framework)
    monkeypatch.setattr(model, "_run_decoding", _no_compute, raising=False)
    streamer = Recorder()
    with pytest.raises(ValueError, match="streamer.*beam search"):
        model.generate(PROMPTS["opt"], num_beams=2, max_new_tokens=4, streamer=streamer)
    assert streamer.puts == [] and streamer.ends == 0


def _no_compute(*args, **kwargs):
    raise AssertionError("decoding started")


class WordTokenizer:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(f" w{int(i)}" for i in ids if not (skip_special_tokens and int(i) in (0, 1, 2)))


class Printed(TextStreamer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.text = []

    def on_finalized_text(self, text, stream_end=False):
        self.text.append(text)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_text_streamer_prints_the_generated_text(framework):
    ids = PROMPTS["opt"]
    streamer = Printed(WordTokenizer(), skip_prompt=True)
    got = generate("opt", framework, ids, streamer=streamer, **SETTINGS)
    assert "".join(streamer.text) == WordTokenizer().decode(got[0, ids.shape[1]:])
    streamer = Printed(WordTokenizer())
    generate("opt", framework, ids, streamer=streamer, **SETTINGS)
    assert "".join(streamer.text) == WordTokenizer().decode(got[0])
