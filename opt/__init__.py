"""OPT in PyTorch, TensorFlow/Keras 3 (``TF`` prefix) and Flax (``Flax`` prefix).

Names resolve on first access: importing this package imports no framework.
"""

from ..common.lazy import exports_of, lazy_getattr

_HEADS = ["Model", "ForCausalLM", "ForSequenceClassification", "ForQuestionAnswering", "PreTrainedModel"]

_EXPORTS = exports_of({
    "config": ["OPTConfig"],
    "tokenization": ["OPTTokenizer"],
    "modeling_pt": [f"OPT{head}" for head in _HEADS],
    "modeling_tf": [f"TFOPT{head}" for head in _HEADS],
    "modeling_flax": [f"FlaxOPT{head}" for head in _HEADS],
})

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__():
    return __all__
