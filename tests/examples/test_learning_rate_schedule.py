"""The three engines follow finetuning.learning_rate_at (warmup, then decay to 0), counted by their optimizers, and
continue the curve after a checkpoint is restored."""

import itertools

import numpy as np
import pytest
from tqdm.auto import tqdm

from rosettazoo.opt import FlaxOPTForCausalLM, OPTConfig, OPTForCausalLM, TFOPTForCausalLM
from tests.examples import example

finetuning = example("finetuning")

CLASSES = {"pt": OPTForCausalLM, "tf": TFOPTForCausalLM, "flax": FlaxOPTForCausalLM}
CONFIG = dict(vocab_size=64, hidden_size=16, word_embed_proj_dim=16, num_hidden_layers=1, num_attention_heads=2,
              ffn_dim=32, max_position_embeddings=16)


def test_warmup_rises_to_the_peak_then_the_rate_falls_to_zero():
    rates = [float(finetuning.learning_rate_at(float(s), 1.0, 4, 12, "linear")) for s in range(13)]
    assert rates[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert rates[4:] == pytest.approx([1 - i / 8 for i in range(9)])
    cosine = [float(finetuning.learning_rate_at(float(s), 2.0, 0, 10, "cosine")) for s in (0, 5, 10)]
    assert cosine == pytest.approx([2.0, 1.0, 0.0], abs=1e-6)
    assert float(finetuning.learning_rate_at(7.0, 3.0, 2, 10, "none")) == 3.0


def engine_for(framework: str, args):
    return finetuning.make_engine(args, lambda: finetuning.build_model(CLASSES, args, None, OPTConfig(**CONFIG)),
                                  tokenizer=None)


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_each_engine_follows_the_schedule_and_resumes_on_it(framework, tmp_path):
    args = finetuning.argument_parser("test").parse_args(
        ["--framework", framework, "--output-dir", str(tmp_path), "--steps", "8", "--warmup-steps", "3",
         "--learning-rate", "1e-2", "--decay", "cosine"])
    expected = finetuning.schedule(args)
    ids = np.random.default_rng(0).integers(4, 64, (2, 8)).astype(np.int32)
    data = itertools.repeat({"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": ids})
    progress = tqdm(disable=True)

    engine = engine_for(framework, args)
    engine.start_at(0)
    assert engine.learning_rate() == pytest.approx(float(expected(0.0)), rel=1e-6)
    engine.train(data, 2, progress)
    assert engine.learning_rate() == pytest.approx(float(expected(2.0)), rel=1e-6)
    engine.save_optimizer(str(tmp_path))

    restored = engine_for(framework, args)
    restored.load_optimizer(str(tmp_path))
    restored.start_at(2)
    assert restored.learning_rate() == pytest.approx(float(expected(2.0)), rel=1e-6)
    restored.train(data, 3, progress)
    assert restored.learning_rate() == pytest.approx(float(expected(5.0)), rel=1e-6)
    assert float(expected(5.0)) < float(expected(3.0)) == pytest.approx(1e-2)
