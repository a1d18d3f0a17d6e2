"""The oracle for the generate tests: tiny random transformers models (PyTorch) whose ``generate`` ids and scores ours
must reproduce, the settings each test runs, and the comparisons.

Each model is built once per process with a fixed seed, saved to a temporary folder and loaded from there by
transformers' ``from_pretrained`` (the oracle) and by ours in the framework under test, so both read the same weights
and the same ``generation_config.json``.

RoBERTa (and RoBERTa-PreLayerNorm): transformers' ``generate`` passes ``position_ids = cumsum(attention_mask) - 1``
(0-based), which is not how RoBERTa numbers its positions (``padding_idx + 1 + ...``, as its own forward does). We
deliberately number positions as RoBERTa's forward does, so the oracle for these models is transformers' ``generate``
with that override removed (``prepare_inputs_for_generation`` wrapped to drop ``position_ids``), on unpadded prompts
only. A left-padded RoBERTa batch is checked instead row by row against the same row generated alone, unpadded.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field

os.environ.setdefault("USE_TF", "0")  # transformers is the PyTorch oracle only

import numpy as np
import pytest

from tests.harness import BACKENDS, PREFIXES, to_numpy

VOCAB = 100
POSITIONS = 64
ATOL = 1e-5

_OPT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
            max_position_embeddings=POSITIONS, word_embed_proj_dim=32, pad_token_id=1, bos_token_id=2, eos_token_id=2,
            init_std=0.5)
_BART = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
             encoder_attention_heads=4, decoder_attention_heads=4, max_position_embeddings=POSITIONS, pad_token_id=1,
             bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2, init_std=0.5)
_ROBERTA = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_attention_heads=4,
                max_position_embeddings=POSITIONS, pad_token_id=1, bos_token_id=0, eos_token_id=2, is_decoder=True,
                initializer_range=0.5)


# Weights drawn with std 0.5 rather than 0.02: at 0.02 the tiny models (their embeddings tied to the output) keep
# repeating one token (BART ends at once), which would leave most settings unexercised.


@dataclass(frozen=True)
class Spec:
    package: str  # rosettazoo.<package>
    class_name: str  # the same name in transformers and (unprefixed) in rosettazoo
    config_name: str
    values: dict = field(hash=False)
    kind: str  # "decoder", "seq2seq" or "roberta" (decoder-only whose oracle drops position_ids)


SPECS = {
    "opt": Spec("opt", "OPTForCausalLM", "OPTConfig", _OPT, "decoder"),
    "bart": Spec("bart", "BartForConditionalGeneration", "BartConfig", _BART, "seq2seq"),
    "bart_causal": Spec("bart", "BartForCausalLM", "BartConfig", _BART, "decoder"),
    "roberta": Spec("roberta", "RobertaForCausalLM", "RobertaConfig", _ROBERTA, "roberta"),
    "roberta_prelayernorm": Spec("roberta", "RobertaPreLayerNormForCausalLM", "RobertaPreLayerNormConfig", _ROBERTA,
                                 "roberta"),
    # layouts: opt-350m's (embeddings projected from 16 to 32, layer norm after each block) and a BART whose
    # decoder is shallower than its encoder
    "opt_350m_layout": Spec("opt", "OPTForCausalLM", "OPTConfig",
                            {**_OPT, "word_embed_proj_dim": 16, "do_layer_norm_before": False}, "decoder"),
    "bart_unequal_depth": Spec("bart", "BartForConditionalGeneration", "BartConfig",
                               {**_BART, "encoder_layers": 2, "decoder_layers": 1}, "seq2seq"),
}
# Scores are compared on "quiet" twins: transformers' own initialization (std 0.02), whose logits stay near 1. With
# std 0.5 the logits reach 10-20 and float32 rounding alone moves them by about 1e-5 (transformers' own cached and
# uncached logits differ by 1.1e-5 for the RoBERTa above), too close to the 1e-5 the scores must agree within.
_INIT_KEYS = ("init_std", "initializer_range")
for _name, _spec in list(SPECS.items()):
    SPECS[_name + "_quiet"] = Spec(_spec.package, _spec.class_name, _spec.config_name,
                                   {k: v for k, v in _spec.values.items() if k not in _INIT_KEYS}, _spec.kind)


def quiet(name: str) -> str:
    return name + "_quiet"


MODELS = ("opt", "bart", "bart_causal", "roberta", "roberta_prelayernorm")  # the five classes
DECODER_ONLY = ("opt", "bart_causal", "roberta", "roberta_prelayernorm")

# Prompts (seq2seq: the encoder input). Unpadded for the decoder-only models (RoBERTa's oracle needs that); BART's
# encoder input has a padded row.
PROMPT = np.array([[5, 6, 7, 8, 9], [5, 7, 10, 11, 12]], np.int64)
SEQ2SEQ_PROMPT = np.array([[5, 6, 7, 8, 9, 10, 11], [1, 1, 10, 11, 12, 10, 11]], np.int64)
# holds bigrams BART's greedy search would generate (14 14 and 54 54), so that encoder_no_repeat_ngram_size acts
ENCODER_NO_REPEAT_PROMPT = np.array([[5, 6, 14, 14, 9, 10, 11], [1, 1, 54, 54, 12, 10, 11]], np.int64)
ONE_TOKEN_PROMPT = np.array([[0], [0]], np.int64)  # decoder-only forced_bos only acts on a one-token prompt
# a left-padded batch: rows of 6, 4 and 2 tokens
LEFT_PADDED = np.array([[5, 6, 7, 8, 9, 13], [1, 1, 21, 22, 23, 24], [1, 1, 1, 1, 31, 32]], np.int64)
LEFT_PADDED_MASK = (LEFT_PADDED != 1).astype(np.int64)


def require(framework: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip(BACKENDS[framework])
    if framework == "flax":
        pytest.importorskip("jax")


def zoo_package(name: str):
    import importlib

    return importlib.import_module(f"rosettazoo.{SPECS[name].package}")


def _save_hf(name: str, folder: str) -> None:
    import torch
    import transformers

    spec = SPECS[name]
    torch.manual_seed(0)
    config = getattr(transformers, spec.config_name)(**spec.values)
    getattr(transformers, spec.class_name)(config).eval().save_pretrained(folder, safe_serialization=True)


@functools.cache
def folder(name: str) -> str:
    """The saved tiny transformers model ``name`` (built once per process)."""
    path = tempfile.mkdtemp(prefix=f"rosettazoo-generate-{name}-")
    _save_hf(name, path)
    return path


@functools.cache
def defaults_folder(name: str) -> str:
    """``name``'s weights with a generation_config.json that asks for beam search, an n-gram ban and a length."""
    import transformers

    path = tempfile.mkdtemp(prefix=f"rosettazoo-generate-{name}-defaults-")
    _save_hf(name, path)
    tokens = {key: value for key, value in SPECS[name].values.items() if key.endswith("token_id")}
    transformers.GenerationConfig(num_beams=2, no_repeat_ngram_size=2, max_length=12, **tokens).save_pretrained(path)
    return path


