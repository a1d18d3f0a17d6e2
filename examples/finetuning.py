"""What the three fine-tuning examples share: WordNet's glosses, a tokenizer, and one training engine per framework.

The loop is the same in every framework (train ``--eval-every`` steps, evaluate, save a checkpoint, repeat); an
engine supplies the framework's part: PyTorch steps with ``torch.optim.AdamW`` (DDP under ``torchrun``), Keras runs
``model.fit`` (under a ``tf.distribute`` strategy), and JAX runs a jitted optax step (data parallel over a mesh).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

DATA_FILE = Path(__file__).parent / "data" / "wordnet_glosses.tsv.gz"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4, as in roberta-base
STATE_FILE = "trainer_state.json"
LOG_FILE = "log.jsonl"


@dataclass(frozen=True)
class Synset:
    lexname: str  # lexicographer class, e.g. noun.animal
    words: str  # the synset's words, e.g. "dog, domestic dog, Canis familiaris"
    definition: str
    examples: str  # quoted usage examples joined by " | "


def load_wordnet(max_train: int | None = None, max_eval: int | None = None) -> tuple[list[Synset], list[Synset]]:
    """(train, eval) synsets; a synset's split is fixed by a hash of its text, so it never changes between runs."""
    with gzip.open(DATA_FILE, "rt", encoding="utf-8") as f:
        rows = [Synset(*line.rstrip("\n").split("\t")) for line in f]
    # A hash of the text fixes each synset's split and place, so any prefix (--max-train) is a mixed sample.
    rows.sort(key=lambda r: zlib.crc32(f"{r.words}\t{r.definition}".encode()))
    held_out = [i % 10 == 0 for i in range(len(rows))]
    train = [r for r, h in zip(rows, held_out) if not h][:max_train]
    evaluation = [r for r, h in zip(rows, held_out) if h][:max_eval]
    return train, evaluation


# ---------------------------------------------------------------------------------------------------- arguments


