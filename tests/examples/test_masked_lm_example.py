"""examples/train_masked_lm.py: its masking follows transformers' 80/10/10 recipe and is reproducible, its loss
falls in PyTorch, and a Flax run saves a checkpoint that resumes and loads."""

import os

import numpy as np
import pytest

from tests.examples import TINY, example


def test_masking_follows_the_80_10_10_recipe_and_spares_special_tokens():
    mlm = example("train_masked_lm")
    ids = np.random.default_rng(0).integers(5, 100, (400, 50)).astype(np.int32)
    ids[:, 0], ids[:, -10:] = 0, 1  # <s> and padding are never chosen
    batch = {"input_ids": ids, "attention_mask": (ids != 1).astype(np.int32)}
    out = mlm.mask_tokens(batch, np.random.default_rng(1), mask_token_id=4, vocab_size=100, special_ids=[0, 1, 2, 3, 4])
    chosen = out["labels"] != -100
    np.testing.assert_array_equal(out["labels"][chosen], ids[chosen])
    assert not chosen[:, 0].any() and not chosen[:, -10:].any()
    assert abs(chosen[:, 1:-10].mean() - 0.15) < 0.01
    as_mask = (out["input_ids"] == 4)[chosen].mean()
    kept = (out["input_ids"] == ids)[chosen].mean()
    assert abs(as_mask - 0.8) < 0.02 and 0.08 < kept < 0.13  # random draws equal to the original count as kept
    np.testing.assert_array_equal(out["input_ids"][~chosen], ids[~chosen])
    np.testing.assert_array_equal(out["attention_mask"], batch["attention_mask"])
    again = mlm.mask_tokens(batch, np.random.default_rng(1), 4, 100, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(again["input_ids"], out["input_ids"])


def test_loss_falls_in_pytorch_and_the_log_holds_each_step_once(tmp_path):
    mlm, finetuning = example("train_masked_lm"), example("finetuning")
    args = ["--framework", "pt", "--output-dir", str(tmp_path), "--learning-rate", "3e-3", "--eval-every", "10",
            "--log-every", "5", *TINY, "--max-eval", "64"]  # ~240 masked held-out tokens
    metrics = [mlm.main([*args, "--steps", str(steps), *(["--resume"] if steps > 10 else [])]) for steps in (10, 40)]
    assert metrics[1]["train_loss"] < metrics[0]["train_loss"] - 0.3
    assert metrics[1]["perplexity"] < 0.7 * metrics[0]["perplexity"]
    logged = finetuning.read_log(str(tmp_path))
    train_steps = [entry["step"] for entry in logged if "eval_loss" not in entry]
    assert train_steps == list(range(5, 41, 5))
    assert [entry["step"] for entry in logged if "eval_loss" in entry] == [10, 20, 30, 40]


def test_flax_run_saves_resumes_and_loads(tmp_path, capsys):
    mlm = example("train_masked_lm")
    out = str(tmp_path / "run")
    first = mlm.main(["--framework", "flax", "--output-dir", out, "--steps", "2", "--eval-every", "2", *TINY])
    resumed = mlm.main(["--framework", "flax", "--output-dir", out, "--steps", "3", "--eval-every", "1", "--resume",
                        *TINY])
    printed = capsys.readouterr()
    assert "resumed from" in printed.out + printed.err
    assert "top 5 for 'a domesticated <mask> mammal'" in printed.out + printed.err
    assert np.isfinite(first["perplexity"]) and 0 <= resumed["accuracy"] <= 1
    model = mlm.CLASSES["flax"].from_pretrained(os.path.join(out, "checkpoint-3"))
    assert model.config.vocab_size == len(mlm.RobertaTokenizer.from_pretrained(os.path.join(out, "checkpoint-3")))


@pytest.mark.parametrize("flag, value", [("--log-every", "0"), ("--layers", "0")])
def test_bad_sizes_are_refused(flag, value, tmp_path):
    mlm = example("train_masked_lm")
    with pytest.raises(SystemExit, match=f"{flag} must be at least 1"):
        mlm.main(["--framework", "pt", "--output-dir", str(tmp_path), flag, value, *TINY])
