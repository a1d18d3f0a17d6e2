"""Training the Flax models on many devices with ``jax.jit`` and ``jax.sharding``: partition rules for the
parameters, placement of parameters, optimizer state and batches on a ``Mesh``, and one train step for all layouts.

A mesh has two axes, ``"data"`` and ``"model"``. Layouts:

- ``"dp"``: data parallel. Parameters and optimizer state are replicated; the batch is split over ``"data"``.
- ``"fsdp"``: fully sharded data parallel. Each parameter (and its optimizer state) is split over ``"data"`` along
  its largest dimension that the axis divides (replicated when none does); the batch is split over ``"data"``.
- ``"tp"``: tensor parallel (Megatron's layout) over ``"model"``: the query, key and value projections and the
  first feed-forward layer are split by output features (whole attention heads, slices of the feed-forward
  dimension), the attention output projection and the second feed-forward layer by input features; everything
  else is replicated. The batch is split over ``"data"`` (size 1 for pure tensor parallelism).
- ``"fsdp_tp"``: both: the tensor-parallel split, and the largest remaining dimension over ``"data"``.

The rules match the Flax parameter paths, which are the canonical (Hugging Face) names, so one generic rule set
covers every family (``query``/``key``/``value``/``intermediate.dense``/``output.dense`` in the RoBERTa-style
encoders, ``q_proj``/``k_proj``/``v_proj``/``out_proj``/``fc1``/``fc2`` in BART and OPT); ``extra_rules`` put
before them change the split of any path. However the parameters are split, ``jax.jit`` computes the same
numbers; the layout only decides where memory and communication go.

The same train step also runs under ``jax.pmap`` (``axis_name=``), which JAX keeps in maintenance mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .modeling_flax import FlaxPreTrainedModel, flatten_params, unflatten_params

DATA_AXIS = "data"
MODEL_AXIS = "model"
LAYOUTS = ("dp", "fsdp", "tp", "fsdp_tp")

# Projections whose output features split into whole heads (attention) or slices of the feed-forward dimension.
_COLUMN_PARALLEL = r"(^|\.)(query|key|value|q_proj|k_proj|v_proj|intermediate\.dense|fc1)\."
# Projections that take those split features back to the hidden size (XLA sums their partial products).
_ROW_PARALLEL = r"(^|\.)(output\.dense|self_attn\.out_proj|encoder_attn\.out_proj|fc2)\."

TENSOR_PARALLEL_RULES: tuple[tuple[str, PartitionSpec], ...] = (
    (_COLUMN_PARALLEL + r"kernel$", PartitionSpec(None, MODEL_AXIS)),
    (_COLUMN_PARALLEL + r"bias$", PartitionSpec(MODEL_AXIS)),
    (_ROW_PARALLEL + r"kernel$", PartitionSpec(MODEL_AXIS, None)),
)

Rules = Sequence[tuple[str, PartitionSpec]]


def make_mesh(data: int | None = None, model: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """A ("data", "model") mesh over ``devices`` (default: all devices of all processes); ``data`` defaults to
    the devices left after ``model``."""
    devices = list(jax.devices() if devices is None else devices)
    if model < 1 or len(devices) % model:
        raise ValueError(f"model={model} must be a positive divisor of the {len(devices)} devices")
    data = len(devices) // model if data is None else data
    if data * model != len(devices):
        raise ValueError(f"a mesh of data={data} x model={model} needs {data * model} devices, got {len(devices)}; "
                         f"pass devices= or change the axis sizes")
    return Mesh(np.asarray(devices).reshape(data, model), (DATA_AXIS, MODEL_AXIS))


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def _attention_heads(config) -> dict[str, int]:
    """The config's head counts (``num_attention_heads``; BART's ``encoder_attention_heads`` and
    ``decoder_attention_heads``)."""
    return {name: value for name, value in config.to_dict().items() if name.endswith("attention_heads")}


def _tensor_parallel_spec(path: str, rules: Rules) -> PartitionSpec:
    for pattern, spec in rules:
        if re.search(pattern, path):
            return spec
    return PartitionSpec()


def _add_data_axis(spec: PartitionSpec, shape: tuple[int, ...], data: int) -> PartitionSpec:
    """``spec`` with ``"data"`` on the largest dimension it leaves unsplit and ``data`` divides (unchanged when
    none does)."""
    axes = list(spec) + [None] * (len(shape) - len(spec))
    free = [d for d in range(len(shape)) if axes[d] is None and shape[d] % data == 0]
    if data > 1 and free:
        axes[max(free, key=lambda d: shape[d])] = DATA_AXIS
    return PartitionSpec(*axes)


def _check_divisible(path: str, shape: tuple[int, ...], spec: PartitionSpec, mesh: Mesh) -> None:
    for dim, axis in enumerate(spec):
        if axis is not None and shape[dim] % mesh.shape[axis]:
            raise ValueError(f"{path} has shape {shape}: dimension {dim} ({shape[dim]}) does not split over the "
                             f"{mesh.shape[axis]} devices of mesh axis {axis!r}; change the mesh or the config")


def partition_specs(model: FlaxPreTrainedModel, mesh: Mesh, layout: str, params=None, *,
                    extra_rules: Rules = ()) -> dict:
    """A tree of ``PartitionSpec`` shaped like the model's params (default: ``model.params``) for ``layout``.

    ``extra_rules``: (regular expression searched in the dotted parameter path, PartitionSpec) pairs tried before
    the generic tensor-parallel rules (first match wins).
    """
    _check_layout(layout)
    params = model._require_params(params)
    tensor_parallel = layout in ("tp", "fsdp_tp")
    if tensor_parallel:
        for name, heads in _attention_heads(model.config).items():
            if heads % mesh.shape[MODEL_AXIS]:
                raise ValueError(f"tensor parallelism splits whole heads: {name}={heads} does not split over the "
                                 f"{mesh.shape[MODEL_AXIS]} devices of mesh axis {MODEL_AXIS!r}")
    rules = (*extra_rules, *TENSOR_PARALLEL_RULES) if tensor_parallel else tuple(extra_rules)
    specs = {}
    for path, leaf in flatten_params(params).items():
        shape = tuple(np.shape(leaf))
        spec = _tensor_parallel_spec(path, rules)
        if layout in ("fsdp", "fsdp_tp"):
            spec = _add_data_axis(spec, shape, mesh.shape[DATA_AXIS])
        _check_divisible(path, shape, spec, mesh)
        specs[path] = spec
    return unflatten_params(specs)


def optimizer_state_specs(opt_state, param_specs: Mapping) -> Any:
    """A ``PartitionSpec`` per leaf of an optax state: a leaf that mirrors a parameter (Adam's moments, ...)
    shares that parameter's spec; anything else (step counts, scalars) is replicated.

    A leaf mirrors a parameter when the dict keys on its path are that parameter's path, as optax keeps them.
    """
    flat_specs = flatten_params(param_specs)

    def spec(path, _leaf):
        keys = [str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey)]
        return flat_specs.get(".".join(keys), PartitionSpec())

    return jax.tree_util.tree_map_with_path(spec, opt_state)


def named_shardings(specs, mesh: Mesh):
    return jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), specs,
                                  is_leaf=lambda x: isinstance(x, PartitionSpec))


def _specs_of(shardings):
    return jax.tree_util.tree_map(lambda s: s.spec, shardings, is_leaf=lambda x: isinstance(x, NamedSharding))


def place(tree, shardings):
    """Put every array of ``tree`` (the same value in every process) on the devices of its sharding; works for
    meshes over several processes, where each process fills only the shards it holds."""
    def put(value, sharding):
        host = np.asarray(value)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(put, tree, shardings)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Examples (the first dimension) split over ``"data"``, replicated over ``"model"``."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """A global batch from this process's examples: with one process the whole batch, with several each
    process passes its own consecutive slice (process 0 the first)."""
    sharding = batch_sharding(mesh)
    local_data = mesh.shape[DATA_AXIS] // jax.process_count()
    out = {}
    for name, value in batch.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] % max(local_data, 1):
            raise ValueError(f"batch[{name!r}] has shape {value.shape}: its first dimension must split over the "
                             f"{local_data} data-parallel devices of this process")
        out[name] = jax.make_array_from_process_local_data(sharding, value)
    return out


def shard_train_state(model: FlaxPreTrainedModel, optimizer: optax.GradientTransformation, mesh: Mesh,
                      layout: str, params=None, *, extra_rules: Rules = ()):
    """(params, optimizer state, their shardings) placed on ``mesh`` for ``layout``; the optimizer state is
    created sharded, so it never exists whole on one device."""
    params = model._require_params(params)
    param_shardings = named_shardings(partition_specs(model, mesh, layout, params, extra_rules=extra_rules), mesh)
    params = place(params, param_shardings)
    opt_specs = optimizer_state_specs(jax.eval_shape(optimizer.init, params), _specs_of(param_shardings))
    opt_shardings = named_shardings(opt_specs, mesh)
    opt_state = jax.jit(optimizer.init, out_shardings=opt_shardings)(params)
    return params, opt_state, (param_shardings, opt_shardings)


def model_loss(model: FlaxPreTrainedModel) -> Callable[..., jax.Array]:
    """``loss(params, batch, dropout_rng)``: the model's own loss from the labels in ``batch``; a
    ``dropout_rng`` turns on training mode (dropout)."""
    if getattr(model.config, "quant_mode", False):
        raise ValueError("I-BERT with quant_mode=True also returns its updated quant_stats in training: write a "
                         "loss_fn (and step) that carries them")

    def loss(params, batch, dropout_rng):
        outputs = model(**batch, params=params, dropout_rng=dropout_rng, train=dropout_rng is not None)
        if isinstance(outputs, tuple):  # I-BERT in training: (output, quant stats unchanged without quant_mode)
            outputs = outputs[0]
        if outputs.loss is None:
            raise ValueError(f"{type(model).__name__} computed no loss: put its labels in the batch or pass loss_fn")
        return outputs.loss

    return loss


def make_train_step(model: FlaxPreTrainedModel, optimizer: optax.GradientTransformation, *,
                    loss_fn: Callable[..., jax.Array] | None = None, axis_name: str | None = None):
    """``step(params, opt_state, batch, dropout_rng=None) -> (params, opt_state, loss)``.

    The loss is ``loss_fn(params, batch, dropout_rng)``, by default the model's own (``model_loss``). Under
    ``jax.jit`` with sharded inputs the step is the same function on any number of devices; under ``jax.pmap``
    pass its ``axis_name`` so the loss and gradients are averaged over devices.
    """
    loss_fn = model_loss(model) if loss_fn is None else loss_fn

    def step(params, opt_state, batch, dropout_rng=None):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, dropout_rng)
        if axis_name is not None:
            loss, grads = jax.lax.pmean((loss, grads), axis_name)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def jit_train_step(step, mesh: Mesh, state_shardings):
    """``step`` compiled for ``mesh``: params and optimizer state keep the shardings of ``shard_train_state``
    (their buffers are donated), the loss comes back replicated."""
    param_shardings, opt_shardings = state_shardings
    return jax.jit(step, out_shardings=(param_shardings, opt_shardings, NamedSharding(mesh, PartitionSpec())),
                   donate_argnums=(0, 1))


def gather(tree) -> Any:
    """Every array of ``tree`` whole on the host (replicated shards are read locally; others are all-gathered
    across processes first)."""
    def host(value):
        if isinstance(value, jax.Array) and not value.is_fully_addressable:
            value = jax.jit(lambda x: x, out_shardings=NamedSharding(value.sharding.mesh, PartitionSpec()))(value)
            return np.asarray(value.addressable_data(0))
        return np.asarray(value)

    return jax.tree_util.tree_map(host, tree)


__all__ = [
    "DATA_AXIS", "MODEL_AXIS", "LAYOUTS", "TENSOR_PARALLEL_RULES", "make_mesh", "partition_specs",
    "optimizer_state_specs", "named_shardings", "place", "batch_sharding", "shard_batch", "shard_train_state",
    "model_loss", "make_train_step", "jit_train_step", "gather",
]