@functools.cache
def hf_model(path: str, kind: str):
    import transformers

    model = transformers.AutoModelForCausalLM if kind != "seq2seq" else transformers.AutoModelForSeq2SeqLM
    model = model.from_pretrained(path).eval()
    if kind == "roberta":  # see the module docstring: RoBERTa numbers positions itself
        original = model.prepare_inputs_for_generation

        @functools.wraps(original)
        def without_position_ids(*args, **kwargs):
            inputs = original(*args, **kwargs)
            inputs.pop("position_ids", None)
            return inputs

        model.prepare_inputs_for_generation = without_position_ids
    return model


@functools.cache
def our_model(path: str, package: str, class_name: str, framework: str):
    import importlib

    model = getattr(importlib.import_module(f"rosettazoo.{package}"), PREFIXES[framework] + class_name)
    model = model.from_pretrained(path)
    return model.eval() if framework == "pt" else model


def ours(name: str, framework: str, *, defaults: bool = False):
    require(framework)
    spec = SPECS[name]
    return our_model(defaults_folder(name) if defaults else folder(name), spec.package, spec.class_name, framework)


def theirs(name: str, *, defaults: bool = False):
    return hf_model(defaults_folder(name) if defaults else folder(name), SPECS[name].kind)


def prompt(name: str) -> np.ndarray:
    return SEQ2SEQ_PROMPT if SPECS[name].kind == "seq2seq" else PROMPT


