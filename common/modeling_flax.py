"""The Flax base class of every rosettazoo model: a thin object holding a linen ``module``, its ``params`` and
``config``, with init, from_pretrained and save_pretrained.

Calling a model is a pure function of ``params``: ``model(..., params=p)`` composes with ``jax.jit``,
``jax.grad`` and ``jax.pmap``. Parameters flatten with "." to paths such as
``roberta.encoder.layer.0.attention.self.query.kernel``, which the generic converter maps to canonical names.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ..conversion import WeightsSpec
from ..generation.config import GenerationConfig
from . import backend_flax  # noqa: F401  (registers the output classes as pytree nodes)
from .config import PretrainedConfig
from .pretrained import (
    load_config,
    load_generation_config,
    load_pretrained_arrays,
    resolve_dtype,
    save_pretrained_arrays,
    split_hub_arguments,
)
from .resize import check_pad_token, new_vocab_size, resize_vocab_tensors
from .validation import check_gradient_checkpointing

Params = dict[str, Any]


def flatten_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Nested param dict -> {dotted path: array}."""
    return traverse_util.flatten_dict(dict(params), sep=".")


def unflatten_params(flat: Mapping[str, Any]) -> Params:
    return traverse_util.unflatten_dict(dict(flat), sep=".")


# Inputs that are the labels of a head's loss: a module lists those it takes in its class constant ``label_names``.
LABEL_INPUTS = ("labels", "start_positions", "end_positions")


