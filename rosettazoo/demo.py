"""``rosettazoo demo``: the bundled models at work in PyTorch, TensorFlow and Flax, and proof that the three agree.

OPT continues prompts (greedy, and sampled with one seed in every framework), RoBERTa fills <mask> (top 5 with
probabilities), BART rewrites a text whose <mask> stands for missing words (its pretraining task). Every
framework's token ids are compared with the first framework's, and the table says whether they are the same;
tokens per second come from a second, already compiled OPT greedy call. The frameworks' own log banners and
warnings are kept off the terminal (only while the demo runs), and a progress line on stderr says what is loading.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from . import tasks

OPT, ROBERTA, BART = "rosettazoo/opt-wordnet", "rosettazoo/roberta-wordnet", "rosettazoo/bart-wordnet"
PROMPTS = ("dog:", "house:", "music:")
MASKED_TEXTS = ("the act of <mask> something", "a small <mask> of bread")
INFILL_TEXTS = ("a domesticated <mask> mammal", "a building where <mask>", "a young <mask>")
NEW_TOKENS = 24  # with the prompts' bucket, one compiled program per setting in TF and Flax
INFILL_TOKENS = 24
SEED = 0
SAMPLING = {"do_sample": True, "top_k": 50, "temperature": 0.8}
GREEDY = {"do_sample": False, "num_beams": 1}
TOP_K = 5
# The modules each framework's import brings in: imported up front, with the C++ banners they print discarded.
FRAMEWORK_MODULES = {"pt": ("torch",), "tf": ("tensorflow", "keras"), "flax": ("jax", "flax")}
QUIET_MODULES = r"(tensorflow|keras|tf_keras|jax|jaxlib|flax|optax|absl|google\.protobuf|torch)(\.|$)"


class Progress:
    """One status line on ``stream``: rewritten in place on a terminal, one line per update otherwise. Frameworks
    that run side by side each keep their part of the line (``update``)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.in_place = stream.isatty()
        self._parts: dict[str, str] = {}
        self._lock = threading.Lock()

    def show(self, text: str) -> None:
        if self.in_place:  # cut to the terminal's width: a wrapped line could not be rewritten in place
            width = shutil.get_terminal_size().columns - 1
            text = text if len(text) <= width else text[:width - 3] + "..."
        with self._lock:
            self.stream.write(f"\r\x1b[K{text}" if self.in_place else f"{text}\n")
            self.stream.flush()

    def update(self, framework: str, text: str) -> None:
        """Set what ``framework`` is doing, and show every running framework's part."""
        with self._lock:
            self._parts[framework] = f"{tasks.framework_name(framework)}: {text}"
            parts = " | ".join(self._parts.values()) if self.in_place else self._parts[framework]
        self.show(f"demo: {parts}")

    def clear(self) -> None:
        if self.in_place:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


@contextlib.contextmanager
def quiet_frameworks():
    """While the demo runs: TensorFlow/XLA's C++ logs off (unless the user set TF_CPP_MIN_LOG_LEVEL), and the
    frameworks' Python warnings and absl log lines hidden. Everything is restored afterwards."""
    users_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    absl_logging = sys.modules.get("absl.logging")
    absl_level = absl_logging.get_verbosity() if absl_logging else None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=QUIET_MODULES)
            yield
    finally:
        if users_level is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        absl_logging = sys.modules.get("absl.logging")
        if absl_logging is not None:
            absl_logging.set_verbosity(absl_level if absl_level is not None else absl_logging.WARNING)  # its default


@contextlib.contextmanager
def native_stderr_discarded():
    """Send what C and C++ code write to file descriptor 2 to a temporary file (TensorFlow prints banners there
    before its log level applies); if the block fails, the captured text is written back for the traceback."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def one_torch_thread():
    """PyTorch on one thread while the demo runs: its matrices are tiny, and two intra-op threads wait on each
    other whenever the CPU is busy (the other frameworks compile beside PyTorch), each operation then taking
    milliseconds instead of microseconds."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def import_framework(framework: str) -> str:
    """Import the framework's modules quietly; returns its name and version for the report."""
    with native_stderr_discarded():
        modules = [importlib.import_module(name) for name in FRAMEWORK_MODULES[framework]]
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:  # TensorFlow and JAX log through absl (restored by quiet_frameworks)
        absl_logging.set_verbosity(absl_logging.ERROR)
    if framework == "flax":
        return f"Flax {modules[1].__version__} (JAX {modules[0].__version__})"
    return f"{tasks.framework_name(framework)} {modules[0].__version__}"


@dataclass
class FrameworkRun:
    """What one framework produced, and how long it took."""

    framework: str
    version: str
    import_seconds: float
    load_seconds: float = 0.0
    first_call_seconds: float = 0.0  # the first call of each task, compiling where the framework compiles
    tokens_per_second: float = 0.0
    greedy: tasks.Generated | None = None
    sampled: tasks.Generated | None = None
    masks: list[list[list[tasks.Prediction]]] = field(default_factory=list)
    infilled: tasks.Generated | None = None


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def load_models(framework: str) -> dict[str, tasks.Loaded]:
    return {OPT: tasks.load(OPT, "generate", framework), ROBERTA: tasks.load(ROBERTA, "fill-mask", framework),
            BART: tasks.load(BART, "generate", framework)}


