"""The Keras 3 (TensorFlow backend) base class of every rosettazoo TF model.

A model is a ``keras.Model`` whose sublayers sit on attributes named as Hugging Face's PyTorch modules, so
walking those attributes gives dotted variable paths (``roberta.encoder.layer.0.attention.self.query.kernel``)
that the generic converter maps to canonical checkpoint names. Keras' own auto-generated names play no part.

Training: ``compile(optimizer)`` without a loss trains on the loss the model computes from labels given with the
inputs (``x["labels"]``, as in transformers); with a Keras loss, that loss is applied to the logits.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from ..conversion import WeightsSpec
from ..generation.config import GenerationConfig
from .config import PretrainedConfig
from .layers_tf import require_tensorflow_backend
from .outputs import ModelOutput
from .pretrained import (
    dtype_name,
    load_config,
    load_generation_config,
    load_pretrained_arrays,
    save_pretrained_arrays,
    split_hub_arguments,
)

require_tensorflow_backend()

# Which output field a label of the inputs (or a Keras target of that name) is compared with.
LABEL_TO_OUTPUT = {"labels": "logits", "start_positions": "start_logits", "end_positions": "end_logits"}


def unpack_inputs(call):
    """Let ``call`` take its inputs as keyword arguments, as a dict, or as a list/tuple in signature order.

    Keras passes ``fit``/``predict`` batches as one first argument, which is how a dict of inputs arrives.
    """
    names = [n for n in inspect.signature(call).parameters if n != "self"]

    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        if args and isinstance(args[0], Mapping):
            given = dict(args[0])
            unknown = sorted(set(given) - set(names))
            if unknown:
                raise TypeError(f"{type(self).__name__} got unknown inputs {unknown}; it accepts {names}")
            twice = sorted(set(given) & set(kwargs))
            if twice:
                raise TypeError(f"{type(self).__name__} got {twice} both in the input dict and as keyword arguments")
            return call(self, *args[1:], **given, **kwargs)
        if args and isinstance(args[0], (list, tuple)):
            return call(self, *args[0], *args[1:], **kwargs)
        return call(self, *args, **kwargs)

    return wrapper


def returned(output: ModelOutput, return_dict: bool | None, config: PretrainedConfig):
    return_dict = config.use_return_dict if return_dict is None else return_dict
    return output if return_dict else output.to_tuple()


def _join(prefix: str, name) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _walk_variables(layer: keras.layers.Layer, prefix: str, out: dict[str, keras.Variable]) -> None:
    """Collect ``layer``'s variables under attribute paths; a layer's own weights use their Keras name as leaf."""
    for attribute, value in vars(layer).items():
        if isinstance(value, keras.Variable):
            out[_join(prefix, value.name)] = value
        elif attribute.startswith("_"):
            continue  # Keras bookkeeping (tracked lists of all sublayers, metrics, ...)
        elif isinstance(value, keras.layers.Layer):
            _walk_variables(value, _join(prefix, attribute), out)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, keras.layers.Layer) for v in value):
            for index, item in enumerate(value):
                _walk_variables(item, _join(prefix, _join(attribute, index)), out)


class TFPreTrainedModel(keras.Model):
    """Base of every TF model. A family's base class sets ``config_class``, ``base_model_prefix`` and
    implements ``weights_spec``; each model builds all its layers in ``__init__`` and ends it with
    ``self.built = True`` (every variable exists before the first call)."""

    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # So keras.models.load_model finds our classes in a .keras file without custom_objects.
        keras.saving.register_keras_serializable(package="rosettazoo")(cls)

    def __init__(self, config: PretrainedConfig, *, dtype=None, name: str | None = None):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        super().__init__(dtype=dtype, name=name)
        self.config = config
        # A plain object: Keras tracks only layers, variables and containers, so it adds no weights.
        self.generation_config = GenerationConfig.from_model_config(config)

    # -- what a family provides --------------------------------------------------------------------------------

    def weights_spec(self) -> WeightsSpec:
        """The family's exceptions to the generic weight-naming rules (tied weights, buffers)."""
        raise NotImplementedError(f"{type(self).__name__} must define weights_spec()")

    @classmethod
    def can_generate(cls) -> bool:
        """Whether the model has ``generate()``; the generation mixins say True."""
        return False

    def head_loss(self, labels, output: ModelOutput):
        """The loss transformers computes from ``labels`` and the head's outputs; heads define it."""
        raise ValueError(
            f"{type(self).__name__} computes no loss of its own; compile it with a Keras loss"
        )

    def with_loss(self, output: ModelOutput, labels) -> ModelOutput:
        """``output`` with the head's loss from ``labels`` as its first field (unchanged when labels is None)."""
        if labels is None:
            return output
        return dataclasses.replace(output, loss=self.head_loss(labels, output))

    def config_default(self, name: str, value: Any) -> Any:
        """A call argument, or the config's value of the same name when it is None (as transformers does)."""
        return getattr(self.config, name) if value is None else value

    def get_base_model(self) -> keras.Model:
        """The bare model: the one held under ``base_model_prefix``, or this model itself.

        A method rather than transformers' ``base_model`` property: Keras' saving walks properties, and one that
        returns the model itself would send it round in a circle.
        """
        return getattr(self, self.base_model_prefix, self)

    # -- variables by path ---------------------------------------------------------------------------------------

    def variables_by_path(self) -> dict[str, keras.Variable]:
        """{dotted attribute path: variable} for every weight of the model."""
        found: dict[str, keras.Variable] = {}
        _walk_variables(self, "", found)
        reached = {id(v) for v in found.values()}
        stray = [w.path for w in self.weights if id(w) not in reached]
        if stray or len(reached) != len(found):
            raise RuntimeError(
                f"{type(self).__name__}: weights outside the attribute tree or reached twice: {stray}; "
                f"keep every sublayer on one public attribute"
            )
        return found

    def variable_shapes(self) -> dict[str, tuple[int, ...]]:
        return {path: tuple(v.shape) for path, v in self.variables_by_path().items()}

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        variables = self.variables_by_path()
        for path, array in arrays.items():
            variable = variables[path]
            variable.assign(tf.cast(tf.convert_to_tensor(array), variable.dtype))

    def numpy_weights(self) -> dict[str, np.ndarray]:
        return {path: v.numpy() for path, v in self.variables_by_path().items()}

    # -- from_pretrained / save_pretrained ---------------------------------------------------------------------

    @classmethod
    def _take_model_arguments(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the model's ``__init__`` (e.g. ``add_pooling_layer``) rather than config overrides."""
        names = set(inspect.signature(cls.__init__).parameters) - {"self", "config", "dtype"}
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

        Hub arguments (``revision``, ``cache_dir``, ``local_files_only``, ``token``) select the files; the
        model's own ``__init__`` arguments go to it; remaining keyword arguments override config values.
        ``dtype`` (float32, bfloat16 or float16) becomes the Keras dtype policy of every layer.
        """
        hub_kwargs = split_hub_arguments(kwargs)
        model_kwargs = cls._take_model_arguments(kwargs)
        config = load_config(cls.config_class, name_or_path, config, hub_kwargs, kwargs)
        model = cls(config, dtype=dtype_name(dtype) if dtype is not None else None, **model_kwargs)
        arrays, report = load_pretrained_arrays(
            name_or_path, model.variable_shapes(), model.weights_spec(), "tf", hub_kwargs,
            allow_new_heads=allow_new_heads, ignore_mismatched_sizes=ignore_mismatched_sizes,
        )
        model.load_arrays(arrays)
        model.generation_config = load_generation_config(name_or_path, config, hub_kwargs)
        return (model, report.as_dict()) if output_loading_info else model

    def save_pretrained(
        self, folder: str | os.PathLike, *, overwrite: bool = False, max_shard_size: int | str | None = None
    ) -> None:
        """Write config.json and model.safetensors with canonical names, as transformers' PyTorch model would,
        and generation_config.json for a model that can generate."""
        config = copy.deepcopy(self.config)
        config.architectures = [type(self).__name__.removeprefix("TF")]
        save_pretrained_arrays(
            folder, config, self.numpy_weights(), self.weights_spec(), "tf",
            generation_config=self.generation_config if self.can_generate() else None,
            overwrite=overwrite, max_shard_size=max_shard_size,
        )

    # -- Keras serialization ---------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "generation_config": self.generation_config.to_dict(),
                "dtype": self.dtype_policy.name, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        model = cls(cls.config_class.from_dict(config["config"]), dtype=config.get("dtype"), name=config.get("name"))
        if "generation_config" in config:  # a hand-written config may leave it out
            model.generation_config = GenerationConfig.from_dict(config["generation_config"])
        return model

    # -- Keras training ------------------------------------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Without a compiled loss, the model's own loss (labels in ``x``, or targets ``y``); else Keras' loss
        applied to the output fields that the targets name (the logits for a plain target)."""
        if self._compile_loss is not None:
            return super().compute_loss(x, y, self._keras_prediction(y, y_pred), sample_weight, training)
        if sample_weight is not None:
            raise ValueError("sample_weight needs a loss given to compile(); the model's own loss is unweighted")
        loss = y_pred.loss if y is None else self.head_loss(y, y_pred)
        if loss is None:
            raise ValueError(
                f"{type(self).__name__} was compiled without a loss, so it trains on its own loss, which needs "
                f"labels: put them in the inputs (x['labels'], or start_positions/end_positions for question "
                f"answering), pass them as targets y, or compile with a Keras loss"
            )
        if self.losses:
            loss = loss + tf.add_n(self.losses)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, self._keras_prediction(y, y_pred), sample_weight)

    def predict_step(self, data):
        """Predictions without the loss: a per-batch scalar cannot be stacked across batches."""
        output = super().predict_step(data)
        if isinstance(output, ModelOutput) and "loss" in output:
            output = type(output)(**{k: v for k, v in output.items() if k != "loss"})
        return output

    @staticmethod
    def _keras_prediction(y, y_pred):
        """The output fields that Keras losses and metrics compare with targets ``y``."""
        if not isinstance(y_pred, ModelOutput):
            return y_pred
        if isinstance(y, Mapping):
            return {k: y_pred[LABEL_TO_OUTPUT.get(k, k)] for k in y}
        field = "logits" if "logits" in y_pred else next(iter(y_pred.keys()))
        return y_pred[field]
