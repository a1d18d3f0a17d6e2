"""The Flax embedding tables pass no gradient to the padding row through lookups, as PyTorch's ``padding_idx``
does in transformers' models: on a batch with pad tokens, the padding row's gradient in every table that has a
padding_idx in PyTorch (token tables; RoBERTa-style position tables) equals PyTorch's, tied heads (where the output
projection still trains the row) and untied (where it gets none)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("flax")

import jax  # noqa: E402
import torch  # noqa: E402

from rosettazoo.common.modeling_flax import flatten_params  # noqa: E402
from tests.training.lm_heads import LM_HEADS as FAMILIES  # noqa: E402


def padded_batch(pad: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    input_ids = rng.integers(4, 96, size=(2, 8))
    attention_mask = np.ones_like(input_ids)
    attention_mask[0, -3:] = 0  # right padding
    attention_mask[1, :2] = 0  # left padding
    input_ids[attention_mask == 0] = pad
    labels = rng.integers(0, 96, size=(2, 8))
    labels[attention_mask == 0] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def embedding_gradients(family: str, tmp_path, tie_word_embeddings: bool):
    module, name, config = FAMILIES[family]
    torch.manual_seed(0)
    pt = getattr(module, name)(config(tie_word_embeddings=tie_word_embeddings)).eval()
    pt.save_pretrained(tmp_path)
    flax = getattr(module, "Flax" + name).from_pretrained(tmp_path)
    inputs = padded_batch(pt.config.pad_token_id)

    pt(**{k: torch.from_numpy(v) for k, v in inputs.items()}).loss.backward()
    # The tables with a padding_idx in PyTorch (nn.Embedding, I-BERT's QuantEmbedding): token tables, and the
    # RoBERTa-style position tables, where padding takes position padding_idx.
    tables = {id(m.weight) for m in pt.modules()
              if getattr(m, "padding_idx", None) is not None and isinstance(getattr(m, "weight", None), torch.Tensor)}
    pt_grads = {n: p.grad.numpy() for n, p in pt.named_parameters() if id(p) in tables}
    flax_grads = flatten_params(jax.grad(lambda p: flax(**inputs, params=p).loss)(flax.params))
    return pt_grads, {n: np.asarray(flax_grads[n.removesuffix(".weight") + ".embedding"]) for n in pt_grads}, pt


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("tie_word_embeddings", [True, False])
def test_padding_row_gradient_matches_pytorch_padding_idx(family, tie_word_embeddings, tmp_path):
    pt_grads, flax_grads, pt = embedding_gradients(family, tmp_path, tie_word_embeddings)
    pad = pt.config.pad_token_id
    for name in pt_grads:  # tied: the output projection still trains the pad row, the same in both
        assert np.max(np.abs(pt_grads[name][pad] - flax_grads[name][pad])) <= 1e-5, name
    if not tie_word_embeddings:  # untied: the pad row would only get gradient from lookups, and gets none
        token_table = pt.get_input_embeddings().weight
        name = next(n for n, p in pt.named_parameters() if p is token_table)
        assert np.all(flax_grads[name][pad] == 0) and np.all(pt_grads[name][pad] == 0)
        real = padded_batch(pad)["input_ids"][0, 0]
        assert np.any(flax_grads[name][real] != 0)  # a real token's row does train
