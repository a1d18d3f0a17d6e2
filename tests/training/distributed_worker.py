"""One process of test_jax_distributed.py's data-parallel step: ``python -m tests.training.distributed_worker
PROCESS_ID NUM_PROCESSES PORT OUT.npz``; with NUM_PROCESSES 0 it runs alone, without jax.distributed.

Every process builds the same model and global batch, feeds its own slice of the batch, and saves the updated
parameters (and the loss) it holds after one step.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
import optax

from rosettazoo.common import sharding_flax as sh
from rosettazoo.common.modeling_flax import flatten_params
from rosettazoo.roberta import FlaxRobertaForMaskedLM, RobertaConfig

BATCH, LENGTH = 4, 8


def model_and_batch():
    config = RobertaConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=40)
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(4, 96, size=(BATCH, LENGTH)), "labels": rng.integers(0, 96, (BATCH, LENGTH))}
    return FlaxRobertaForMaskedLM(config, seed=1), batch


def step(process_id: int, num_processes: int) -> tuple[dict[str, np.ndarray], float]:
    """One data-parallel step over every device of every process (this process feeding its slice)."""
    model, batch = model_and_batch()
    # See the sharding test: eps bounds Adam's amplification of rounding in near-zero gradients.
    optimizer = optax.adamw(1e-2, eps=1e-3, weight_decay=0.01)
    mesh = sh.make_mesh()
    params, opt_state, shardings = sh.shard_train_state(model, optimizer, mesh, "dp")
    rows = BATCH // max(num_processes, 1)
    local = {name: value[process_id * rows:(process_id + 1) * rows] for name, value in batch.items()}
    train_step = sh.jit_train_step(sh.make_train_step(model, optimizer), mesh, shardings)
    params, _, loss = train_step(params, opt_state, sh.shard_batch(local, mesh))
    return flatten_params(sh.gather(params)), float(sh.gather(loss))


def main() -> None:
    process_id, num_processes, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if num_processes:
        # JAX's CPU client runs collectives across processes only through gloo (the default is none).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"localhost:{port}", num_processes, process_id)
        assert jax.process_count() == num_processes and jax.device_count() == num_processes
    params, loss = step(process_id, num_processes)
    np.savez(out, loss=np.asarray(loss), **params)
    if num_processes:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
