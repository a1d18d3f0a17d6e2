"""SIGKILL during a save: what is left loads as wholly the old checkpoint or wholly the new one.

The saves run in a fresh subprocess that imports numpy and the checkpoint code only, so it can fork safely (this
test process may hold framework threads): one forked save is killed at each of its write steps, others at chosen
moments of a loop of saves. The next save of the folder must finish or discard the killed one and leave no stray
file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rosettazoo.common.checkpoint import save_checkpoint
from tests.common.save_faults import Steps, arrays_state, listing, numbered, weights_state

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = numbered("abc", 0.0, size=20_000), numbered("abcd", 1e5, size=20_000)


def save(folder, tensors) -> None:
    """One 80 KB tensor per shard: the old checkpoint has three shards, the new one four."""
    save_checkpoint(folder, tensors, overwrite=True, max_shard_size=100_000)


def outcome(folder) -> str:
    state = weights_state(folder)
    return "old" if state == arrays_state(OLD) else "new" if state == arrays_state(NEW) else "mixed"


def kill_at_each_step(root: Path) -> list[dict]:
    reference = root / "reference"
    save(reference, OLD)
    with Steps() as counted:
        save(reference, NEW)
    clean = listing(reference)
    results = []
    for k in range(1, len(counted.log) + 1):
        folder = root / f"kill-at-{k}"
        save(folder, OLD)
        pid = os.fork()
        if pid == 0:
            with Steps(fail_at=k, kill=True):
                save(folder, NEW)
            os._exit(0)  # not reached: the save is killed at step k
        _, status = os.waitpid(pid, 0)
        result = {"step": k, "what": counted.log[k - 1], "killed": os.WIFSIGNALED(status), "left": outcome(folder),
                  "expected": "old" if k <= counted.commit else "new"}
        save(folder, NEW)
        result["clean after the next save"] = listing(folder) == clean and outcome(folder) == "new"
        results.append(result)
    return results


def kill_during_a_loop_of_saves(root: Path, delays: tuple[float, ...]) -> list[dict]:
    results = []
    for i, delay in enumerate(delays):
        folder = root / f"loop-{i}"
        save(folder, OLD)
        pid = os.fork()
        if pid == 0:
            for n in range(10_000):
                save(folder, NEW if n % 2 == 0 else OLD)
            os._exit(0)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        result = {"delay": delay, "killed": os.WIFSIGNALED(status), "left": outcome(folder)}
        save(folder, NEW)
        result["clean after the next save"] = outcome(folder) == "new" and not any(n.startswith(".") for n in listing(folder))
        results.append(result)
    return results


def child(root: str) -> None:
    root = Path(root)
    flush = os.fsync
    os.fsync = lambda fd: None  # a killed process loses no written data, flushed or not; saves are 5x faster
    try:
        steps = kill_at_each_step(root)
    finally:
        os.fsync = flush
    print(json.dumps({"steps": steps, "loop": kill_during_a_loop_of_saves(root, (0.05, 0.17, 0.4))}))


def test_sigkill_at_any_moment_leaves_the_old_or_the_new_checkpoint(tmp_path):
    script = f"from tests.common.test_atomic_save_kill import child; child({str(tmp_path)!r})"
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    steps = report["steps"]
    assert len(steps) >= 15, steps
    for result in steps:
        assert result["killed"] and result["left"] == result["expected"], result
        assert result["clean after the next save"], result
    assert {result["left"] for result in steps} == {"old", "new"}
    for result in report["loop"]:
        assert result["killed"] and result["left"] in ("old", "new"), result
        assert result["clean after the next save"], result
