"""Tiny TF models of every family and head with a batch and its labels, for the Keras training tests."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import keras
import numpy as np

# One layer, no dropout (a training step must be repeatable).
ENCODER = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
           "intermediate_size": 37, "max_position_embeddings": 40, "num_labels": 3, "hidden_dropout_prob": 0.0,
           "attention_probs_dropout_prob": 0.0}
# (package, class prefix, config, heads)
FAMILIES = {
    "roberta": ("roberta", "Roberta", ENCODER, ("ForMaskedLM", "ForCausalLM", "ForSequenceClassification",
                                                "ForMultipleChoice", "ForTokenClassification",
                                                "ForQuestionAnswering")),
    "roberta_prelayernorm": ("roberta", "RobertaPreLayerNorm", ENCODER,
                             ("ForMaskedLM", "ForCausalLM", "ForSequenceClassification", "ForMultipleChoice",
                              "ForTokenClassification", "ForQuestionAnswering")),
    "bart": ("bart", "Bart", {"vocab_size": 99, "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
                              "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 37,
                              "decoder_ffn_dim": 37, "max_position_embeddings": 40, "num_labels": 3, "dropout": 0.0},
             ("ForConditionalGeneration", "ForSequenceClassification", "ForQuestionAnswering", "ForCausalLM")),
    "opt": ("opt", "OPT", {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                           "ffn_dim": 37, "max_position_embeddings": 40, "num_labels": 3, "dropout": 0.0},
            ("ForCausalLM", "ForSequenceClassification", "ForQuestionAnswering")),
    "ibert": ("ibert", "IBert", ENCODER, ("ForMaskedLM", "ForSequenceClassification", "ForMultipleChoice",
                                         "ForTokenClassification", "ForQuestionAnswering")),
}
HEAD_CONFIG = {"ForCausalLM": {"is_decoder": True}, "ForQuestionAnswering": {"num_labels": 2}}
BATCH, LENGTH, LABEL_LENGTH, CHOICES = 4, 8, 5, 2
EOS = 2


@dataclass
class Case:
    family: str
    head: str
    model: object
    inputs: dict  # numpy arrays
    labels: dict  # the labels by name, as the model's call takes them

    @property
    def targets(self):
        """The labels as Keras targets y: the array itself, or the dict for question answering."""
        return self.labels["labels"] if list(self.labels) == ["labels"] else self.labels


def all_heads() -> list[tuple[str, str]]:
    return [(family, head) for family, (_, _, _, heads) in FAMILIES.items() for head in heads]


def make_case(family: str, head: str, *, seed: int = 0, **overrides) -> Case:
    package, prefix, tiny, _ = FAMILIES[family]
    module = importlib.import_module(f"rosettazoo.{package}")
    config = getattr(module, f"{prefix}Config")(**{**tiny, **HEAD_CONFIG.get(head, {}), **overrides})
    keras.utils.set_random_seed(seed)
    model = getattr(module, f"TF{prefix}{head}")(config)
    rng = np.random.default_rng(seed)
    shape = (BATCH, CHOICES, LENGTH) if head == "ForMultipleChoice" else (BATCH, LENGTH)
    input_ids = rng.integers(3, config.vocab_size, shape).astype(np.int32)
    input_ids[..., -1] = EOS  # every row ends with one <eos> (BART's classifier reads it)
    inputs = {"input_ids": input_ids, "attention_mask": np.ones(shape, np.int32)}
    return Case(family, head, model, inputs, head_labels(head, config, rng))


def head_labels(head: str, config, rng) -> dict:
    if head == "ForQuestionAnswering":
        return {"start_positions": rng.integers(0, LENGTH, BATCH).astype(np.int32),
                "end_positions": rng.integers(0, LENGTH, BATCH).astype(np.int32)}
    if head in ("ForSequenceClassification", "ForMultipleChoice"):
        classes = CHOICES if head == "ForMultipleChoice" else config.num_labels
        return {"labels": rng.integers(0, classes, BATCH).astype(np.int32)}
    token_classes = head == "ForTokenClassification"
    low, high = (0, config.num_labels) if token_classes else (3, config.vocab_size)  # LM labels: no special ids
    length = LABEL_LENGTH if head == "ForConditionalGeneration" else LENGTH  # BART's targets: another length
    return {"labels": rng.integers(low, high, (BATCH, length)).astype(np.int32)}
