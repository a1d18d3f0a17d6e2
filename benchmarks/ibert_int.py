"""Time I-BERT's float path against its integer inference path in our three frameworks, in one run.

A base-size model (hidden 768, 12 layers; batch 8, sequence 128 by default) with random weights is calibrated by a
few training-mode forwards in PyTorch and saved; each framework then loads it twice, with ``quant_mode`` off
(float) and on (integer inference), and all candidates are timed round-robin. transformers 4.57.6's I-BERT (float
and its float32 simulation of quantization) is timed alongside as the reference. Prints median seconds and
ratios to our float PyTorch model. TF runs under tf.function(jit_compile=True), Flax under jax.jit, PyTorch under
torch.inference_mode.

    python benchmarks/ibert_int.py [--repeats 5] [--batch 8] [--length 128] [--layers 12]
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
from forward import interleaved_medians  # noqa: E402  (benchmarks/ is the script's folder)


def ours_pt(folder, quant_mode, ids, mask):
    import torch

    from rosettazoo.ibert import IBertModel

    model = IBertModel.from_pretrained(folder, quant_mode=quant_mode)
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)

    def call():
        with torch.inference_mode():
            return model(ids_t, attention_mask=mask_t).last_hidden_state

    return call


def hf_pt(folder, quant_mode, ids, mask):
    import torch
    import transformers

    model = transformers.IBertModel.from_pretrained(folder, quant_mode=quant_mode).eval()
    ids_t, mask_t = torch.from_numpy(ids).long(), torch.from_numpy(mask)

    def call():
        with torch.inference_mode():
            return model(ids_t, attention_mask=mask_t).last_hidden_state

    return call


def ours_tf(folder, quant_mode, ids, mask):
    import tensorflow as tf

    from rosettazoo.ibert import TFIBertModel

    model = TFIBertModel.from_pretrained(folder, quant_mode=quant_mode)
    forward = tf.function(lambda i, m: model(input_ids=i, attention_mask=m).last_hidden_state, jit_compile=True)
    ids_t, mask_t = tf.constant(ids), tf.constant(mask)
    return lambda: forward(ids_t, mask_t).numpy()


def ours_flax(folder, quant_mode, ids, mask):
    import jax

    from rosettazoo.ibert import FlaxIBertModel

    model = FlaxIBertModel.from_pretrained(folder, quant_mode=quant_mode)
    forward = jax.jit(lambda params, stats, i, m: model(i, attention_mask=m, params=params,
                                                        quant_stats=stats).last_hidden_state)
    return lambda: forward(model.params, model.quant_stats, ids, mask).block_until_ready()


CANDIDATES = {
    "ours PyTorch": ours_pt,
    "ours TensorFlow (XLA)": ours_tf,
    "ours Flax (jit)": ours_flax,
    "transformers PyTorch": hf_pt,
}


def calibrated_checkpoint(folder: str, layers: int, ids: np.ndarray, mask: np.ndarray) -> None:
    """A random base-size I-BERT whose activation ranges were calibrated on ``ids`` (training-mode forwards)."""
    import torch

    from rosettazoo.ibert import IBertConfig, IBertModel

    torch.manual_seed(0)
    model = IBertModel(IBertConfig(vocab_size=50265, num_hidden_layers=layers, quant_mode=True, hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0)).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    model.save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()

    import torch

    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50265, size=(args.batch, args.length)).astype(np.int32)
    ids[:, 0] = 0
    mask = np.ones_like(ids)
    calls, times = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        calibrated_checkpoint(folder, args.layers, ids, mask)
        for name, make in CANDIDATES.items():
            for path, quant_mode in (("float", False), ("integer", True)):
                label = (name, "simulated" if quant_mode and name.startswith("transformers") else path)
                try:
                    calls[label] = make(folder, quant_mode, ids, mask)
                except Exception as err:  # a candidate that cannot run is reported, not hidden
                    times[label] = err
        times.update(interleaved_medians(calls, args.repeats))

    print(f"I-BERT base ({args.layers} layers x 768) encoder forward, batch {args.batch} x {args.length}, "
          f"median of {args.repeats} runs, {torch.get_num_threads()} threads")
    print(f"{'implementation':<24} {'path':<10} {'seconds':>9} {'vs its float':>13} {'vs ours PyTorch float':>22}")
    base = times.get(("ours PyTorch", "float"))
    for (name, path), value in sorted(times.items(), key=lambda item: list(CANDIDATES).index(item[0][0])):
        if isinstance(value, Exception):
            print(f"{name:<24} {path:<10} {'failed':>9}  {type(value).__name__}: {str(value)[:70]}")
            continue
        own_float = times.get((name, "float"))
        own = value / own_float if isinstance(own_float, float) else float("nan")
        ours = value / base if isinstance(base, float) else float("nan")
        print(f"{name:<24} {path:<10} {value:>9.4f} {own:>12.2f}x {ours:>21.2f}x")


if __name__ == "__main__":
    main()
