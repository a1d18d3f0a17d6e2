"""Keras fit under tf.distribute: MirroredStrategy on 2 logical CPU devices and MultiWorkerMirroredStrategy with 2
worker processes on localhost take the same step as one device on the same global batch.

The model's own loss is a mean over label tokens, which the replicas hold unequally many of (1 + 2 vs 4 + 7
tokens): each replica's loss is its share of the global mean (``training_tf.global_mean``), so loss and updates
equal the single-device run. A Keras loss and an accuracy metric run there too. The strategies live in
subprocesses (``distribute_tf_worker``): logical devices and collective ops are process-wide.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras

from tests.training.distribute_tf_worker import LABELS_PER_ROW, global_batch, step_results, tiny_model

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300

pytestmark = pytest.mark.xdist_group("distribute_tf")  # one worker, so the module fixture runs once


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    """(folder with the initial weights, the one-device results)."""
    folder = tmp_path_factory.mktemp("distribute_tf")
    keras.utils.set_random_seed(0)
    initial = tiny_model().numpy_weights()
    np.savez(folder / "initial.npz", **initial)
    return folder, initial, step_results(tf.distribute.get_strategy(), initial)


def worker(mode: str, folder, tf_config: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-m", "tests.training.distribute_tf_worker", mode, str(folder)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(*processes: subprocess.Popen) -> None:
    try:
        outputs = [process.communicate(timeout=TIMEOUT)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("localhost", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def assert_same_step(distributed: dict, single: dict, initial: dict) -> None:
    assert set(distributed) == set(single)
    for run in ("own", "keras"):
        weights = [key for key in single if key.startswith(f"{run}/weights/")]
        moved = max(float(np.abs(single[key] - initial[key.split("/", 2)[2]]).max()) for key in weights)
        assert moved > 1e-2, run  # the step trained
        difference = max(float(np.abs(distributed[key] - single[key]).max()) for key in weights)
        assert difference <= 1e-5, (run, difference)
        assert abs(float(distributed[f"{run}/loss"] - single[f"{run}/loss"])) <= 1e-5, run
    assert distributed["keras/accuracy"] == single["keras/accuracy"]


def test_the_replicas_hold_unequal_label_counts():
    """Otherwise a per-replica mean divided by the replica count would give the global mean too."""
    model = tiny_model()
    x, labels, _ = global_batch()
    halves = [float(model({k: v[rows] for k, v in x.items()}, labels=labels[rows]).loss)
              for rows in (slice(0, 2), slice(2, 4))]
    assert sum(LABELS_PER_ROW[:2]) != sum(LABELS_PER_ROW[2:])
    assert abs(sum(halves) / 2 - float(model(x, labels=labels).loss)) > 100 * 1e-5


def test_mirrored_strategy_takes_the_single_device_step(single_device):
    folder, initial, single = single_device
    finish(worker("mirrored", folder))
    assert_same_step(dict(np.load(folder / "mirrored_0.npz")), single, initial)


def test_multi_worker_mirrored_strategy_takes_the_single_device_step(single_device):
    folder, initial, single = single_device
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    finish(*[worker("multi_worker", folder, {"cluster": cluster, "task": {"type": "worker", "index": index}})
             for index in range(2)])
    for index in range(2):
        assert_same_step(dict(np.load(folder / f"multi_worker_{index}.npz")), single, initial)
