"""PyTorch ``generate`` against transformers' ``generate``: the same ids (and scores) for every setting and each of the
five model classes (see oracle.py for the models, the settings and RoBERTa's oracle)."""

import pytest

from . import oracle

FRAMEWORK = "pt"


@pytest.mark.parametrize("case", oracle.ID_CASES)
@pytest.mark.parametrize("name", oracle.MODELS)
def test_ids_match_transformers(name, case):
    oracle.check_case(name, FRAMEWORK, case)


@pytest.mark.parametrize("case", oracle.SCORE_CASES)
@pytest.mark.parametrize("name", oracle.MODELS)
def test_scores_match_transformers(name, case):
    oracle.check_case(oracle.quiet(name), FRAMEWORK, case)


@pytest.mark.parametrize("case", oracle.SEQ2SEQ_CASES)
def test_seq2seq_settings_match_transformers(case):
    oracle.check_case("bart", FRAMEWORK, case)


@pytest.mark.parametrize("name", oracle.DECODER_ONLY)
def test_left_padded_batch(name):
    oracle.check_left_padded(name, FRAMEWORK)


@pytest.mark.parametrize("name", oracle.MODELS)
def test_defaults_from_saved_generation_config(name):
    oracle.check_saved_defaults(name, FRAMEWORK)


@pytest.mark.parametrize("case", ("greedy", "beam3", "no_repeat_beam", "combined_greedy"))
@pytest.mark.parametrize("name", oracle.LAYOUTS)
def test_layouts(name, case):
    oracle.check_case(name, FRAMEWORK, case)


@pytest.mark.parametrize("case", oracle.SCORE_CASES)
@pytest.mark.parametrize("name", oracle.LAYOUTS)
def test_layout_scores(name, case):
    oracle.check_case(oracle.quiet(name), FRAMEWORK, case)


def test_pytorch_returns_a_long_tensor():
    import torch

    out = oracle.run_ours(oracle.ours("opt", FRAMEWORK), oracle.PROMPT, None, max_new_tokens=3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64


def _exercise_params():
    for case, keys in oracle.EXERCISES.items():
        models = oracle.FULL_MODELS if case in oracle.COMBINED_CASES else oracle.MODELS
        if case in oracle.SEQ2SEQ_CASES:
            models = ("bart",)
        for name in models:
            for key in keys:
                yield pytest.param(name, case, key, id=f"{name}-{case}-{key}")


@pytest.mark.parametrize("name,case,key", list(_exercise_params()))
def test_each_setting_changes_the_oracle(name, case, key):
    """The cases are meaningful: making a setting neutral changes transformers' ids (else the match proves little)."""
    input_ids = oracle.case_prompt(name, case)
    mask = oracle.mask_of(input_ids)
    with_it = oracle.ids_of(oracle.hf_generate(name, input_ids, mask, **oracle.settings(name, case)))
    without = oracle.ids_of(oracle.hf_generate(name, input_ids, mask, **oracle.without(name, case, key)))
    assert with_it.shape != without.shape or (with_it != without).any(), f"{name} {case}: {key} changes nothing"
