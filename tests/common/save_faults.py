"""Fault injection for saves, shared by test_atomic_save.py and the SIGKILL child of test_atomic_save_kill.py."""

from __future__ import annotations

import os
import signal

import numpy as np

from rosettazoo.common.checkpoint import open_checkpoint
from rosettazoo.common.io import FolderSave

# The os functions through which a save changes the file system or flushes it.
OS_STEPS = ("mkdir", "replace", "rename", "remove", "unlink", "rmdir", "fsync")


class Fault(Exception):
    """The injected failure."""


class Steps:
    """Counts the write steps of the saves run inside it, and fails at step ``fail_at`` (1-based): raising Fault,
    or with ``kill`` by SIGKILL of this process. A failing file write leaves half the file, as a crash would."""

    def __init__(self, fail_at: int | None = None, *, kill: bool = False):
        self.fail_at = fail_at
        self.kill = kill
        self.log: list[str] = []
        self._saved: list[tuple[object, str, object]] = []

    def step(self, what: str, tear=None) -> None:
        """Count a step; at the failing one, first ``tear()`` what it was writing."""
        self.log.append(what)
        if len(self.log) == self.fail_at:
            if tear is not None:
                tear()
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise Fault(f"injected failure at step {self.fail_at} ({what})")

    @property
    def commit(self) -> int:
        """The step that commits (the journal's rename, the save's first rename)."""
        return self.log.index("replace") + 1

    def _counted(self, name, function):
        def counted(*args, **kwargs):
            self.step(name)
            return function(*args, **kwargs)

        return counted

    def _staging(self, stage):
        def counted_stage(save, name, write):
            def write_then_count(path):
                write(path)
                self.step(f"write {name}", tear=lambda: os.truncate(path, os.path.getsize(path) // 2))

            return stage(save, name, write_then_count)

        return counted_stage

    def __enter__(self) -> Steps:
        self._saved = [(os, name, getattr(os, name)) for name in OS_STEPS] + [(FolderSave, "stage", FolderSave.stage)]
        for name in OS_STEPS:
            setattr(os, name, self._counted(name, getattr(os, name)))
        FolderSave.stage = self._staging(FolderSave.stage)
        return self

    def __exit__(self, *exc_info) -> None:
        for owner, name, original in self._saved:
            setattr(owner, name, original)


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def arrays_state(tensors) -> dict:
    return {name: (np.asarray(tensors[name]).dtype.str, np.asarray(tensors[name]).shape,
                   np.asarray(tensors[name]).tobytes()) for name in tensors}


def weights_state(folder) -> dict:
    with open_checkpoint(folder) as reader:
        return arrays_state(reader)


def numbered(names: str, offset: float, size: int = 60) -> dict[str, np.ndarray]:
    return {name: np.arange(size, dtype=np.float32) + offset + i for i, name in enumerate(names)}
