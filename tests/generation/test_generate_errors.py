"""Bad ``generate`` settings and inputs raise a clear error before any compute, with the same message in PyTorch,
TensorFlow and Flax (the checks are framework-neutral: settings.py and config.py)."""

import warnings

import numpy as np
import pytest

from . import models
from .models import FRAMEWORKS, POSITIONS, VOCAB

IDS = np.array([[5, 6, 7, 8, 9], [5, 7, 10, 11, 12]])
PADDED = np.array([[1, 1, 10, 11, 12], [5, 6, 7, 8, 9]])
PADDED_MASK = (PADDED != 1).astype(np.int64)
RIGHT_PADDED = np.array([[10, 11, 12, 1, 1], [5, 6, 7, 8, 9]])


class Decoded(Exception):
    """What ``_run_decoding`` raises here: reaching it means the checks let the call through."""


def no_compute(*args, **kwargs):
    raise Decoded


def guarded(family: str, framework: str, monkeypatch):
    model = models.model(family, framework)
    monkeypatch.setattr(model, "_run_decoding", no_compute, raising=False)
    return model


# (input_ids, attention_mask, settings, exception, pattern)
CASES = {
    "num_return_sequences_over_beams": (IDS, None, dict(num_return_sequences=3, num_beams=2), ValueError,
                                        r"num_return_sequences \(3\) exceeds num_beams \(2\)"),
    "num_return_sequences_greedy": (IDS, None, dict(num_return_sequences=2), ValueError,
                                    r"num_return_sequences \(2\) exceeds num_beams \(1\)"),
    "top_p_zero": (IDS, None, dict(do_sample=True, top_p=0.0), ValueError, r"top_p must be in \(0, 1\].*0\.0"),
    "top_p_above_one": (IDS, None, dict(do_sample=True, top_p=1.5), ValueError, r"top_p must be in \(0, 1\].*1\.5"),
    "temperature_zero": (IDS, None, dict(do_sample=True, temperature=0.0), ValueError,
                         r"temperature must be positive"),
    "temperature_negative": (IDS, None, dict(do_sample=True, temperature=-1.0), ValueError,
                             r"temperature must be positive"),
    "num_beams_zero": (IDS, None, dict(num_beams=0), ValueError, r"num_beams must be at least 1"),
    "max_length_and_max_new_tokens": (IDS, None, dict(max_length=10, max_new_tokens=3), ValueError,
                                      r"max_length or max_new_tokens, not both"),
    "prompt_fills_max_length": (IDS, None, dict(max_length=5), ValueError,
                                r"prompt has 5 tokens but max_length is 5"),
    "max_length_beyond_positions": (IDS, None, dict(max_length=POSITIONS + 1), ValueError,
                                    rf"max_length {POSITIONS + 1} exceeds the {POSITIONS} positions"),
    "max_new_tokens_beyond_positions": (IDS, None, dict(max_new_tokens=POSITIONS), ValueError,
                                        rf"max_length {POSITIONS + 5} exceeds the {POSITIONS} positions"),
    "negative_id": (np.array([[5, -1, 7]]), None, dict(max_new_tokens=2), ValueError,
                    rf"input_ids holds -1, outside the vocabulary \[0, {VOCAB}\)"),
    "id_at_vocab_size": (np.array([[5, VOCAB, 7]]), None, dict(max_new_tokens=2), ValueError,
                         rf"input_ids holds {VOCAB}, outside the vocabulary"),
    "padded_without_pad_or_eos": (PADDED, PADDED_MASK, dict(pad_token_id=None, eos_token_id=None, max_new_tokens=2),
                                  ValueError, r"padded \(attention_mask has zeros\) but no pad_token_id"),
    "bad_words_out_of_vocab": (IDS, None, dict(bad_words_ids=[[7], [VOCAB]], max_new_tokens=2), ValueError,
                               rf"bad_words_ids is {VOCAB}, outside the vocabulary"),
    "bad_words_negative": (IDS, None, dict(bad_words_ids=[[-3]], max_new_tokens=2), ValueError, r"bad_words_ids"),
    "unknown_arguments": (IDS, None, dict(max_new_tokens=2, top_kk=5, beams=2), TypeError,
                          r"unexpected arguments \['beams', 'top_kk'\]"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_settings_raise_before_compute_alike_in_every_framework(case, monkeypatch):
    ids, mask, settings, error, pattern = CASES[case]
    messages = {}
    for framework in models.available():
        model = guarded("opt", framework, monkeypatch)
        compiled = len(models.programs(model))
        with pytest.raises(error, match=pattern) as info:
            model.generate(ids, attention_mask=mask, **settings)
        assert len(models.programs(model)) == compiled  # nothing compiled either
        messages[framework] = str(info.value).replace(type(model).__name__, "<model>")
    assert len(set(messages.values())) == 1, messages


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bad_settings_for_bart_too(framework, monkeypatch):
    model = guarded("bart", framework, monkeypatch)
    with pytest.raises(ValueError, match=rf"max_length {POSITIONS + 1} exceeds"):
        model.generate(IDS, max_length=POSITIONS + 1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.generate(np.array([[5, VOCAB]]), max_new_tokens=2)
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(IDS, num_beams=2, num_return_sequences=3)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_right_padded_prompt_to_a_decoder_only_model_warns(framework, monkeypatch):
    model = guarded("opt", framework, monkeypatch)
    mask = (RIGHT_PADDED != 1).astype(np.int64)
    with pytest.warns(UserWarning, match="right-padded prompt") as record, pytest.raises(Decoded):
        model.generate(RIGHT_PADDED, attention_mask=mask, max_new_tokens=2)
    # Reported where generate was called, not inside the library.
    assert [w.filename for w in record if "right-padded" in str(w.message)] == [__file__]
    with warnings.catch_warnings():  # left padding is fine
        warnings.simplefilter("error")
        with pytest.raises(Decoded):
            model.generate(PADDED, attention_mask=PADDED_MASK, max_new_tokens=2)


def test_an_encoder_decoder_model_takes_right_padding_silently(monkeypatch):
    model = guarded("bart", "pt", monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Decoded):
            model.generate(RIGHT_PADDED, attention_mask=(RIGHT_PADDED != 1).astype(np.int64), max_new_tokens=2)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_bad_setting_leaves_the_model_usable(framework, monkeypatch):
    model = guarded("opt", framework, monkeypatch)
    before = model.generation_config.to_dict()
    with pytest.raises(ValueError):
        model.generate(IDS, do_sample=True, top_p=2.0)
    assert model.generation_config.to_dict() == before
