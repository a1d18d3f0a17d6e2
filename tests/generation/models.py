"""Tiny generation models shared by the generation tests: one random PyTorch model per family, saved once and loaded
in each framework asked for (cached for the session, so a plan compiled by one test serves the next)."""

from __future__ import annotations

import functools
import os
import tempfile

os.environ.setdefault("USE_TF", "0")

import numpy as np
import pytest

from tests.harness import BACKENDS, PREFIXES

FRAMEWORKS = tuple(PREFIXES)
VOCAB = 100
POSITIONS = 64

FAMILIES = {
    # family: (package, class name, config class, config values)
    "opt": ("opt", "OPTForCausalLM", "OPTConfig", dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        max_position_embeddings=POSITIONS, word_embed_proj_dim=32, pad_token_id=1, bos_token_id=2, eos_token_id=2)),
    "bart": ("bart", "BartForConditionalGeneration", "BartConfig", dict(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=4, decoder_attention_heads=4, max_position_embeddings=POSITIONS, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)),
    "roberta": ("roberta", "RobertaForCausalLM", "RobertaConfig", dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_attention_heads=4,
        max_position_embeddings=POSITIONS, pad_token_id=1, bos_token_id=0, eos_token_id=2, is_decoder=True)),
}


def require(framework: str) -> None:
    pytest.importorskip(BACKENDS[framework])
    if framework == "flax":
        pytest.importorskip("jax")


def available(frameworks=FRAMEWORKS) -> list[str]:
    """The frameworks of ``frameworks`` that are installed."""
    out = []
    for framework in frameworks:
        try:
            require(framework)
        except pytest.skip.Exception:
            continue
        out.append(framework)
    return out


def package(family: str):
    import importlib

    return importlib.import_module(f"rosettazoo.{FAMILIES[family][0]}")


@functools.cache
def _folder(family: str) -> str:
    import torch

    module_name, class_name, config_name, values = FAMILIES[family]
    module = package(family)
    folder = tempfile.mkdtemp(prefix=f"rosettazoo-gen-{family}-")
    torch.manual_seed(0)
    getattr(module, class_name)(getattr(module, config_name)(**values)).save_pretrained(folder)
    return folder


@functools.cache
def _load(family: str, framework: str):
    module = package(family)
    model = getattr(module, PREFIXES[framework] + FAMILIES[family][1]).from_pretrained(_folder(family))
    if framework == "pt":
        model.eval()
    return model


def model(family: str, framework: str):
    """The tiny ``family`` model in ``framework`` (skips when the framework is not installed)."""
    require(framework)
    pytest.importorskip("torch")  # the weights come from a PyTorch model
    return _load(family, framework)


def ids_of(output) -> np.ndarray:
    """generate's result (LongTensor, tf int32 tensor, Flax output) as an int64 numpy array."""
    output = getattr(output, "sequences", output)
    if hasattr(output, "detach"):
        output = output.detach().cpu().numpy()
    elif hasattr(output, "numpy"):
        output = output.numpy()
    return np.asarray(output).astype(np.int64)


def generate(family: str, framework: str, input_ids, attention_mask=None, **settings) -> np.ndarray:
    return ids_of(model(family, framework).generate(np.asarray(input_ids), attention_mask=attention_mask, **settings))


def programs(model_object) -> dict:
    """The compiled programs a TF or Flax model keeps, keyed by (kind, plan)."""
    return model_object.__dict__.get("_generation_programs", {})


class Recorder:
    """A streamer that keeps what ``generate`` hands it."""

    def __init__(self):
        self.puts: list[np.ndarray] = []
        self.ends = 0

    def put(self, ids) -> None:
        assert self.ends == 0, "put() after end()"
        self.puts.append(np.array(ids))

    def end(self) -> None:
        self.ends += 1

    def row(self, row: int = 0) -> np.ndarray:
        """The prompt then each token, concatenated, for one row."""
        prompt, *tokens = self.puts
        return np.concatenate([prompt[row], [int(t[row]) for t in tokens]]).astype(np.int64)
