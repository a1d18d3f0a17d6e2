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
from .backend_tf import require_tensorflow_backend
from .config import PretrainedConfig
from .gradient_checkpointing import LayerStackCheckpointing
from .outputs import ModelOutput
from .pretrained import (
    load_config,
    load_generation_config,
    load_pretrained_arrays,
    resolve_dtype,
    save_pretrained_arrays,
    split_hub_arguments,
)
from .resize import check_pad_token, is_vocab_tensor, new_vocab_size, resize_vocab_tensors

require_tensorflow_backend()

MIXED_POLICIES = ("mixed_bfloat16", "mixed_float16")
# Which output field a label of the inputs (or a Keras target of that name) is compared with.
LABEL_TO_OUTPUT = {"labels": "logits", "start_positions": "start_logits", "end_positions": "end_logits"}


def unpack_inputs(call):
    """Let ``call`` take its inputs as keyword arguments, as a dict, or as a list/tuple in signature order.

    Keras passes ``fit``/``predict`` batches as one first argument, which is how a dict of inputs arrives.
    """
    signature = inspect.signature(call)
    names = [n for n in signature.parameters if n != "self"]

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
            args, kwargs = args[1:], {**given, **kwargs}
        elif args and isinstance(args[0], (list, tuple)):
            args = (*args[0], *args[1:])
        if tf.executing_eagerly():
            return call(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        _traced_ids_as_integers(bound.arguments)
        return call(*bound.args, **bound.kwargs)

    return wrapper


def _traced_ids_as_integers(arguments: dict[str, Any]) -> None:
    """Keras traces models on float inputs (``keras.Input``'s default dtype; before a distributed ``fit``, the batch
    it averages over the replicas): traced ``*_ids`` inputs become int32 there, as Keras' Embedding casts its input.
    Eagerly, float ids stay an error."""
    for name, value in arguments.items():
        if name.endswith("_ids") and isinstance(value, tf.Tensor) and value.dtype.is_floating:
            arguments[name] = tf.cast(value, tf.int32)


def returned(output: ModelOutput, return_dict: bool | None, config: PretrainedConfig):
    return_dict = config.use_return_dict if return_dict is None else return_dict
    return output if return_dict else output.to_tuple()


def _join(prefix: str, name) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _walk_variables(layer: keras.layers.Layer, prefix: str, out: dict[str, keras.Variable],
                    owners: dict[str, tuple[keras.layers.Layer, str]] | None = None) -> None:
    """Collect ``layer``'s variables under attribute paths; a layer's own weights use their Keras name as leaf.
    ``owners`` also gets, per path, the layer and the attribute that hold the variable."""
    for attribute, value in vars(layer).items():
        if isinstance(value, keras.Variable):
            out[_join(prefix, value.name)] = value
            if owners is not None:
                owners[_join(prefix, value.name)] = (layer, attribute)
        elif attribute.startswith("_"):
            continue  # Keras bookkeeping (tracked lists of all sublayers, metrics, ...)
        elif isinstance(value, keras.layers.Layer):
            _walk_variables(value, _join(prefix, attribute), out, owners)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, keras.layers.Layer) for v in value):
            for index, item in enumerate(value):
                _walk_variables(item, _join(prefix, _join(attribute, index)), out, owners)


def _dtype_policy(dtype: Any, name_or_path, hub_kwargs: dict[str, Any]):
    """The Keras dtype policy for ``from_pretrained``'s ``dtype``: a mixed policy as given, anything else through
    the dtype names every framework accepts."""
    if isinstance(dtype, keras.DTypePolicy):
        return dtype
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        if dtype not in MIXED_POLICIES:
            raise ValueError(f"dtype {dtype!r} is not a Keras mixed policy; use one of {MIXED_POLICIES}")
        return dtype
    return resolve_dtype(dtype, name_or_path, hub_kwargs)


def _initializer_std(config: PretrainedConfig) -> float:
    """The std of the init's normal draws: ``init_std`` (BART, OPT) or ``initializer_range``."""
    return getattr(config, "init_std", None) or config.initializer_range


def _replace_variable(layer: keras.layers.Layer, attribute: str, old: keras.Variable, value: np.ndarray) -> None:
    """Put a new variable holding ``value`` (another shape) where ``layer`` held ``old``, under the same name."""
    delattr(layer, attribute)  # Keras untracks the old variable
    locked = getattr(layer._tracker, "locked", False)  # Keras locks a built layer's state
    if locked:
        layer._tracker.unlock()
    new = layer.add_weight(shape=value.shape, initializer="zeros", dtype=old.dtype, trainable=old.trainable,
                           name=old.name)
    if locked:
        layer._tracker.lock()
    new.assign(value)
    setattr(layer, attribute, new)


