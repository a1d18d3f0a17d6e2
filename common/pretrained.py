"""The framework-neutral half of ``from_pretrained`` and ``save_pretrained``, shared by the three base classes.

A framework base class flattens its parameters to {dotted path: shape}, calls ``load_pretrained_arrays`` to get
{path: numpy array}, and assigns them; saving is the reverse through ``save_pretrained_arrays``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..conversion import LoadReport, WeightsSpec, export_weights, load_weights
from ..generation.config import GENERATION_CONFIG_NAME, GenerationConfig
from .checkpoint import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, open_checkpoint, save_checkpoint
from .config import CONFIG_NAME, PretrainedConfig
from .hub import HUB_ARGUMENTS, resolve_optional_file

DTYPES = ("float32", "bfloat16", "float16")


def split_hub_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the hub arguments out of ``kwargs`` (what remains overrides config values)."""
    return {name: kwargs.pop(name) for name in HUB_ARGUMENTS if name in kwargs}


def dtype_name(dtype: Any) -> str:
    """Normalize a dtype given as a string or any framework's dtype object to "float32", "bfloat16" or "float16"."""
    name = getattr(dtype, "name", None) or str(dtype)
    name = name.replace("torch.", "").replace("<dtype: '", "").rstrip("'>")
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return name


def load_config(config_class: type[PretrainedConfig], name_or_path, config, hub_kwargs, overrides):
    if config is None:
        return config_class.from_pretrained(name_or_path, **hub_kwargs, **overrides)
    if not isinstance(config, config_class):
        raise TypeError(f"config must be a {config_class.__name__}, got {type(config).__name__}")
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def load_generation_config(
    name_or_path: str | os.PathLike, config: PretrainedConfig, hub_kwargs: dict[str, Any]
) -> GenerationConfig:
    """The folder's or hub repository's generation_config.json; without one (many models have none), the
    settings the model config carries."""
    path = resolve_optional_file(name_or_path, GENERATION_CONFIG_NAME, **hub_kwargs)
    if path is None:
        return GenerationConfig.from_model_config(config)
    return GenerationConfig.from_json_file(path)


def load_pretrained_arrays(
    name_or_path: str | os.PathLike,
    target: Mapping[str, tuple[int, ...]],
    spec: WeightsSpec,
    framework: str,
    hub_kwargs: dict[str, Any],
    *,
    allow_new_heads: bool = False,
    ignore_mismatched_sizes: bool = False,
) -> tuple[dict[str, np.ndarray], LoadReport]:
    with open_checkpoint(name_or_path, **hub_kwargs) as checkpoint:
        return load_weights(
            target, checkpoint, spec, framework,
            allow_new_heads=allow_new_heads, ignore_mismatched_sizes=ignore_mismatched_sizes,
            source=checkpoint.description,
        )


def save_pretrained_arrays(
    folder: str | os.PathLike,
    config: PretrainedConfig,
    tree: Mapping[str, Any],
    spec: WeightsSpec,
    framework: str,
    *,
    generation_config: GenerationConfig | None = None,
    overwrite: bool = False,
    max_shard_size: int | str | None = None,
) -> None:
    """Write config.json and model.safetensors (sharded past ``max_shard_size``) with canonical names, and
    generation_config.json when a ``generation_config`` is given (models that can generate give theirs)."""
    folder = os.fspath(folder)
    names = (CONFIG_NAME, SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)
    if generation_config is not None:
        generation_config.validate()  # before any file is written, so a bad setting leaves no half-saved model
        names += (GENERATION_CONFIG_NAME,)
    if not overwrite:
        existing = [n for n in names if os.path.exists(os.path.join(folder, n))]
        if existing:
            raise FileExistsError(
                f"{folder} already holds {', '.join(existing)}; pass overwrite=True to replace the checkpoint"
            )
    tensors = export_weights(tree, spec, framework)
    save_checkpoint(folder, tensors, overwrite=overwrite, max_shard_size=max_shard_size)
    config.save_pretrained(folder, overwrite=overwrite)
    if generation_config is not None:
        generation_config.save_pretrained(folder, overwrite=overwrite)
