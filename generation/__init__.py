"""Text generation for every decoder model, in PyTorch, TensorFlow (XLA) and Flax (jit).

The decoding (logits processors, greedy / sampling / beam bookkeeping, stopping, the random draws) is written once in
``decoding.py`` against a small per-framework ops surface (``ops_pt.py``, ``ops_tf.py``, ``ops_jax.py``), so the three
frameworks make the same decisions by construction; a model supplies only "one step with a static cache".
``GenerationConfig`` is framework-neutral.
"""

from .config import GenerationConfig
from .settings import GenerateOutput
from .streamers import TextStreamer

__all__ = ["GenerateOutput", "GenerationConfig", "TextStreamer"]
