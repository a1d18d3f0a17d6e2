"""``tied_logits``: the few-rows form (the token table as the dot's left operand, behind an optimization barrier)
computes what ``hidden @ table.T`` does, compiled or not, and passes gradients through, in TensorFlow and Flax."""

import numpy as np
import pytest

ROWS = [(1, 1), (8, 1), (4, 8), (5, 7)]  # (batch, sequence): 1 to 40 rows, on both sides of the threshold


def _inputs(batch: int, seq: int):
    rng = np.random.default_rng(batch * 100 + seq)
    return (rng.standard_normal((batch, seq, 16)).astype(np.float32),
            rng.standard_normal((50, 16)).astype(np.float32))


@pytest.mark.parametrize("batch, seq", ROWS)
def test_flax_tied_logits_equal_the_plain_product_and_its_gradient(batch, seq):
    jax = pytest.importorskip("jax")
    from rosettazoo.common.backend_flax import tied_logits

    hidden, table = _inputs(batch, seq)
    np.testing.assert_allclose(np.asarray(jax.jit(tied_logits)(hidden, table)), hidden @ table.T, rtol=1e-5,
                               atol=1e-5)
    upstream = np.random.default_rng(0).standard_normal((batch, seq, 50)).astype(np.float32)
    grads = jax.grad(lambda h, t: (tied_logits(h, t) * upstream).sum(), argnums=(0, 1))(hidden, table)
    np.testing.assert_allclose(np.asarray(grads[0]), upstream @ table, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads[1]), np.einsum("bsv,bsd->vd", upstream, hidden), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("batch, seq", ROWS)
def test_tf_tied_logits_equal_the_plain_product_eager_and_under_xla_and_their_gradient(batch, seq):
    tf = pytest.importorskip("tensorflow")
    from rosettazoo.common.backend_tf import tied_logits

    hidden, table = _inputs(batch, seq)
    expected = hidden @ table.T
    np.testing.assert_allclose(tied_logits(tf.constant(hidden), tf.constant(table)).numpy(), expected, rtol=1e-5,
                               atol=1e-5)
    compiled = tf.function(tied_logits, jit_compile=True)
    np.testing.assert_allclose(compiled(tf.constant(hidden), tf.constant(table)).numpy(), expected, rtol=1e-5,
                               atol=1e-5)
    upstream = np.random.default_rng(0).standard_normal((batch, seq, 50)).astype(np.float32)
    h, t = tf.Variable(hidden), tf.Variable(table)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(compiled(h, t) * upstream)
    grad_h, grad_t = tape.gradient(loss, [h, t])
    np.testing.assert_allclose(grad_h.numpy(), upstream @ table, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_t.numpy(), np.einsum("bsv,bsd->vd", upstream, hidden), rtol=1e-5, atol=1e-5)