def hf_generate(name: str, input_ids, attention_mask=None, *, defaults: bool = False, **settings):
    """transformers' generate on ``input_ids`` (numpy) with ``settings``: its raw output (a tensor or an output)."""
    import torch

    model = theirs(name, defaults=defaults)
    input_ids = torch.from_numpy(np.asarray(input_ids, np.int64))
    if attention_mask is None:
        attention_mask = np.ones(input_ids.shape, np.int64)  # explicit, as for ours: no guessing from pad ids
    with torch.no_grad():
        return model.generate(input_ids, attention_mask=torch.from_numpy(np.asarray(attention_mask, np.int64)),
                              **settings)


@functools.cache
def hf_greedy(name: str, max_new_tokens: int = 10) -> np.ndarray:
    """transformers' greedy ids for the standard prompt (the settings below pick tokens from them)."""
    return to_numpy(hf_generate(name, prompt(name), max_new_tokens=max_new_tokens))


def generated(name: str) -> np.ndarray:
    """Just the generated part of ``hf_greedy`` (BART: after the decoder start token)."""
    ids = hf_greedy(name)
    return ids[:, 1:] if SPECS[name].kind == "seq2seq" else ids[:, PROMPT.shape[1]:]


def ids_of(output) -> np.ndarray:
    """generate's ids (LongTensor, tf int32 tensor or an output with ``.sequences``) as int64 numpy."""
    return to_numpy(getattr(output, "sequences", output)).astype(np.int64)


# ------------------------------------------------------------------------------------------------------------------
# The settings under test. Those that depend on what the model would generate are picked from transformers' greedy
# output, so that each setting changes the result (test_generate_pt checks that it does).


def settings(name: str, case: str) -> dict:
    """The generate keyword arguments of ``case`` for model ``name``."""
    gen = generated(name)
    gen = np.pad(gen, ((0, 0), (0, max(0, 4 - gen.shape[1]))), mode="edge")  # (a quiet BART ends at once)
    seq2seq = SPECS[name].kind == "seq2seq"
    early_eos = int(gen[0, 0])  # row 0's first greedy token: as an eos it would end row 0 at once
    mid_eos = int(gen[0, 3])  # row 0's fourth token: ends row 0 early while row 1 runs on
    common = Counter(gen.ravel().tolist()).most_common(1)[0][0]  # as an eos, beams end at different lengths
    bad_words = [[int(gen[1, 2])],  # one token (row 1's third)
                 [int(prompt(name)[0, -1]) if not seq2seq else 2, early_eos],  # starts in the prompt
                 [early_eos, int(gen[0, 1]), int(gen[0, 2])]]  # bans row 0's third token
    cases = {
        "greedy": dict(max_new_tokens=10),
        "min_new_tokens": dict(max_new_tokens=10, eos_token_id=early_eos, min_new_tokens=3),
        "eos_list": dict(max_new_tokens=10, eos_token_id=[2, mid_eos]),
        "beam3": dict(max_new_tokens=8, num_beams=3),
        "beam4": dict(max_new_tokens=8, num_beams=4, early_stopping=True, length_penalty=0.5,
                      num_return_sequences=2, eos_token_id=[2, common]),
        "never": dict(max_new_tokens=8, num_beams=3, early_stopping="never", length_penalty=1.5,
                      eos_token_id=[2, int(gen[0, 1])]),
        "no_repeat": dict(max_new_tokens=16, no_repeat_ngram_size=2),
        "no_repeat_beam": dict(max_new_tokens=12, num_beams=3, no_repeat_ngram_size=1),
        "repetition_penalty": dict(max_new_tokens=12, repetition_penalty=1.5),
        "bad_words": dict(max_new_tokens=10, bad_words_ids=bad_words),
        # forced_eos_token_id a list of tokens that are not eos: the model config's forced eos is 2 for BART
        "forced": dict(max_new_tokens=6, forced_bos_token_id=7, forced_eos_token_id=[9, 11]),
        "encoder_no_repeat": dict(max_new_tokens=12, encoder_no_repeat_ngram_size=2),
        # (run on the quiet models, see QUIET; min_new_tokens keeps BART from ending at once, and puts -inf in them)
        "greedy_scores": dict(max_new_tokens=8, min_new_tokens=4, output_scores=True, return_dict_in_generate=True),
        "beam_scores": dict(max_new_tokens=8, min_new_tokens=4, num_beams=3, output_scores=True,
                            return_dict_in_generate=True),
        # combined cases (TF and Flax), each setting still changing the result
        # (BART's row 0 repeats 14, which the eos and min_new_tokens settle: one more word for it)
        "combined_greedy": dict(max_new_tokens=12, no_repeat_ngram_size=2, eos_token_id=[2, int(gen[1, 0])],
                                min_new_tokens=8, bad_words_ids=bad_words + ([[14, 23]] if seq2seq else [])),
        "combined_forced": dict(max_new_tokens=8, forced_bos_token_id=7, forced_eos_token_id=[9, 11],
                                repetition_penalty=1.5),
        "combined_beam": dict(max_new_tokens=8, num_beams=3, early_stopping="never", length_penalty=1.5,
                              eos_token_id=[2, int(gen[0, 1])], no_repeat_ngram_size=1),
    }
    return cases[case]


