"""What the example-script tests share: the examples folder on sys.path, and the arguments of a tiny quick run."""

import importlib
import os
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
TINY = ["--size", "tiny", "--vocab-size", "300", "--batch-size", "8", "--max-train", "256", "--max-eval", "8",
        "--max-length", "24"]


def example(name: str):
    """The example script ``name`` (examples/NAME.py) as a module."""
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)
