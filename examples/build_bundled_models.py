"""Build the models bundled in rosettazoo/models: train each with its example script, then package it.

For each model this runs the training command written in its model card (PyTorch, one thread: on a shared CPU
more threads only wait on each other), copies the last checkpoint's model and tokenizer files (not the optimizer
state), writes generation_config.json, measures samples and checks that PyTorch, TensorFlow and Flax load the
folder and produce the same ids, renders loss.png from the run's log.jsonl and writes README.md. Each folder is
built beside its final place and then swapped in, so a reader never sees half a model.

    python examples/build_bundled_models.py                      # train and package all three
    python examples/build_bundled_models.py --reuse opt-wordnet  # package an existing run again, no training

Needs matplotlib (build time only) besides the training dependencies: pip install "rosettazoo[bundle]".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent
ROOT = EXAMPLES.parent
MODELS_DIR = ROOT / "rosettazoo" / "models"
RUNS_DIR = ROOT / "build" / "bundled-runs"
TIMING_FILE = "timing.json"
# Checkpoint files that are training state, not part of the model.
NOT_BUNDLED = {"optimizer.pt", "optimizer.npz", "optimizer.msgpack", "trainer_state.json", "generation_config.json"}

sys.path.insert(0, str(EXAMPLES))
import finetuning  # noqa: E402


@dataclass(frozen=True)
class Bundle:
    name: str
    family: str  # rosettazoo subpackage
    head: str  # class name without the framework prefix
    tokenizer: str
    script: str
    arguments: tuple[str, ...]
    task: str
    metrics: tuple[str, ...]  # held-out figures of the last evaluation, in the card's order
    generation: dict = field(default_factory=dict)
    samples: tuple[str, ...] = ()
    start_from: tuple[str, ...] = ()  # a script and its arguments run first, writing the --model to train on


COMMON = ("--framework", "pt", "--size", "demo", "--vocab-size", "4000", "--batch-size", "32", "--log-every", "25")
BUNDLES = [
    Bundle("opt-wordnet", "opt", "OPTForCausalLM", "OPTTokenizer", "train_causal_lm.py",
           COMMON + ("--max-length", "40", "--learning-rate", "2e-3", "--dropout", "0", "--steps", "3000",
                     "--eval-every", "500"),
           "causal language model, continues `word:` with a WordNet-style definition",
           ("eval_loss", "perplexity"), generation=dict(max_new_tokens=24, do_sample=False, no_repeat_ngram_size=3),
           samples=("dog:", "cat:", "house:", "water:", "music:", "run:", "happy:")),
    Bundle("bart-wordnet", "bart", "BartForConditionalGeneration", "BartTokenizer", "train_seq2seq.py",
           COMMON + ("--task", "denoise", "--layers", "3", "--max-length", "32", "--learning-rate", "1e-3",
                     "--dropout", "0", "--steps", "3000", "--eval-every", "500", "--max-eval", "300"),
           "text infilling (BART's own pretraining objective), a definition with a span of words replaced by one "
           "`<mask>` in, the whole definition out",
           ("eval_loss", "exact_match"), generation=dict(num_beams=4, max_length=32, early_stopping=True),
           samples=("a domesticated <mask> mammal", "a building where <mask>", "the clear liquid that <mask>",
                    "a book <mask> maps", "a young <mask>", "a written message <mask> a person")),
    Bundle("roberta-wordnet", "roberta", "RobertaForMaskedLM", "RobertaTokenizer", "train_masked_lm.py",
           ("--framework", "pt", "--model", str(RUNS_DIR.relative_to(ROOT) / "roberta-from-bart"),
            "--batch-size", "32", "--log-every", "25", "--max-length", "32", "--learning-rate", "1e-3",
            "--steps", "3000", "--eval-every", "500"),
           "masked language model, fills `<mask>` in definition-style text; its encoder starts as bart-wordnet's "
           "(`examples/roberta_from_bart.py`: a small RoBERTa trained from scratch on masked-LM alone stays for "
           "thousands of steps on the plateau where it predicts the unigram distribution)",
           ("eval_loss", "perplexity", "accuracy"),
           samples=("a domesticated <mask> mammal", "a large body of <mask> water", "a person who plays <mask>",
                    "the act of <mask> something", "a small <mask> of bread"),
           start_from=("roberta_from_bart.py", str(MODELS_DIR.relative_to(ROOT) / "bart-wordnet"),
                       str(RUNS_DIR.relative_to(ROOT) / "roberta-from-bart"))),
]


def commands(bundle: Bundle) -> list[list[str]]:
    """The starting step, if any, then the training command."""
    run_dir = RUNS_DIR.relative_to(ROOT) / bundle.name
    start = [["python", f"examples/{bundle.start_from[0]}", *bundle.start_from[1:]]] if bundle.start_from else []
    return [*start, ["python", f"examples/{bundle.script}", *bundle.arguments, "--output-dir", str(run_dir)]]


def command_text(bundle: Bundle) -> str:
    return "\n".join("OMP_NUM_THREADS=1 " + " ".join(command) for command in commands(bundle))


def train(bundle: Bundle) -> None:
    """Run the card's commands from scratch; their wall time goes to RUN_DIR/timing.json."""
    run_dir = RUNS_DIR / bundle.name
    shutil.rmtree(run_dir, ignore_errors=True)
    if bundle.start_from:
        shutil.rmtree(ROOT / bundle.start_from[-1], ignore_errors=True)
    start = time.time()
    for command in commands(bundle):
        subprocess.run([sys.executable, *command[1:]], cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    with open(run_dir / TIMING_FILE, "w", encoding="utf-8") as f:
        json.dump({"wall_seconds": time.time() - start}, f)


# ---------------------------------------------------------------------------------------------------- packaging


def family(bundle: Bundle):
    import importlib

    return importlib.import_module(f"rosettazoo.{bundle.family}")


def classes(bundle: Bundle) -> dict[str, type]:
    module = family(bundle)
    return {"pt": getattr(module, bundle.head), "tf": getattr(module, "TF" + bundle.head),
            "flax": getattr(module, "Flax" + bundle.head)}


def stage(bundle: Bundle, checkpoint: Path, staging: Path) -> None:
    """The checkpoint's model and tokenizer files, and the demo's generation settings, in ``staging``."""
    from rosettazoo.generation import GenerationConfig

    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in checkpoint.iterdir():
        if path.name not in NOT_BUNDLED:
            shutil.copy2(path, staging / path.name)
    if (checkpoint / "generation_config.json").exists():
        settings = GenerationConfig.from_pretrained(str(checkpoint))
        settings.update(**bundle.generation)
        settings.save_pretrained(str(staging))


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights are one parameter


def samples(bundle: Bundle, folder: Path) -> dict[str, object]:
    """Each sample prompt's output in every framework: text for the card, ids for the parity check."""
    tokenizer = getattr(family(bundle), bundle.tokenizer).from_pretrained(str(folder))
    results = {}
    for framework, cls in classes(bundle).items():
        model = cls.from_pretrained(str(folder))
        results[framework] = [run_sample(bundle, framework, model, tokenizer, text) for text in bundle.samples]
        if framework == "pt":
            results["parameters"] = parameter_count(model)
    return results


def run_sample(bundle: Bundle, framework: str, model, tokenizer, text: str) -> dict[str, object]:
    enc = tokenizer([text], return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
    if bundle.family == "roberta":
        logits = np.asarray(call(framework, model, ids, mask), np.float32)
        position = int(np.flatnonzero(ids[0] == tokenizer.mask_token_id)[0])
        scores = logits[0, position].astype(np.float64)
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        best = [int(i) for i in np.argsort(-probabilities)[:5]]
        return {"ids": best, "text": ", ".join(f"{tokenizer.decode([i]).strip()} ({probabilities[i]:.2f})"
                                               for i in best)}
    out = generate(framework, model, ids, mask)
    new = out[0, ids.shape[1]:] if bundle.family == "opt" else out[0]
    return {"ids": [int(i) for i in out[0]], "text": tokenizer.decode(new, skip_special_tokens=True).strip()}


def call(framework: str, model, ids: np.ndarray, mask: np.ndarray):
    if framework == "pt":
        import torch

        with torch.no_grad():
            return model(input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()).logits
    return model(input_ids=ids, attention_mask=mask).logits


def generate(framework: str, model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Generation with the folder's generation_config.json."""
    if framework == "pt":
        import torch

        model.eval()
        with torch.no_grad():
            return model.generate(input_ids=torch.from_numpy(ids).long(),
                                  attention_mask=torch.from_numpy(mask).long()).numpy()
    out = model.generate(ids, attention_mask=mask)
    return np.asarray(getattr(out, "sequences", out))


def plot_losses(log: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["train_loss"]) for e in log if "eval_loss" not in e]
    evaluation = [(e["step"], e["eval_loss"]) for e in log if "eval_loss" in e]
    figure, axes = plt.subplots(figsize=(6, 3.6), dpi=100)
    axes.plot(*zip(*train), label="train loss (mean of 25 steps)")
    axes.plot(*zip(*evaluation), "o-", label="held-out loss")
    axes.set(xlabel="step", ylabel="cross-entropy (nats)", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with renames (the old folder is moved aside, then deleted)."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def package(bundle: Bundle) -> dict[str, object]:
    run_dir = RUNS_DIR / bundle.name
    checkpoint = Path(finetuning.latest_checkpoint(str(run_dir)))
    with open(checkpoint / finetuning.STATE_FILE, encoding="utf-8") as f:
        state = json.load(f)
    with open(run_dir / TIMING_FILE, encoding="utf-8") as f:
        wall = json.load(f)["wall_seconds"]
    staging = MODELS_DIR / f".{bundle.name}.staging"
    stage(bundle, checkpoint, staging)
    outputs = samples(bundle, staging)
    same = all(outputs[fw][i]["ids"] == outputs["pt"][i]["ids"] for fw in ("tf", "flax")
               for i in range(len(bundle.samples)))
    plot_losses(finetuning.read_log(str(run_dir)), staging / "loss.png", bundle.name)
    with open(staging / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    figures = {"state": state, "wall_seconds": wall, "outputs": outputs, "same_ids": same, "config": config,
               "megabytes": (staging / "model.safetensors").stat().st_size / 1e6}
    (staging / "README.md").write_text(model_card(bundle, figures), encoding="utf-8")
    swap_in(staging, MODELS_DIR / bundle.name)
    return figures


# ---------------------------------------------------------------------------------------------------- the card


def wordnet_license() -> str:
    """The license block of examples/data/SOURCE.md (its indented lines), which must go with every copy."""
    lines = (EXAMPLES / "data" / "SOURCE.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    "))
    return "\n".join(lines[start:]).rstrip()


def shape_text(bundle: Bundle, config: dict) -> str:
    if bundle.family == "bart":
        return (f"{config['encoder_layers']} encoder + {config['decoder_layers']} decoder layers, d_model "
                f"{config['d_model']}, {config['encoder_attention_heads']} heads, FFN {config['encoder_ffn_dim']}")
    if bundle.family == "opt":
        return (f"{config['num_hidden_layers']} decoder layers, hidden {config['hidden_size']}, "
                f"{config['num_attention_heads']} heads, FFN {config['ffn_dim']}, pre-LayerNorm")
    return (f"{config['num_hidden_layers']} encoder layers, hidden {config['hidden_size']}, "
            f"{config['num_attention_heads']} heads, FFN {config['intermediate_size']}")


FAMILY_NAMES = {"opt": "OPT", "roberta": "RoBERTa", "bart": "BART"}
METRIC_NAMES = {"eval_loss": "held-out loss (nats per predicted token)", "perplexity": "held-out perplexity",
                "accuracy": "held-out masked-token accuracy", "exact_match": "held-out exact match (greedy)"}
SAMPLE_HEADERS = {"opt": ("prompt", "greedy continuation, no repeated 3-gram"), "roberta": ("text", "top 5 fillers of <mask>"),
                  "bart": ("text with <mask>", "the whole text (beam search, 4 beams)")}
LIMITATIONS = {
    "opt": "It writes definition-shaped text, not true facts: with {params} parameters and {steps} steps on one "
           "small dictionary it repeats common gloss phrases and rarely gives the right sense. Positions stop at "
           "{positions} tokens.",
    "roberta": "It knows the words and phrasing of WordNet glosses, little else; fillers are often frequent function "
               "words. Sequences stop at {positions} tokens.",
    "bart": "It copies the unmasked words and fills the span with gloss-like words that fit the grammar, rarely the "
            "original ones; exact match counts a held-out definition rebuilt word for word. Texts stop at "
            "{positions} tokens.",
}


def collapse_note(bundle: Bundle, outputs: dict) -> str:
    """A measured warning when every sample gets the same answer (the model ignores its input)."""
    answers = {tuple(sample["ids"]) if bundle.family == "roberta" else sample["text"] for sample in outputs["pt"]}
    if len(answers) > 1:
        return ""
    return (f" Undertrained: it gives the same answer ({outputs['pt'][0]['text']}) to every sample, i.e. it has "
            f"not yet learned to use its input.")


def model_card(bundle: Bundle, figures: dict) -> str:
    state, config, outputs = figures["state"], figures["config"], figures["outputs"]
    metrics = state["metrics"]
    positions = config.get("max_position_embeddings", 0) - 2
    header, answer = SAMPLE_HEADERS[bundle.family]
    rows = "\n".join(f"| `{text}` | {outputs['pt'][i]['text'] or '(empty)'} |"
                     for i, text in enumerate(bundle.samples))
    figure_rows = "\n".join(f"| {METRIC_NAMES[name]} | {metrics[name]:.4f} |" for name in bundle.metrics)
    parity = ("PyTorch, TensorFlow and Flax load this folder and give the same ids for every sample below"
              if figures["same_ids"] else "WARNING: the frameworks' ids differ for at least one sample")
    limitation = LIMITATIONS[bundle.family].format(params=f"{outputs['parameters']:,}", steps=state["step"],
                                                   positions=positions)
    origin = "from bart-wordnet's encoder" if bundle.start_from else "from scratch"
    settings = ("; `generation_config.json` holds the demo's decoding settings" if bundle.generation else "")
    return f"""# {bundle.name}

A small {FAMILY_NAMES[bundle.family]}, trained {origin} for `rosettazoo demo`. Task: {bundle.task}. It loads
with `from_pretrained("rosettazoo/{bundle.name}")` (or this folder's path) in PyTorch, TensorFlow and Flax{settings}.

## Model
- Shape: {shape_text(bundle, config)}; vocabulary {config['vocab_size']} (byte-level BPE trained on the same data).
- Parameters: {outputs['parameters']:,} (tied embeddings counted once); `model.safetensors` {figures['megabytes']:.1f} MB
  (float32).
- {parity}.

## Data and license
WordNet 3.0 glosses (every fourth synset, 29,416 in all; `examples/data/wordnet_glosses.tsv.gz`, see
`examples/data/SOURCE.md`); one synset in ten, fixed by a hash of its text, is held out for the figures below.
The data, and so this model and its tokenizer, are under WordNet's license:

{wordnet_license()}

## Training
```
{command_text(bundle)}
```
Run from the repository root by `python examples/build_bundled_models.py`, which also packaged this folder.

| | |
|---|---|
| steps (batch 32) | {state['step']} |
| wall time (PyTorch, 1 thread of a shared 2-core CPU) | {figures['wall_seconds'] / 60:.1f} min |
| final train loss (mean of the last {bundle_eval_every(bundle)} steps) | {metrics['train_loss']:.4f} |
{figure_rows}

![loss](loss.png)

## Samples
| {header} | {answer} |
|---|---|
{rows}

## Limitations
{limitation}{collapse_note(bundle, outputs)} For demonstrations and tests, not for any real use.
"""


def bundle_eval_every(bundle: Bundle) -> str:
    return bundle.arguments[bundle.arguments.index("--eval-every") + 1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [b.name for b in BUNDLES]
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models to build: {', '.join(names)} (default: all)")
    parser.add_argument("--reuse", action="store_true",
                        help="package the existing runs in build/bundled-runs instead of training again")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"no bundled model named {', '.join(unknown)}; choose among {', '.join(names)}")
    for bundle in BUNDLES:
        if args.names and bundle.name not in args.names:
            continue
        if not args.reuse:
            train(bundle)
        figures = package(bundle)
        print(f"{bundle.name}: {figures['megabytes']:.1f} MB, {figures['outputs']['parameters']:,} parameters, "
              f"same ids in pt/tf/flax: {figures['same_ids']}, metrics {figures['state']['metrics']}")
        for i, text in enumerate(bundle.samples):
            print(f"  {text!r} -> {figures['outputs']['pt'][i]['text']!r}")


if __name__ == "__main__":
    main()
