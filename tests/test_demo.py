"""``rosettazoo demo``: runs end to end (in a fresh process, as a user runs it), says whether the frameworks' token
ids agree (and says so loudly when they do not), keeps the frameworks' banners off the terminal, and skips a
framework that is not installed with a note.

The demo runs on the bundled models when the package holds them, and otherwise on tiny random stand-ins built here
(``tiny_bundle``) in the same layout."""

import dataclasses
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import rosettazoo.bundled as bundled
from rosettazoo import demo, tasks
from tests import tiny_bundle

pytest.importorskip("torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    """The package's models folder when it holds the three bundled models; else a folder of tiny stand-ins."""
    if sorted(bundled.bundled_names()) == sorted(tiny_bundle.NAMES):
        return None
    return tiny_bundle.build(str(tmp_path_factory.mktemp("bundle")))


def run_demo_process(models_root, frameworks: str) -> subprocess.CompletedProcess:
    """``rosettazoo demo --frameworks ...`` in a new Python, with no log settings of ours in its environment."""
    redirect = f"import rosettazoo.bundled as b; b.models_folder = lambda: {models_root!r}; " if models_root else ""
    code = f"{redirect}from rosettazoo.conversion.cli import main; raise SystemExit(main(['demo', '--frameworks', " \
           f"{frameworks!r}]))"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TF_CPP", "PYTEST"))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_demo_in_pytorch_and_flax_agrees_and_keeps_the_terminal_clean(models_root):
    if not tasks.is_installed("flax"):
        pytest.skip("Flax is not installed")
    done = run_demo_process(models_root, "pt,flax")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for header in ("OPT (rosettazoo/opt-wordnet) continues a prompt", "RoBERTa (rosettazoo/roberta-wordnet) fills <mask>",
                   "BART (rosettazoo/bart-wordnet) writes out a text whose <mask> stands for missing words",
                   "tokens/s (OPT greedy"):
        assert header in out
    assert out.count("same token ids in PyTorch and Flax: yes") == 3, out
    assert "DIFFER" not in out
    for prompt in demo.PROMPTS:  # OPT's texts start with their prompt
        assert f"\n    {prompt}" in out
    for text in demo.INFILL_TEXTS:
        assert f"\n    {text} -> " in out
    # stderr holds the progress lines and nothing else: no banners, warnings or log lines of the frameworks.
    assert [line for line in done.stderr.splitlines() if not line.startswith("demo: ")] == []
    assert "demo: importing Flax ..." in done.stderr


def test_tensorflow_import_prints_nothing():
    if not tasks.is_installed("tf"):
        pytest.skip("TensorFlow is not installed")
    code = "from rosettazoo import demo\nwith demo.quiet_frameworks():\n    print(demo.import_framework('tf'))"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TF_CPP", "PYTEST"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("TensorFlow "), done.stderr
    assert done.stderr == ""


def test_a_framework_that_is_not_installed_is_skipped_with_a_note(models_root, monkeypatch, capsys):
    if models_root:
        monkeypatch.setattr(bundled, "models_folder", lambda: models_root)
    monkeypatch.setattr(tasks, "is_installed", lambda framework: framework == "pt")
    from rosettazoo.conversion.cli import main

    assert main(["demo", "--frameworks", "pt,tf"]) == 0
    captured = capsys.readouterr()
    assert '(TensorFlow is not installed, so it was skipped: pip install "rosettazoo[tf]")' in captured.out
    assert "(one framework run: PyTorch; nothing to compare)" in captured.out
    assert captured.err.splitlines()[0] == "demo: importing PyTorch ..."  # not a terminal: one line per update
    assert main(["demo", "--frameworks", "tf"]) == 2
    assert "none of the frameworks asked for is installed" in capsys.readouterr().err
    assert main(["demo", "--frameworks", "pt,mxnet"]) == 2
    assert "--frameworks takes a comma-separated subset of pt, tf, flax, got 'pt,mxnet'" in capsys.readouterr().err


def _generated(sequences) -> tasks.Generated:
    return tasks.Generated(np.zeros((1, 1), np.int64), np.array(sequences))


def test_differing_ids_are_reported_not_hidden():
    runs = [demo.FrameworkRun(framework, framework, 0.0, greedy=_generated([[1, 5, 6]])) for framework in ("pt", "tf",
                                                                                                            "flax")]
    ids = lambda run: run.greedy.sequences  # noqa: E731
    assert demo._agreement(runs, ids) == "  same token ids in PyTorch, TensorFlow and Flax: yes"
    runs[2] = dataclasses.replace(runs[2], greedy=_generated([[1, 5, 7]]))
    assert demo._agreement(runs, ids).startswith("  token ids DIFFER: Flax differs from PyTorch")
    shown = demo._texts_by_framework(runs, lambda run: [str(run.greedy.sequences[0, -1])])
    assert shown == [(" [PyTorch]", ["6"]), (" [Flax]", ["7"])]


def test_progress_rewrites_one_line_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(demo.shutil, "get_terminal_size", lambda: os.terminal_size((20, 24)))
    stream = Terminal()
    progress = demo.Progress(stream)
    progress.show("demo: one")
    progress.update("pt", "two")
    progress.update("flax", "three")  # both frameworks' parts, cut to the terminal's width
    progress.clear()
    assert stream.getvalue() == ("\r\x1b[Kdemo: one\r\x1b[Kdemo: PyTorch: two\r\x1b[Kdemo: PyTorch: t...\r\x1b[K")
    monkeypatch.setattr(demo.shutil, "get_terminal_size", lambda: os.terminal_size((80, 24)))
    progress.update("flax", "four")
    assert stream.getvalue().endswith("\r\x1b[Kdemo: PyTorch: two | Flax: four")


def test_mask_candidates_quote_tokens_that_would_read_alike():
    candidates = [tasks.Prediction(score, token, text, "") for score, token, text in
                  [(0.5, 1, " a"), (0.25, 2, "a"), (0.125, 3, " dog"), (0.0625, 4, " ")]]
    assert demo._mask_candidates([candidates]) == ["' a' 0.500", "'a' 0.250", "dog 0.125", "' ' 0.062"]