def argument_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--framework", choices=("pt", "tf", "flax"), required=True)
    parser.add_argument("--model", help="a model folder or hub id to fine-tune (default: a new model, see --size)")
    parser.add_argument("--size", choices=("tiny", "demo", "small"), default="small",
                        help="the new model's size when --model is not given (tiny: 2 x 32, for tests; demo: 4 x "
                             "128, the models bundled in rosettazoo/models; small: 4 x 256)")
    parser.add_argument("--layers", type=int, help="override the --size's number of layers (per stack in BART)")
    parser.add_argument("--dropout", type=float,
                        help="dropout of a new model (default: its config's); 0 suits short runs that see the data "
                             "about once, where there is nothing to overfit yet")
    parser.add_argument("--vocab-size", type=int, default=4000,
                        help="vocabulary of the byte-level BPE trained on the data when --model is not given")
    parser.add_argument("--output-dir", required=True, help="checkpoints go to OUTPUT_DIR/checkpoint-STEP")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps in all")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size (over all devices)")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int,
                        help="raise the learning rate linearly from near 0 over this many steps (default: 5%% of "
                             "--steps), then lower it to 0 at --steps (see --decay)")
    parser.add_argument("--decay", choices=("linear", "cosine", "none"), default="linear",
                        help="how the learning rate falls after the warmup (none: it stays at --learning-rate)")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per sequence (padded to it)")
    parser.add_argument("--eval-every", type=int, default=250, help="evaluate and save every this many steps")
    parser.add_argument("--log-every", type=int, default=50,
                        help="log the mean training loss of every this many steps to OUTPUT_DIR/log.jsonl")
    parser.add_argument("--max-train", type=int, help="use at most this many training synsets")
    parser.add_argument("--max-eval", type=int, default=500, help="evaluate on at most this many synsets")
    parser.add_argument("--seed", type=int, default=0)
    parallel = parser.add_argument_group("data parallel (one flag per framework)")
    parallel.add_argument("--ddp", action="store_true",
                          help="pt: DistributedDataParallel over the processes torchrun starts (gloo on CPU)")
    parallel.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                          help="tf: a tf.distribute strategy (multiworker reads TF_CONFIG)")
    parallel.add_argument("--devices", type=int, default=1,
                          help="flax: train on this many devices of a jax.sharding.Mesh")
    parallel.add_argument("--layout", choices=("dp", "fsdp", "tp", "fsdp_tp"), default="dp",
                          help="flax: how params and optimizer state are split over the devices (rosettazoo."
                               "common.sharding_flax): replicated, fully sharded, tensor parallel, or both")
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    for name in ("steps", "batch_size", "eval_every", "log_every", "max_length", "devices"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.warmup_steps is not None and not 0 <= args.warmup_steps <= args.steps:
        raise SystemExit(f"--warmup-steps must be between 0 and --steps ({args.steps}), got {args.warmup_steps}")
    flags = {"pt": args.ddp, "tf": args.strategy != "default", "flax": args.devices > 1 or args.layout != "dp"}
    for framework, used in flags.items():
        if used and framework != args.framework:
            raise SystemExit(f"--ddp is for pt, --strategy for tf, --devices and --layout for flax; got them with "
                             f"--framework {args.framework}")


# ---------------------------------------------------------------------------------------------------- schedule


def warmup_steps(args: argparse.Namespace) -> int:
    return round(0.05 * args.steps) if args.warmup_steps is None else args.warmup_steps


def learning_rate_at(step, peak: float, warmup: int, total: int, decay: str, ops=np):
    """The learning rate of update ``step`` (0-based, a float): a linear rise to ``peak`` over ``warmup`` updates,
    then a linear or cosine fall to 0 at ``total`` (or none). ``step`` may be a float tensor: ``ops`` is numpy,
    keras.ops or jax.numpy, so every engine follows this one curve, counted by its optimizer's own step counter
    (which --resume restores)."""
    rise = ops.minimum((step + 1.0) / max(warmup, 1), 1.0)
    progress = ops.clip((step - warmup) / max(total - warmup, 1), 0.0, 1.0)
    fall = {"linear": 1.0 - progress, "cosine": 0.5 * (1.0 + ops.cos(math.pi * progress)),
            "none": ops.ones_like(progress)}[decay]
    return peak * ops.where(step < warmup, rise, fall)


def schedule(args: argparse.Namespace, ops=np) -> Callable:
    """``learning_rate_at`` with --learning-rate, --warmup-steps, --steps and --decay filled in."""
    warmup = warmup_steps(args)
    return lambda step: learning_rate_at(step, args.learning_rate, warmup, args.steps, args.decay, ops)


# ---------------------------------------------------------------------------------------------------- tokenizer


def starting_point(args: argparse.Namespace) -> tuple[str | None, int]:
    """(the folder or hub id to load the model and tokenizer from, the step reached): with --resume the newest
    complete checkpoint in --output-dir, else --model (None: a new model)."""
    if not args.resume:
        return args.model, 0
    folder = latest_checkpoint(args.output_dir)
    if folder is None:
        raise SystemExit(f"--resume: no complete checkpoint-STEP folder (with {STATE_FILE}) in {args.output_dir}")
    with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as f:
        return folder, json.load(f)["step"]


def build_tokenizer(args: argparse.Namespace, source: str | None, texts: list[str], tokenizer_class):
    """The tokenizer of ``source``, or (for a new model) a byte-level BPE trained on ``texts``; it is saved in
    every checkpoint, so each checkpoint folder is a complete model."""
    if source:
        return tokenizer_class.from_pretrained(source)
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=args.vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                            show_progress=False)
    folder = os.path.join(args.output_dir, "tokenizer")
    os.makedirs(folder, exist_ok=True)
    bpe.save_model(folder)
    return tokenizer_class.from_pretrained(folder)


def model_size(args: argparse.Namespace) -> dict[str, int]:
    """The shape of a new model (--size), which each example spells in its config's field names."""
    if args.layers is not None and args.layers < 1:
        raise SystemExit(f"--layers must be at least 1, got {args.layers}")
    shapes = {"tiny": (32, 4, 37, 2), "demo": (128, 4, 512, 4), "small": (256, 4, 1024, 4)}
    hidden, heads, ffn, layers = shapes[args.size]
    return dict(hidden=hidden, heads=heads, ffn=ffn, layers=args.layers or layers, positions=args.max_length + 2)


