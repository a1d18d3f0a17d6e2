"""The framework-neutral half of ``from_pretrained`` and ``save_pretrained``, shared by the three base classes.

A framework base class flattens its parameters to {dotted path: shape}, calls ``load_pretrained_arrays`` to get
{path: numpy array}, and assigns them; saving is the reverse through ``save_pretrained_arrays``.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..conversion import LoadReport, WeightsSpec, export_weights, load_weights
from ..conversion.rules import StoredTensors
from ..generation.config import GENERATION_CONFIG_NAME, GenerationConfig
from .checkpoint import is_weights_file, open_checkpoint, parse_size, stage_weights
from .config import CONFIG_NAME, PretrainedConfig
from .formats import checkpoint_format
from .hub import HUB_ARGUMENTS, resolve_optional_file
from .io import FolderSave

DTYPES = ("float32", "bfloat16", "float16")

# Arguments of transformers' from_pretrained that rosettazoo does not take, with what to do instead. Without this
# table they would read as config overrides and land in config.json.
TRANSFORMERS_ONLY_ARGUMENTS = {
    "device_map": "models load on the CPU; move a PyTorch model with model.to(device), place TF and JAX arrays "
                  "with tf.device / jax.device_put",
    "low_cpu_mem_usage": "loading already reads one tensor at a time",
    "from_tf": "tf_model.h5 is read directly when the folder holds it",
    "from_flax": "flax_model.msgpack is read directly when the folder holds it",
    "use_safetensors": "safetensors is read first whenever the folder holds it",
    "trust_remote_code": "rosettazoo runs no code from the hub",
    "attn_implementation": "each model has one attention implementation",
    "use_auth_token": "pass token= instead",
    "force_download": "delete the file from the Hugging Face cache, or download it with `hf download --force-download`",
    "proxies": "set HTTPS_PROXY in the environment",
    "subfolder": "pass the subfolder's path (a local folder) instead",
    "variant": "pass the folder or revision that holds the variant",
    "quantization_config": "quantized loading is not supported (I-BERT quantizes through its config's quant_mode)",
    "load_in_8bit": "quantized loading is not supported",
    "load_in_4bit": "quantized loading is not supported",
    "max_memory": "models load on the CPU",
    "offload_folder": "models load on the CPU",
    "offload_state_dict": "models load on the CPU",
    "tp_plan": "shard a model with the framework's own tools after loading",
    "state_dict": "load the arrays into the model after from_pretrained (load_arrays)",
    "gguf_file": "GGUF files are not read",
    "key_mapping": "checkpoint names are mapped by the family's weights.py",
}
# Config keyword arguments that are not fields but set the labels (num_labels replaces id2label).
LABEL_ARGUMENTS = ("num_labels", "id2label", "label2id")


def split_hub_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the hub arguments out of ``kwargs`` (what remains overrides config values)."""
    return {name: kwargs.pop(name) for name in HUB_ARGUMENTS if name in kwargs}


def dtype_name(dtype: Any) -> str:
    """Normalize a dtype given as a string or any framework's dtype object (``torch.bfloat16``, ``tf.bfloat16``,
    ``jnp.bfloat16``, ``np.float16``) to "float32", "bfloat16" or "float16"."""
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
    elif isinstance(getattr(dtype, "name", None), str):  # np.dtype, tf.DType
        name = dtype.name
    elif type(dtype).__module__ == "torch":  # torch.dtype has no name; its str is "torch.float16"
        name = str(dtype).removeprefix("torch.")
    else:
        try:
            name = np.dtype(dtype).name  # scalar types: np.float32, jnp.bfloat16, ml_dtypes.bfloat16
        except TypeError:
            name = repr(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} (a string or the framework's dtype object) or \"auto\", "
                         f"got {dtype!r}")
    return name


