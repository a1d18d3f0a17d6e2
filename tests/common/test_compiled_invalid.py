"""Invalid indices and StaticCache overflow: eagerly a clear error (PyTorch, TensorFlow, Flax); under
``tf.function(jit_compile=True)`` and ``jax.jit`` NaN in exactly the affected outputs, never a finite value.

Every family compiles one function per framework over one batch whose rows each hold one defect (row 0 none), and
one static-cache step function. Models are tiny (one layer: XLA compiles I-BERT's integer path slowly) and randomly
initialized: only errors, NaN and rows of the same compiled program are compared.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402
from jax.experimental import checkify  # noqa: E402

from rosettazoo.common.cache import StaticCache  # noqa: E402
from rosettazoo.common.validation import check_inputs  # noqa: E402

PREFIXES = {"pt": "", "tf": "TF", "flax": "Flax"}
VOCAB, POSITIONS, SEQ, BAD_AT = 99, 20, 5, 2  # the defect sits at position BAD_AT of its row
ENCODER = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=POSITIONS, type_vocab_size=2)
OPT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, ffn_dim=37, num_attention_heads=4,
           max_position_embeddings=POSITIONS, word_embed_proj_dim=32)
BART = dict(vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=POSITIONS)


def token_error(name: str, bad: int) -> str:
    return re.escape(f"{name} holds token id {bad}, outside the vocabulary [0, {VOCAB})")


def index_error(name: str, bad: int, low: int, size: int, what: str) -> str:
    return re.escape(f"{name} holds {bad}, outside [{low}, {size}) allowed by {what}")


ENCODER_DEFECTS = {
    # label: (input, bad value, error)
    "token id too large": ("input_ids", VOCAB, token_error("input_ids", VOCAB)),
    "negative token id": ("input_ids", -1, token_error("input_ids", -1)),
    "bad token type": ("token_type_ids", 2, index_error("token_type_ids", 2, 0, 2, "type_vocab_size")),
    "position too large": ("position_ids", POSITIONS,
                           index_error("position_ids", POSITIONS, 0, POSITIONS, "max_position_embeddings")),
    "negative position": ("position_ids", -1, index_error("position_ids", -1, 0, POSITIONS, "max_position_embeddings")),
}


def encoder_inputs():
    ids = np.random.default_rng(0).integers(3, VOCAB, size=(1, SEQ))
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "position_ids": np.arange(2, 2 + SEQ)[None]}


@dataclass
class Family:
    package: str
    model_class: str
    config_class: str
    config: dict
    inputs: object  # () -> {name: [1, SEQ] valid values}
    defects: dict


FAMILIES = {
    "roberta": Family("roberta", "RobertaForMaskedLM", "RobertaConfig", ENCODER, encoder_inputs, ENCODER_DEFECTS),
    "ibert-quantized": Family("ibert", "IBertForMaskedLM", "IBertConfig", {**ENCODER, "quant_mode": True},
                              encoder_inputs, ENCODER_DEFECTS),
    "ibert-float": Family("ibert", "IBertForMaskedLM", "IBertConfig", ENCODER, encoder_inputs, ENCODER_DEFECTS),
    "opt": Family(
        "opt", "OPTForCausalLM", "OPTConfig", OPT,
        lambda: {"input_ids": encoder_inputs()["input_ids"], "position_ids": np.arange(SEQ)[None]},
        {
            "token id too large": ("input_ids", VOCAB, token_error("input_ids", VOCAB)),
            "negative token id": ("input_ids", -1, token_error("input_ids", -1)),
            "position -2": ("position_ids", -2, index_error("position_ids", -2, -1, POSITIONS, "max_position_embeddings")),
            "position too large": ("position_ids", POSITIONS,
                                   index_error("position_ids", POSITIONS, -1, POSITIONS, "max_position_embeddings")),
        },
    ),
    "bart": Family(
        "bart", "BartForConditionalGeneration", "BartConfig", BART,
        lambda: {"input_ids": encoder_inputs()["input_ids"], "decoder_input_ids": encoder_inputs()["input_ids"][:, ::-1]},
        {
            "token id too large": ("input_ids", VOCAB, token_error("input_ids", VOCAB)),
            "negative token id": ("input_ids", -1, token_error("input_ids", -1)),
            "decoder token id too large": ("decoder_input_ids", VOCAB, token_error("decoder_input_ids", VOCAB)),
            "negative decoder token id": ("decoder_input_ids", -1, token_error("decoder_input_ids", -1)),
        },
    ),
}
CASES = [(family, label) for family, spec in FAMILIES.items() for label in spec.defects]


def config_of(spec: Family, **overrides):
    module = importlib.import_module(f"rosettazoo.{spec.package}")
    return getattr(module, spec.config_class)(**{**spec.config, **overrides})


@functools.cache
def model(family: str, framework: str, model_class: str | None = None, **overrides):
    spec = FAMILIES[family]
    module = importlib.import_module(f"rosettazoo.{spec.package}")
    cls = getattr(module, PREFIXES[framework] + (model_class or spec.model_class))
    torch.manual_seed(0)
    made = cls(config_of(spec, **overrides))
    return made.eval() if framework == "pt" else made


def with_defect(spec: Family, label: str) -> dict:
    inputs = {name: values.copy() for name, values in spec.inputs().items()}
    name, bad, _ = spec.defects[label]
    inputs[name][0, BAD_AT] = bad
    return inputs


def defect_batch(spec: Family) -> dict:
    """Row 0 valid, then one row per defect."""
    return batch_of([spec.inputs()] + [with_defect(spec, label) for label in spec.defects])


def batch_of(rows: list[dict]) -> dict:
    return {name: np.concatenate([row[name] for row in rows]).astype(np.int32) for name in rows[0]}


def call(framework: str, made, inputs: dict):
    if framework == "pt":
        with torch.no_grad():
            return made(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}).logits.numpy()
    return np.asarray(made(**inputs).logits)


# ---------------------------------------------------------------------------------------------------------------
# Eager calls and the public check raise the same error


@pytest.mark.parametrize("framework", list(PREFIXES))
@pytest.mark.parametrize(("family", "label"), CASES)
def test_eager_call_raises(framework, family, label):
    spec = FAMILIES[family]
    with pytest.raises(ValueError, match=spec.defects[label][2]):
        call(framework, model(family, framework), with_defect(spec, label))


@pytest.mark.parametrize(("family", "label"), CASES)
def test_check_inputs_raises_what_the_models_raise(family, label):
    spec = FAMILIES[family]
    config = config_of(spec)
    check_inputs(config, spec.inputs())
    for convert in (np.asarray, torch.from_numpy, tf.constant, jnp.asarray):
        batch = {name: convert(np.ascontiguousarray(values)) for name, values in with_defect(spec, label).items()}
        with pytest.raises(ValueError, match=spec.defects[label][2]):
            check_inputs(config, batch)


def test_check_inputs_checks_lengths_masks_and_cache_room():
    roberta, opt = config_of(FAMILIES["roberta"]), config_of(FAMILIES["opt"])
    with pytest.raises(ValueError, match="sequence length 19 exceeds the 18 positions"):
        check_inputs(roberta, {"input_ids": np.full((1, 19), 5)})
    with pytest.raises(ValueError, match="attention_mask must hold only 0"):
        check_inputs(opt, {"input_ids": np.full((1, 3), 5), "attention_mask": np.array([[1, 2, 1]])})
    cache = model("opt", "flax").init_cache(1, 4)
    check_inputs(opt, {"input_ids": np.full((1, 4), 5), "past_key_values": cache})
    with pytest.raises(ValueError, match="the StaticCache has 4 slots; writing 5 more would overflow it"):
        check_inputs(opt, {"input_ids": np.full((1, 5), 5), "past_key_values": cache})


# ---------------------------------------------------------------------------------------------------------------
# Compiled calls: NaN in the affected outputs, the rest as eager


def compiled(framework: str, made):
    """The model's logits as one compiled function of its inputs (keyword names fixed by the first call)."""
    if framework == "tf":
        @tf.function(jit_compile=True)
        def run(inputs):
            return made(**inputs).logits

        return lambda inputs: np.asarray(run({k: tf.constant(v) for k, v in inputs.items()}))

    run = jax.jit(lambda params, inputs: made(**inputs, params=params).logits)
    return lambda inputs: np.asarray(run(made.params, {k: jnp.asarray(v) for k, v in inputs.items()}))


