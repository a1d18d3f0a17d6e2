"""Time one training step (forward, backward, AdamW) of a roberta-base-shaped classifier in our three frameworks and
in transformers 4.57.6 PyTorch, and measure gradient checkpointing's time and memory.

12 layers x 768 hidden, 2 labels, batch 8 x 128, float32, dropout on (training mode), random weights. Steps are
timed round-robin in one process (medians); PyTorch steps with torch.optim.AdamW, Keras with
`train_on_batch` (its compiled train function and keras.optimizers.AdamW), Flax with a jitted optax.adamw step.
The checkpointing variants are timed in a second round with transformers' plain step again as their anchor.
Peak memory of each candidate is measured in a child process of its own (peak RSS during 3 steps, minus the RSS
after loading, so the libraries' and the weights' own footprint cancels).

    python benchmarks/train_step.py [--repeats 5] [--batch 8] [--length 128] [--no-memory]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
from forward import interleaved_medians  # noqa: E402  (benchmarks/ is the script's folder)

LEARNING_RATE = 1e-5
CANDIDATES = ("transformers PT", "ours PT", "ours TF", "ours Flax")


def batch(args) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50000, size=(args.batch, args.length)).astype(np.int32)
    ids[:, 0] = 0
    return {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "labels": rng.integers(0, 2, size=(args.batch,)).astype(np.int32)}


def save_model(folder: str) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.RobertaConfig(num_labels=2)  # roberta-base's shape
    transformers.RobertaForSequenceClassification(config).save_pretrained(folder)


def torch_step(model, data):
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    tensors = {k: torch.from_numpy(v.astype(np.int64)) for k, v in data.items()}

    def step():
        loss = model(**tensors).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def hf_pt(folder, data, checkpointing):
    import transformers

    model = transformers.RobertaForSequenceClassification.from_pretrained(folder)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return torch_step(model, data)


def ours_pt(folder, data, checkpointing):
    from rosettazoo.roberta import RobertaForSequenceClassification

    model = RobertaForSequenceClassification.from_pretrained(folder)
    if checkpointing:
        model.gradient_checkpointing_enable()
    return torch_step(model, data)


def ours_tf(folder, data, checkpointing):
    import keras

    from rosettazoo.roberta import TFRobertaForSequenceClassification

    model = TFRobertaForSequenceClassification.from_pretrained(folder)
    if checkpointing:
        model.gradient_checkpointing_enable()
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=LEARNING_RATE))
    return lambda: float(model.train_on_batch(data, return_dict=True)["loss"])


def ours_flax(folder, data, checkpointing):
    import jax
    import optax

    from rosettazoo.roberta import FlaxRobertaForSequenceClassification

    model = FlaxRobertaForSequenceClassification.from_pretrained(folder)
    if checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = optax.adamw(LEARNING_RATE)
    state = {"params": model.params, "opt_state": optimizer.init(model.params), "rng": jax.random.PRNGKey(0)}

    @jax.jit
    def train_step(params, opt_state, rng, inputs):
        rng, dropout_rng = jax.random.split(rng)

        def loss_fn(p):
            return model(**inputs, params=p, dropout_rng=dropout_rng, train=True).loss

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, rng, loss

    inputs = {k: jax.numpy.asarray(v) for k, v in data.items()}

    def step():
        state["params"], state["opt_state"], state["rng"], loss = train_step(
            state["params"], state["opt_state"], state["rng"], inputs)
        return float(loss)

    return step


BUILDERS = {"transformers PT": hf_pt, "ours PT": ours_pt, "ours TF": ours_tf, "ours Flax": ours_flax}


def peak_memory_mib(folder: str, name: str, checkpointing: bool, args) -> float:
    """Peak RSS growth of 3 training steps of one candidate, in a child process of its own."""
    command = [sys.executable, __file__, "--child", name, "--folder", folder, "--batch", str(args.batch),
               "--length", str(args.length)] + (["--checkpointing"] if checkpointing else [])
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_growth_mib"]


def child(args) -> None:
    step = BUILDERS[args.child](args.folder, batch(args), args.checkpointing)
    loaded = status_mib("VmRSS")
    reset_peak_rss()
    for _ in range(3):
        step()
    print(json.dumps({"peak_growth_mib": status_mib("VmHWM") - loaded}))


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB. (getrusage's ru_maxrss would carry the
    parent's peak across fork and exec.)"""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    return kib / 1024


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux's clear_refs), so loading's peak does not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def timed_rounds(folder: str, data: dict, repeats: int) -> tuple[dict, dict]:
    """({candidate: median seconds}, {candidate: the anchor's median in its round}). Two rounds, each with
    transformers' plain step as the anchor: eight roberta-base models with their optimizer states and compiled
    steps do not fit in memory at once."""
    seconds, anchors = {}, {}
    for checkpointing in (False, True):
        calls = {"transformers PT": BUILDERS["transformers PT"](folder, data, False)}
        suffix = " + checkpointing" if checkpointing else ""
        for name in CANDIDATES:
            if checkpointing or name != "transformers PT":
                calls[name + suffix] = BUILDERS[name](folder, data, checkpointing)
        timed = interleaved_medians(calls, repeats)
        for name in calls:
            if name != "transformers PT" or not checkpointing:
                seconds[name], anchors[name] = timed[name], timed["transformers PT"]
        del calls
        gc.collect()
    return seconds, anchors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true", help="only the memory column (children one by one)")
    parser.add_argument("--child", choices=CANDIDATES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    names = [name + suffix for suffix in ("", " + checkpointing") for name in CANDIDATES]
    with tempfile.TemporaryDirectory() as folder:
        save_model(folder)
        seconds, anchors = ({}, {}) if args.memory_only else timed_rounds(folder, batch(args), args.repeats)
        memory = {} if args.no_memory else {
            name: peak_memory_mib(folder, name.removesuffix(" + checkpointing"), name.endswith("checkpointing"), args)
            for name in names}
    print(f"training step, roberta-base classifier, batch {args.batch} x {args.length}, float32, "
          f"median of {args.repeats} (round-robin)")
    print(f"{'candidate':<36}{'seconds':>9}{'speed vs transformers PT':>26}{'peak growth MiB':>17}")
    for name in names:
        mib = f"{memory[name]:.0f}" if name in memory else "-"
        if name in seconds:
            print(f"{name:<36}{seconds[name]:>9.3f}{anchors[name] / seconds[name]:>25.2f}x{mib:>17}")
        else:
            print(f"{name:<36}{'-':>9}{'-':>26}{mib:>17}")


if __name__ == "__main__":
    main()
