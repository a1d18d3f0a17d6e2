"""BART's generate(encoder_outputs=...): the caller's encoder output decodes as the input ids it came from."""

import numpy as np
import pytest

from .models import FRAMEWORKS, ids_of, model

IDS = np.array([[5, 6, 7, 8, 9, 10], [11, 12, 13, 1, 1, 1]])
MASK = (IDS != 1).astype(np.int64)
SETTINGS = dict(max_new_tokens=6, min_new_tokens=6, num_beams=2, no_repeat_ngram_size=2)


def encode(framework, bart):
    if framework == "pt":
        import torch

        with torch.no_grad():
            return bart.get_encoder()(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK))
    if framework == "tf":
        return bart.get_encoder()(input_ids=IDS, attention_mask=MASK, training=False)
    return bart.encode(IDS, MASK)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_encoder_outputs_give_the_ids_of_the_input_they_encode(framework):
    bart = model("bart", framework)
    want = ids_of(bart.generate(IDS, attention_mask=MASK, **SETTINGS))
    encoded = encode(framework, bart)
    got = ids_of(bart.generate(encoder_outputs=encoded, attention_mask=MASK, **SETTINGS))
    np.testing.assert_array_equal(got, want)
    with_ids = ids_of(bart.generate(IDS, attention_mask=MASK, encoder_outputs=(encoded[0],), **SETTINGS))
    np.testing.assert_array_equal(with_ids, want)


def test_encoder_outputs_are_checked_against_input_ids_and_the_model():
    bart = model("bart", "pt")
    encoded = encode("pt", bart)
    with pytest.raises(ValueError, match="do not match encoder_outputs"):
        bart.generate(IDS[:, :4], encoder_outputs=encoded, max_new_tokens=3)
    with pytest.warns(UserWarning, match="encoder_no_repeat_ngram_size needs"):
        bart.generate(encoder_outputs=encoded, attention_mask=MASK, max_new_tokens=3, encoder_no_repeat_ngram_size=2)
    with pytest.raises(TypeError, match="encoder-decoder"):
        model("opt", "pt").generate(IDS, encoder_outputs=encoded, max_new_tokens=3)
