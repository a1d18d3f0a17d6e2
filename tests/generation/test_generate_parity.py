"""``generate`` across frameworks: ``seed=`` samples the same ids in PyTorch, TensorFlow (XLA) and Flax (jit), for
sampling and beam sampling, OPT and BART; prompts of one length bucket share one compiled program in TF and Flax and
give PyTorch's ids. Tiny random models (see models.py); each distinct setting compiles once per framework."""

import numpy as np
import pytest

from . import models
from .models import generate

OPT_IDS = np.array([[5, 6, 7, 8, 9], [1, 1, 10, 11, 12]])
BART_IDS = np.array([[5, 6, 7, 8, 9, 10, 2], [0, 11, 12, 13, 2, 1, 1]])
PROMPTS = {"opt": OPT_IDS, "bart": BART_IDS}

SAMPLE = dict(do_sample=True, top_k=20, top_p=0.9, temperature=0.8, max_new_tokens=8, min_new_tokens=4,
              num_return_sequences=2, seed=1234)
BEAM_SAMPLE = dict(do_sample=True, num_beams=3, num_return_sequences=2, max_new_tokens=8, min_new_tokens=4,
                   temperature=1.2, seed=99)


def mask_of(ids):
    return (ids != 1).astype(np.int64)


@pytest.mark.parametrize("family", ["opt", "bart"])
@pytest.mark.parametrize("settings", [SAMPLE, BEAM_SAMPLE], ids=["sample", "beam_sample"])
def test_the_same_seed_samples_the_same_ids_in_every_framework(family, settings):
    ids = PROMPTS[family]
    want = generate(family, "pt", ids, mask_of(ids), **settings)
    assert want.shape[0] == ids.shape[0] * 2
    np.testing.assert_array_equal(generate(family, "pt", ids, mask_of(ids), **settings), want)  # reproducible
    frameworks = models.available(("tf", "flax"))
    assert frameworks, "needs TensorFlow or Flax"
    for framework in frameworks:
        np.testing.assert_array_equal(generate(family, framework, ids, mask_of(ids), **settings), want,
                                      err_msg=f"{family} {framework}")


@pytest.mark.parametrize("family", ["opt", "bart"])
def test_different_seeds_sample_different_ids(family):
    ids = PROMPTS[family]
    settings = dict(do_sample=True, top_k=0, temperature=2.0, max_new_tokens=12, min_new_tokens=12)
    runs = [generate(family, "pt", ids, mask_of(ids), seed=seed, **settings) for seed in (0, 1, 2)]
    for a in range(3):
        for b in range(a + 1, 3):
            new = slice(-12, None)
            assert np.mean(runs[a][:, new] == runs[b][:, new]) < 0.5, (a, b)


@pytest.mark.parametrize("family", ["opt", "bart"])
def test_top_k_1_sampling_is_greedy(family):
    ids = PROMPTS[family]
    greedy = generate(family, "pt", ids, mask_of(ids), max_new_tokens=8)
    for seed in (0, 5):
        sampled = generate(family, "pt", ids, mask_of(ids), do_sample=True, top_k=1, temperature=1.5,
                           max_new_tokens=8, seed=seed)
        np.testing.assert_array_equal(sampled, greedy)
    for framework in models.available(("tf", "flax")) if family == "opt" else ():
        sampled = generate(family, framework, ids, mask_of(ids), do_sample=True, top_k=1, temperature=1.5,
                           max_new_tokens=8, seed=0)
        np.testing.assert_array_equal(sampled, greedy, err_msg=framework)


def test_flax_prng_key_is_reproducible_and_matches_the_seed_it_draws():
    models.require("flax")
    import jax

    model = models.model("opt", "flax")
    settings = dict(do_sample=True, temperature=1.5, top_k=0, max_new_tokens=10, min_new_tokens=10)

    def run(**kwargs):
        return models.ids_of(model.generate(OPT_IDS, attention_mask=mask_of(OPT_IDS), **settings, **kwargs))

    first = run(prng_key=jax.random.PRNGKey(0))
    np.testing.assert_array_equal(run(prng_key=jax.random.PRNGKey(0)), first)
    seed = int(jax.random.randint(jax.random.PRNGKey(0), (), 0, np.iinfo(np.int32).max))
    np.testing.assert_array_equal(generate("opt", "pt", OPT_IDS, mask_of(OPT_IDS), seed=seed, **settings), first)
    other = run(prng_key=jax.random.PRNGKey(1))
    assert np.mean(other[:, -10:] == first[:, -10:]) < 0.5
    with pytest.raises(ValueError, match="seed= or prng_key="):
        run(prng_key=jax.random.PRNGKey(0), seed=3)


# ---------------------------------------------------------------------------------------------------------------
# Bucketing: one compiled program per (plan), prompt lengths of one bucket share a plan


def trace_count(framework: str, function) -> int:
    if framework == "tf":
        return function.experimental_get_tracing_count()
    return function._cache_size()


@pytest.mark.parametrize("framework", ["tf", "flax"])
def test_prompts_of_one_bucket_compile_once(framework, monkeypatch):
    models.require(framework)
    module = models.package("opt")
    # A fresh model: its compiled programs are counted from zero.
    model = getattr(module, models.PREFIXES[framework] + "OPTForCausalLM").from_pretrained(models._folder("opt"))
    traced = []
    program = model._decode_program

    def counting(plan, *args):
        traced.append(plan)
        return program(plan, *args)

    monkeypatch.setattr(model, "_decode_program", counting, raising=False)
    rng = np.random.default_rng(0)
    prompts = {length: rng.integers(3, models.VOCAB, size=(1, length)) for length in (5, 9, 16, 17)}

    def run(length):
        ids = prompts[length]
        got = models.ids_of(model.generate(ids, max_new_tokens=6))
        np.testing.assert_array_equal(got, generate("opt", "pt", ids, max_new_tokens=6), err_msg=f"length {length}")

    for length in (5, 9, 16):  # one bucket of 16
        run(length)
    assert len(models.programs(model)) == 1
    (function,) = models.programs(model).values()
    assert trace_count(framework, function) == 1
    assert len(traced) == 1
    run(17)  # the next bucket: a second program
    assert len(models.programs(model)) == 2
    assert len(traced) == 2
    run(9)  # back in the first bucket: nothing new
    assert len(models.programs(model)) == 2 and len(traced) == 2 and trace_count(framework, function) == 1
