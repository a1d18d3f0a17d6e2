"""RoBERTa's tokenizer: the shared byte-level BPE with ``<s> A </s>`` and ``<s> A </s></s> B </s>``.

``RobertaTokenizerFast`` is the same class: there is one implementation, on the ``tokenizers`` library.
"""

from __future__ import annotations

from typing import ClassVar

from tokenizers import processors

from ..common.tokenization import ByteLevelBPETokenizer


class RobertaTokenizer(ByteLevelBPETokenizer):
    """RoBERTa's byte-level BPE tokenizer. ``<mask>`` absorbs the space before it, so "a <mask>" predicts " word".

    RoBERTa has no token types: ``return_token_type_ids=True`` gives zeros, pairs included.
    """

    special_token_defaults: ClassVar[dict[str, str]] = {
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
    }
    lstrip_special_tokens = frozenset({"mask_token"})
    hf_tokenizer_class = "RobertaTokenizer"

    def _post_processor(self) -> processors.PostProcessor:
        # The processor transformers' roberta tokenizer.json holds, so saved files match the published ones.
        # sep and cls go by position: tokenizers 0.23 renamed the keyword `cls` to `cls_token`.
        return processors.RobertaProcessing(
            (self.sep_token, self.sep_token_id), (self.cls_token, self.cls_token_id),
            trim_offsets=self.trim_offsets, add_prefix_space=self.add_prefix_space,
        )


RobertaTokenizerFast = RobertaTokenizer
