"""Multi-process data parallelism with jax.distributed: two local CPU processes (gloo collectives) take one
step on a global batch, each feeding half of it; both end with the parameters of the one-process step."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("optax")

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.training.distributed_worker"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_step_like_one(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    port = str(free_port())
    outs = [tmp_path / f"process{i}.npz" for i in range(2)]
    workers = [subprocess.Popen([*WORKER, str(i), "2", port, str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i, out in enumerate(outs)]
    alone = subprocess.run([*WORKER, "0", "0", "0", str(tmp_path / "alone.npz")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    results = [w.communicate(timeout=300) + (w.returncode,) for w in workers]
    assert alone.returncode == 0, alone.stderr[-3000:]
    for _, stderr, code in results:
        assert code == 0, stderr[-3000:]

    expected = np.load(tmp_path / "alone.npz")
    for out in outs:
        got = np.load(out)
        assert sorted(got.files) == sorted(expected.files)
        worst = max(float(np.max(np.abs(got[name] - expected[name]))) for name in expected.files)
        assert worst <= 1e-5, f"{out.name} differs from the one-process step by {worst}"
