"""The PyTorch base class of every rosettazoo model: init, weight tying, from_pretrained and save_pretrained.

Parameters are named exactly as Hugging Face's PyTorch state dicts, so the canonical checkpoint names are the
model's own ``named_parameters()``; the converter only has to handle tied weights and prefixes.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..conversion import WeightsSpec
from ..generation.config import GenerationConfig
from .backend_pt import TORCH_DTYPES, from_numpy, init_module, to_numpy
from .config import PretrainedConfig
from .gradient_checkpointing import LayerStackCheckpointing
from .pretrained import (
    load_config,
    load_generation_config,
    load_pretrained_arrays,
    resolve_dtype,
    save_pretrained_arrays,
    split_hub_arguments,
)
from .resize import check_pad_token, is_vocab_tensor, new_vocab_size, resize_vocab_tensors


class PreTrainedModel(LayerStackCheckpointing, nn.Module):
    """Base of every PyTorch model. A family's base class sets ``config_class``, ``base_model_prefix`` and
    implements ``weights_spec``; each model calls ``post_init()`` at the end of its ``__init__``."""

    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.generation_config = GenerationConfig.from_model_config(config)

    # -- what a family provides --------------------------------------------------------------------------------

    def weights_spec(self) -> WeightsSpec:
        """The family's exceptions to the generic weight-naming rules (tied weights, buffers)."""
        raise NotImplementedError(f"{type(self).__name__} must define weights_spec()")

    def initializer_std(self) -> float:
        return self.config.initializer_range

    @classmethod
    def can_generate(cls) -> bool:
        """Whether the model has ``generate()``; the generation mixins say True."""
        return False

    def get_input_embeddings(self) -> nn.Embedding | None:
        return None

    def get_output_embeddings(self) -> nn.Linear | None:
        return None

    def config_default(self, name: str, value: Any) -> Any:
        """A call argument, or the config's value of the same name when it is None (as transformers does)."""
        return getattr(self.config, name) if value is None else value

    def returned(self, output, return_dict: bool | None):
        """The output object, or its tuple when ``return_dict`` (default: the config's) is false."""
        return output if self.config_default("return_dict", return_dict) else output.to_tuple()

    # -- init and tying ----------------------------------------------------------------------------------------

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self)

    def post_init(self) -> None:
        """Initialize every module not initialized yet (a head model holds an already initialized base model),
        then tie the output embeddings to the input embeddings."""
        std = self.initializer_std()
        for module in self.modules():
            if not getattr(module, "_rosettazoo_initialized", False):
                init_module(module, std)
                module._rosettazoo_initialized = True
        self.tie_weights()

    def tie_weights(self) -> None:
        output, inputs = self.get_output_embeddings(), self.get_input_embeddings()
        if output is not None and inputs is not None and getattr(self.config, "tie_word_embeddings", False):
            output.weight = inputs.weight

    # -- gradient checkpointing ---------------------------------------------------------------------------------

    def _layer_stacks(self) -> list[nn.Module]:
        """The modules that run a stack of layers (encoder, decoder), each with a ``gradient_checkpointing`` flag."""
        stacks = [m for m in self.modules() if hasattr(m, "gradient_checkpointing")]
        if not stacks:
            raise ValueError(f"{type(self).__name__} has no layer stack to checkpoint")
        return stacks

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each layer's activations in the backward pass instead of keeping them (training only):
        less memory for one more forward pass of the layers. Gradients are unchanged.

        ``gradient_checkpointing_kwargs`` (transformers' argument) may only repeat the one setting used,
        ``{"use_reentrant": False}``."""
        if gradient_checkpointing_kwargs not in (None, {}, {"use_reentrant": False}):
            raise ValueError(f"gradient checkpointing runs torch.utils.checkpoint with use_reentrant=False only; "
                             f"got gradient_checkpointing_kwargs={gradient_checkpointing_kwargs!r}")
        self._set_gradient_checkpointing(True)

    # -- resizing the vocabulary ----------------------------------------------------------------------------------

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, *,
                                seed: int = 0) -> nn.Module | None:
        """Give the token table, the LM head (and BART's ``final_logits_bias``) ``new_num_tokens`` entries, rounded
        up to ``pad_to_multiple_of``; ``config.vocab_size`` follows. Existing rows are kept, new rows drawn as the
        model's init draws them (from ``seed``, the same in every framework), new biases are zero. Tied weights stay
        one parameter. Returns the input embeddings."""
        size = new_vocab_size(self.config.vocab_size, new_num_tokens, pad_to_multiple_of)
        check_pad_token(self.config.pad_token_id, size)
        tensors = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        arrays = resize_vocab_tensors({n: to_numpy(t) for n, t in tensors.items() if is_vocab_tensor(n)},
                                      self.config.vocab_size, size, self.initializer_std(), seed)
        with torch.no_grad():
            for name, array in arrays.items():
                old = tensors[name]
                new = from_numpy(array).to(dtype=old.dtype, device=old.device)
                if isinstance(old, nn.Parameter):
                    old.data = new  # the same Parameter object: ties (and a tied decoder bias) hold
                else:
                    owner, _, leaf = name.rpartition(".")
                    setattr(self.get_submodule(owner), leaf, new)
        for module in self.modules():  # the sizes modules report
            if isinstance(getattr(module, "weight", None), torch.Tensor) and hasattr(module, "num_embeddings"):
                module.num_embeddings = module.weight.shape[0]
            if isinstance(module, nn.Linear):
                module.out_features = module.weight.shape[0]
        self.config.vocab_size = size
        return self.get_input_embeddings()

    # -- properties --------------------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Count distinct parameters (tied ones once), like Hugging Face's ``num_parameters``."""
        embeddings = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        return sum(
            p.numel() for p in self.parameters()
            if (p.requires_grad or not only_trainable) and not (exclude_embeddings and id(p) in embeddings)
        )

    # -- weights as numpy --------------------------------------------------------------------------------------

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """{canonical name: tensor} of every distinct parameter (a tied parameter under its first name) and every
        persistent buffer: buffers in the state dict are checkpoint tensors too (BART's final_logits_bias, I-BERT's
        quantization state), loaded and saved with the parameters."""
        saved = set(self.state_dict(keep_vars=True))
        buffers = {name: buffer for name, buffer in self.named_buffers() if name in saved}
        return {**dict(self.named_parameters()), **buffers}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(t.shape) for name, t in self.checkpoint_tensors().items()}

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        tensors = self.checkpoint_tensors()
        with torch.no_grad():
            for name, array in arrays.items():
                tensors[name].copy_(from_numpy(np.asarray(array)))

    def numpy_weights(self) -> dict[str, np.ndarray]:
        return {name: to_numpy(t) for name, t in self.checkpoint_tensors().items()}

    # -- from_pretrained / save_pretrained ---------------------------------------------------------------------

    @classmethod
    def _take_model_arguments(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the model's ``__init__`` (e.g. ``add_pooling_layer``) rather than config overrides."""
        names = set(inspect.signature(cls.__init__).parameters) - {"self", "config"}
        return {name: kwargs.pop(name) for name in names if name in kwargs}

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        config: PretrainedConfig | None = None,
        dtype: Any = None,
        torch_dtype: Any = None,
        allow_new_heads: bool = False,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        **kwargs: Any,
    ):
        """Load a Hugging Face model folder or hub id (config.json + safetensors or pytorch_model.bin).

        Hub arguments (``revision``, ``cache_dir``, ``local_files_only``, ``token``) select the files; the
        model's own ``__init__`` arguments go to it; remaining keyword arguments override config values.
        Any other keyword argument is a TypeError naming it. ``dtype`` (``torch_dtype`` is accepted as its
        transformers 4.x name) is "float32", "bfloat16", "float16", a ``torch.dtype``, or "auto" for the
        checkpoint's own dtype; by default the weights load as float32.
        The model comes back in eval mode.
        """
        hub_kwargs = split_hub_arguments(kwargs)
        model_kwargs = cls._take_model_arguments(kwargs)
        config = load_config(cls, name_or_path, config, hub_kwargs, kwargs)
        dtypes = {resolve_dtype(d, name_or_path, hub_kwargs) for d in (dtype, torch_dtype) if d is not None}
        if len(dtypes) > 1:
            raise TypeError(f"dtype={dtype!r} and its older name torch_dtype={torch_dtype!r} disagree; pass one")
        dtype = dtypes.pop() if dtypes else None
        model = cls(config, **model_kwargs)
        arrays, report = load_pretrained_arrays(
            name_or_path, model.parameter_shapes(), model.weights_spec(), "pt", hub_kwargs,
            allow_new_heads=allow_new_heads, ignore_mismatched_sizes=ignore_mismatched_sizes,
        )
        model.load_arrays(arrays)
        model.generation_config = load_generation_config(name_or_path, config, hub_kwargs)
        if dtype is not None:
            model.to(TORCH_DTYPES[dtype])
        model.eval()
        return (model, report.as_dict()) if output_loading_info else model

    def save_pretrained(
        self, folder: str | os.PathLike, *, overwrite: bool = False, max_shard_size: int | str | None = None,
        format: str = "safetensors",
    ) -> None:
        """Write config.json and the weights as Hugging Face does (model.safetensors with canonical names and tied
        copies left out; ``format`` "pytorch", "tf" or "flax" for pytorch_model.bin, tf_model.h5 or
        flax_model.msgpack), and generation_config.json for a model that can generate."""
        config = copy.deepcopy(self.config)
        config.architectures = [type(self).__name__]
        save_pretrained_arrays(
            folder, config, self.numpy_weights(), self.weights_spec(), "pt",
            generation_config=self.generation_config if self.can_generate() else None,
            overwrite=overwrite, max_shard_size=max_shard_size, format=format,
        )
