"""I-BERT (integer-only RoBERTa) in PyTorch, TensorFlow/Keras 3 (``TF`` prefix) and Flax (``Flax`` prefix).

Names resolve on first access: importing this package imports no framework.
"""

from ..common.lazy import exports_of, lazy_getattr

_HEADS = ["Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForMultipleChoice",
          "ForQuestionAnswering", "PreTrainedModel"]


def _names(prefix: str) -> list[str]:
    return [f"{prefix}IBert{head}" for head in _HEADS]


_EXPORTS = exports_of({
    "config": ["IBertConfig"],
    "modeling_pt": _names(""),
    "modeling_tf": _names("TF"),
    "modeling_flax": _names("Flax"),
})

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__():
    return __all__
