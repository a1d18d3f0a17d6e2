"""Tiny random stand-ins for the bundled models, in the bundled layout: ``ROOT/opt-wordnet``, ``ROOT/roberta-wordnet``
and ``ROOT/bart-wordnet``, each with config.json, model.safetensors, generation_config.json, a byte-level BPE
tokenizer learned on a few glosses, and a model card. Saved by the PyTorch classes."""

from __future__ import annotations

import os

NAMES = ("opt-wordnet", "roberta-wordnet", "bart-wordnet")
GLOSSES = [
    "dog: a member of the genus Canis that has been domesticated by man since prehistoric times",
    "cat: feline mammal usually having thick soft fur and no ability to roar",
    "a domesticated carnivorous mammal that typically has a long snout",
    "tree: a tall perennial woody plant having a main trunk and branches",
    "water: binary compound that occurs at room temperature as a clear colorless odorless liquid",
] * 4
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
SMALL = dict(hidden=32, heads=4, ffn=64, layers=2, positions=64)


def _bpe_files(folder: str) -> None:
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(GLOSSES, vocab_size=300, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                            show_progress=False)
    bpe.save_model(folder)


def _configs(vocab_size: int):
    from rosettazoo.bart import BartConfig
    from rosettazoo.opt import OPTConfig
    from rosettazoo.roberta import RobertaConfig

    s = SMALL
    return {
        "opt-wordnet": OPTConfig(vocab_size=vocab_size, hidden_size=s["hidden"], word_embed_proj_dim=s["hidden"],
                                 num_hidden_layers=s["layers"], num_attention_heads=s["heads"], ffn_dim=s["ffn"],
                                 max_position_embeddings=s["positions"]),
        "roberta-wordnet": RobertaConfig(vocab_size=vocab_size, hidden_size=s["hidden"], num_hidden_layers=s["layers"],
                                         num_attention_heads=s["heads"], intermediate_size=s["ffn"],
                                         max_position_embeddings=s["positions"] + 2),
        "bart-wordnet": BartConfig(vocab_size=vocab_size, d_model=s["hidden"], encoder_layers=s["layers"],
                                   decoder_layers=s["layers"], encoder_attention_heads=s["heads"],
                                   decoder_attention_heads=s["heads"], encoder_ffn_dim=s["ffn"],
                                   decoder_ffn_dim=s["ffn"], max_position_embeddings=s["positions"]),
    }


def build(root: str) -> str:
    """Write the three tiny models into ``root`` (created if needed); returns ``root``."""
    import torch

    from rosettazoo.bart import BartForConditionalGeneration, BartTokenizer
    from rosettazoo.opt import OPTForCausalLM, OPTTokenizer
    from rosettazoo.roberta import RobertaForMaskedLM, RobertaTokenizer

    bpe = os.path.join(root, ".bpe")
    os.makedirs(bpe, exist_ok=True)
    _bpe_files(bpe)
    classes = {"opt-wordnet": (OPTForCausalLM, OPTTokenizer), "roberta-wordnet": (RobertaForMaskedLM, RobertaTokenizer),
               "bart-wordnet": (BartForConditionalGeneration, BartTokenizer)}
    for name, config in _configs(len(RobertaTokenizer.from_pretrained(bpe))).items():
        model_class, tokenizer_class = classes[name]
        folder = os.path.join(root, name)
        torch.manual_seed(0)
        model_class(config).eval().save_pretrained(folder)
        tokenizer_class.from_pretrained(bpe).save_pretrained(folder)
        with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as card:
            card.write(f"# {name} (tiny, random)\n\nA tiny random {model_class.__name__} for tests.\n")
    return root
