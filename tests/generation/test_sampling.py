"""Seeded sampling's pieces: the counter-based random draws (``generation/random.py``) bit for bit against a numpy
reference in every backend, their uniformity, and the sampling warpers (temperature, top-k, top-p) driven through
``decoding.search`` with a fake model step whose logits are fixed, so the token frequencies can be checked against
the renormalized distribution they should follow."""

import os

os.environ.setdefault("USE_TF", "0")

import math

import numpy as np
import pytest

from rosettazoo.generation import random as draws
from rosettazoo.generation.decoding import Bounds, search
from rosettazoo.generation.settings import Plan
from tests.harness import to_numpy

scipy_stats = pytest.importorskip("scipy.stats")

# ---------------------------------------------------------------------------------------------------------------
# Backends: (ops, tensor(numpy) -> backend tensor, compile(fn) -> fn), imported only when asked for.

BACKENDS = ("pt", "tf", "jax")


def backend(name: str):
    if name == "pt":
        torch = pytest.importorskip("torch")
        from rosettazoo.generation.ops_pt import TorchOps

        return TorchOps(), torch.as_tensor, lambda fn: fn
    if name == "tf":
        tf = pytest.importorskip("tensorflow")
        from rosettazoo.generation.ops_tf import TFOps

        return TFOps, tf.constant, lambda fn: tf.function(fn, jit_compile=True)
    jax = pytest.importorskip("jax")
    from rosettazoo.generation.ops_jax import JaxOps

    return JaxOps, jax.numpy.asarray, jax.jit


# ---------------------------------------------------------------------------------------------------------------
# The reference: Wellons' lowbias32 in numpy uint32, written independently of random.py.

M1, M2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)


