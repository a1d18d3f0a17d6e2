"""One Keras training step under a tf.distribute strategy, run by test_distribute_tf in a fresh process (device
setup and strategies are process-wide): ``python -m tests.training.distribute_tf_worker {mirrored,multi_worker}
FOLDER``. Reads FOLDER/initial.npz, writes FOLDER/<mode>_<task index>.npz with what ``step_results`` returns."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH, LENGTH = 4, 8
# Label tokens per row: any two rows hold a different count from the other two, so replicas hold unequally many.
LABELS_PER_ROW = (1, 2, 4, 7)
LEARNING_RATE = 0.5


def tiny_model():
    from rosettazoo.roberta import RobertaConfig, TFRobertaForMaskedLM

    return TFRobertaForMaskedLM(RobertaConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


def global_batch():
    """(inputs, labels with -100 where the own loss ignores a token, the full labels for a Keras loss)."""
    rng = np.random.default_rng(0)
    input_ids = rng.integers(3, 99, (BATCH, LENGTH)).astype(np.int32)
    full = rng.integers(3, 99, (BATCH, LENGTH)).astype(np.int32)
    labels = np.full_like(full, -100)
    for row, count in enumerate(LABELS_PER_ROW):
        labels[row, :count] = full[row, :count]
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}, labels, full


def step_results(strategy, initial: dict) -> dict[str, np.ndarray]:
    """One SGD step (a global batch of 4) on the model's own loss, then, from the same weights, on a Keras loss with
    an accuracy metric: the reported values and the weights after each step."""
    import keras

    x, labels, full = global_batch()
    with strategy.scope():
        model = tiny_model()
    results = {}
    for run, y, loss in (("own", labels, None),
                         ("keras", full, keras.losses.SparseCategoricalCrossentropy(from_logits=True))):
        model.load_arrays(initial)
        with strategy.scope():
            # Graph mode without XLA: the strategies, not the compiler, are under test (and it traces faster).
            model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=loss,
                          metrics=["accuracy"] if loss else None, jit_compile=False)
        history = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0).history
        results.update({f"{run}/{name}": np.float32(values[0]) for name, values in history.items()})
        results.update({f"{run}/weights/{path}": array for path, array in model.numpy_weights().items()})
    return results


def main(mode: str, folder: str) -> None:
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy, task = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), 0
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    initial = dict(np.load(os.path.join(folder, "initial.npz")))
    np.savez(os.path.join(folder, f"{mode}_{task}.npz"), **step_results(strategy, initial))


if __name__ == "__main__":
    main(*sys.argv[1:])
