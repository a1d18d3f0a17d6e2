"""Markers by file: ``*_tf.py`` -> tf, ``*_flax.py`` -> flax, ``*parity*`` -> parity (used by noxfile sessions)."""

import os

import pytest

# Keep each framework to one thread: pytest-xdist runs one worker per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# transformers is the PyTorch oracle only: keep it from importing TensorFlow too.
os.environ.setdefault("USE_TF", "0")


def pytest_collection_modifyitems(items):
    for item in items:
        stem = item.path.stem
        if stem.endswith("_tf"):
            item.add_marker(pytest.mark.tf)
        if stem.endswith("_flax"):
            item.add_marker(pytest.mark.flax)
        if "parity" in stem:
            item.add_marker(pytest.mark.parity)
