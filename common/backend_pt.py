"""PyTorch-only helpers: input checks on concrete tensors, the fused attention kernel, gradient checkpointing of a
layer, Hugging Face's weight init, dtype names and conversion to and from numpy. (``layers_pt`` holds the
vocabulary every framework shares.)"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch
import torch.utils.checkpoint
from torch import nn
from torch.nn import functional as F

from .validation import check_index_range, check_token_ids

# ----------------------------------------------------------------------------------------------------------------
# Input checks on concrete tensors: only the extremes leave the device, so the check costs two reductions.


def _extremes(tensor: torch.Tensor) -> np.ndarray:
    if tensor.numel() == 0:
        return np.zeros((0,), dtype=np.int64)
    return torch.stack([tensor.min(), tensor.max()]).cpu().numpy()


def check_ids(ids: torch.Tensor, vocab_size: int, name: str = "input_ids") -> None:
    check_token_ids(_extremes(ids), vocab_size, name)


def check_indices(ids: torch.Tensor, size: int, name: str, what: str, low: int = 0) -> None:
    """Indices into another table (positions, token types) must lie in [``low``, ``size``) (OPT: positions from
    -1, its padding)."""
    check_index_range(_extremes(ids), size, name, what, low)


# ----------------------------------------------------------------------------------------------------------------
# Kernels and layer execution.


def sdpa_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None, *,
                   dropout: float = 0.0, scale: float | None = None, training: bool = False) -> torch.Tensor:
    """The fused kernel (``layers_pt.eager_attention``'s context without its probabilities); ``scale=None`` is its
    default 1/sqrt(head_dim)."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout if training else 0.0,
                                          scale=scale)


def run_layer(stack: nn.Module, layer: nn.Module, *args):
    """``layer(*args)``. With gradient checkpointing on for ``stack`` (``gradient_checkpointing_enable()``) in
    training, the layer keeps no activations for the backward pass and recomputes them there instead (the same
    dropout draws: torch.utils.checkpoint restores the random state)."""
    if stack.gradient_checkpointing and stack.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


# ----------------------------------------------------------------------------------------------------------------
# Weight init and conversion to and from numpy.


def init_module(module: nn.Module, std: float) -> None:
    """Hugging Face's init: normal(0, std) for linear and embedding weights, zero biases and padding rows,
    LayerNorm ones and zeros."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as numpy; bfloat16 through ml_dtypes, bit for bit."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """A numpy array (possibly read-only, possibly ml_dtypes bfloat16) copied into a tensor."""
    if array.dtype == ml_dtypes.bfloat16:
        return torch.tensor(array.view(np.int16)).view(torch.bfloat16)
    return torch.tensor(array)
