"""TensorFlow (XLA) ``generate`` against transformers' PyTorch ``generate``: every setting for OPT and BART, a representative
subset for BartForCausalLM and the two RoBERTas (see oracle.py). Each distinct setting compiles a program, so the
settings are combined where each still changes the result (test_generate_pt checks that it does)."""

import pytest

from . import oracle

FRAMEWORK = "tf"


@pytest.mark.parametrize("name,case", oracle.TF_FLAX_ID_PARAMS)
def test_ids_match_transformers(name, case):
    oracle.check_case(name, FRAMEWORK, case)


@pytest.mark.parametrize("name,case", oracle.TF_FLAX_SCORE_PARAMS)
def test_scores_match_transformers(name, case):
    oracle.check_case(oracle.quiet(name), FRAMEWORK, case)


@pytest.mark.parametrize("name", oracle.DECODER_ONLY)
def test_left_padded_batch(name):
    oracle.check_left_padded(name, FRAMEWORK)


@pytest.mark.parametrize("name", oracle.FULL_MODELS)
def test_defaults_from_saved_generation_config(name):
    oracle.check_saved_defaults(name, FRAMEWORK)


def test_tensorflow_returns_an_int32_tensor():
    import tensorflow as tf

    out = oracle.run_ours(oracle.ours("opt", FRAMEWORK), oracle.PROMPT, None, max_new_tokens=10)
    assert isinstance(out, tf.Tensor) and out.dtype == tf.int32
