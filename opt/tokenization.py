"""OPT's tokenizer: the shared byte-level BPE (GPT-2's vocabulary) with ``</s>`` prepended as BOS and no EOS.

The facebook/opt-* repositories hold only ``vocab.json`` and ``merges.txt``; transformers builds a
``GPT2TokenizerFast`` from them with ``add_bos_token=True``, whose template this class reproduces:
``</s> A`` and, for a pair, ``</s> A B`` (token types 0 for ``</s> A``, 1 for ``B``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from tokenizers import processors

from ..common.tokenization import ByteLevelBPETokenizer


class OPTTokenizer(ByteLevelBPETokenizer):
    """OPT's byte-level BPE tokenizer: ``</s>`` (id 2) serves as BOS, EOS and UNK, ``<pad>`` (id 1) pads."""

    special_token_defaults: ClassVar[dict[str, str]] = {
        "bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>",
    }
    hf_tokenizer_class = "GPT2Tokenizer"

    def _post_processor(self) -> processors.PostProcessor:
        bos = self.bos_token
        return processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 $B:1", special_tokens=[(bos, self.bos_token_id)],
        )

    def _tokenizer_config(self) -> dict[str, Any]:
        # transformers' slow GPT2Tokenizer adds the BOS only when told to (its fast one reads tokenizer.json).
        return {**super()._tokenizer_config(), "add_bos_token": True}