def ref_mix(x):
    x = np.asarray(x, np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * M1
        x = x ^ (x >> np.uint32(15))
        x = x * M2
        return x ^ (x >> np.uint32(16))


def ref_key(seed: int, step: int) -> np.uint32:
    """The seed hashed twice, the step once, combined and hashed."""
    return ref_mix(ref_mix(ref_mix(np.uint32(seed & 0xFFFFFFFF))) ^ ref_mix(np.uint32(step)))


def ref_bits(key, shape) -> np.ndarray:
    rows, columns = shape
    counters = (np.arange(rows, dtype=np.uint32)[:, None] * np.uint32(columns)
                + np.arange(columns, dtype=np.uint32)[None, :])
    return ref_mix(ref_mix(counters) ^ np.uint32(key))


def ref_uniform(key, shape) -> np.ndarray:
    """The top 23 bits k of each hash as (k + 0.5) / 2**23, computed exactly in float64 then rounded (exact)."""
    top = (ref_bits(key, shape) >> np.uint32(9)).astype(np.float64)
    return ((top + 0.5) / 2.0 ** 23).astype(np.float32)


def unmix(y: int) -> int:
    """The inverse of lowbias32 (every step is a bijection on 32-bit words), to find the key of a given hash."""
    def unxorshift(value, shift):
        x = value
        for _ in range(32 // shift + 1):
            x = value ^ (x >> shift)
        return x & 0xFFFFFFFF

    y = unxorshift(y, 16)
    y = (y * pow(int(M2), -1, 1 << 32)) & 0xFFFFFFFF
    y = unxorshift(y, 15)
    y = (y * pow(int(M1), -1, 1 << 32)) & 0xFFFFFFFF
    return unxorshift(y, 16)


def as_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def backend_uniform(name: str, seed: int, step: int, shape, *, compiled: bool):
    ops, tensor, compile_ = backend(name)

    def run(step_tensor):
        key = draws.stream_key(ops, seed, step_tensor)
        return key, draws.uniform(ops, key, shape)

    fn = compile_(run) if compiled else run
    key, values = fn(tensor(np.int32(step)))
    return to_numpy(key), to_numpy(values)


# ---------------------------------------------------------------------------------------------------------------
# Random draws


def test_reference_hash_is_lowbias32():
    # Independent spot values of lowbias32 (the published constants; computed with Python integers).
    def lowbias32(x):
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    values = [0, 1, 2, 12345, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
    assert [int(v) for v in ref_mix(np.array(values, np.uint32))] == [lowbias32(v) for v in values]
    assert all(unmix(lowbias32(v)) == v for v in values)


@pytest.mark.parametrize("name, compiled", [("pt", False), ("tf", False), ("tf", True), ("jax", False), ("jax", True)],
                         ids=["pt", "tf-eager", "tf-xla", "jax-eager", "jax-jit"])
def test_uniform_is_bit_identical_to_the_numpy_reference(name, compiled):
    shape = (7, 101)
    for seed, step in [(0, 0), (1, 0), (0, 1), (123456789, 17), (2 ** 32 - 1, 3), (2 ** 31, 1000)]:
        key, values = backend_uniform(name, seed, step, shape, compiled=compiled)
        assert np.uint32(as_int32(int(ref_key(seed, step))) & 0xFFFFFFFF) == np.int64(key) & 0xFFFFFFFF, (seed, step)
        want = ref_uniform(ref_key(seed, step), shape)
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values.view(np.uint32), want.view(np.uint32), err_msg=f"{name} {seed} {step}")


def test_uniform_is_identical_across_backends():
    available = []
    for name in BACKENDS:
        try:
            available.append((name, backend_uniform(name, 99, 5, (16, 1000), compiled=name != "pt")[1]))
        except pytest.skip.Exception:
            continue
    assert len(available) >= 2, "needs at least two backends"
    for name, values in available[1:]:
        np.testing.assert_array_equal(values.view(np.uint32), available[0][1].view(np.uint32), err_msg=name)


@pytest.mark.parametrize("name", BACKENDS)
def test_uniform_never_reaches_0_or_1_and_gumbel_stays_finite(name):
    """The extreme hashes: all ones (the largest uniform) and all zeros (the smallest). With the 24 top bits,
    (2**24 - 1) + 0.5 rounds to 2**24 in float32, the uniform to exactly 1.0 and the Gumbel noise to +inf (then
    -inf + inf = nan for a filtered token, which argmax picks): 1 draw in 2**24, every ~330 steps at vocab 50k."""
    ops, tensor, _ = backend(name)
    for target in (0xFFFFFFFF, 0xFFFFFF00, 0x00000000):
        key = tensor(np.int32(as_int32(unmix(target) ^ int(ref_mix(np.uint32(0))))))  # counter 0 hashes to target
        u = to_numpy(draws.uniform(ops, key, (1, 1)))[0, 0]
        g = to_numpy(draws.gumbel(ops, key, (1, 1)))[0, 0]
        assert 0.0 < u < 1.0, (hex(target), u)
        assert np.isfinite(g), (hex(target), g)


def test_uniform_is_uniform():
    """Chi-square over 256 bins and Kolmogorov-Smirnov, per decoding step (a step draws rows x vocab numbers) and
    pooled over steps and seeds, on reference values (which every backend matches bit for bit); no correlation
    between consecutive steps or rows."""
    shape = (64, 2 ** 16)  # 4M draws per step: the size at which one round of lowbias32 was visibly non-uniform
    blocks = {(seed, step): ref_uniform(ref_key(seed, step), shape).ravel()
              for seed, step in [(0, 0), (0, 1), (1, 0), (2 ** 31 + 7, 999)]}
    for (seed, step), values in blocks.items():
        assert values.min() > 0.0 and values.max() < 1.0
        counts = np.bincount((values * 256).astype(np.int64), minlength=256)
        assert scipy_stats.chisquare(counts).pvalue > 1e-4, (seed, step)
        assert scipy_stats.kstest(values, "uniform").pvalue > 1e-4, (seed, step)
    pooled = np.concatenate(list(blocks.values()))
    assert scipy_stats.chisquare(np.bincount((pooled * 4096).astype(np.int64), minlength=4096)).pvalue > 1e-4
    assert len(np.unique(pooled[:400_000])) > 0.97 * 400_000  # 2**23 levels: few collisions among 400k draws
    for a, b in [((0, 0), (0, 1)), ((0, 1), (1, 0))]:
        assert abs(np.corrcoef(blocks[a], blocks[b])[0, 1]) < 5 / math.sqrt(blocks[a].size), (a, b)
    rows = blocks[(0, 0)].reshape(shape)
    assert abs(np.corrcoef(rows[:-1].ravel(), rows[1:].ravel())[0, 1]) < 5 / math.sqrt(rows[1:].size)


@pytest.mark.parametrize("name", BACKENDS)
def test_step_keys_differ_across_seeds_and_steps(name):
    """Every (seed, step) pair of a grid gets its own key: with one hash on both sides key(a, b) == key(b, a), and
    key(s, s) was the same for every seed s (seed 0's step 1 repeated seed 1's step 0)."""
    ops, tensor, _ = backend(name)
    grid = [(seed, step) for seed in range(20) for step in range(20)]
    keys = {(seed, step): int(to_numpy(draws.stream_key(ops, seed, tensor(np.int32(step))))) for seed, step in grid}
    assert len(set(keys.values())) == len(grid)
    assert keys == {pair: as_int32(int(ref_key(*pair))) for pair in grid}


# ---------------------------------------------------------------------------------------------------------------
# Sampling through decoding.search with fixed logits

VOCAB = 12
PROBS = np.array([0.30, 0.20, 0.15, 0.10, 0.08, 0.06, 0.04, 0.03, 0.02, 0.01, 0.007, 0.003])
ORDER = np.array([7, 2, 11, 0, 5, 9, 1, 4, 10, 3, 8, 6])  # token ORDER[i] has probability PROBS[i]
LOGITS = np.zeros(VOCAB, np.float32)
LOGITS[ORDER] = np.log(PROBS) + 1.5  # an offset: only differences count


def plan_for(rows: int, steps: int, *, seed=1234, temperature=1.0, top_k=0, top_p=1.0) -> tuple[Plan, int]:
    """The plan of a sampling run, and its seed (a traced scalar, not part of the plan)."""
    return Plan(batch=rows, num_beams=1, rows=rows, vocab_size=VOCAB, width=steps + 1, prompt_columns=1,
                do_sample=True, eos_ids=(), pad_token_id=0, repetition_penalty=1.0, no_repeat_ngram_size=0,
                encoder_no_repeat_ngram_size=0, bad_words=(), min_length=0, min_new_tokens=0,
                forced_bos_token_id=None, forced_eos_token_ids=(), temperature=temperature, top_k=top_k, top_p=top_p,
                min_tokens_to_keep=1, length_penalty=1.0, early_stopping=False, num_return_sequences=1,
                output_scores=False), seed


def sample(name: str, planned: tuple[Plan, int], logits=LOGITS) -> np.ndarray:
    """[rows, steps] tokens from decoding.search with a model step that always returns ``logits``."""
    plan, seed = planned
    ops, tensor, compile_ = backend(name)
    fixed = np.broadcast_to(np.asarray(logits, np.float32), (plan.rows, VOCAB)).copy()

    def run(sequences, start, limit, seed):
        logits_tensor = tensor(fixed)

        def step(tokens, cache):
            return logits_tensor, cache

        bounds = Bounds(start, limit, ops.constant(0, ops.int32), seed)
        return search(ops, plan, bounds, sequences, ops.constant(0, ops.int32), step)

    result = compile_(run)(tensor(np.zeros((plan.rows, plan.width), np.int32)), tensor(np.int32(0)),
                           tensor(np.int32(plan.width)), tensor(np.int32(seed)))
    assert int(to_numpy(result["cur"])) == plan.width
    return to_numpy(result["sequences"])[:, 1:].astype(np.int64)


def expected_distribution(temperature=1.0, top_k=0, top_p=1.0) -> np.ndarray:
    """transformers' warpers in float64: temperature, then top-k, then top-p on what top-k kept, renormalized."""
    scores = LOGITS.astype(np.float64) / temperature
    if top_k:
        scores = np.where(scores < np.sort(scores)[::-1][top_k - 1], -np.inf, scores)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if top_p < 1.0:
        ranked = np.argsort(-probs, kind="stable")
        mass_before = np.cumsum(probs[ranked]) - probs[ranked]
        assert np.min(np.abs(mass_before - top_p)) > 0.01, "top_p too close to a cumulative mass for a clean test"
        keep = np.zeros(VOCAB, bool)
        keep[ranked[(mass_before < top_p) | (np.arange(VOCAB) < 1)]] = True
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum()
    return probs


CASES = {
    "temperature": dict(temperature=0.7),
    "hot": dict(temperature=1.6),
    "top_k": dict(top_k=5, temperature=1.3),
    "top_p": dict(top_p=0.8),
    "all_three": dict(temperature=0.8, top_k=8, top_p=0.7),
}


@pytest.mark.parametrize("case", CASES)
def test_sampled_frequencies_follow_the_warped_distribution(case):
    settings = CASES[case]
    rows, steps = 2000, 50
    tokens = sample("pt", plan_for(rows, steps, **settings))
    want = expected_distribution(**settings)
    counts = np.bincount(tokens.ravel(), minlength=VOCAB)
    kept = want > 0
    assert counts[~kept].sum() == 0, f"filtered tokens sampled: {np.flatnonzero(counts * ~kept)}"
    n = tokens.size
    assert kept.sum() < VOCAB or case in ("temperature", "hot")
    result = scipy_stats.chisquare(counts[kept], want[kept] * n)
    assert result.pvalue > 1e-4, f"{case}: chi2 {result.statistic:.1f}, counts {counts}, expected {want * n}"
    # Meaningful: the same counts are far from the distribution without the warpers.
    plain = expected_distribution()
    if not np.allclose(plain, want):
        far = scipy_stats.chisquare(counts, np.where(plain > 0, plain, 1e-12) * n)
        assert far.pvalue < 1e-10
    # Steps draw independently: consecutive tokens agree as often as two independent draws would.
    same = np.mean(tokens[:, 1:] == tokens[:, :-1])
    expected_same = float(np.sum(want ** 2))
    assert abs(same - expected_same) < 5 * math.sqrt(expected_same * (1 - expected_same) / tokens[:, 1:].size)
    # Rows draw independently too.
    assert abs(np.mean(tokens[1:] == tokens[:-1]) - expected_same) < 0.02


def test_top_k_1_and_tiny_top_p_sample_the_best_token_only():
    best = int(np.argmax(LOGITS))
    assert (sample("pt", plan_for(64, 10, top_k=1, temperature=1.7)) == best).all()
    assert (sample("pt", plan_for(64, 10, top_p=0.05)) == best).all()


def test_different_seeds_sample_differently_and_the_same_seed_alike():
    a = sample("pt", plan_for(32, 10, seed=1, temperature=1.5))
    b = sample("pt", plan_for(32, 10, seed=2, temperature=1.5))
    np.testing.assert_array_equal(a, sample("pt", plan_for(32, 10, seed=1, temperature=1.5)))
    assert np.mean(a == b) < 0.5


@pytest.mark.parametrize("name", ["tf", "jax"])
def test_the_same_draws_choose_the_same_tokens_in_every_backend(name):
    """TensorFlow under XLA and JAX under jit sample exactly PyTorch's tokens, for each warper combination."""
    for case in ("temperature", "all_three"):
        plan = plan_for(128, 16, seed=777, **CASES[case])
        np.testing.assert_array_equal(sample(name, plan), sample("pt", plan), err_msg=case)
