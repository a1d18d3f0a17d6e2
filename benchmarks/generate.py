"""Time our generate in three frameworks against transformers 4.57.6's and KerasHub's, in one run.

Random-weight models: OPT-125m-shaped (12 layers x 768, 12 heads, ffn 3072, vocab 50272, 2048 positions) and
BART-base-shaped (6 + 6 layers x 768, 12 heads, ffn 3072, vocab 50265). transformers builds each model with a fixed
torch seed and saves it; every candidate loads that folder, so all read the same weights. Prompts are 16 tokens
(BART: a 128-token source, the decoder starting from decoder_start) and every case generates exactly 32 new tokens
(min_new_tokens = max_new_tokens, so eos cannot stop early): greedy at batch 1 and 8 and beam 4 at batch 1 in
float32, greedy at batch 1 in bfloat16.

Candidates (--frameworks): ours in PyTorch (pt: eager, static cache), TensorFlow (tf: tf.function(jit_compile=True))
and Flax (flax: jax.jit); transformers' PyTorch generate (hf, the reference), its Flax generate under jax.jit
(hf-flax), its TF generate under XLA (hf-tf: legacy tf-keras, so in a subprocess, _generate_hf_tf.py) and KerasHub's
OPTCausalLM / BartSeq2SeqLM generate on the JAX backend (kerashub: a subprocess, _generate_kerashub.py; greedy and
beam samplers, token ids in, no preprocessor, no stop tokens). transformers' TF and Flax generate ignore
min_new_tokens, so they get the same exact length as min_length.

For each candidate the first call is timed on its own ("compile s": the first call minus the median steady call;
XLA compilation for the compiled ones), then all candidates are timed round-robin and the median of --repeats calls
is reported, with new tokens per second (batch x new tokens / median), the speed relative to transformers PyTorch
in the same case (its median seconds / the candidate's), and whether the ids equal transformers PyTorch's (float32
rows). A subprocess candidate takes its turn in the same round-robin: the main process sends it one request and
waits, so no two candidates ever run at once, and the subprocess times its own call (the pipe round trip left out).

At batch 1 the table gives the fraction of the memory-bandwidth bound: the bytes of weights one decoding step reads
(parameters x bytes per element; the tied embedding once, as the LM head reads it whole; embedding lookups read a row,
so position tables are left out, and for BART the encoder and the cross-attention key/value projections, which run
once per call, are left out too) x tokens per second / the read bandwidth measured at start.

A candidate that fails (to load, or in a case) is reported in its rows with the reason in the notes; the rest run.

    python benchmarks/generate.py [--repeats 5] [--models opt,bart] [--frameworks pt,tf,flax,hf,hf-flax,hf-tf,kerashub]
    python benchmarks/generate.py --layers 2 --hidden 64 --vocab 1000 --new-tokens 4   # a quick smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("USE_TF", "0")  # transformers' TF classes need legacy tf-keras: they run in a subprocess

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HF = "transformers PyTorch"
NAMES = {"pt": "ours PyTorch", "tf": "ours TensorFlow (XLA)", "flax": "ours Flax (jit)", "hf": HF,
         "hf-flax": "transformers Flax (jit)", "hf-tf": "transformers TF (XLA)", "kerashub": "KerasHub JAX (jit)"}
OURS = ("pt", "tf", "flax")
SUBPROCESS = {"hf-tf": "_generate_hf_tf.py", "kerashub": "_generate_kerashub.py"}
TRACEBACK_END = re.compile(r"^[A-Za-z_.]*(Error|Exception|Exit|Interrupt)\b")  # "ValueError: ..." ending a traceback
CLASSES = {"opt": "OPTForCausalLM", "bart": "BartForConditionalGeneration"}
PREFIX = {"pt": "", "tf": "TF", "flax": "Flax"}
# case: (dtype, batch, num_beams)
CASES = {
    "greedy b1": ("float32", 1, 1),
    "greedy b8": ("float32", 8, 1),
    "beam4 b1": ("float32", 1, 4),
    "greedy b1 bf16": ("bfloat16", 1, 1),
}


# -- the machine ------------------------------------------------------------------------------------------------------

def read_bandwidth(gib: float) -> dict:
    """GB/s reading a ``gib`` GiB float32 array, best of 5: numpy's sum (one thread) and torch's (all its threads)."""
    import torch

    array = np.ones(int(gib * 2**30) // 4, np.float32)
    tensor = torch.from_numpy(array)
    results = {}
    for name, reduce in (("numpy sum", array.sum), ("torch sum", tensor.sum)):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            reduce()
            best = min(best, time.perf_counter() - start)
        results[name] = array.nbytes / best / 1e9
    return results


# -- the models -------------------------------------------------------------------------------------------------------

def config_values(model: str, args) -> dict:
    hidden = args.hidden
    heads = 12 if hidden == 768 else max(1, hidden // 64)
    if model == "opt":
        return dict(vocab_size=args.vocab or 50272, hidden_size=hidden, num_hidden_layers=args.layers,
                    ffn_dim=4 * hidden, num_attention_heads=heads, max_position_embeddings=2048,
                    word_embed_proj_dim=hidden)
    half = max(1, args.layers // 2)
    return dict(vocab_size=args.vocab or 50265, d_model=hidden, encoder_layers=half, decoder_layers=half,
                encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * hidden,
                decoder_ffn_dim=4 * hidden, max_position_embeddings=1024)


def save_transformers_model(model: str, args, folder: str) -> int:
    """Saves the random transformers model to ``folder``; returns the parameters one decoding step reads."""
    import torch
    import transformers

    config = getattr(transformers, "OPTConfig" if model == "opt" else "BartConfig")(**config_values(model, args))
    torch.manual_seed(0)
    hf_model = getattr(transformers, CLASSES[model])(config).eval()
    hf_model.save_pretrained(folder, safe_serialization=True)
    return parameters_read_per_step(hf_model)


def parameters_read_per_step(hf_model) -> int:
    """Each distinct weight counted once (the tied embedding is the LM head), minus what a step reads a row of or
    does not read at all: position tables, BART's encoder and its cross-attention key/value projections."""
    names = {}
    for name, parameter in hf_model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), (parameter, []))[1].append(name)

    def per_step(name):
        return not ("embed_positions" in name or ".encoder." in name or "encoder_attn.k_proj" in name
                    or "encoder_attn.v_proj" in name)

    return sum(parameter.numel() for parameter, aliases in names.values() if any(map(per_step, aliases)))