class FlaxPreTrainedModel:
    """Base of every Flax model. A family's base class sets ``config_class``, ``base_model_prefix`` and implements
    ``weights_spec``, ``dummy_inputs`` and ``__call__`` (through ``apply_module``); a model class sets
    ``module_class``. ``dtype`` is the compute dtype, ``param_dtype`` the dtype of the parameters."""

    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""
    module_class: ClassVar[type[nn.Module]]

    def __init__(self, config: PretrainedConfig, module: nn.Module, *, input_shape: tuple[int, ...], seed: int = 0,
                 dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, _do_init: bool = True):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.generation_config = GenerationConfig.from_model_config(config)
        self.module = module
        self.dtype = jnp.dtype(dtype)
        self.param_dtype = jnp.dtype(param_dtype)
        self.input_shape = tuple(input_shape)
        self.params: Params | None = self.init_weights(jax.random.PRNGKey(seed), self.input_shape) if _do_init else None

    # -- what a family provides --------------------------------------------------------------------------------

    def weights_spec(self) -> WeightsSpec:
        raise NotImplementedError(f"{type(self).__name__} must define weights_spec()")

    @classmethod
    def can_generate(cls) -> bool:
        """Whether the model has ``generate()``; the generation mixins say True."""
        return False

    def dummy_inputs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """Keyword arguments of ``module.__call__`` that touch every parameter (for init)."""
        raise NotImplementedError(f"{type(self).__name__} must define dummy_inputs()")

    # -- params ------------------------------------------------------------------------------------------------

    def init_weights(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Params:
        """Fresh random parameters as Hugging Face initializes them: normal(0, ``initializer_std()``) kernels and
        embeddings, zero biases, unit layer-norm scales (the modules declare the same initializers for linen users).

        Drawn on the host from ``rng``: XLA compiles one random program per parameter, seconds even for tiny models.
        """
        key = jax.random.key_data(rng) if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng
        generator = np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())
        std = self.initializer_std()
        flat = {}
        for path, leaf in flatten_params(self._abstract_params(input_shape)).items():
            kind = path.rpartition(".")[2]
            if kind in ("kernel", "embedding"):
                value = generator.normal(0.0, std, leaf.shape)
            elif kind in ("bias", "scale") or kind.endswith("_bias"):  # e.g. BART's final_logits_bias
                value = np.full(leaf.shape, 1.0 if kind == "scale" else 0.0)
            else:
                raise ValueError(f"{type(self).__name__} has no init rule for parameter {path}")
            flat[path] = jnp.asarray(value, self.param_dtype)
        return unflatten_params(flat)

    def initializer_std(self) -> float:
        return self.config.initializer_range

    def _abstract_params(self, input_shape: tuple[int, ...]) -> Params:
        """The parameter tree as shapes and dtypes, traced without computing anything."""
        def init(rng):
            return self.module.init({"params": rng}, **self.dummy_inputs(input_shape))["params"]

        return jax.eval_shape(init, jax.random.PRNGKey(0))

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """{dotted path: shape} of every parameter."""
        abstract = flatten_params(self._abstract_params(self.input_shape))
        return {path: tuple(leaf.shape) for path, leaf in abstract.items()}

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """{dotted path: numpy array} (bfloat16 stays bfloat16 through ml_dtypes)."""
        return {path: np.asarray(value) for path, value in flatten_params(self._require_params(None)).items()}

    def _require_params(self, params: Params | None) -> Params:
        params = self.params if params is None else params
        if params is None:
            raise ValueError(f"{type(self).__name__} has no params: pass params= or call init_weights() first")
        return params

    # -- resizing the vocabulary ----------------------------------------------------------------------------------

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, *,
                                seed: int = 0) -> None:
        """Give the token table, the LM head (and BART's ``final_logits_bias``) ``new_num_tokens`` entries, rounded
        up to ``pad_to_multiple_of``; ``config.vocab_size`` follows (the module reads its shapes from it). Existing
        rows are kept, new rows drawn as the init draws them (from ``seed``, the same in every framework), new
        biases are zero. A tied head reads the token table, so it stays tied. Updates ``params`` (and I-BERT's
        ``quant_stats``); jitted functions of the model must be traced again."""
        size = new_vocab_size(self.config.vocab_size, new_num_tokens, pad_to_multiple_of)
        check_pad_token(self.config.pad_token_id, size)
        for tree in ("params", "quant_stats"):  # quant_stats: I-BERT's buffers, which hold an integer table
            if getattr(self, tree, None) is None:
                continue
            flat = flatten_params(getattr(self, tree))
            arrays = resize_vocab_tensors({p: np.asarray(v) for p, v in flat.items()}, self.config.vocab_size, size,
                                          self.initializer_std(), seed)
            flat.update({p: jnp.asarray(a, flat[p].dtype) for p, a in arrays.items()})
            setattr(self, tree, unflatten_params(flat))
        self.config.vocab_size = size

    # -- gradient checkpointing ---------------------------------------------------------------------------------

    def gradient_checkpointing_enable(self) -> None:
        """Rebuild the module with each layer under ``nn.remat``: the backward pass recomputes a layer's
        activations instead of keeping them (less memory, one more forward pass of the layers). The parameters
        and the gradients are unchanged; jitted functions of the model must be traced again."""
        check_gradient_checkpointing(self.config)
        self.module = self.module.clone(gradient_checkpointing=True)

    def gradient_checkpointing_disable(self) -> None:
        self.module = self.module.clone(gradient_checkpointing=False)

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.module.gradient_checkpointing

    # -- calling -----------------------------------------------------------------------------------------------

    def checked_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """``inputs`` without the labels not given. A label the model does not take (not in its module's class
        constant ``label_names``), or a cache given to a module whose ``takes_cache`` is False (a head that does not
        decode), is refused as PyTorch refuses an unknown argument."""
        module = type(self.module)
        given = {name for name in LABEL_INPUTS if inputs.get(name) is not None}
        refused = given - set(getattr(module, "label_names", ()))
        if inputs.get("past_key_values") is not None and not getattr(module, "takes_cache", True):
            refused.add("past_key_values")
        if refused:
            raise TypeError(f"{type(self).__name__} takes no {', '.join(sorted(refused))}")
        return {name: value for name, value in inputs.items() if name in given or name not in LABEL_INPUTS}

    def apply_module(self, params: Params | None, dropout_rng: jax.Array | None, train: bool,
                     return_dict: bool | None, method: Any = None, **inputs: Any):
        """Run the linen module (or ``method(module, **inputs, deterministic=...)``, e.g. an encoder alone) on the
        ``checked_inputs``: dropout only when ``train`` (which then needs ``dropout_rng``)."""
        inputs = self.checked_inputs(inputs)
        if train and dropout_rng is None:
            raise ValueError("train=True applies dropout and needs dropout_rng=jax.random.PRNGKey(...)")
        rngs = {"dropout": dropout_rng} if train else {}
        out = self.module.apply({"params": self._require_params(params)}, **inputs, deterministic=not train, rngs=rngs,
                                method=method)
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        return out if return_dict else out.to_tuple()

    # -- from_pretrained / save_pretrained ---------------------------------------------------------------------

    @classmethod
    def _take_model_arguments(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments of the model's ``__init__`` (e.g. ``add_pooling_layer``, ``seed``), not config overrides."""
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = {name for name, p in inspect.signature(cls.__init__).parameters.items() if p.kind in named}
        names -= {"self", "config", "dtype", "param_dtype", "_do_init"}
        return {name: kwargs.pop(name) for name in names if name in kwargs}

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        config: PretrainedConfig | None = None,
        dtype: Any = None,
        allow_new_heads: bool = False,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        **kwargs: Any,
    ):
        """Load a Hugging Face model folder or hub id (config.json + safetensors or pytorch_model.bin).

        Hub arguments (``revision``, ``cache_dir``, ``local_files_only``, ``token``) select the files; the model's
        own ``__init__`` arguments go to it; remaining keyword arguments override config values, and any other
        keyword argument is a TypeError naming it. ``dtype`` ("float32", "bfloat16", "float16", a jax/numpy dtype
        such as ``jnp.bfloat16``, or "auto" for the checkpoint's own dtype) sets both the compute dtype and the
        parameter dtype.
        """
        hub_kwargs = split_hub_arguments(kwargs)
        model_kwargs = cls._take_model_arguments(kwargs)
        config = load_config(cls, name_or_path, config, hub_kwargs, kwargs)
        dtype = jnp.dtype(resolve_dtype(dtype, name_or_path, hub_kwargs) or "float32")
        model = cls(config, dtype=dtype, param_dtype=dtype, _do_init=False, **model_kwargs)
        target = model.parameter_shapes()
        arrays, report = load_pretrained_arrays(
            name_or_path, target, model.weights_spec(), "flax", hub_kwargs,
            allow_new_heads=allow_new_heads, ignore_mismatched_sizes=ignore_mismatched_sizes,
        )
        flat = {path: jnp.asarray(array, dtype) for path, array in arrays.items()}
        if len(flat) < len(target):
            # Heads the checkpoint lacks (or misshapen tensors the caller allowed) start from a random init, and
            # optional tensors it lacks (BART's final_logits_bias) from their initial value.
            rng = jax.random.PRNGKey(model_kwargs.get("seed", 0))
            fresh = flatten_params(model.init_weights(rng, model.input_shape))
            flat = {**fresh, **flat}
        model.params = unflatten_params(flat)
        model.generation_config = load_generation_config(name_or_path, config, hub_kwargs)
        return (model, report.as_dict()) if output_loading_info else model

    def save_pretrained(self, folder: str | os.PathLike, *, overwrite: bool = False,
                        max_shard_size: int | str | None = None, params: Params | None = None,
                        format: str = "safetensors") -> None:
        """Write config.json and the weights (model.safetensors with canonical (Hugging Face PyTorch) names;
        ``format`` "pytorch", "tf" or "flax" for pytorch_model.bin, tf_model.h5 or flax_model.msgpack), and
        generation_config.json for a model that can generate."""
        params = self._require_params(params)
        tree = {path: np.asarray(value) for path, value in flatten_params(params).items()}
        save_pretrained_arrays(folder, self.config, tree, self.weights_spec(), "flax",
                               generation_config=self.generation_config if self.can_generate() else None,
                               overwrite=overwrite, max_shard_size=max_shard_size, format=format)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={self.dtype.name}, param_dtype={self.param_dtype.name})"