COMPILING = {"pt": "running", "tf": "compiling (XLA)", "flax": "compiling (jit)"}


def first_calls(run: FrameworkRun, models: dict[str, tasks.Loaded], progress: Progress) -> None:
    """Every task once (compiling where the framework compiles), its results kept in ``run``."""
    def say(text):
        progress.update(run.framework, f"{COMPILING[run.framework]} {text} ...")

    start = time.perf_counter()
    say("OPT greedy")
    run.greedy = tasks.generate(models[OPT], list(PROMPTS), max_new_tokens=NEW_TOKENS, **GREEDY)
    say("OPT sampling")
    run.sampled = tasks.generate(models[OPT], list(PROMPTS), max_new_tokens=NEW_TOKENS, seed=SEED, **SAMPLING)
    say("RoBERTa")
    run.masks = tasks.fill_mask(models[ROBERTA], list(MASKED_TEXTS), TOP_K)
    say("BART")
    run.infilled = tasks.generate(models[BART], list(INFILL_TEXTS), max_new_tokens=INFILL_TOKENS, **GREEDY)
    run.first_call_seconds = time.perf_counter() - start
    progress.update(run.framework, "done")


def measure_speed(run: FrameworkRun, models: dict[str, tasks.Loaded]) -> None:
    """OPT greedy again, compiled now: decoding steps (rows x new columns) per second."""
    again, seconds = _timed(lambda: tasks.generate(models[OPT], list(PROMPTS), max_new_tokens=NEW_TOKENS, **GREEDY))
    run.tokens_per_second = again.sequences.shape[0] * (again.sequences.shape[1] - again.prompt_ids.shape[1]) / seconds