@pytest.mark.parametrize("framework", ["tf", "flax"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_compiled_call_gives_nan_in_affected_outputs(framework, family):
    spec = FAMILIES[family]
    run = compiled(framework, model(family, framework))
    logits = run(defect_batch(spec))
    # The row's every output: a NaN key reaches even the queries the causal mask hides it from (NaN + mask = NaN).
    for row, label in enumerate(spec.defects, start=1):
        assert np.isnan(logits[row]).all(), f"{label}: a finite output where NaN was due"
    # The valid row is what the same program computes for it in a batch of valid rows: nothing leaks across rows.
    valid = run(batch_of([spec.inputs()] * (1 + len(spec.defects))))
    assert np.isfinite(valid).all()
    np.testing.assert_array_equal(logits[0], valid[0])


def test_checkify_turns_the_nan_into_the_eager_error():
    spec = FAMILIES["roberta"]
    made = model("roberta", "flax")
    run = checkify.checkify(jax.jit(lambda params, ids: made(input_ids=ids, params=params).logits))
    error, _ = run(made.params, jnp.asarray(spec.inputs()["input_ids"]))
    error.throw()  # no error on good ids
    error, logits = run(made.params, jnp.asarray(with_defect(spec, "token id too large")["input_ids"]))
    assert np.isnan(np.asarray(logits)).all()
    with pytest.raises(checkify.JaxRuntimeError, match=token_error("input_ids", VOCAB)):
        error.throw()


# ---------------------------------------------------------------------------------------------------------------
# StaticCache: a step past its end, and init_cache with more slots than positions

DECODERS = {  # family: (model class, config overrides)
    "roberta": ("RobertaForCausalLM", {"is_decoder": True}),
    "opt": ("OPTForCausalLM", {}),
    "bart": ("BartForCausalLM", {}),
}
SLOTS = 4


def decoder(family: str, framework: str):
    model_class, overrides = DECODERS[family]
    return model(family, framework, model_class, **overrides)


SLOT_MASK = np.ones((1, SLOTS), np.int32)


def eager_step(framework: str, made, tokens, cache, **params):
    """(logits, cache) of ``tokens`` written at the cache's index."""
    if framework == "pt":
        with torch.no_grad():
            out = made(input_ids=torch.from_numpy(tokens), attention_mask=torch.from_numpy(SLOT_MASK),
                       past_key_values=cache)
    else:
        out = made(input_ids=tokens, attention_mask=SLOT_MASK, past_key_values=cache, **params)
    return out.logits, out.past_key_values


def compiled_step(framework: str, made):
    """``eager_step`` compiled once for every step."""
    if framework == "tf":
        return tf.function(jit_compile=True)(lambda token, cache: eager_step("tf", made, token, cache))
    run = jax.jit(lambda params, token, cache: eager_step("flax", made, token, cache, params=params))
    return lambda token, cache: run(made.params, token, cache)


TOKENS = np.full((1, SLOTS + 2), 7, np.int32)


@pytest.mark.parametrize("framework", ["tf", "flax"])
@pytest.mark.parametrize("family", list(DECODERS))
def test_compiled_step_past_the_cache_end_is_nan(framework, family):
    made = decoder(family, framework)
    step = compiled_step(framework, made)
    cache = made.init_cache(1, SLOTS)
    for t in range(SLOTS):
        logits, cache = step(TOKENS[:, t:t + 1], cache)
        assert np.isfinite(np.asarray(logits)).all()
    assert len(cache.to_legacy_cache()[0][0][0, 0]) == SLOTS
    for t in (SLOTS, SLOTS + 1):  # past the end, and the step after it
        logits, cache = step(TOKENS[:, t:t + 1], cache)
        assert np.isnan(np.asarray(logits)).all()
    assert int(cache.index) == SLOTS + 2
    with pytest.raises(ValueError, match="the StaticCache overflowed: its index 6 is past its 4 slots"):
        cache.to_legacy_cache()


@pytest.mark.parametrize("framework", list(PREFIXES))
@pytest.mark.parametrize("family", list(DECODERS))
def test_eager_step_past_the_cache_end_raises(framework, family):
    made = decoder(family, framework)
    index = {"pt": torch.tensor(SLOTS), "tf": tf.constant(SLOTS), "flax": jnp.asarray(SLOTS, jnp.int32)}[framework]
    full = StaticCache(made.init_cache(1, SLOTS).layers, index)
    with pytest.raises(ValueError, match="the StaticCache has 4 slots; writing 1 more would overflow it"):
        eager_step(framework, made, TOKENS[:, SLOTS:SLOTS + 1], full)


@pytest.mark.parametrize("framework", list(PREFIXES))
@pytest.mark.parametrize("family", list(DECODERS))
def test_init_cache_refuses_more_slots_than_positions(framework, family):
    made = decoder(family, framework)
    limit = made.config.max_sequence_length if family == "roberta" else POSITIONS
    made.init_cache(1, limit)
    with pytest.raises(ValueError, match=f"a cache of {limit + 1} slots exceeds the {limit} positions"):
        made.init_cache(1, limit + 1)


def test_checkify_reports_a_cache_overflow():
    made = decoder("opt", "flax")
    run = checkify.checkify(jax.jit(lambda params, token, cache: eager_step("flax", made, token, cache, params=params)[0]))
    full = StaticCache(made.init_cache(1, SLOTS).layers, jnp.asarray(SLOTS, jnp.int32))
    error, logits = run(made.params, TOKENS[:, :1], full)
    assert np.isnan(np.asarray(logits)).all()
    with pytest.raises(checkify.JaxRuntimeError, match="the StaticCache has 4 slots; writing 1 more would overflow"):
        error.throw()


@pytest.mark.parametrize("framework", ["tf", "flax"])
def test_compiled_opt_mask_other_than_0_1_is_nan(framework):
    """OPT counts positions from the mask, so a mask value other than 0/1 is an invalid index: its row is NaN."""
    ids = FAMILIES["opt"].inputs()["input_ids"]
    batch = {"input_ids": np.concatenate([ids, ids])}  # positions from the mask
    batch["attention_mask"] = np.ones_like(batch["input_ids"])
    batch["attention_mask"][1, 1] = 2
    logits = compiled(framework, model("opt", framework))(batch)
    assert np.isfinite(logits[0]).all()
    assert np.isnan(logits[1]).all()
