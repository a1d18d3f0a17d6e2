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
from .config import PretrainedConfig
from .layers_pt import TORCH_DTYPES, from_numpy, init_module, to_numpy
from .pretrained import (
    dtype_name,
    load_config,
    load_generation_config,
    load_pretrained_arrays,
    save_pretrained_arrays,
    split_hub_arguments,
)


class PreTrainedModel(nn.Module):
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

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """{canonical name: shape} of every distinct parameter (a tied parameter under its first name)."""
        return {name: tuple(p.shape) for name, p in self.named_parameters()}

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        parameters = dict(self.named_parameters())
        with torch.no_grad():
            for name, array in arrays.items():
                parameters[name].copy_(from_numpy(array))

    def numpy_weights(self) -> dict[str, np.ndarray]:
        return {name: to_numpy(p) for name, p in self.named_parameters()}

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
        ``dtype`` (``torch_dtype`` is accepted as its transformers 4.x name) is float32, bfloat16 or float16.
        The model comes back in eval mode.
        """
        hub_kwargs = split_hub_arguments(kwargs)
        model_kwargs = cls._take_model_arguments(kwargs)
        config = load_config(cls.config_class, name_or_path, config, hub_kwargs, kwargs)
        model = cls(config, **model_kwargs)
        arrays, report = load_pretrained_arrays(
            name_or_path, model.parameter_shapes(), model.weights_spec(), "pt", hub_kwargs,
            allow_new_heads=allow_new_heads, ignore_mismatched_sizes=ignore_mismatched_sizes,
        )
        model.load_arrays(arrays)
        model.generation_config = load_generation_config(name_or_path, config, hub_kwargs)
        dtype = dtype if dtype is not None else torch_dtype
        if dtype is not None:
            model.to(TORCH_DTYPES[dtype_name(dtype)])
        model.eval()
        return (model, report.as_dict()) if output_loading_info else model

    def save_pretrained(
        self, folder: str | os.PathLike, *, overwrite: bool = False, max_shard_size: int | str | None = None
    ) -> None:
        """Write config.json and model.safetensors (canonical names, tied copies left out) as Hugging Face does,
        and generation_config.json for a model that can generate."""
        config = copy.deepcopy(self.config)
        config.architectures = [type(self).__name__]
        save_pretrained_arrays(
            folder, config, self.numpy_weights(), self.weights_spec(), "pt",
            generation_config=self.generation_config if self.can_generate() else None,
            overwrite=overwrite, max_shard_size=max_shard_size,
        )
