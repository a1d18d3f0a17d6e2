"""``decoding.py``'s backend for PyTorch: eager tensors and a Python loop."""

from __future__ import annotations

import numbers

import torch


def _like(value, other):
    return torch.tensor(value, dtype=other.dtype, device=other.device) if isinstance(value, numbers.Number) else value


class TorchOps:
    int32, float32, bool = torch.int32, torch.float32, torch.bool

    cast = staticmethod(lambda x, dtype: x.to(dtype))
    maximum = staticmethod(lambda x, y: torch.clamp(x, min=y) if isinstance(y, numbers.Number) else torch.maximum(x, y))
    log = staticmethod(torch.log)
    log_softmax = staticmethod(lambda x: torch.log_softmax(x, dim=-1))
    softmax = staticmethod(lambda x: torch.softmax(x, dim=-1))
    cumsum = staticmethod(lambda x, axis: torch.cumsum(x, dim=axis))
    reshape = staticmethod(torch.reshape)
    concat = staticmethod(lambda xs, axis: torch.cat(xs, dim=axis))
    bitwise_xor = staticmethod(torch.bitwise_xor)

    def __init__(self, device=None):
        self.device = device

    def constant(self, value, dtype):
        return torch.tensor(value, dtype=dtype, device=self.device)

    def arange(self, n):
        return torch.arange(n, dtype=torch.int32, device=self.device)

    def full(self, shape, value, dtype):
        return torch.full(shape, value, dtype=dtype, device=self.device)

    @staticmethod
    def where(condition, x, y):
        if isinstance(x, numbers.Number) and isinstance(y, numbers.Number):
            return torch.where(condition, torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
        return torch.where(condition, _like(x, y), _like(y, x))

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)

    @staticmethod
    def any(x, axis=None, keepdims=False):
        return x.any() if axis is None else x.any(dim=axis, keepdim=keepdims)

    @staticmethod
    def all(x, axis=None, keepdims=False):
        return x.all() if axis is None else x.all(dim=axis, keepdim=keepdims)

    @staticmethod
    def min(x, axis=None, keepdims=False):
        return x.min() if axis is None else x.amin(dim=axis, keepdim=keepdims)

    @staticmethod
    def argmax(x):
        return torch.argmax(x, dim=-1).to(torch.int32)

    @staticmethod
    def top_k(x, k):
        values, indices = torch.topk(x, k, dim=-1, largest=True, sorted=True)
        return values, indices.to(torch.int32)

    @staticmethod
    def take(x, indices, axis):
        return torch.index_select(x, axis, indices.long())

    @staticmethod
    def take_per_row(x, indices):
        index = indices.long().reshape(indices.shape + (1,) * (x.dim() - 2))
        return torch.take_along_dim(x, index, dim=1)

    @staticmethod
    def count_into(indices, size):
        return torch.bincount(indices.long(), minlength=size)

    @staticmethod
    def isin_any(x, values):
        if not values:
            return torch.zeros_like(x, dtype=torch.bool)
        return torch.isin(x, torch.tensor(values, dtype=x.dtype, device=x.device))

    @staticmethod
    def shift_right_logical(x, bits):
        return torch.bitwise_and(torch.bitwise_right_shift(x, bits), (1 << (32 - bits)) - 1)

    @staticmethod
    def set_column(x, column, values):
        return x.index_copy(1, column.reshape(1).long(), values.reshape(-1, 1).to(x.dtype))

    @staticmethod
    def set_step(buffer, step, scores):
        return buffer.index_copy(1, step.reshape(1).long(), scores[:, None, :].to(buffer.dtype))

    @staticmethod
    def while_loop(cond, body, state):
        while bool(cond(state)):
            state = body(state)
        return state