def dropout_settings(args: argparse.Namespace, *fields: str) -> dict[str, float]:
    """--dropout for each of the config's dropout ``fields`` (none: the config's defaults stay)."""
    if args.dropout is None:
        return {}
    if not 0.0 <= args.dropout < 1.0:
        raise SystemExit(f"--dropout must be in [0, 1), got {args.dropout}")
    return dict.fromkeys(fields, args.dropout)


def build_model(classes: dict[str, type], args: argparse.Namespace, source: str | None, config, **overrides):
    """The framework's model class (``classes[args.framework]``) from ``source`` (new heads allowed when
    fine-tuning --model), or new from ``config`` with weights drawn from --seed."""
    cls = classes[args.framework]
    if source is not None:
        return cls.from_pretrained(source, allow_new_heads=not args.resume, **overrides)
    if args.framework == "pt":
        import torch

        torch.manual_seed(args.seed)
        return cls(config)
    if args.framework == "tf":
        import keras

        keras.utils.set_random_seed(args.seed)
        return cls(config)
    return cls(config, seed=args.seed)


def make_engine(args: argparse.Namespace, build: Callable[[], object], tokenizer) -> Engine:
    """The engine of --framework; ``build()`` makes the model (under the tf.distribute strategy's scope in TF)."""
    if args.framework == "pt":
        return TorchEngine(build(), tokenizer, args)
    if args.framework == "tf":
        return KerasEngine(build, tokenizer, args)
    return FlaxEngine(build(), tokenizer, args)


