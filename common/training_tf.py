"""Glue between our TF models' own losses and ``tf.distribute``.

Keras divides its losses by the number of replicas, so that the replicas' gradients, which the optimizer sums,
make the gradient of the global batch's mean when every replica holds as many examples. Our losses are means over
counted items (label tokens that are not ignored, elements), which replicas may hold unequally many of; each
replica divides its sum by the count over all replicas instead, which gives the global mean exactly.
"""

from __future__ import annotations

import tensorflow as tf


def global_mean(total, count):
    """``total / count`` for the global batch.

    In a replica context of a strategy with several replicas in sync (``fit`` under ``MirroredStrategy`` or
    ``MultiWorkerMirroredStrategy``, or ``strategy.run``), ``count`` is summed over the replicas first, so the value
    is this replica's share: the shares add up to the global batch's mean, and so do their gradients. Anywhere else
    it is the plain mean.
    """
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(count))
    return total / count