class TFPreTrainedModel(LayerStackCheckpointing, keras.Model):
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

    # -- resizing the vocabulary ----------------------------------------------------------------------------------

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, *,
                                seed: int = 0) -> keras.layers.Layer | None:
        """Give the token table, the LM head (and BART's ``final_logits_bias``) ``new_num_tokens`` entries, rounded
        up to ``pad_to_multiple_of``; ``config.vocab_size`` follows. Existing rows are kept, new rows drawn as the
        model's init draws them (from ``seed``, the same in every framework), new biases are zero. A tied head
        reads the token table, so it stays tied. Keras variables have fixed shapes: each resized one is replaced
        by a new variable (compile the model again after resizing). Returns the token table's layer."""
        size = new_vocab_size(self.config.vocab_size, new_num_tokens, pad_to_multiple_of)
        check_pad_token(self.config.pad_token_id, size)
        variables, owners = {}, {}
        _walk_variables(self, "", variables, owners)
        arrays = resize_vocab_tensors({p: v.numpy() for p, v in variables.items() if is_vocab_tensor(p)},
                                      self.config.vocab_size, size, _initializer_std(self.config), seed)
        for path, array in arrays.items():
            layer, attribute = owners[path]
            _replace_variable(layer, attribute, variables[path], array)
            if isinstance(layer, keras.layers.Embedding):
                layer.input_dim = size
            elif isinstance(layer, keras.layers.Dense):
                layer.units = size
        self.config.vocab_size = size
        return next((owners[p][0] for p in arrays if isinstance(owners[p][0], keras.layers.Embedding)), None)

    # -- gradient checkpointing ---------------------------------------------------------------------------------

    def _layer_stacks(self) -> list[keras.layers.Layer]:
        """The layers that run a stack of layers (encoder, decoder), each with a ``gradient_checkpointing`` flag."""
        stacks = [layer for layer in self._flatten_layers() if hasattr(layer, "gradient_checkpointing")]
        if not stacks:
            raise ValueError(f"{type(self).__name__} has no layer stack to checkpoint")
        return stacks

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each layer's activations in the backward pass instead of keeping them (training only):
        less memory for one more forward pass of the layers. Gradients are unchanged."""
        self._set_gradient_checkpointing(True)

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
        Any other keyword argument is a TypeError naming it. ``dtype`` becomes the Keras dtype policy of every
        layer: "float32", "bfloat16", "float16", a ``tf.DType``, "auto" for the checkpoint's own dtype, or a mixed
        policy ("mixed_bfloat16", "mixed_float16", or a ``keras.DTypePolicy``: float32 variables, lower-precision
        compute).
        """
        hub_kwargs = split_hub_arguments(kwargs)
        model_kwargs = cls._take_model_arguments(kwargs)
        config = load_config(cls, name_or_path, config, hub_kwargs, kwargs)
        model = cls(config, dtype=_dtype_policy(dtype, name_or_path, hub_kwargs), **model_kwargs)
        arrays, report = load_pretrained_arrays(
            name_or_path, model.variable_shapes(), model.weights_spec(), "tf", hub_kwargs,
            allow_new_heads=allow_new_heads, ignore_mismatched_sizes=ignore_mismatched_sizes,
        )
        model.load_arrays(arrays)
        model.generation_config = load_generation_config(name_or_path, config, hub_kwargs)
        return (model, report.as_dict()) if output_loading_info else model

    def save_pretrained(
        self, folder: str | os.PathLike, *, overwrite: bool = False, max_shard_size: int | str | None = None,
        format: str = "safetensors",
    ) -> None:
        """Write config.json and the weights (model.safetensors with canonical names, as transformers' PyTorch
        model would; ``format`` "pytorch", "tf" or "flax" for pytorch_model.bin, tf_model.h5 or
        flax_model.msgpack), and generation_config.json for a model that can generate."""
        config = copy.deepcopy(self.config)
        config.architectures = [type(self).__name__.removeprefix("TF")]
        save_pretrained_arrays(
            folder, config, self.numpy_weights(), self.weights_spec(), "tf",
            generation_config=self.generation_config if self.can_generate() else None,
            overwrite=overwrite, max_shard_size=max_shard_size, format=format,
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
    # Targets y reach the model as its labels when it trains on its own loss, so every head (BART's decoder inputs
    # included) sees them exactly as labels given in x. Under tf.distribute the model's own loss is each replica's
    # share of the global batch's mean (training_tf.global_mean), as Keras scales its own losses.

    def inputs_from_targets(self, inputs: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
        """Inputs the model builds from Keras targets whatever the loss (BART: decoder inputs from the labels);
        none by default. ``inputs`` are the given ones, ``targets`` the labels by name."""
        return {}

    def train_step(self, data):
        logs = super().train_step(self._with_targets(data, own_loss=self._compile_loss is None))
        return self._logs_for_multi_worker(logs)

    def test_step(self, data):
        logs = super().test_step(self._with_targets(data, own_loss=self._compile_loss is None))
        return self._logs_for_multi_worker(logs)

    def _logs_for_multi_worker(self, logs: dict) -> dict:
        """Keras 3 averages a step's logs over MultiWorkerMirroredStrategy's workers along axis 0, which a scalar
        lacks (tensorflow#72388: every fit fails): the values get a leading axis of length 1, which the average
        removes."""
        strategy = self.distribute_strategy
        if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and strategy.extended._in_multi_worker_mode()):
            return logs
        return keras.tree.map_structure(lambda value: tf.expand_dims(value, 0), logs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Before a distributed fit, Keras builds compiled losses and metrics by tracing one batch through the model.
        # Keras averages that batch over the replicas, which makes ids floats and fails for a dict of inputs under
        # MultiWorkerMirroredStrategy: the first replica's batch is traced instead, with the inputs that train_step
        # builds from the targets (no labels: no loss is computed there).
        if self._distribute_strategy is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(self._first_replica, next(batches))
                break
        return super()._maybe_symbolic_build(data_batch=self._with_targets(data_batch, own_loss=False))

    def _first_replica(self, value):
        if isinstance(value, tf.distribute.DistributedValues):
            return self._distribute_strategy.experimental_local_results(value)[0]
        return value

    def _with_targets(self, data, *, own_loss: bool):
        """Keras data ``(x, y, sample_weight)`` with what the model reads from the targets ``y`` put into ``x``: the
        labels when it trains on its own loss, else only the inputs built from them (``inputs_from_targets``)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            return data
        inputs, targets = self._input_dict(x), dict(y) if isinstance(y, Mapping) else {"labels": y}
        if own_loss:
            self._check_label_names(targets, inputs)
            added = targets
        else:
            added = self.inputs_from_targets(inputs, targets)
        return keras.utils.pack_x_y_sample_weight({**inputs, **added}, y, sample_weight)

    def _call_argument_names(self) -> list[str]:
        return list(inspect.signature(self.call).parameters)

    def _input_dict(self, x) -> dict[str, Any]:
        """Keras inputs ``x`` (a dict, a list or tuple in call order, or the input ids alone) as a dict by name."""
        if isinstance(x, Mapping):
            return dict(x)
        names = self._call_argument_names()
        if isinstance(x, (list, tuple)):
            return dict(zip(names, x))
        return {names[0]: x}

    def _check_label_names(self, targets: dict[str, Any], inputs: dict[str, Any]) -> None:
        names = self._call_argument_names()
        accepted = [name for name in LABEL_TO_OUTPUT if name in names]
        unknown = sorted(set(targets) - set(accepted))
        if unknown:
            takes = f"its labels are {accepted}" if accepted else "it computes no loss of its own"
            raise ValueError(
                f"{type(self).__name__} was compiled without a loss, so it trains on its own loss from the targets "
                f"y, but {takes}, not {unknown}: give y as its labels or compile with a Keras loss"
            )
        twice = sorted(set(targets) & set(inputs))
        if twice:
            raise ValueError(f"{type(self).__name__} got {twice} both in the inputs x and as targets y; give them once")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """With a compiled loss, Keras' loss applied to the output fields that the targets name (the logits for a
        plain target); without, the model's own loss from its labels (in ``x``, or targets ``y``)."""
        if self._compile_loss is not None:
            return super().compute_loss(x, y, self._keras_prediction(y, y_pred), sample_weight, training)
        if sample_weight is not None:
            raise ValueError("sample_weight needs a loss given to compile(); the model's own loss is unweighted")
        loss = y_pred.get("loss") if isinstance(y_pred, Mapping) else None
        if loss is None:
            raise ValueError(
                f"{type(self).__name__} was compiled without a loss, so it trains on its own loss, which needs "
                f"labels: put them in the inputs (x['labels'], or start_positions/end_positions for question "
                f"answering), pass them as targets y, or compile with a Keras loss"
            )
        if self.losses:  # Keras adds the layers' own losses, scaled for distribution as it scales them
            loss = loss + super().compute_loss(x, y, y_pred, sample_weight, training)
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

    # -- serving -----------------------------------------------------------------------------------------------------

    # The inputs a SavedModel serves, each int32 [batch, length] (any batch and length); seq2seq heads add decoder ones.
    serving_inputs: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")
    serving_rank: ClassVar[int] = 2  # multiple choice: [batch, choices, length]

    def input_signature(self) -> dict[str, tf.TensorSpec]:
        return {name: tf.TensorSpec([None] * self.serving_rank, tf.int32, name=name) for name in self.serving_inputs}

    def serving_output(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """What the exported ``serve`` endpoint returns for ``input_signature()`` inputs: every output field of an
        inference call (no cache), by name."""
        options = {"use_cache": False} if "use_cache" in self._call_argument_names() else {}
        return dict(self(inputs, training=False, return_dict=True, **options))

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras' ``export``; for a SavedModel without an ``input_signature``, the model's own: ``serve`` takes a dict
        of ``input_signature()`` and returns ``serving_output``'s dict (``tf.saved_model.load(path).serve(...)``)."""
        if format != "tf_saved_model" or input_signature is not None:
            return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)
        archive = keras.export.ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", self.serving_output, [self.input_signature()])
        archive.write_out(filepath, verbose=True if verbose is None else verbose)