def prompts(model: str, batch: int, args, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(batch)
    length = args.prompt_length if model == "opt" else args.source_length
    ids = rng.integers(3, vocab, size=(batch, length)).astype(np.int64)
    if model == "opt":
        ids[:, 0] = 2  # OPT's tokenizer starts a text with </s>
    else:
        ids[:, 0], ids[:, -1] = 0, 2  # <s> ... </s>
    return ids, np.ones_like(ids)


# -- the candidates: load once per dtype, then one call per case -----------------------------------------------------

class SubprocessError(Exception):
    """A failure reported by (or the end of) a subprocess candidate; the message is already "Type: reason"."""


class Subprocess:
    """A candidate in its own process (see _generate_worker.py), kept for the whole run, started on first use."""

    def __init__(self, framework: str):
        self.log = tempfile.TemporaryFile("w+")  # its stderr: library chatter, and the traceback if it dies
        self.process = subprocess.Popen([sys.executable, os.path.join(HERE, SUBPROCESS[framework])], cwd=HERE,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def request(self, **message) -> dict:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise SubprocessError(self.ended())
        reply = json.loads(line)
        if "error" in reply:
            raise SubprocessError(reply["error"])
        return reply

    def ended(self) -> str:
        """Why the process is gone: how it ended and, if it raised, the last line of its traceback."""
        code = self.process.wait(timeout=60)
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        self.log.seek(0)
        raised = [line.strip() for line in self.log.read().splitlines() if TRACEBACK_END.match(line)]
        return f"the subprocess ended ({how})" + (f": {raised[-1]}" if raised else "")

    def close(self) -> None:
        """Its input ends, so its loop does; killed if it has not exited within a minute."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def load(framework: str, model: str, folder: str, dtype: str, subprocesses: dict):
    if framework in SUBPROCESS:
        if framework not in subprocesses:
            subprocesses[framework] = Subprocess(framework)
        subprocesses[framework].request(op="load", model=model, folder=folder, dtype=dtype)
        return subprocesses[framework]
    if framework == "hf":
        import torch
        import transformers

        return getattr(transformers, CLASSES[model]).from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
    if framework == "hf-flax":
        import jax.numpy as jnp
        import transformers

        loaded = getattr(transformers, "Flax" + CLASSES[model]).from_pretrained(
            folder, from_pt=True, dtype=getattr(jnp, dtype))
        if dtype == "bfloat16":  # dtype sets the computation; the weights are cast separately
            loaded.params = loaded.to_bf16(loaded.params)
        return loaded
    import importlib

    package = importlib.import_module(f"rosettazoo.{model}")
    loaded = getattr(package, PREFIX[framework] + CLASSES[model]).from_pretrained(folder, dtype=dtype)
    return loaded.eval() if framework == "pt" else loaded


def generate_call(framework: str, loaded, model: str, ids: np.ndarray, mask: np.ndarray, settings: dict):
    """A no-argument call returning the ids as an int64 numpy array (the tensors are made once, outside it)."""
    if framework in ("pt", "hf"):
        import torch

        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        return lambda: loaded.generate(ids_t, attention_mask=mask_t, **settings).numpy()
    if framework == "tf":
        import tensorflow as tf

        ids_t, mask_t = tf.constant(ids.astype(np.int32)), tf.constant(mask.astype(np.int32))
        return lambda: loaded.generate(ids_t, attention_mask=mask_t, **settings).numpy().astype(np.int64)
    ids_j, mask_j = ids.astype(np.int32), mask.astype(np.int32)
    if framework == "hf-flax":
        import jax

        flax_settings = exact_length_settings(model, ids, settings)
        generate = jax.jit(lambda params, i, m: loaded.generate(i, attention_mask=m, params=params,
                                                                **flax_settings).sequences)
        return lambda: np.asarray(generate(loaded.params, ids_j, mask_j)).astype(np.int64)
    return lambda: np.asarray(loaded.generate(ids_j, attention_mask=mask_j, **settings).sequences).astype(np.int64)


def exact_length_settings(model: str, ids: np.ndarray, settings: dict) -> dict:
    """transformers' Flax (and TF) generate ignore min_new_tokens: the same length as min_length, which counts the
    prompt (OPT) or the decoder start token (BART)."""
    exact = {key: value for key, value in settings.items() if key != "min_new_tokens"}
    exact["min_length"] = (ids.shape[1] if model == "opt" else 1) + settings["min_new_tokens"]
    return exact


def timed_call(call) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    output = call()
    return time.perf_counter() - start, output


def candidate_calls(framework: str, loaded, model: str, ids: np.ndarray, mask: np.ndarray, settings: dict):
    """(the first call -> (seconds, ids), one more call -> seconds). A subprocess times its calls itself."""
    if framework in SUBPROCESS:
        def first():
            reply = loaded.request(op="prepare", model=model, ids=ids.tolist(), mask=mask.tolist(),
                                   new_tokens=settings["max_new_tokens"], beams=settings["num_beams"])
            return reply["first"], np.asarray(reply["ids"], np.int64)

        return first, lambda: loaded.request(op="time")["seconds"]
    call = generate_call(framework, loaded, model, ids, mask, settings)
    return lambda: timed_call(call), lambda: timed_call(call)[0]


def interleaved_medians(calls: dict, repeats: int, failures: dict) -> dict:
    """Median seconds of each call (a call returns its own seconds), timed round-robin after two warm-up rounds, so
    that drift in machine load touches all candidates alike. A call that raises leaves, its error in ``failures``."""
    seconds = {name: [] for name in calls}
    for round_index in range(2 + repeats):
        for name in list(seconds):
            try:
                value = calls[name]()
            except Exception as err:
                failures[name] = err
                del seconds[name]
                continue
            if round_index >= 2:
                seconds[name].append(value)
    return {name: statistics.median(values) for name, values in seconds.items()}


def run_case(loaded: dict, model: str, case: str, args, vocab: int) -> dict:
    """{name: (first-call seconds, median seconds, ids)} or {name: exception}, for one case."""
    dtype, batch, beams = CASES[case]
    ids, mask = prompts(model, batch, args, vocab)
    settings = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, num_beams=beams,
                    do_sample=False)
    calls, first, outputs, results = {}, {}, {}, {}
    for framework, instance in loaded.items():
        name = NAMES[framework]
        if isinstance(instance, Exception):
            results[name] = instance
            continue
        try:
            first_call, calls[name] = candidate_calls(framework, instance, model, ids, mask, settings)
            first[name], outputs[name] = first_call()  # XLA compilation for the compiled candidates
        except Exception as err:  # a candidate that cannot run is reported, not hidden
            calls.pop(name, None)
            results[name] = err
    for name, median in interleaved_medians(calls, args.repeats, results).items():
        results[name] = (first[name], median, outputs[name])
    return results


# -- the report -------------------------------------------------------------------------------------------------------

def table_rows(model: str, case: str, results: dict, args, params_per_step: int, bandwidth: float,
               notes: list) -> list[str]:
    """The rows of one case; a failure's reason is appended to ``notes`` (once) and the row points to it."""
    dtype, batch, _ = CASES[case]
    reference = results.get(HF)
    reference = reference if isinstance(reference, tuple) else None
    rows = []
    for name in [NAMES[f] for f in NAMES if NAMES[f] in results]:
        value = results[name]
        if isinstance(value, Exception):
            note = f"{name}: {failure_reason(value)}"
            if note not in notes:
                notes.append(note)
            rows.append(f"| {model} | {case} | {name} | failed (note {notes.index(note) + 1}) | | | | | |")
            continue
        first, median, ids = value
        tokens_per_second = batch * args.new_tokens / median
        ratio = f"{reference[1] / median:.2f}x" if reference else "n/a"
        if batch == 1:
            bytes_per_token = params_per_step * (2 if dtype == "bfloat16" else 4)
            bound = f"{100 * bytes_per_token * tokens_per_second / (bandwidth * 1e9):.1f}%"
        else:
            bound = ""
        compared = name != HF and reference is not None and dtype == "float32"
        same = ids_agreement(ids, reference[2], args.new_tokens) if compared else "-"
        rows.append(f"| {model} | {case} | {name} | {max(first - median, 0.0):.2f} | {median:.4f} | "
                    f"{tokens_per_second:.1f} | {ratio} | {bound} | {same} |")
    return rows


def failure_reason(error: Exception) -> str:
    """One line. TF's graph errors put the reason on their last line, after the user-code trace; other messages
    put it on their first."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    line = lines[-1] if lines[0] == "in user code:" or ": in user code:" in lines[0] else lines[0]
    return line if isinstance(error, SubprocessError) else f"{type(error).__name__}: {line}"


def ids_agreement(ids: np.ndarray, reference: np.ndarray, new_tokens: int) -> str:
    """"yes", or "no" with the first new token (1-based, earliest in the batch) where they differ."""
    if ids.shape != reference.shape:
        return f"no (shape {ids.shape} vs {reference.shape})"
    columns = np.flatnonzero((ids != reference).any(axis=0))
    if columns.size == 0:
        return "yes"
    return f"no (from new token {columns[0] - (ids.shape[1] - new_tokens) + 1})"


def summary(results: dict, full_size: bool) -> list[str]:
    """One line per target (ours only): the speed ratios (float32) and the compile seconds they rest on."""
    ours = {NAMES[framework] for framework in OURS}

    def ratios(cases):
        found = []
        for (model, case), by_name in results.items():
            reference = by_name.get(HF)
            if case not in cases or not isinstance(reference, tuple):
                continue
            for name, value in by_name.items():
                if name in ours and isinstance(value, tuple):
                    found.append((f"{model} {case} {name.removeprefix('ours ')}", reference[1] / value[1]))
        return found

    lines = []
    for label, cases, target in (("greedy batch 1 >= 1.2x transformers", ("greedy b1",), 1.2),
                                 ("greedy batch 8 and beam 4 >= 1.5x transformers", ("greedy b8", "beam4 b1"), 1.5)):
        found = ratios(cases)
        missed = [f"{what} {ratio:.2f}x" for what, ratio in found if ratio < target]
        if not found:
            lines.append(f"- {label}: no data")
            continue
        verdict = "met" if not missed else f"missed by {len(missed)} of {len(found)}"
        lines.append(f"- {label}: {verdict} (worst {min(r for _, r in found):.2f}x)"
                     + (f"; below: {', '.join(missed)}" if missed else ""))
    compiles = [(f"{case} {name.removeprefix('ours ')}", value[0] - value[1])
                for (model, case), by_name in results.items() if model == "opt"
                for name, value in by_name.items()
                if name in ours and isinstance(value, tuple) and ("XLA" in name or "jit" in name)]
    slow = [f"{what} {seconds:.1f} s" for what, seconds in compiles if seconds >= 30]
    shape = "" if full_size else " (shapes shrunk: not the OPT-125m shape)"
    if not compiles:
        lines.append(f"- compile < 30 s for OPT{shape}: no data")
    else:
        verdict = "met" if not slow else f"missed: {', '.join(slow)}"
        lines.append(f"- compile < 30 s for OPT{shape}: {verdict} (worst {max(s for _, s in compiles):.1f} s)")
    return lines


def standing_notes(frameworks: list, dtypes: set) -> list[str]:
    """What a reader needs to read the rows of the candidates that are not ours."""
    notes = []
    if "hf-tf" in frameworks or "kerashub" in frameworks:
        notes.append("transformers TF and KerasHub run in subprocesses, each taking its turn in the round-robin (the "
                     "main process waits); they time their own calls, and the ratio is transformers PyTorch's median "
                     "in the same round-robin / theirs.")
    if "hf-tf" in frameworks or "hf-flax" in frameworks:
        notes.append("transformers TF and Flax generate ignore min_new_tokens: they get the same exact length as "
                     "min_length.")
    if "hf-tf" in frameworks and "bfloat16" in dtypes:
        notes.append("transformers TF in bfloat16: its eos logits processors cannot be traced on bfloat16 logits "
                     "(TypeError: Input 'e' of 'SelectV2' Op has type bfloat16 that does not match type float32), so "
                     "eos is switched off in its generation config (exactly the same number of steps).")
    if "kerashub" in frameworks:
        notes.append("KerasHub: same weights (BART by KerasHub's own transformers converter, OPT by a name map), "
                     "token ids in, stop_token_ids=None. Its samplers apply no logits processors: it may choose eos "
                     "where min_length makes transformers choose another token, and it does not force BART's final "
                     "eos (forced_eos_token_id), so its ids can differ from transformers' where those rules act.")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="opt,bart")
    parser.add_argument("--frameworks", default=",".join(NAMES),
                        help="of " + ", ".join(f"{key} ({name})" for key, name in NAMES.items()))
    parser.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--layers", type=int, default=12, help="OPT's layers; BART has half in each stack")
    parser.add_argument("--hidden", type=int, default=768, help="ffn is 4x; 12 heads at 768, else hidden / 64")
    parser.add_argument("--vocab", type=int, default=None, help="default 50272 (OPT) and 50265 (BART)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--source-length", type=int, default=128)
    parser.add_argument("--bandwidth-gib", type=float, default=1.0)
    args = parser.parse_args()
    models = args.models.split(",")
    frameworks = [f for f in NAMES if f in args.frameworks.split(",")]
    cases = args.cases.split(",")
    for unknown in set(models) - set(CLASSES) | set(cases) - set(CASES) | set(args.frameworks.split(",")) - set(NAMES):
        parser.error(f"unknown model, case or framework: {unknown}")
    full_size = (args.layers, args.hidden, args.vocab, args.new_tokens) == (12, 768, None, 32)

    import torch

    bandwidth = read_bandwidth(args.bandwidth_gib)
    best_bandwidth = max(bandwidth.values())
    results, params_per_step, subprocesses, started = {}, {}, {}, time.perf_counter()
    try:
        for model in models:
            vocab = config_values(model, args)["vocab_size"]
            with tempfile.TemporaryDirectory() as folder:
                params_per_step[model] = save_transformers_model(model, args, folder)
                for dtype in dict.fromkeys(CASES[case][0] for case in cases):
                    loaded = {}
                    for framework in frameworks:
                        try:
                            loaded[framework] = load(framework, model, folder, dtype, subprocesses)
                        except Exception as err:  # reported in each of its rows
                            loaded[framework] = err
                    for case in cases:
                        if CASES[case][0] == dtype:
                            results[(model, case)] = run_case(loaded, model, case, args, vocab)
                            print(f"{model} {case} done at {time.perf_counter() - started:.0f} s", file=sys.stderr)
                    loaded.clear()
                    gc.collect()
    finally:
        for running in subprocesses.values():
            running.close()
    elapsed = time.perf_counter() - started

    print(f"generate: {args.new_tokens} new tokens (min = max), OPT prompt {args.prompt_length} tokens, BART source "
          f"{args.source_length} tokens; {args.layers} layers x {args.hidden} (BART {max(1, args.layers // 2)} + "
          f"{max(1, args.layers // 2)}); median of {args.repeats} runs, timed round-robin; "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores; {elapsed:.0f} s")
    print(f"memory read bandwidth ({args.bandwidth_gib:g} GiB float32, best of 5): "
          + ", ".join(f"{name} {value:.1f} GB/s" for name, value in bandwidth.items())
          + f"; the bound uses {best_bandwidth:.1f} GB/s")
    print("weights read per decoding step: " + ", ".join(
        f"{model} {count / 1e6:.1f}M parameters" for model, count in params_per_step.items()))
    print()
    print("| model | case | implementation | compile s | median s | new tok/s | vs transformers | "
          "% of bandwidth bound | ids = transformers |")
    print("|---|---|---|---:|---:|---:|---:|---:|:---:|")
    notes = []
    for (model, case), by_name in results.items():
        for row in table_rows(model, case, by_name, args, params_per_step[model], best_bandwidth, notes):
            print(row)
    print()
    print("Notes:")
    for number, note in enumerate(notes + standing_notes(frameworks, {CASES[case][0] for case in cases}), start=1):
        print(f"{number}. {note}")
    print()
    print("Targets (float32; ratio = transformers' median seconds / ours):")
    for line in summary(results, full_size):
        print(line)


if __name__ == "__main__":
    main()
