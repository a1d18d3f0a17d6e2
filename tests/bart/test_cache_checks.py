"""BART checks a dynamic cache as OPT does, with the same message in PyTorch, TensorFlow and Flax: one entry per
decoder layer, each (key, value[, cross_key, cross_value]), keys [batch, heads, past length, head_dim] of the
input's batch."""

import re

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import rosettazoo.bart as bart  # noqa: E402
from tests.harness import PREFIXES, load_three, run  # noqa: E402

CONFIG = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
              decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=20)
IDS = np.full((2, 3), 5, np.int64)


def cache(batch=2, entries=4, rank=4):
    shape = (batch, 4, 2, 8)[:rank]
    return tuple(tuple(np.zeros(shape, np.float32) for _ in range(entries)) for _ in range(2))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_three(bart, "BartForConditionalGeneration", bart.BartConfig(**CONFIG), tmp_path_factory.mktemp("bart"))


CASES = [
    ("keys of another batch", cache(batch=1),
     "past_key_values keys must have shape [batch=2, heads, past length, head_dim], got [1, 4, 2, 8]"),
    ("keys of rank 3", cache(rank=3),
     "past_key_values keys must have shape [batch=2, heads, past length, head_dim], got [2, 4, 2]"),
    ("entries of 3 tensors", cache(entries=3),
     "past_key_values must hold one (key, value[, cross_key, cross_value]) tuple per decoder layer, each "
     "[batch, heads, seq, head_dim]"),
]


@pytest.mark.parametrize("framework", list(PREFIXES))
@pytest.mark.parametrize(("past", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_cache_gets_the_same_error(framework, past, message, models):
    inputs = {"input_ids": IDS, "decoder_input_ids": IDS[:, :1], "past_key_values": past}
    with pytest.raises(ValueError, match=re.escape(message)):
        run(framework, models[framework], inputs)


@pytest.mark.parametrize("framework", list(PREFIXES))
def test_good_cache_is_accepted(framework, models):
    inputs = {"input_ids": IDS, "decoder_input_ids": IDS[:, :1], "past_key_values": cache(), "use_cache": True}
    out = run(framework, models[framework], inputs)
    assert np.asarray(out.past_key_values[0][0]).shape == (2, 4, 3, 8)
