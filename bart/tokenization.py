"""BART's tokenizer: RoBERTa's byte-level BPE and templates (``<s> A </s>``, ``<s> A </s></s> B </s>``), unchanged.

BART was trained on RoBERTa's vocabulary, so the tokenizer is RoBERTa's; only the class name that
``save_pretrained`` records for transformers differs. ``BartTokenizerFast`` is the same class.
"""

from __future__ import annotations

from ..roberta.tokenization import RobertaTokenizer


class BartTokenizer(RobertaTokenizer):
    """BART's byte-level BPE tokenizer; ``text_target=`` encodes targets as ``labels`` for seq2seq training."""

    hf_tokenizer_class = "BartTokenizer"


BartTokenizerFast = BartTokenizer