def batches(columns: dict[str, np.ndarray], batch_size: int, seed: int, start_step: int = 0) -> Iterator[dict]:
    """Endless shuffled batches of whole rows (a new permutation each epoch); ``start_step`` skips the batches
    a resumed run has already trained on."""
    count = len(next(iter(columns.values())))
    if count < batch_size:
        raise SystemExit(f"only {count} training examples for a batch of {batch_size}: lower --batch-size")
    per_epoch = count // batch_size
    step = start_step
    while True:
        epoch, position = divmod(step, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(count)
        rows = order[position * batch_size:(position + 1) * batch_size]
        yield {name: values[rows] for name, values in columns.items()}
        step += 1


def eval_batches(columns: dict[str, np.ndarray], batch_size: int) -> Iterator[dict]:
    count = len(next(iter(columns.values())))
    for start in range(0, count, batch_size):
        yield {name: values[start:start + batch_size] for name, values in columns.items()}


# ---------------------------------------------------------------------------------------------------- the loop


def latest_checkpoint(output_dir: str) -> str | None:
    steps = [int(name.split("-")[1]) for name in os.listdir(output_dir) if name.startswith("checkpoint-")
             and os.path.exists(os.path.join(output_dir, name, STATE_FILE))] if os.path.isdir(output_dir) else []
    return os.path.join(output_dir, f"checkpoint-{max(steps)}") if steps else None


def run(args: argparse.Namespace, engine, train_columns: dict[str, np.ndarray],
        evaluate: Callable[[object], dict[str, float]], metric: str, start_step: int = 0,
        prepare: Callable[[dict, int], dict] | None = None) -> dict[str, float]:
    """Train from ``start_step`` to ``args.steps``, evaluating and saving every ``args.eval_every`` steps;
    returns the last metrics. ``prepare(batch, step)``, if given, turns each training batch into the model's
    inputs (e.g. masks tokens anew for every step); the mean loss of every ``args.log_every`` steps and every
    evaluation go to OUTPUT_DIR/log.jsonl, one JSON object a line."""
    step = start_step
    if args.resume:
        engine.load_optimizer(latest_checkpoint(args.output_dir))
        engine.log(f"resumed from {latest_checkpoint(args.output_dir)} at step {step}")
    engine.start_at(step)
    data = batches(train_columns, args.batch_size, args.seed, start_step=step)
    if prepare is not None:
        data = (prepare(batch, index) for index, batch in enumerate(data, start=step))
    log = MetricsLog(os.path.join(args.output_dir, LOG_FILE), step, enabled=engine.is_main)
    metrics: dict[str, float] = {}
    with tqdm(total=args.steps, initial=step, desc="training", disable=not engine.is_main) as progress:
        while step < args.steps:
            count = min(args.eval_every, args.steps - step)
            total = 0.0
            for chunk in chunk_sizes(count, args.log_every):
                chunk_loss = engine.train(data, chunk, progress)
                step += chunk
                total += chunk_loss * chunk
                log.write({"step": step, "train_loss": chunk_loss})
            loss = total / count
            metrics = {"train_loss": loss, **evaluate(engine)}
            log.write({"step": step, **metrics})
            progress.set_postfix(loss=f"{loss:.4f}", **{metric: f"{metrics[metric]:.4f}"})
            engine.log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            save(engine, os.path.join(args.output_dir, f"checkpoint-{step}"), step, metrics)
    if metrics:
        engine.log(f"final {metric}: {metrics[metric]:.4f}")
    return metrics


def chunk_sizes(count: int, size: int) -> list[int]:
    """``count`` steps as runs of ``size`` and the rest: chunk_sizes(120, 50) == [50, 50, 20]."""
    return [size] * (count // size) + ([count % size] if count % size else [])


class MetricsLog:
    """OUTPUT_DIR/log.jsonl: a resumed run first drops the lines past its checkpoint (written after it by the run
    that stopped), so the log holds each step once."""

    def __init__(self, path: str, start_step: int, enabled: bool):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kept = []
        if start_step and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                kept = [line for line in f if json.loads(line)["step"] <= start_step]
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(kept)

    def write(self, entry: dict[str, float]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


def read_log(output_dir: str) -> list[dict[str, float]]:
    """The entries run() logged in ``output_dir``, in order."""
    with open(os.path.join(output_dir, LOG_FILE), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def save(engine, folder: str, step: int, metrics: dict[str, float]) -> None:
    """The model and tokenizer (a folder from_pretrained loads), the optimizer, then the state file that marks
    the checkpoint complete (--resume only picks folders that have it)."""
    if not engine.is_main:
        engine.barrier()
        return
    engine.model_for_saving().save_pretrained(folder, overwrite=True)
    engine.tokenizer.save_pretrained(folder, overwrite=True)
    engine.save_optimizer(folder)
    with open(os.path.join(folder, STATE_FILE), "w", encoding="utf-8") as f:
        json.dump({"step": step, "metrics": metrics}, f, indent=2)
    engine.barrier()


def perplexity(total_loss: float, total_tokens: int) -> float:
    return math.exp(min(total_loss / max(total_tokens, 1), 50.0))


# ---------------------------------------------------------------------------------------------------- engines


class Engine:
    """A model, its optimizer and the framework's way to train, evaluate and save them."""

    is_main = True

    def __init__(self, model, tokenizer, args: argparse.Namespace):
        self.model, self.tokenizer, self.args = model, tokenizer, args

    def log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    def barrier(self) -> None:
        pass

    def model_for_saving(self):
        return self.model

    def start_at(self, step: int) -> None:
        """The next update is ``step``: the engines whose optimizer does not count its updates set it here."""

    def learning_rate(self) -> float:
        """The learning rate of the next update, read from the optimizer."""
        raise NotImplementedError


class TorchEngine(Engine):
    def __init__(self, model, tokenizer, args):
        import torch

        self.torch = torch
        self.world_size, self.rank = 1, 0
        if args.ddp:
            import torch.distributed as dist

            dist.init_process_group("gloo")
            self.world_size, self.rank = dist.get_world_size(), dist.get_rank()
            if args.batch_size % self.world_size:
                raise SystemExit(f"--batch-size {args.batch_size} must divide over {self.world_size} processes")
        self.is_main = self.rank == 0
        super().__init__(model, tokenizer, args)
        self.module = torch.nn.parallel.DistributedDataParallel(model) if args.ddp else model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
        self.schedule = schedule(args)
        self.start_at(0)

    def start_at(self, step: int) -> None:
        # Set by hand before each update (not LambdaLR): the rate then follows the step run() restores.
        self.step = step
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.schedule(float(step)))

    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _local(self, batch: dict) -> dict:
        """This process's rows of a global batch, as tensors."""
        share = len(next(iter(batch.values()))) // self.world_size
        return self._tensors({k: v[self.rank * share:(self.rank + 1) * share] for k, v in batch.items()})

    def _tensors(self, batch: dict) -> dict:
        """int64 tensors, as PyTorch's losses take their targets."""
        return {k: self.torch.from_numpy(v.astype(np.int64)) for k, v in batch.items()}

    def train(self, data: Iterator[dict], count: int, progress) -> float:
        self.module.train()
        losses = []
        for _ in range(count):
            loss = self.module(**self._local(next(data))).loss
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.start_at(self.step + 1)
            losses.append(loss.item())
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
        return float(np.mean(losses))

    def outputs(self, batch: dict):
        self.model.eval()
        with self.torch.no_grad():
            out = self.model(**self._tensors(batch))
        return float(out.loss), out.logits.float().numpy()

    def generate(self, input_ids: np.ndarray, attention_mask: np.ndarray, **settings) -> np.ndarray:
        self.model.eval()
        inputs = self._tensors({"input_ids": input_ids, "attention_mask": attention_mask})
        return self.model.generate(**inputs, **settings).numpy()

    def save_optimizer(self, folder: str) -> None:
        self.torch.save(self.optimizer.state_dict(), os.path.join(folder, "optimizer.pt"))

    def load_optimizer(self, folder: str) -> None:
        self.optimizer.load_state_dict(self.torch.load(os.path.join(folder, "optimizer.pt"), weights_only=True))

    def barrier(self) -> None:
        if self.args.ddp:
            self.torch.distributed.barrier()


class KerasEngine(Engine):
    def __init__(self, build_model: Callable[[], object], tokenizer, args):
        import keras
        import tensorflow as tf

        self.tf, self.keras = tf, keras
        self.strategy = {
            "default": tf.distribute.get_strategy,
            "mirrored": tf.distribute.MirroredStrategy,
            "multiworker": tf.distribute.MultiWorkerMirroredStrategy,
        }[args.strategy]()
        if args.strategy == "multiworker":
            self.is_main = self.strategy.cluster_resolver.task_id == 0
        with self.strategy.scope():
            model = build_model()
            model.compile(optimizer=keras.optimizers.AdamW(learning_rate=KerasSchedule(args),
                                                           weight_decay=args.weight_decay))
        super().__init__(model, tokenizer, args)

    def learning_rate(self) -> float:
        return float(self.keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _dataset(self, data: Iterator[dict], count: int):
        first = next(data)
        signature = {k: self.tf.TensorSpec((None,) + v.shape[1:], self.tf.as_dtype(v.dtype)) for k, v in first.items()}

        def rows():
            yield first
            for _ in range(count - 1):
                yield next(data)

        return self.tf.data.Dataset.from_generator(rows, output_signature=signature)

    def train(self, data: Iterator[dict], count: int, progress) -> float:
        losses = []
        keras = self.keras

        class Progress(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                losses.append(float(logs["loss"]))
                progress.update(1)
                progress.set_postfix(loss=f"{losses[-1]:.4f}")

        self.model.fit(self._dataset(data, count), steps_per_epoch=count, epochs=1, verbose=0, shuffle=False,
                       callbacks=[Progress()])
        # Keras reports the running mean of the epoch so far; its last value is the mean over these steps.
        return losses[-1]

    def outputs(self, batch: dict):
        out = self.model(batch, training=False)
        return float(out.loss), np.asarray(out.logits, np.float32)

    def generate(self, input_ids: np.ndarray, attention_mask: np.ndarray, **settings) -> np.ndarray:
        out = self.model.generate(input_ids, attention_mask=attention_mask, **settings)
        return np.asarray(getattr(out, "sequences", out))

    def save_optimizer(self, folder: str) -> None:
        values = {f"v{i}": np.asarray(v) for i, v in enumerate(self.model.optimizer.variables)}
        np.savez(os.path.join(folder, "optimizer.npz"), **values)

    def load_optimizer(self, folder: str) -> None:
        with self.strategy.scope():
            optimizer = self.model.optimizer
            optimizer.build(self.model.trainable_variables)
            with np.load(os.path.join(folder, "optimizer.npz")) as values:
                if len(values.files) != len(optimizer.variables):
                    raise SystemExit(f"{folder}/optimizer.npz holds {len(values.files)} optimizer variables, the "
                                     f"model's optimizer has {len(optimizer.variables)}: resume with the same model")
                for i, variable in enumerate(optimizer.variables):
                    variable.assign(values[f"v{i}"])

    def barrier(self) -> None:
        if self.args.strategy == "multiworker":
            self.strategy.reduce("SUM", self.strategy.run(lambda: self.tf.constant(0.0)), axis=None)


def KerasSchedule(args: argparse.Namespace):
    """``schedule(args)`` as a keras LearningRateSchedule of the optimizer's ``iterations`` (restored by
    load_optimizer, so a resumed run continues the curve)."""
    import keras

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self):
            self.rate = schedule(args, keras.ops)

        def __call__(self, step):
            return self.rate(keras.ops.cast(step, "float32"))

        def get_config(self):
            return {}

    return Schedule()


class FlaxEngine(Engine):
    def __init__(self, model, tokenizer, args):
        import jax
        import optax

        from rosettazoo.common import sharding_flax

        self.jax, self.sharding = jax, sharding_flax
        devices = jax.devices()
        if args.devices > len(devices):
            raise SystemExit(f"--devices {args.devices}: JAX sees {len(devices)} (on CPU, set XLA_FLAGS="
                             f"--xla_force_host_platform_device_count={args.devices})")
        if args.batch_size % args.devices:
            raise SystemExit(f"--batch-size {args.batch_size} must divide over {args.devices} devices")
        model_axis = args.devices if args.layout in ("tp", "fsdp_tp") else 1
        self.mesh = sharding_flax.make_mesh(data=args.devices // model_axis, model=model_axis,
                                            devices=devices[:args.devices])
        super().__init__(model, tokenizer, args)
        # inject_hyperparams keeps the step count in the state (saved, restored on --resume) where
        # learning_rate() can read it.
        self.schedule = schedule(args, jax.numpy)
        optimizer = optax.inject_hyperparams(optax.adamw)(
            learning_rate=lambda count: self.schedule(count.astype("float32")), weight_decay=args.weight_decay)
        self.params, self.opt_state, shardings = sharding_flax.shard_train_state(model, optimizer, self.mesh,
                                                                                 args.layout)
        self.rng = jax.random.PRNGKey(args.seed)
        self._step = sharding_flax.jit_train_step(sharding_flax.make_train_step(model, optimizer), self.mesh,
                                                  shardings)

    def train(self, data: Iterator[dict], count: int, progress) -> float:
        losses = []
        for _ in range(count):
            batch = self.sharding.shard_batch(next(data), self.mesh)
            self.rng, step_rng = self.jax.random.split(self.rng)
            self.params, self.opt_state, loss = self._step(self.params, self.opt_state, batch, step_rng)
            losses.append(float(loss))
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
        return float(np.mean(losses))

    def outputs(self, batch: dict):
        out = self.model(**batch, params=self.params)
        return float(out.loss), np.asarray(out.logits, np.float32)

    def generate(self, input_ids: np.ndarray, attention_mask: np.ndarray, **settings) -> np.ndarray:
        return np.asarray(self.model.generate(input_ids, attention_mask=attention_mask, params=self.params,
                                              **settings).sequences)

    def learning_rate(self) -> float:
        return float(self.schedule(self.opt_state.count.astype("float32")))

    def model_for_saving(self):
        self.model.params = self.sharding.gather(self.params)
        return self.model

    def save_optimizer(self, folder: str) -> None:
        from flax import serialization

        with open(os.path.join(folder, "optimizer.msgpack"), "wb") as f:
            f.write(serialization.to_bytes(self.sharding.gather(self.opt_state)))

    def load_optimizer(self, folder: str) -> None:
        from flax import serialization

        with open(os.path.join(folder, "optimizer.msgpack"), "rb") as f:
            state = serialization.from_bytes(self.sharding.gather(self.opt_state), f.read())
        shardings = self.jax.tree_util.tree_map(lambda leaf: leaf.sharding, self.opt_state)
        self.opt_state = self.jax.device_put(state, shardings)
