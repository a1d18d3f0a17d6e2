"""rosettazoo: one model, three frameworks.

The families live in subpackages (``rosettazoo.roberta``, ...); importing them imports no framework.
"""

__version__ = "0.1.0"
