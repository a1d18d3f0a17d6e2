"""Run by test_sharding_flax.py in a subprocess with 4 host CPU devices (XLA_FLAGS is read when JAX starts).

Prints one JSON line: for each layout, the largest difference of the updated parameters (and the loss) from the
single-device step, and how the layout split the parameters.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
import optax

from rosettazoo.bart import BartConfig, FlaxBartForConditionalGeneration
from rosettazoo.common import sharding_flax as sh
from rosettazoo.common.modeling_flax import flatten_params
from rosettazoo.opt import FlaxOPTForCausalLM, OPTConfig
from rosettazoo.roberta import FlaxRobertaForMaskedLM, RobertaConfig

BATCH, LENGTH = 4, 8


def models():
    small = dict(vocab_size=96, max_position_embeddings=40)
    return {
        "roberta": FlaxRobertaForMaskedLM(RobertaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                                        intermediate_size=64, **small), seed=1),
        "bart": FlaxBartForConditionalGeneration(BartConfig(
            d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=64, **small), seed=2),
        "opt": FlaxOPTForCausalLM(OPTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, ffn_dim=64,
                                            **small), seed=3),
    }


def batch_for(model) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    input_ids = rng.integers(4, model.config.vocab_size, size=(BATCH, LENGTH))
    attention_mask = np.ones_like(input_ids)
    attention_mask[1, -3:] = 0
    labels = rng.integers(0, model.config.vocab_size, size=(BATCH, LENGTH))
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def one_step(model, layout: str, mesh, batch, pmap: bool = False):
    # Adam's first update is lr * g / (|g| + eps): a small eps turns float rounding of a near-zero gradient
    # (summed in another order on another layout) into an update of up to lr; eps=1e-3 bounds that at lr/eps * 1e-7.
    optimizer = optax.adamw(1e-2, eps=1e-3, weight_decay=0.01)
    if pmap:
        step = jax.pmap(sh.make_train_step(model, optimizer, axis_name="devices"), axis_name="devices")
        copies = jax.device_count()
        params, opt_state = jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (copies,) + np.shape(x)),
                                                   (model.params, optimizer.init(model.params)))
        shards = {k: v.reshape((jax.device_count(), -1) + v.shape[1:]) for k, v in batch.items()}
        params, _, loss = step(params, opt_state, shards)
        return sh.gather(jax.tree_util.tree_map(lambda x: x[0], params)), float(loss[0]), None
    params, opt_state, shardings = sh.shard_train_state(model, optimizer, mesh, layout)
    step = sh.jit_train_step(sh.make_train_step(model, optimizer), mesh, shardings)
    params, opt_state, loss = step(params, opt_state, sh.shard_batch(batch, mesh))
    split = {path: str(a.sharding.spec) for path, a in flatten_params(params).items()}
    return sh.gather(params), float(loss), split


def max_diff(a, b) -> float:
    fa, fb = flatten_params(a), flatten_params(b)
    assert fa.keys() == fb.keys()
    return max(float(np.max(np.abs(fa[k] - fb[k]))) for k in fa)


def main() -> None:
    assert jax.device_count() == 4, jax.devices()
    # (layout, mesh data x model): 1 device for the references, 2 (fsdp) and 4 for the rest.
    runs = {"roberta": [("dp", (4, 1)), ("fsdp", (2, 1)), ("pmap", None)], "bart": [("tp", (2, 2))],
            "opt": [("fsdp_tp", (2, 2))]}
    report = {}
    for name, model in models().items():
        batch = batch_for(model)
        reference, reference_loss, _ = one_step(model, "dp", sh.make_mesh(1, 1, jax.devices()[:1]), batch)
        for layout, shape in runs[name]:
            if layout == "pmap":
                params, loss, split = one_step(model, "dp", None, batch, pmap=True)
            else:
                data, size = shape
                mesh = sh.make_mesh(data, size, jax.devices()[:data * size])
                params, loss, split = one_step(model, layout, mesh, batch)
            report[f"{name}/{layout}"] = {"params": max_diff(reference, params), "loss": abs(loss - reference_loss),
                                          "moved": max_diff(reference, model.params), "split": split}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
