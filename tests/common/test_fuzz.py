"""Fuzzing configs and inputs: every draw ends in a clear error of our own or in outputs that match PyTorch.

For one model per family (RoBERTa, RoBERTa-PreLayerNorm, BART, OPT, float I-BERT), hypothesis draws config values
inside and outside their valid ranges, and batches of 0-3 rows of 0-9 tokens with ids inside and outside the
vocabulary and masks (OPT's with values other than 0/1). A config is either a ConfigError or builds models; an input
either raises the same ValueError text in PyTorch, TensorFlow (eager) and Flax (eager), or gives outputs that agree
with PyTorch to 1e-5. A raw framework error (IndexError, TypeError, InvalidArgumentError, ...) fails the test.
Built models are cached per config, and draws are few and seeded, so the test stays bounded and repeatable.
"""

import math
import tempfile

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

from hypothesis import HealthCheck, example, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rosettazoo.bart as bart  # noqa: E402
import rosettazoo.ibert as ibert  # noqa: E402
import rosettazoo.opt as opt  # noqa: E402
import rosettazoo.roberta as roberta  # noqa: E402
from rosettazoo.common.config import ConfigError  # noqa: E402
from tests.harness import assert_outputs_close, load_three, run  # noqa: E402

VOCAB = 40
SETTINGS = settings(max_examples=8, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ROBERTA_BASE = dict(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
                    max_position_embeddings=10)
# Per family: (package, model class, config class, base values, {field: values to draw, valid ones first}).
ROBERTA_FIELDS = {
    "layer_norm_eps": [1e-12, 1e-5, 0.0, -1e-5, math.nan, math.inf],
    "initializer_range": [0.02, 0.0, -0.02, math.nan],
    "hidden_dropout_prob": [0.1, 1.5, math.nan],
    "num_attention_heads": [2, 3, 0],
    "max_position_embeddings": [10, 2],
    "vocab_size": [VOCAB, 0],
}
FAMILIES = {
    "roberta": (roberta, "RobertaForMaskedLM", roberta.RobertaConfig, ROBERTA_BASE,
                {**ROBERTA_FIELDS, "hidden_act": ["gelu", "relu", "bogus"]}),
    "prelayernorm": (roberta, "RobertaPreLayerNormForMaskedLM", roberta.RobertaPreLayerNormConfig, ROBERTA_BASE,
                     ROBERTA_FIELDS),
    "ibert": (ibert, "IBertForMaskedLM", ibert.IBertConfig, {**ROBERTA_BASE, "quant_mode": False},
              {**ROBERTA_FIELDS, "hidden_act": ["gelu", "relu"]}),
    "bart": (bart, "BartForConditionalGeneration", bart.BartConfig,
             dict(vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                  decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24, max_position_embeddings=8),
             {"init_std": [0.02, 0.0, -1.0, math.nan], "scale_embedding": [False, True],
              "activation_function": ["gelu", "relu", "bogus"], "decoder_attention_heads": [2, 5],
              "dropout": [0.1, -0.1, math.inf], "max_position_embeddings": [8, 0]}),
    "opt": (opt, "OPTForCausalLM", opt.OPTConfig,
            dict(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=24,
                 max_position_embeddings=8),
            {"init_std": [0.02, 0.0, -1.0, math.nan], "do_layer_norm_before": [True, False],
             "word_embed_proj_dim": [None, 8, 0], "num_attention_heads": [2, 3],
             "attention_dropout": [0.0, 2.0, math.nan], "max_position_embeddings": [8, -1]}),
}
# A valid config per family that differs from the base where it changes the computation; always checked.
VARIANTS = {
    "roberta": {"layer_norm_eps": 1e-5, "hidden_act": "relu", "initializer_range": 0.0},
    "prelayernorm": {"layer_norm_eps": 1e-5},
    "ibert": {"layer_norm_eps": 1e-5},
    "bart": {"scale_embedding": True, "activation_function": "relu", "init_std": 0.0},
    "opt": {"do_layer_norm_before": False, "word_embed_proj_dim": 8},
}
_MODELS: dict = {}  # (family, config.json text) -> {framework: model}


def models_for(family: str, config):
    """The three frameworks' models of ``config``, built once (PyTorch's random weights, loaded by TF and Flax)."""
    key = (family, config.to_json_string())
    if key not in _MODELS:
        package, name = FAMILIES[family][:2]
        _MODELS[key] = load_three(package, name, config, tempfile.mkdtemp(prefix=f"fuzz-{family}-"))
    return _MODELS[key]


def outcome(framework, model, inputs):
    """The output, or the exception the call raised."""
    try:
        return run(framework, model, inputs)
    except Exception as err:  # noqa: BLE001 - classified by assert_clear_or_equal
        return err


def assert_clear_or_equal(models, inputs):
    """PyTorch's outcome decides: its own ValueError, repeated word for word by TF and Flax, or outputs they match."""
    results = {fw: outcome(fw, model, inputs) for fw, model in models.items()}
    for fw, result in results.items():
        if isinstance(result, Exception) and type(result) is not ValueError and not isinstance(result, ConfigError):
            raise AssertionError(f"{fw} raised a raw {type(result).__name__} for {describe(inputs)}") from result
    expected = results.pop("pt")
    for fw, result in results.items():
        if isinstance(expected, Exception):
            assert isinstance(result, Exception), f"{fw} accepted what PyTorch refused ({expected}): {describe(inputs)}"
            assert str(expected) in str(result), f"{fw} says {result!s:.300} where PyTorch says {expected}"
        else:
            assert not isinstance(result, Exception), f"{fw} refused what PyTorch accepted: {result!s:.300}"
            assert_outputs_close(expected, result, label=f"{fw} {describe(inputs)}")


def describe(inputs):
    return {k: (np.asarray(v).tolist() if np.size(v) <= 12 else np.shape(v)) for k, v in inputs.items()}


@st.composite
def batches(draw, vocab_size: int, family: str):
    # A few sizes from 0..3 x 0..9 (each new shape costs Flax's eager dispatch a compile of every operation).
    batch, seq = draw(st.sampled_from([(2, 4), (3, 7), (1, 1), (0, 4), (2, 0), (1, 9)]))
    # Ids and mask cells are drawn for the largest batch whatever the size, so hypothesis does not favour the
    # empty batches for needing the fewest draws.
    ids = pool(draw, st.integers(2, vocab_size - 1), np.int64)  # 0, 1: RoBERTa's <s>, <pad> (pads: the mask's)
    bad_id = draw(st.sampled_from([None, None, -1, vocab_size, vocab_size + 7]))  # at most one, so masks get checked
    if bad_id is not None:
        ids[draw(st.integers(0, 2)), draw(st.integers(0, 9))] = bad_id
    inputs = {"input_ids": ids[:batch, :seq]}
    mask_kind = draw(st.sampled_from(["none", "binary", "binary", "other values", "wrong shape"]))
    mask_values = [0, 1, 2, -1] if mask_kind == "other values" and family == "opt" else [0, 1]
    mask = pool(draw, st.sampled_from(mask_values), np.int64)
    if mask_kind == "wrong shape":
        inputs["attention_mask"] = mask[:batch, :seq + 1]
    elif mask_kind != "none":
        inputs["attention_mask"] = mask[:batch, :seq]
    return inputs


def pool(draw, cell, dtype, rows: int = 3, columns: int = 10):
    return np.array(draw(st.lists(cell, min_size=rows * columns, max_size=rows * columns)), dtype).reshape(rows, columns)


def base_config(family: str):
    _, _, config_class, base, _ = FAMILIES[family]
    return config_class(**base)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_inputs_give_a_clear_error_or_agree(family):
    config = base_config(family)
    models = models_for(family, config)

    @seed(list(FAMILIES).index(family))  # fixed draws (a bounded, repeatable test), different in each family
    @SETTINGS
    @given(batches(config.vocab_size, family))
    @example({"input_ids": np.array([[5, 6, 7], [8, 9, 10]]), "attention_mask": np.array([[1, 1, 0], [0, 1, 1]])})
    @example({"input_ids": np.zeros((0, 3), np.int64)})
    @example({"input_ids": np.array([[5, config.vocab_size, 7]])})
    def check(inputs):
        assert_clear_or_equal(models, inputs)

    check()


@st.composite
def config_values(draw, family: str):
    fields = FAMILIES[family][4]
    return {name: draw(st.sampled_from(values)) for name, values in fields.items()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_configs_give_a_config_error_or_agreeing_models(family):
    _, _, config_class, base, fields = FAMILIES[family]
    inputs = {"input_ids": np.array([[3, 4, 5, 6]], np.int64), "attention_mask": np.array([[1, 1, 1, 0]])}
    checked = []

    @seed(list(FAMILIES).index(family))
    @SETTINGS
    @given(config_values(family))
    @example({name: values[0] for name, values in fields.items()})
    @example({**{name: values[0] for name, values in fields.items()}, **VARIANTS[family]})
    def check(values):
        try:
            config = config_class(**{**base, **values})
        except ConfigError as err:
            bad = [name for name in values if name in str(err)]
            assert bad, f"the ConfigError names no field it was given: {err}"
            return
        checked.append(values)
        assert_clear_or_equal(models_for(family, config), inputs)

    check()
    assert len(checked) >= 2, "the base config and the variant must both be valid"
