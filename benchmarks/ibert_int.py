"""Time I-BERT's float path against its integer inference path in our three frameworks, in one run.

A base-size model (hidden 768; 2, 4 and 12 layers; batch 8, sequence 128 by default) with random weights is
calibrated by a few training-mode forwards in PyTorch and saved; each framework then loads it twice, with
``quant_mode`` off (float) and on (integer inference), and all candidates are timed round-robin. transformers
4.57.6's I-BERT (float and its float32 simulation of quantization) is timed alongside as the reference. Prints,
per depth, median seconds, the integer/float ratio per implementation, the first call's seconds (XLA compile for
TF and Flax), and how far each candidate raised the process's peak RSS; then the integer path's parameter memory
(int8 weights) against float32's, and the run's peak RSS. TF runs under tf.function(jit_compile=True), Flax under
jax.jit, PyTorch under torch.inference_mode.

    python benchmarks/ibert_int.py [--repeats 5] [--batch 8] [--length 128] [--layers 2,4,12]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parameter_megabytes(layers: int) -> tuple[float, float]:
    """(float32 bytes, integer-path bytes) of the base model's parameters, in MB: int8 weights and tables, int32
    biases and float32 per-channel scales and layer-norm weights on the integer path."""
    from rosettazoo.ibert import IBertConfig, IBertModel
    from rosettazoo.ibert.quant_pt import IntLayerNorm, QuantEmbedding, QuantLinear

    model = IBertModel(IBertConfig(vocab_size=50265, num_hidden_layers=layers), add_pooling_layer=False)
    float_bytes = sum(p.numel() * 4 for p in model.parameters())
    integer_bytes = 0
    for module in model.modules():
        if isinstance(module, QuantLinear):
            integer_bytes += module.weight.numel() + module.out_features * (4 + 4)  # int8 weight, int32 bias, scale
        elif isinstance(module, QuantEmbedding):
            integer_bytes += module.weight.numel() + 4
        elif isinstance(module, IntLayerNorm):  # its weight and bias stay float32 (scales of the output)
            integer_bytes += sum(p.numel() * 4 for p in module.parameters(recurse=False))
    return float_bytes / 2 ** 20, integer_bytes / 2 ** 20


def time_depth(layers: int, args, ids, mask) -> tuple[dict, dict, dict]:
    """(median seconds, first-call seconds, peak-RSS growth in MB) per (implementation, path) at one depth."""
    calls, times, first, rss = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as folder:
        calibrated_checkpoint(folder, layers, ids, mask)
        for name, make in CANDIDATES.items():
            for path, quant_mode in (("float", False), ("integer", True)):
                label = (name, "simulated" if quant_mode and name.startswith("transformers") else path)
                before = peak_rss_mb()
                try:
                    call = make(folder, quant_mode, ids, mask)
                    start = time.perf_counter()
                    call()
                    first[label] = time.perf_counter() - start
                    calls[label] = call
                except Exception as err:  # a candidate that cannot run is reported, not hidden
                    times[label] = err
                rss[label] = peak_rss_mb() - before
        times.update(interleaved_medians(calls, args.repeats))
    return times, first, rss


def print_depth(layers: int, args, times: dict, first: dict, rss: dict) -> None:
    import torch

    print(f"\nI-BERT base ({layers} layers x 768) encoder forward, batch {args.batch} x {args.length}, "
          f"median of {args.repeats} runs, {torch.get_num_threads()} threads")
    print(f"{'implementation':<24} {'path':<10} {'seconds':>9} {'vs its float':>13} {'vs ours PyTorch float':>22} "
          f"{'first call s':>13} {'+peak RSS MB':>13}")
    base = times.get(("ours PyTorch", "float"))
    for (name, path), value in sorted(times.items(), key=lambda item: list(CANDIDATES).index(item[0][0])):
        if isinstance(value, Exception):
            print(f"{name:<24} {path:<10} {'failed':>9}  {type(value).__name__}: {str(value)[:70]}")
            continue
        own_float = times.get((name, "float"))
        own = value / own_float if isinstance(own_float, float) else float("nan")
        ours = value / base if isinstance(base, float) else float("nan")
        print(f"{name:<24} {path:<10} {value:>9.4f} {own:>12.2f}x {ours:>21.2f}x {first[(name, path)]:>13.1f} "
              f"{rss[(name, path)]:>13.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--layers", default="2,4,12", help="comma-separated depths")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50265, size=(args.batch, args.length)).astype(np.int32)
    ids[:, 0] = 0
    mask = np.ones_like(ids)
    depths = [int(layers) for layers in args.layers.split(",")]
    for layers in depths:
        print_depth(layers, args, *time_depth(layers, args, ids, mask))
    float_mb, integer_mb = parameter_megabytes(max(depths))
    print(f"\nparameters at {max(depths)} layers: float32 {float_mb:.0f} MB, integer path {integer_mb:.0f} MB "
          f"(int8 weights); our models keep the float32 parameters too: PyTorch caches the int8 weights next to "
          f"them (quantized once), TF and Flax quantize them inside each compiled call")
    print(f"peak RSS of the whole run: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
