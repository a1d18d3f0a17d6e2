"""I-BERT (integer-only RoBERTa) in PyTorch, TensorFlow/Keras 3 (``TF`` prefix) and Flax (``Flax`` prefix).

Names resolve on first access: importing this package imports no framework.
"""

from ..common.lazy import exports_of, lazy_getattr

_EXPORTS = exports_of({"config": ["IBertConfig"]})

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__():
    return __all__