def checkpoint_dtype(name_or_path: str | os.PathLike, hub_kwargs: dict[str, Any]) -> str:
    """The dtype the checkpoint stores its floating-point weights in (of the first one, as transformers'
    ``dtype="auto"`` decides when config.json does not say), read from the metadata only."""
    with open_checkpoint(name_or_path, **hub_kwargs) as checkpoint:
        for name in checkpoint:
            stored = np.dtype(checkpoint.dtype(name))
            if stored.name in DTYPES or stored.kind == "f":
                if stored.name not in DTYPES:
                    raise ValueError(f"dtype=\"auto\": {checkpoint.description} stores {name} as {stored.name}; "
                                     f"pass one of {DTYPES} instead")
                return stored.name
        raise ValueError(f"dtype=\"auto\": {checkpoint.description} has no floating-point tensor; pass one of {DTYPES}")


def resolve_dtype(dtype: Any, name_or_path: str | os.PathLike, hub_kwargs: dict[str, Any]) -> str | None:
    """``dtype`` as a name, "auto" resolved to the checkpoint's own dtype; None stays None (the default)."""
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype == "auto":
        return checkpoint_dtype(name_or_path, hub_kwargs)
    return dtype_name(dtype)


def _unknown_argument_error(model_class: type, config_class: type[PretrainedConfig], unknown: list[str]) -> TypeError:
    """The error for keyword arguments that are neither a hub, model nor config argument, with a hint for each."""
    known = [*config_class.all_fields(), *LABEL_ARGUMENTS, *HUB_ARGUMENTS,
             *inspect.signature(model_class.from_pretrained).parameters, *inspect.signature(model_class.__init__).parameters]
    hints = []
    for name in unknown:
        if name in TRANSFORMERS_ONLY_ARGUMENTS:
            hints.append(f"{name} (a transformers argument rosettazoo does not take: {TRANSFORMERS_ONLY_ARGUMENTS[name]})")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return TypeError(
        f"{model_class.__name__}.from_pretrained got unknown keyword argument(s): {'; '.join(hints)}. Keyword "
        f"arguments select hub files ({', '.join(HUB_ARGUMENTS)}), go to the model's __init__, or override a field "
        f"of {config_class.__name__}"
    )


def load_config(model_class: type, name_or_path, config, hub_kwargs, overrides):
    """The model's config: ``config`` or the folder's config.json, with ``overrides`` of its fields applied.

    Overrides must name fields of the model's config class; anything else (a typo, a transformers-only argument)
    is a TypeError naming it, so it can never slip into config.json.
    """
    config_class = model_class.config_class
    fields = config_class.all_fields()
    unknown = [name for name in overrides if name not in fields and name not in LABEL_ARGUMENTS]
    if unknown:
        raise _unknown_argument_error(model_class, config_class, unknown)
    if config is None:
        return config_class.from_pretrained(name_or_path, **hub_kwargs, **overrides)
    if not isinstance(config, config_class):
        raise TypeError(f"config must be a {config_class.__name__}, got {type(config).__name__}")
    # Rebuilt rather than assigned to, so the overrides are checked like config.json values and the caller's
    # config object stays as it was.
    return config_class.from_dict(config.to_dict(), **overrides) if overrides else config


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


def is_checkpoint_file(name: str) -> bool:
    """The files a model's save owns: its weights in any format, config.json and generation_config.json."""
    return name in (CONFIG_NAME, GENERATION_CONFIG_NAME) or is_weights_file(name)


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
    format: str = "safetensors",
) -> None:
    """Write config.json and the weights in ``format`` (model.safetensors by default, sharded past
    ``max_shard_size``), and generation_config.json when a ``generation_config`` is given (models that can
    generate give theirs).

    The save is atomic for the whole checkpoint (see ``common.io``): interrupted at any point, the folder holds
    the old checkpoint or the new one. With ``overwrite`` the new checkpoint replaces the old one's weights (in
    any format), config.json and generation_config.json (removed when the new one has none).
    """
    fmt, limit = checkpoint_format(format), parse_size(max_shard_size)
    if generation_config is not None:
        generation_config.validate()  # before anything is written
    with FolderSave(folder, is_checkpoint_file, overwrite=overwrite,
                    hint="pass overwrite=True to replace the checkpoint") as save:
        stage_weights(save, StoredTensors(export_weights(tree, spec, framework), spec, fmt.naming), fmt, limit)
        save.stage_text(CONFIG_NAME, config.to_json_string())
        if generation_config is not None:
            save.stage_text(GENERATION_CONFIG_NAME, generation_config.to_json_string())