# What each case exercises: setting any of these to the neutral value given must change transformers' ids (checked
# in PyTorch, for every model). A missing neutral value means: left to the model's default.
EXERCISES = {
    "min_new_tokens": {"min_new_tokens": 0},
    "eos_list": {"eos_token_id": None},
    "beam4": {"length_penalty": 1.0},  # early_stopping=True picks what False would here (but "never" does not)
    "never": {"early_stopping": True},
    "no_repeat": {"no_repeat_ngram_size": 0},
    "no_repeat_beam": {"no_repeat_ngram_size": 0},
    "repetition_penalty": {"repetition_penalty": 1.0},
    "bad_words": {"bad_words_ids": None},
    "forced": {"forced_bos_token_id": None, "forced_eos_token_id": None},
    "encoder_no_repeat": {"encoder_no_repeat_ngram_size": 0},
    "combined_greedy": {"no_repeat_ngram_size": 0, "min_new_tokens": 0, "bad_words_ids": None},
    "combined_forced": {"forced_bos_token_id": None, "forced_eos_token_id": None, "repetition_penalty": 1.0},
    "combined_beam": {"early_stopping": True, "no_repeat_ngram_size": 0},
}

ID_CASES = ("greedy", "min_new_tokens", "eos_list", "beam3", "beam4", "never", "no_repeat", "no_repeat_beam",
            "repetition_penalty", "bad_words", "forced", "combined_greedy", "combined_forced")
SCORE_CASES = ("greedy_scores", "beam_scores")
SEQ2SEQ_CASES = ("encoder_no_repeat",)
COMBINED_CASES = ("combined_greedy", "combined_forced", "combined_beam")
ID_CASES = ID_CASES + ("combined_beam",)
FULL_MODELS = ("opt", "bart")  # every setting in TF and Flax; the other three models get SUBSET_CASES
SUBSET_CASES = ("greedy", "beam3")
# TF and Flax compile one program per distinct settings, so they run the combined cases (each of whose settings is
# checked to matter, for these models) instead of one case per setting.
TF_FLAX_CASES = ("greedy", "beam4", "combined_greedy", "combined_forced")
TF_FLAX_SCORE_CASES = ("greedy_scores", "beam_scores")
LAYOUTS = ("opt_350m_layout", "bart_unequal_depth")


def without(name: str, case: str, key: str) -> dict:
    """``case``'s settings with ``key`` made neutral (see EXERCISES)."""
    kwargs = settings(name, case)
    neutral = EXERCISES[case][key]
    if neutral is None:
        kwargs.pop(key)
    else:
        kwargs[key] = neutral
    return kwargs


def case_prompt(name: str, case: str) -> np.ndarray:
    if case in ("forced", "combined_forced") and SPECS[name].kind != "seq2seq":
        return ONE_TOKEN_PROMPT
    if case == "encoder_no_repeat":
        return ENCODER_NO_REPEAT_PROMPT
    return prompt(name)


def mask_of(input_ids: np.ndarray) -> np.ndarray:
    """Padding is token 1 in every tiny model (a decoder-only prompt here is never padded but LEFT_PADDED)."""
    return (input_ids != 1).astype(np.int64)


def run_ours(model, input_ids, attention_mask=None, **settings):
    return model.generate(np.asarray(input_ids), attention_mask=attention_mask, **settings)


# ------------------------------------------------------------------------------------------------------------------
# Comparisons


def assert_same_ids(expected, actual, label: str = "") -> None:
    expected, actual = ids_of(expected), ids_of(actual)
    assert expected.shape == actual.shape and (expected == actual).all(), (
        f"{label}: ids differ\ntransformers {expected.shape}:\n{expected}\nours {actual.shape}:\n{actual}")


