"""I-BERT's quantization blocks in PyTorch: state (weights, range statistics, Hugging Face's buffers) and the
choice of path; the arithmetic is ``quant.py``'s, shared with TensorFlow and Flax through ``TorchOps``.

Paths (see ``quant.py``): float when ``quant_mode`` is off, simulated (fake quantization, straight-through
gradients) while training, integer in inference (``eval()``). The range statistics are updated in every training
forward, quantized or not, as in transformers.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from . import quant


def _tensor(value, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def _pair(a, b):
    """Turn a Python number among two operands into a tensor of the other's dtype."""
    if isinstance(a, numbers.Number):
        a = _tensor(a, b)
    elif isinstance(b, numbers.Number):
        b = _tensor(b, a)
    return a, b


class TorchOps:
    """``quant.py``'s backend for PyTorch."""

    float32, float64 = torch.float32, torch.float64
    int8, int16, int32, int64 = torch.int8, torch.int16, torch.int32, torch.int64

    cast = staticmethod(lambda x, dtype: x.to(dtype))
    constant = staticmethod(lambda value, dtype: torch.tensor(value, dtype=dtype))
    stop_gradient = staticmethod(lambda x: x.detach())
    is_integer = staticmethod(lambda x: not x.is_floating_point())
    reshape = staticmethod(torch.reshape)
    transpose = staticmethod(lambda x: x.t())
    swap_last = staticmethod(lambda x: x.transpose(-1, -2))
    floor = staticmethod(torch.floor)
    round = staticmethod(torch.round)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    sqrt = staticmethod(torch.sqrt)
    log2 = staticmethod(torch.log2)
    ceil = staticmethod(torch.ceil)
    matmul = staticmethod(torch.matmul)
    reciprocal = staticmethod(torch.reciprocal)
    materialize = staticmethod(lambda x: x)  # eager PyTorch stores every result

    @staticmethod
    def divide(a, b):
        return torch.div(*_pair(a, b))

    @staticmethod
    def fmod(a, b):
        return torch.fmod(*_pair(a, b))

    @staticmethod
    def minimum(a, b):
        return torch.minimum(*_pair(a, b))

    @staticmethod
    def maximum(a, b):
        return torch.maximum(*_pair(a, b))

    @staticmethod
    def clip(x, low, high):
        return torch.clamp(x, low, high)

    @staticmethod
    def where(condition, a, b):
        if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
            raise TypeError("where needs at least one tensor operand")
        return torch.where(condition, *_pair(a, b))

    @staticmethod
    def floor_divide(a, b):
        return torch.div(*_pair(a, b), rounding_mode="floor")

    @staticmethod
    def right_shift(a, b):
        return torch.bitwise_right_shift(*_pair(a, b))

    @staticmethod
    def left_shift(a, b):
        return torch.bitwise_left_shift(*_pair(a, b))

    @staticmethod
    def bitwise_and(a, b):
        return torch.bitwise_and(*_pair(a, b))

    @staticmethod
    def pow2(n, dtype=torch.float32):
        """Exactly 2**n for integer-valued ``n`` within the dtype's normal exponents, built from the exponent bits."""
        if isinstance(n, numbers.Number):
            return 2.0 ** n
        if dtype == torch.float64:
            return torch.bitwise_left_shift(n.to(torch.int64) + 1023, 52).view(torch.float64)
        return torch.bitwise_left_shift(n.to(torch.int32) + 127, 23).view(torch.float32)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return torch.sum(x) if axis is None else torch.sum(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return torch.max(x) if axis is None else torch.amax(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def min(x, axis=None, keepdims=False):
        return torch.min(x) if axis is None else torch.amin(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def below_2_31(x):
        """Eager PyTorch can look: most requantized values (matmul sums, 8- to 22-bit activations) are small."""
        return x.numel() == 0 or bool(x.abs().max() < 2**31)

    @staticmethod
    def inspectable(x) -> bool:
        return True  # eager: every tensor holds its values

    @staticmethod
    def frexp(x):
        return torch.frexp(x)

    @staticmethod
    def int_matmul(a, b):
        """Integer matmul accumulated in int32. Not ``torch._int_mm``: on this CPU build its int8 GEMM ran 13-22x
        slower than the int32 one (benchmarks/ibert_int.py's machine, torch 2.13)."""
        return torch.matmul(a.to(torch.int32), b.to(torch.int32))


OPS = TorchOps()


def _integer_inference(module: nn.Module) -> bool:
    return module.quant_mode and not module.training


def _tensor_state(tensor: torch.Tensor) -> tuple:
    """What changes when a parameter's values may have: its version counter (every in-place write, loading and
    optimizer steps included) and its storage (``.data =`` or ``.to()`` swap it without counting a version)."""
    return id(tensor), tensor._version, tensor.data_ptr(), tensor.dtype, tensor.device, tuple(tensor.shape)


def _quantized_weight(module: nn.Module, per_channel: bool):
    """(int8 weight, scale) of ``module.weight`` for integer inference, quantized once and reused until the weight
    changes (see ``_tensor_state``): quantizing the word embeddings alone is a pass over 38M floats per call."""
    state = _tensor_state(module.weight)
    cached = module.__dict__.get("_integer_weight")
    if cached is not None and cached[0] == state:
        return cached[1]
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, usable outside inference mode too
        scale = quant.weight_scale(OPS, module.weight, module.weight_bit, per_channel)
        weight_int = quant.quantize(OPS, module.weight, scale.view(-1, 1), module.weight_bit)
        value = weight_int.to(quant.integer_dtype(OPS, module.weight_bit)), scale
    module.__dict__["_integer_weight"] = (state, value)  # not a buffer: never saved
    return value


class QuantEmbedding(nn.Module):
    """Embedding table quantized per tensor to ``weight_bit`` bits (int8 lookups in inference)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, weight_bit: int = 8,
                 momentum: float = 0.95, quant_mode: bool = False):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight_bit, self.momentum, self.quant_mode = weight_bit, momentum, quant_mode
        self.weight = nn.Parameter(torch.zeros(num_embeddings, embedding_dim))
        self.register_buffer("weight_scaling_factor", torch.zeros(1))
        self.register_buffer("weight_integer", torch.zeros(num_embeddings, embedding_dim))

    def forward(self, ids: torch.Tensor):
        if not self.quant_mode:
            return nn.functional.embedding(ids, self.weight, self.padding_idx), None
        if not self.training:
            weight_int, scale = _quantized_weight(self, per_channel=False)
            return weight_int[ids], scale
        scale = quant.weight_scale(OPS, self.weight, self.weight_bit, per_channel=False)
        weight_int = quant.quantize(OPS, self.weight, scale.view(-1, 1), self.weight_bit)
        self.weight_scaling_factor, self.weight_integer = scale, weight_int.detach()
        return nn.functional.embedding(ids, weight_int, self.padding_idx) * scale, scale


class QuantAct(nn.Module):
    """Quantizes an activation (optionally plus a residual ``identity``) to ``activation_bit`` bits with a range
    calibrated by a running min/max; rescales quantized inputs by dyadic multiply-and-shift."""

    def __init__(self, activation_bit: int, act_range_momentum: float = 0.95, per_channel: bool = False,
                 channel_len: int | None = None, quant_mode: bool = False):
        super().__init__()
        if per_channel:
            raise ValueError("QuantAct quantizes activations per tensor only (as transformers); use per_channel=False")
        self.activation_bit, self.act_range_momentum, self.quant_mode = activation_bit, act_range_momentum, quant_mode
        self.per_channel = per_channel
        self.register_buffer("x_min", torch.full((1,), -1e-5))
        self.register_buffer("x_max", torch.full((1,), 1e-5))
        self.register_buffer("act_scaling_factor", torch.zeros(1))

    def extra_repr(self) -> str:
        return (f"activation_bit={self.activation_bit}, quant_mode={self.quant_mode}, "
                f"x_min={self.x_min.item():.4g}, x_max={self.x_max.item():.4g}")

    def forward(self, x, pre_act_scaling_factor=None, identity=None, identity_scaling_factor=None,
                specified_min=None, specified_max=None):
        if _integer_inference(self):
            scale = self._scale(specified_min, specified_max)
            x_int = quant.quantize_activation(OPS, x, pre_act_scaling_factor, self.activation_bit, scale, identity,
                                              identity_scaling_factor)
            return x_int, scale
        x_act = x if identity is None else identity + x
        if self.training:
            self.x_min, self.x_max = quant.update_range(OPS, self.x_min, self.x_max, x_act.detach(),
                                                        self.act_range_momentum)
        if not self.quant_mode:
            return x_act, None
        scale = self._scale(specified_min, specified_max)
        self.act_scaling_factor = scale
        x = quant.simulate_activation(OPS, x, pre_act_scaling_factor, self.activation_bit, scale, identity,
                                      identity_scaling_factor)
        return x, scale

    def _scale(self, specified_min, specified_max):
        x_min = self.x_min if specified_min is None else specified_min
        x_max = self.x_max if specified_max is None else specified_max
        return quant.symmetric_scale(OPS, self.activation_bit, x_min, x_max)


class QuantLinear(nn.Module):
    """Linear layer with ``weight_bit``-bit weights (per output channel when ``per_channel``) and ``bias_bit``-bit
    biases in the scale of weight x input; in inference an int8 x int8 matmul accumulated in int32."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, weight_bit: int = 8, bias_bit: int = 32,
                 per_channel: bool = False, quant_mode: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_bit, self.bias_bit, self.per_channel, self.quant_mode = weight_bit, bias_bit, per_channel, quant_mode
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.register_buffer("weight_integer", torch.zeros(out_features, in_features))
        self.register_buffer("fc_scaling_factor", torch.zeros(out_features))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features))
            self.register_buffer("bias_integer", torch.zeros(out_features))
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, quant_mode={self.quant_mode}"

    def forward(self, x, prev_act_scaling_factor=None, input_scaling_factor=None):
        """``input_scaling_factor``: in integer inference, the scale ``x`` holds when it differs from the handed
        ``prev_act_scaling_factor`` (see ``quant.int_linear``); the simulated path holds values, not integers."""
        if not self.quant_mode:
            return nn.functional.linear(x, self.weight, self.bias), None
        if prev_act_scaling_factor is None or tuple(prev_act_scaling_factor.shape) != (1,):
            raise ValueError("a quantized QuantLinear needs its input quantized per tensor: pass the scaling factor "
                             "of shape [1] that the preceding QuantAct returns")
        if not self.training:
            weight_int, weight_scale = _quantized_weight(self, self.per_channel)
            bias_int = None
            if self.bias is not None:
                bias_int = quant.quantize(OPS, self.bias, weight_scale * prev_act_scaling_factor, self.bias_bit).detach()
            x_scale = prev_act_scaling_factor if input_scaling_factor is None else input_scaling_factor
            declared = None if input_scaling_factor is None else prev_act_scaling_factor
            return quant.int_linear(OPS, x, x_scale, weight_int, bias_int, weight_scale, declared)
        weight_scale = quant.weight_scale(OPS, self.weight, self.weight_bit, self.per_channel)
        weight_int = quant.quantize(OPS, self.weight, weight_scale.view(-1, 1), self.weight_bit)
        bias_scale = weight_scale * prev_act_scaling_factor
        bias_int = None if self.bias is None else quant.quantize(OPS, self.bias, bias_scale, self.bias_bit)
        self.fc_scaling_factor, self.weight_integer = weight_scale, weight_int.detach()
        if bias_int is not None:
            self.bias_integer = bias_int.detach()
        x_int = x / prev_act_scaling_factor.view(1, -1)
        return nn.functional.linear(x_int, weight_int, bias_int) * bias_scale, bias_scale


class IntGELU(nn.Module):
    """GELU with i-GELU's integer polynomial erf; float GELU when not quantized or force-dequantized."""

    def __init__(self, quant_mode: bool = True, force_dequant: str = "none"):
        super().__init__()
        self.quant_mode = quant_mode and force_dequant not in ("nonlinear", "gelu")

    def forward(self, x, scaling_factor=None):
        if OPS.is_integer(x):
            if self.quant_mode:
                return quant.int_gelu(OPS, x, scaling_factor)
            x = quant.dequantize(OPS, x, scaling_factor)
        if not self.quant_mode:
            return nn.functional.gelu(x), None
        return quant.simulated_gelu(OPS, x, scaling_factor)


class IntSoftmax(nn.Module):
    """Softmax over the last axis with i-exp, normalized to ``output_bit``-bit probabilities.

    Takes the additive attention mask itself (transformers adds it before the call): the integer path masks keys
    by integer arithmetic instead of adding a float.
    """

    def __init__(self, output_bit: int, quant_mode: bool = False, force_dequant: str = "none"):
        super().__init__()
        self.output_bit = output_bit
        self.quant_mode = quant_mode and force_dequant not in ("nonlinear", "softmax")
        self.act = QuantAct(quant.SOFTMAX_ACT_BIT, quant_mode=self.quant_mode)

    def forward(self, x, scaling_factor, attention_mask=None):
        if OPS.is_integer(x):
            if self.quant_mode:
                masked = None if attention_mask is None else attention_mask < 0
                act_scale = quant.symmetric_scale(OPS, quant.SOFTMAX_ACT_BIT, self.act.x_min, self.act.x_max)
                return quant.int_softmax(OPS, x, scaling_factor, masked, act_scale, self.output_bit)
            x = quant.dequantize(OPS, x, scaling_factor)
        if attention_mask is not None:
            x = x + attention_mask
        if not self.quant_mode:
            return nn.functional.softmax(x, dim=-1), None
        return quant.simulated_softmax(OPS, x, scaling_factor, self.act, self.output_bit)


class IntLayerNorm(nn.Module):
    """Layer norm with integer mean, variance and Newton square root (I-LayerNorm); HF's float formula when not
    quantized. In training a variance past 2**32 raises the ``shift`` buffer."""

    def __init__(self, normalized_shape: int, eps: float, output_bit: int = 8, quant_mode: bool = False,
                 force_dequant: str = "none"):
        super().__init__()
        self.normalized_shape, self.eps, self.output_bit = normalized_shape, eps, output_bit
        self.quant_mode = quant_mode and force_dequant not in ("nonlinear", "layernorm")
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.register_buffer("shift", torch.zeros(1))
        # transformers declares this activation (its buffers are in every checkpoint) but never calls it.
        self.activation = QuantAct(output_bit, quant_mode=self.quant_mode)

    def forward(self, x, scaling_factor=None):
        if OPS.is_integer(x):
            if self.quant_mode:
                return quant.int_layer_norm(OPS, x, self.weight, self.bias, self.shift)
            x = quant.dequantize(OPS, x, scaling_factor)
        if not self.quant_mode:
            return quant.float_layer_norm(OPS, x, self.weight, self.bias, self.eps), None
        out, scale, shift = quant.simulated_layer_norm(OPS, x, scaling_factor, self.weight, self.bias, self.shift,
                                                       self.training)
        if self.training:
            self.shift = shift.detach()
        return out, scale
