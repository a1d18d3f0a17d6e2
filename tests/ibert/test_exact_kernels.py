"""The integer path's fast kernels are exact: float32 matmuls in chunks that cannot round, and XLA programs whose
size grows linearly with depth (``ops.materialize`` between blocks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rosettazoo.ibert import quant
from rosettazoo.ibert.quant_pt import OPS as TORCH_OPS


def _torch_matmul(a, b, product_bound, sum_bound=None):
    return quant.exact_matmul(TORCH_OPS, torch.from_numpy(a), torch.from_numpy(b), product_bound, sum_bound).numpy()


def test_chunk_is_the_longest_exact_float32_reduction_of_8_bit_products():
    assert quant.PRODUCT_BOUND == 2 ** 14 and quant.FLOAT32_EXACT == 2 ** 24
    assert quant.exact_chunk(64, quant.PRODUCT_BOUND) == 64  # head_dim: one matmul
    assert quant.exact_chunk(1024, quant.PRODUCT_BOUND) == 1024  # hidden 768 and 1024: one matmul
    assert quant.exact_chunk(3072, quant.PRODUCT_BOUND) == 1024  # the FFN output: three
    assert quant.exact_chunk(1025, quant.PRODUCT_BOUND) == 1024
    # worst case at the chunk length: 1024 * (-128 * -128) = 2**24, still a float32 integer
    a, b = np.full((1, 1024), -128, np.int8), np.full((1024, 1), -128, np.int8)
    assert np.float32(1024) * np.float32(2 ** 14) == 2 ** 24
    assert _torch_matmul(a, b, quant.PRODUCT_BOUND)[0, 0] == 2 ** 24
    # one term more is not guaranteed: 2**24 + 1 has no float32, so a plain float32 matmul cannot be exact ...
    a, b = np.concatenate([a, [[1]]], axis=1).astype(np.int8), np.concatenate([b, [[1]]]).astype(np.int8)
    assert float(np.float32(2 ** 24 + 1)) != 2 ** 24 + 1
    plain = torch.from_numpy(a).float() @ torch.from_numpy(b).float()
    assert int(plain[0, 0]) != 2 ** 24 + 1
    # ... while the chunked one is
    assert _torch_matmul(a, b, quant.PRODUCT_BOUND)[0, 0] == 2 ** 24 + 1


def test_products_too_wide_for_float32_are_refused():
    with pytest.raises(ValueError, match="2\\*\\*24"):
        quant.exact_chunk(4, 2 ** 25)


def test_attention_context_is_exact_at_any_length():
    """Integer probabilities are >= 0 with row sums <= 2**8: partial sums stay within 2**15 whatever the length."""
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.integers(-4000, 4000, (2, 3, 4, 3000)).astype(np.int32))
    probs, probs_scale = quant.int_softmax(TORCH_OPS, scores, torch.tensor([0.01]), None, torch.tensor([2.0]), 8)
    probs = probs.numpy()
    assert probs.min() >= 0 and probs.sum(-1).max() <= 2 ** 8 and probs_scale == 2.0 ** -8
    assert quant.exact_chunk(3000, 2 ** 15, sum_bound=2 ** 15) == 3000
    # the worst value (-128 everywhere) against the largest possible weights: one probability row holding 2**8
    peaked = np.zeros((1, 3000), np.int32)
    peaked[0, 7] = 2 ** 8
    value = np.full((3000, 5), -128, np.int8)
    context, _ = quant.attention_context(TORCH_OPS, torch.from_numpy(peaked), torch.from_numpy(value), 2.0 ** -8, 1.0)
    assert np.array_equal(context.numpy(), np.full((1, 5), -(2 ** 15)))
    value = rng.integers(-128, 128, (2, 3, 3000, 5)).astype(np.int8)
    context, _ = quant.attention_context(TORCH_OPS, torch.from_numpy(probs), torch.from_numpy(value), probs_scale, 1.0)
    assert np.array_equal(context.numpy(), probs.astype(np.int64) @ value.astype(np.int64))


def _operands(k: int):
    rng = np.random.default_rng(k)
    a = rng.integers(-128, 128, (2, 3, k)).astype(np.int8)
    a[0, 0] = -128  # a worst-case row and column among random ones
    b = rng.integers(-127, 127, (k, 4)).astype(np.int8)
    b[:, 0] = -127
    return a, b, a.astype(np.int64) @ b.astype(np.int64)


@pytest.mark.parametrize("k", [64, 3072])
def test_exact_matmul_is_exact_in_every_framework(k):
    tf = pytest.importorskip("tensorflow")
    jax = pytest.importorskip("jax")
    from rosettazoo.ibert.quant_flax import OPS as JAX_OPS
    from rosettazoo.ibert.quant_tf import OPS as TF_OPS

    a, b, want = _operands(k)
    assert np.array_equal(_torch_matmul(a, b, quant.PRODUCT_BOUND), want)
    xla_tf = tf.function(lambda a, b: quant.exact_matmul(TF_OPS, a, b, quant.PRODUCT_BOUND), jit_compile=True)
    got = xla_tf(tf.constant(a), tf.constant(b))
    assert got.dtype == tf.int32 and np.array_equal(got.numpy(), want)
    got = jax.jit(lambda a, b: quant.exact_matmul(JAX_OPS, a, b, quant.PRODUCT_BOUND))(a, b)
    assert got.dtype == np.int32 and np.array_equal(np.asarray(got), want)


def _requantizing_layers(ops, x, depth: int):
    """``depth`` blocks shaped as I-BERT's residual path: 22-bit requantization of x plus itself, integer layer
    norm (its input has three consumers), 8-bit requantization."""
    scale = ops.constant([0.05], ops.float32)
    weight, bias = ops.constant(np.linspace(0.5, 1.5, 16), ops.float32), ops.constant(np.zeros(16), ops.float32)
    for _ in range(depth):
        wide = quant.quantize_activation(ops, x, scale, quant.LN_INPUT_BIT, scale * 0.01, x, scale)
        normed, normed_scale = quant.int_layer_norm(ops, wide, weight, bias, ops.constant([0.0], ops.float32))
        x = quant.quantize_activation(ops, normed, normed_scale, quant.ACT_BIT, scale)
    return x


def _growth(hlo_text_of_depth) -> float:
    """How much the optimized program grows from 2 to 4 blocks (below 2.0: a fixed part plus a part per block)."""
    two, four = (hlo_text_of_depth(depth).count("\n") for depth in (2, 4))
    return four / two


def test_xla_programs_grow_linearly_with_depth():
    """Without ``materialize`` XLA's CPU fusion copies every earlier block into each consumer: from 2 to 4 blocks
    the program grew 2.26x here (1.74x with it), and the 12-layer base model compiled for minutes."""
    tf = pytest.importorskip("tensorflow")
    jax = pytest.importorskip("jax")
    from rosettazoo.ibert.quant_flax import OPS as JAX_OPS
    from rosettazoo.ibert.quant_tf import OPS as TF_OPS

    x = np.random.default_rng(0).integers(-128, 128, (2, 8, 16)).astype(np.int8)

    def jax_hlo(depth):
        with jax.enable_x64(True):
            compiled = jax.jit(lambda x: _requantizing_layers(JAX_OPS, x, depth)).lower(x).compile()
        return compiled.as_text()

    def tf_hlo(depth):
        forward = tf.function(lambda x: _requantizing_layers(TF_OPS, x, depth), jit_compile=True)
        return forward.experimental_get_compiler_ir(tf.constant(x))(stage="optimized_hlo")

    assert _growth(jax_hlo) < 2.0
    assert _growth(tf_hlo) < 2.0
