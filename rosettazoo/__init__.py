"""rosettazoo: one model, three frameworks.

The families live in subpackages (``rosettazoo.roberta``, ...); the Auto classes (``rosettazoo.AutoModel``,
``rosettazoo.TFAutoModelForMaskedLM``, ...) pick one from config.json. Importing them imports no framework.
"""

from .common.lazy import lazy_getattr

__version__ = "0.1.0"

_AUTO_NAMES = ["AutoConfig", "AutoTokenizer"] + [
    f"{prefix}AutoModel{task}"
    for prefix in ("", "TF", "Flax")
    for task in ("", "ForMaskedLM", "ForCausalLM", "ForSeq2SeqLM", "ForSequenceClassification", "ForTokenClassification",
                 "ForQuestionAnswering", "ForMultipleChoice", "ForArchitecture")
]
__all__ = sorted(_AUTO_NAMES)
__getattr__ = lazy_getattr(__name__, dict.fromkeys(_AUTO_NAMES, "auto"))


def __dir__():
    return [*__all__, "__version__"]