def assert_same_scores(expected, actual, label: str = "") -> None:
    """Per-step scores within ATOL (-inf where transformers has -inf), and beam sequences_scores."""
    assert_same_ids(expected.sequences, actual.sequences, label)
    assert actual.scores is not None, f"{label}: no scores"
    assert len(actual.scores) == len(expected.scores), (
        f"{label}: {len(actual.scores)} score steps, transformers has {len(expected.scores)}")
    for step, (want, got) in enumerate(zip(expected.scores, actual.scores)):
        want, got = to_numpy(want), to_numpy(got)
        assert want.shape == got.shape, f"{label}: step {step} scores have shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{label}: scores of step {step}")
    if getattr(expected, "sequences_scores", None) is not None:
        assert actual.sequences_scores is not None, f"{label}: no sequences_scores"
        np.testing.assert_allclose(to_numpy(actual.sequences_scores), to_numpy(expected.sequences_scores), rtol=0,
                                   atol=ATOL, err_msg=f"{label}: sequences_scores")


def check_case(name: str, framework: str, case: str) -> None:
    """Ours in ``framework`` generates what transformers generates for ``case`` (and the same scores if asked)."""
    model = ours(name, framework)
    input_ids = case_prompt(name, case)
    kwargs = settings(name, case)
    want = hf_generate(name, input_ids, mask_of(input_ids), **kwargs)
    got = run_ours(model, input_ids, mask_of(input_ids), **kwargs)
    label = f"{name} {framework} {case} {kwargs}"
    if kwargs.get("output_scores"):
        assert_same_scores(want, got, label)
    else:
        assert_same_ids(want, got, label)


def check_left_padded(name: str, framework: str, **kwargs) -> None:
    """A left-padded batch: transformers' ids (OPT, BartForCausalLM), or for RoBERTa each row as generated alone."""
    kwargs = {"max_new_tokens": 8, **kwargs}
    got = ids_of(run_ours(ours(name, framework), LEFT_PADDED, LEFT_PADDED_MASK, **kwargs))
    if SPECS[name].kind != "roberta":
        assert_same_ids(hf_generate(name, LEFT_PADDED, LEFT_PADDED_MASK, **kwargs), got, f"{name} {framework} left")
        return
    # RoBERTa: transformers' left-padded ids are not an oracle (see the module docstring). Each row must equal the
    # same row generated alone, unpadded, which itself must equal transformers' ids.
    pads = (LEFT_PADDED_MASK == 0).sum(axis=1)
    for row, pad in enumerate(pads):
        alone_ids = LEFT_PADDED[row:row + 1, pad:]
        alone = ids_of(run_ours(ours(name, framework), alone_ids, None, **kwargs))[0]
        assert_same_ids(hf_generate(name, alone_ids, **kwargs), alone[None], f"{name} {framework} row {row} alone")
        in_batch = got[row, pad:]
        assert (got[row, :pad] == 1).all(), f"{name} {framework} row {row}: left padding changed: {got[row]}"
        assert (in_batch[:alone.size] == alone).all() and (in_batch[alone.size:] == 1).all(), (
            f"{name} {framework} row {row}: in the batch {in_batch}, alone {alone}")


def check_saved_defaults(name: str, framework: str) -> None:
    """No settings passed: both take them from the folder's generation_config.json."""
    input_ids = prompt(name)
    want = hf_generate(name, input_ids, mask_of(input_ids), defaults=True)
    model = ours(name, framework, defaults=True)
    config = model.generation_config
    assert (config.num_beams, config.no_repeat_ngram_size, config.max_length) == (2, 2, 12)
    assert_same_ids(want, run_ours(model, input_ids, mask_of(input_ids)), f"{name} {framework} saved defaults")


# ------------------------------------------------------------------------------------------------------------------
# What the TF and Flax files run (each distinct settings compiles once, so fewer calls than PyTorch's)

TF_FLAX_ID_PARAMS = (
    [(name, case) for name in FULL_MODELS for case in TF_FLAX_CASES] + [("bart", "encoder_no_repeat")]
    + [(name, case) for name in MODELS if name not in FULL_MODELS for case in SUBSET_CASES]
    + [(name, "greedy") for name in LAYOUTS])
TF_FLAX_SCORE_PARAMS = [(name, case) for name in FULL_MODELS for case in SCORE_CASES]
