"""The three fine-tuning examples run a few steps in each framework on a tiny model, save checkpoints that load,
and resume from them."""

import json
import os

import numpy as np
import pytest

from tests.examples import TINY, example

# Every script in PyTorch; TF's fit and Flax's sharded step once each (the engines are shared by the scripts, and
# each TF or Flax run costs 20-70 s of compiling on 2 cores).
RUNS = [("train_classification", "accuracy", "pt"), ("train_causal_lm", "perplexity", "pt"),
        ("train_seq2seq", "exact_match", "pt"), ("train_classification", "accuracy", "tf"),
        ("train_causal_lm", "perplexity", "flax")]


@pytest.mark.parametrize("script, metric, framework", RUNS)
def test_example_trains_saves_and_resumes(script, metric, framework, tmp_path, capsys):
    module = example(script)
    out = str(tmp_path / "run")
    first = module.main(["--framework", framework, "--output-dir", out, "--steps", "2", "--eval-every", "2", *TINY])
    assert np.isfinite(first["train_loss"]) and metric in first
    resumed = module.main(["--framework", framework, "--output-dir", out, "--steps", "3", "--eval-every", "1",
                           "--resume", *TINY])
    printed = capsys.readouterr()
    assert "resumed from" in printed.out + printed.err
    assert f"final {metric}:" in printed.out + printed.err
    assert np.isfinite(resumed["train_loss"])
    with open(os.path.join(out, "checkpoint-3", "trainer_state.json")) as f:
        assert json.load(f)["step"] == 3
    # The checkpoint is a complete model folder: the framework's class loads it, the tokenizer too.
    classes = module.CLASSES
    model = classes[framework].from_pretrained(os.path.join(out, "checkpoint-3"))
    assert model is not None
    assert os.path.exists(os.path.join(out, "checkpoint-3", "vocab.json"))


def test_classification_loss_falls_in_pytorch(tmp_path):
    module = example("train_classification")
    # A constant rate: the first run's schedule would end at 0 on its --steps 10.
    args = ["--framework", "pt", "--output-dir", str(tmp_path), "--learning-rate", "3e-3", "--decay", "none",
            "--eval-every", "10", *TINY]
    metrics = [module.main([*args, "--steps", str(steps), *(["--resume"] if steps > 10 else [])])
               for steps in (10, 40)]
    assert metrics[1]["train_loss"] < metrics[0]["train_loss"] - 0.3


def test_flags_of_another_framework_are_refused(tmp_path):
    module = example("train_causal_lm")
    with pytest.raises(SystemExit, match="--ddp is for pt"):
        module.main(["--framework", "flax", "--ddp", "--output-dir", str(tmp_path), *TINY])
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        module.main(["--framework", "pt", "--resume", "--output-dir", str(tmp_path), *TINY])