def run_frameworks(frameworks: list[str], progress: Progress) -> tuple[list[FrameworkRun], dict]:
    """Import and load one framework after another; then run their first calls side by side (compilation is
    mostly single-threaded: on two cores, TensorFlow on this thread and the others on a second one take about
    the time of the slowest); then time each alone."""
    runs, models = [], {}
    with contextlib.ExitStack() as restore:
        for framework in frameworks:
            name = tasks.framework_name(framework)
            progress.show(f"demo: importing {name} ...")
            version, seconds = _timed(lambda framework=framework: import_framework(framework))
            if framework == "pt":
                restore.enter_context(one_torch_thread())
            runs.append(FrameworkRun(framework, version, seconds))
            progress.show(f"demo: {name}: loading the bundled models ...")
            models[framework], runs[-1].load_seconds = _timed(lambda framework=framework: load_models(framework))
        # Keras keeps some state per thread, so TensorFlow stays on the thread that built its models.
        beside = [run for run in runs if run.framework != "tf"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            others = pool.submit(lambda: [first_calls(run, models[run.framework], progress) for run in beside])
            for run in runs:
                if run.framework == "tf":
                    first_calls(run, models["tf"], progress)
            others.result()
        for run in runs:
            progress.show(f"demo: {tasks.framework_name(run.framework)}: timing OPT greedy ...")
            measure_speed(run, models[run.framework])
    return runs, models


# ---------------------------------------------------------------------------------------------------- the report


def _differences(runs: list[FrameworkRun], ids) -> list[str]:
    """The frameworks whose ids (``ids(run)``, an array) differ from the first framework's."""
    reference = ids(runs[0])
    return [tasks.framework_name(run.framework) for run in runs[1:] if not np.array_equal(ids(run), reference)]


def _agreement(runs: list[FrameworkRun], ids, extra: str = "") -> str:
    names = [tasks.framework_name(run.framework) for run in runs]
    if len(runs) == 1:
        return f"  (one framework run: {names[0]}; nothing to compare)"
    differ = _differences(runs, ids)
    if differ:
        return (f"  token ids DIFFER: {', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'} from "
                f"{names[0]} (each framework's output is shown above)")
    return f"  same token ids in {', '.join(names[:-1])} and {names[-1]}: yes{extra}"


def _texts_by_framework(runs, texts) -> list[tuple[str, list[str]]]:
    """(label, texts) for the first framework, then for each framework whose texts differ from it."""
    first = texts(runs[0])
    shown = [("", first)]
    for run in runs[1:]:
        if texts(run) != first:
            shown.append((f" [{tasks.framework_name(run.framework)}]", texts(run)))
    if len(shown) > 1:
        shown[0] = (f" [{tasks.framework_name(runs[0].framework)}]", first)
    return shown


def _generation_section(title: str, runs, models, key: str, inputs) -> list[str]:
    """The generated texts: a causal LM's with its prompt, a sequence-to-sequence model's after its input."""
    def texts(run):
        return tasks.decode_generated(models[run.framework], getattr(run, key))

    lines = [f"  {title}"]
    for label, rows in _texts_by_framework(runs, texts):
        for source, text in zip(inputs, rows):
            seq2seq = models[runs[0].framework].is_encoder_decoder
            lines.append(f"    {source}{label} -> {text.strip()}" if seq2seq else f"    {text}{label}")
    return lines


def report(runs: list[FrameworkRun], models: dict[str, dict[str, tasks.Loaded]], notes: list[str]) -> str:
    names = [run.version for run in runs]
    lines = [f"rosettazoo demo: models trained on WordNet glosses, run in {', '.join(names)}", *notes, ""]
    opt = {run.framework: models[run.framework][OPT] for run in runs}
    lines.append(f"OPT ({OPT}) continues a prompt, {NEW_TOKENS} new tokens at most:")
    lines += _generation_section("greedy:", runs, opt, "greedy", PROMPTS)
    settings = ", ".join(f"{k}={v}" for k, v in SAMPLING.items() if k != "do_sample")
    lines += _generation_section(f"sampled (seed={SEED}, {settings}):", runs, opt, "sampled", PROMPTS)
    lines.append(_agreement(runs, lambda run: np.concatenate([run.greedy.sequences.ravel(),
                                                             run.sampled.sequences.ravel()])))
    lines += ["", f"RoBERTa ({ROBERTA}) fills <mask>, top {TOP_K} with probabilities:"]
    for index, text in enumerate(MASKED_TEXTS):
        lines.append(f"  {text}")
        for label, rows in _texts_by_framework(runs, lambda run, index=index: _mask_candidates(run.masks[index])):
            lines.append(f"   {label} " + "   ".join(rows))
    spread = max((abs(a.score - b.score) for run in runs[1:] for masks_a, masks_b in zip(runs[0].masks, run.masks)
                  for cand_a, cand_b in zip(masks_a, masks_b) for a, b in zip(cand_a, cand_b)), default=0.0)
    lines.append(_agreement(runs, lambda run: np.array([p.token for masks in run.masks for cand in masks for p in cand]),
                            f" (probabilities within {spread:.0e})" if len(runs) > 1 else ""))
    bart = {run.framework: models[run.framework][BART] for run in runs}
    lines += ["", f"BART ({BART}) writes out a text whose <mask> stands for missing words:"]
    lines += _generation_section("greedy:", runs, bart, "infilled", INFILL_TEXTS)
    lines.append(_agreement(runs, lambda run: run.infilled.sequences))
    lines += ["", *_timing_table(runs)]
    return "\n".join(lines)


def _mask_candidates(masks: list[list[tasks.Prediction]]) -> list[str]:
    """"token probability" for each candidate: the token's text without its leading space, or quoted when that
    would hide a difference (" a" and "a") or leave nothing."""
    shown = []
    for candidates in masks:
        bare = [p.token_str.strip() for p in candidates]
        for p, text in zip(candidates, bare):
            shown.append(f"{text if text and bare.count(text) == 1 else repr(p.token_str)} {p.score:.3f}")
    return shown


def _timing_table(runs: list[FrameworkRun]) -> list[str]:
    rows = [("", [tasks.framework_name(run.framework) for run in runs]),
            ("import (s)", [f"{run.import_seconds:.1f}" for run in runs]),
            ("load 3 models (s)", [f"{run.load_seconds:.1f}" for run in runs]),
            ("first calls (s)", [f"{run.first_call_seconds:.1f}" for run in runs]),
            (f"tokens/s (OPT greedy, batch {len(PROMPTS)})", [f"{run.tokens_per_second:,.0f}" for run in runs])]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  " + "  ".join(f"{cell:>10}" for cell in cells) for label, cells in rows]
    return [*lines, "(first calls: OPT greedy and sampled, RoBERTa and BART, including TensorFlow's XLA and Flax's jit "
            "compilation, with TensorFlow running beside the others; tokens/s: OPT greedy again, compiled, alone)"]


def run(frameworks: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> list[FrameworkRun]:
    """Run the demo in ``frameworks`` (those not installed are skipped with a note) and print its report."""
    progress = Progress(err)
    start = time.perf_counter()
    notes = []
    for framework in frameworks:
        if not tasks.is_installed(framework):
            name, _, extra = tasks.FRAMEWORKS[framework]
            notes.append(f"({name} is not installed, so it was skipped: pip install \"rosettazoo[{extra}]\")")
    installed = [framework for framework in frameworks if tasks.is_installed(framework)]
    if not installed:
        raise ImportError("none of the frameworks asked for is installed: " + " ".join(notes))
    with quiet_frameworks():
        runs, models = run_frameworks(installed, progress)
    progress.clear()
    out.write(report(runs, models, notes) + f"\ntotal: {time.perf_counter() - start:.1f} s\n")
    out.flush()
    return runs
