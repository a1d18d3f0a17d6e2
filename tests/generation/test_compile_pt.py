"""PyTorch generate(compile=True): the model step under torch.compile gives the eager tokens and, thanks to the
static cache and prompt buckets, compiles once for every prompt length of a bucket."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from .models import ids_of, model  # noqa: E402

IDS = np.array([[5, 6, 7, 8, 9], [1, 1, 10, 11, 12]])
MASK = (IDS != 1).astype(np.int64)


def test_compiled_step_gives_the_eager_tokens_and_does_not_recompile_within_a_bucket():
    opt = model("opt", "pt")
    want = ids_of(opt.generate(IDS, attention_mask=MASK, max_new_tokens=6))
    np.testing.assert_array_equal(ids_of(opt.generate(IDS, attention_mask=MASK, max_new_tokens=6, compile=True)), want)
    shorter = IDS[:, 1:]
    want_shorter = ids_of(opt.generate(shorter, attention_mask=MASK[:, 1:], max_new_tokens=6))
    with torch._dynamo.config.patch(error_on_recompile=True):
        got = opt.generate(shorter, attention_mask=MASK[:, 1:], max_new_tokens=6, compile=True)
    np.testing.assert_array_equal(ids_of(got), want_shorter)
