"""Time a roberta-base-sized encoder forward in our three frameworks and in transformers 4.57.6.

12 layers x 768 hidden, batch 8, sequence 128, random weights; float32 and bfloat16, all in one run. Prints a
table of median seconds (candidates timed round-robin) and the ratio to our PyTorch model. TF runs under
tf.function(jit_compile=True), Flax under jax.jit; PyTorch in eval mode under torch.inference_mode (as each
framework's users would run it).

    python benchmarks/forward.py [--repeats 10] [--batch 8] [--length 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


def interleaved_medians(calls: dict, repeats: int) -> dict:
    """Median seconds of each call, timed round-robin so that drift in machine load touches all candidates alike."""
    for call in calls.values():  # warm-up: compilation and caches
        call()
        call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def ours_pt(folder, dtype, ids, mask):
    import torch

    from rosettazoo.roberta import RobertaModel

    model = RobertaModel.from_pretrained(folder, dtype=dtype)
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)

    def call():
        with torch.inference_mode():
            return model(ids_t, attention_mask=mask_t).last_hidden_state

    return call


def hf_pt(folder, dtype, ids, mask):
    import torch
    import transformers

    model = transformers.RobertaModel.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)

    def call():
        with torch.inference_mode():
            return model(ids_t, attention_mask=mask_t).last_hidden_state

    return call


def ours_tf(folder, dtype, ids, mask):
    import tensorflow as tf

    from rosettazoo.roberta import TFRobertaModel

    model = TFRobertaModel.from_pretrained(folder, dtype=dtype)
    forward = tf.function(lambda i, m: model(input_ids=i, attention_mask=m).last_hidden_state, jit_compile=True)
    ids_t, mask_t = tf.constant(ids), tf.constant(mask)
    return lambda: forward(ids_t, mask_t).numpy()


def ours_flax(folder, dtype, ids, mask):
    import jax

    from rosettazoo.roberta import FlaxRobertaModel

    model = FlaxRobertaModel.from_pretrained(folder, dtype=dtype)
    forward = jax.jit(lambda params, i, m: model(i, attention_mask=m, params=params).last_hidden_state)
    return lambda: forward(model.params, ids, mask).block_until_ready()


def hf_flax(folder, dtype, ids, mask):
    import jax
    import jax.numpy as jnp
    import transformers

    model = transformers.FlaxRobertaModel.from_pretrained(folder, from_pt=True, dtype=getattr(jnp, dtype))
    if dtype == "bfloat16":
        model.params = model.to_bf16(model.params)
    forward = jax.jit(lambda params, i, m: model(i, attention_mask=m, params=params).last_hidden_state)
    return lambda: forward(model.params, ids, mask).block_until_ready()


CANDIDATES = {
    "ours PyTorch": ours_pt,
    "transformers PyTorch": hf_pt,
    "ours TensorFlow (XLA)": ours_tf,
    "ours Flax (jit)": ours_flax,
    "transformers Flax (jit)": hf_flax,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()

    import torch

    from rosettazoo.roberta import RobertaConfig, RobertaModel

    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50265, size=(args.batch, args.length)).astype(np.int32)
    mask = np.ones_like(ids)
    ids[:, 0] = 0
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        RobertaModel(RobertaConfig()).save_pretrained(folder)
        for dtype in ("float32", "bfloat16"):
            calls, times = {}, {}
            for name, make in CANDIDATES.items():
                try:
                    calls[name] = make(folder, dtype, ids, mask)
                except Exception as err:  # a candidate that cannot run is reported, not hidden
                    times[name] = err
            times.update(interleaved_medians(calls, args.repeats))
            rows.append((dtype, {name: times[name] for name in CANDIDATES}))
            calls.clear()

    print(f"roberta-base encoder forward, batch {args.batch} x {args.length}, median of {args.repeats} runs, "
          f"{torch.get_num_threads()} threads")
    print(f"{'dtype':<9} {'implementation':<26} {'seconds':>9} {'vs ours PyTorch':>16}")
    for dtype, times in rows:
        base = times["ours PyTorch"]
        for name, value in times.items():
            if isinstance(value, Exception):
                print(f"{dtype:<9} {name:<26} {'failed':>9}  {type(value).__name__}: {str(value)[:60]}")
            else:
                ratio = value / base if isinstance(base, float) else float("nan")
                print(f"{dtype:<9} {name:<26} {value:>9.4f} {ratio:>15.2f}x")


if __name__ == "__main__":
    main()
