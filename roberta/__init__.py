"""RoBERTa and RoBERTa-PreLayerNorm in PyTorch, TensorFlow/Keras 3 (``TF`` prefix) and Flax (``Flax`` prefix).

Names resolve on first access: importing this package imports no framework.
"""

from ..common.lazy import exports_of, lazy_getattr

_HEADS = ["Model", "ForMaskedLM", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification",
          "ForMultipleChoice", "ForQuestionAnswering"]
_FAMILIES = ["Roberta", "RobertaPreLayerNorm"]


def _classes(prefix: str) -> list[str]:
    names = [f"{prefix}{family}{head}" for family in _FAMILIES for head in _HEADS]
    return names + [f"{prefix}{family}PreTrainedModel" for family in _FAMILIES]


_EXPORTS = exports_of({
    "config": ["RobertaConfig", "RobertaPreLayerNormConfig"],
    "tokenization": ["RobertaTokenizer", "RobertaTokenizerFast"],
    "modeling_pt": _classes(""),
    "modeling_tf": _classes("TF"),
    "modeling_flax": _classes("Flax"),
})

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__():
    return __all__
