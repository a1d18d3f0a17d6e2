"""JAX sharding: partition rules of every family, and one train step on 1, 2 and 4 devices (data parallel, fully
sharded, tensor parallel, both, and pmap) that updates the parameters exactly as the single-device step.

The multi-device steps run in a subprocess: the host platform's device count is fixed when JAX starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flax")
pytest.importorskip("optax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AbstractMesh, PartitionSpec  # noqa: E402

from rosettazoo.bart import BartConfig, FlaxBartForSequenceClassification  # noqa: E402
from rosettazoo.common import sharding_flax as sh  # noqa: E402
from rosettazoo.common.modeling_flax import flatten_params  # noqa: E402
from rosettazoo.ibert import FlaxIBertForMaskedLM, IBertConfig  # noqa: E402
from rosettazoo.opt import FlaxOPTForCausalLM, OPTConfig  # noqa: E402
from rosettazoo.roberta import (  # noqa: E402
    FlaxRobertaForSequenceClassification,
    FlaxRobertaPreLayerNormForMaskedLM,
    RobertaConfig,
    RobertaPreLayerNormConfig,
)

ROOT = Path(__file__).resolve().parents[2]
COLUMN, ROW, NONE = PartitionSpec(None, "model"), PartitionSpec("model", None), PartitionSpec()
ENCODER = dict(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
               max_position_embeddings=40)


def family_models():
    bart = dict(vocab_size=96, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=40)
    return {
        "roberta": FlaxRobertaForSequenceClassification(RobertaConfig(**ENCODER)),
        "roberta_prelayernorm": FlaxRobertaPreLayerNormForMaskedLM(RobertaPreLayerNormConfig(**ENCODER)),
        "ibert": FlaxIBertForMaskedLM(IBertConfig(**ENCODER)),
        "bart": FlaxBartForSequenceClassification(BartConfig(**bart)),
        "opt": FlaxOPTForCausalLM(OPTConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                            ffn_dim=64, max_position_embeddings=40, word_embed_proj_dim=16)),
    }


def expected_tensor_parallel_spec(path: str) -> PartitionSpec:
    """Megatron's split, written out per family's names (independently of the rules' regular expressions)."""
    parts = path.split(".")
    layer, leaf = ".".join(parts[-3:-1]), parts[-1]
    column = layer.split(".")[-1] in ("query", "key", "value", "q_proj", "k_proj", "v_proj", "fc1") or \
        layer == "intermediate.dense"
    row = layer in ("output.dense", "self_attn.out_proj", "encoder_attn.out_proj") or layer.endswith("fc2")
    in_layer = ".layer." in path or ".layers." in path
    if in_layer and column:
        return COLUMN if leaf == "kernel" else PartitionSpec("model")
    if in_layer and row and leaf == "kernel":
        return ROW
    return NONE


@pytest.mark.parametrize("family", ["roberta", "roberta_prelayernorm", "ibert", "bart", "opt"])
def test_tensor_parallel_rules_split_heads_and_feed_forward(family):
    model = family_models()[family]
    specs = flatten_params(sh.partition_specs(model, AbstractMesh((1, 4), ("data", "model")), "tp"))
    assert specs.keys() == flatten_params(model.params).keys()
    split = [path for path, spec in specs.items() if spec != NONE]
    # Per attention block q, k, v (kernel and bias) and the output kernel; per feed-forward block fc1 (kernel and
    # bias) and the fc2 kernel. BART: encoder self-, decoder self- and cross-attention, two feed-forward blocks.
    attention_blocks, feed_forward_blocks = (3, 2) if family == "bart" else (1, 1)
    assert len(split) == 7 * attention_blocks + 3 * feed_forward_blocks, split
    for path, spec in specs.items():
        assert spec == expected_tensor_parallel_spec(path), path


def test_fsdp_splits_every_divisible_parameter_along_its_largest_dimension():
    model = family_models()["opt"]
    specs = flatten_params(sh.partition_specs(model, AbstractMesh((4, 1), ("data", "model")), "fsdp"))
    shapes = {path: np.shape(leaf) for path, leaf in flatten_params(model.params).items()}
    assert specs["model.decoder.layers.0.fc1.kernel"] == PartitionSpec(None, "data")  # [32, 64]
    assert specs["model.decoder.embed_positions.embedding"] == PartitionSpec(None, "data")  # [42, 32]
    for path, spec in specs.items():
        divisible = [d for d, n in enumerate(shapes[path]) if n % 4 == 0]
        assert (spec != NONE) == bool(divisible), path


def test_layout_errors_are_clear():
    model = family_models()["roberta"]
    with pytest.raises(ValueError, match="num_attention_heads=4 does not split over the 3 devices"):
        sh.partition_specs(model, AbstractMesh((1, 3), ("data", "model")), "tp")
    with pytest.raises(ValueError, match="unknown layout 'zero3'"):
        sh.partition_specs(model, AbstractMesh((1, 1), ("data", "model")), "zero3")
    with pytest.raises(ValueError, match="data=2 x model=1 needs 2 devices, got 1"):
        sh.make_mesh(2, 1, jax.devices()[:1])


def test_optimizer_state_follows_its_parameters():
    model = family_models()["opt"]
    specs = sh.partition_specs(model, AbstractMesh((2, 2), ("data", "model")), "fsdp_tp")
    state = sh.optimizer_state_specs(optax.adamw(1e-3).init(model.params), specs)
    adam = state[0]
    assert flatten_params(adam.mu) == flatten_params(specs) == flatten_params(adam.nu)
    assert adam.count == NONE


@pytest.fixture(scope="session")  # session: other modules' tests may run between these on the worker
def four_device_report():
    # Both spellings of the host device count: the XLA flag (JAX's documented one) and jax_num_cpu_devices,
    # which wins over it in newer JAX.
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "4",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count=4 {os.environ.get('XLA_FLAGS', '')}".strip()}
    done = subprocess.run([sys.executable, "-m", "tests.training.sharding_worker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


# One worker runs them all (pyproject's --dist loadgroup), so the 4-device subprocess runs once.
@pytest.mark.xdist_group("four_devices")
@pytest.mark.parametrize("run", ["roberta/dp", "roberta/fsdp", "roberta/pmap", "bart/tp", "opt/fsdp_tp"])
def test_step_on_many_devices_equals_single_device_step(four_device_report, run):
    result = four_device_report[run]
    assert result["moved"] > 1e-3  # the step changed the parameters
    assert result["params"] <= 1e-5, result["params"]
    assert result["loss"] <= 1e-5, result["loss"]
    split = result["split"]
    if run.endswith("/dp"):
        assert set(split.values()) == {"P()"}
    if run.endswith("/fsdp"):
        assert split["roberta.encoder.layer.0.intermediate.dense.kernel"] == "P(None, 'data')"
    if run == "bart/tp":
        assert split["model.decoder.layers.0.encoder_attn.q_proj.kernel"] == "P(None, 'model')"
        assert split["model.encoder.layers.0.fc2.kernel"] == "P('model', None)"
    if run == "opt/fsdp_tp":
        assert split["model.decoder.layers.0.fc2.kernel"] == "P('model', 'data')"
