"""Flax I-BERT against transformers 4.57.6 (the PyTorch oracle) and our PyTorch I-BERT, in its three paths: float
(``quant_mode=False``), simulated fake quantization (quant_mode with ``train=True``, the statistics in the mutable
``quant_stats`` collection) and integer arithmetic (quant_mode in inference); plus checkpoints with and without the
quantization buffers, a jitted quantization-aware optax step and bad input.

Every model starts as a Hugging Face model with weights drawn at O(0.1) scale, saved with ``save_pretrained`` and
loaded by our ``from_pretrained``. XLA compiles slowly on CPU, so the quantized tests share two compiled programs
(one training step, one integer forward) through module fixtures; the float heads run eagerly.
"""

import os
from types import SimpleNamespace

os.environ.setdefault("USE_TF", "0")  # keep transformers from importing TensorFlow: slow and not needed here

import numpy as np
import pytest

pytest.importorskip("flax")
optax = pytest.importorskip("optax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import rosettazoo.ibert as zoo  # noqa: E402
from rosettazoo.common.modeling_flax import flatten_params  # noqa: E402
from rosettazoo.conversion import to_canonical  # noqa: E402
from rosettazoo.ibert.quant_flax import OPS  # noqa: E402
from tests.harness import EVERY_OUTPUT, assert_outputs_close, flatten, head_inputs, torch_inputs  # noqa: E402
from tests.ibert.cases import HEADS, ORACLE, TINY  # noqa: E402

# Integer outputs are x_int * scale in float32: equal integers give equal floats.
EXACT = 0.0
# quant.py divides with Python's "/": XLA rewrites a division by a broadcast or constant divisor into a
# multiplication by its reciprocal (one ulp off at times) where PyTorch divides exactly, and computes
# "number / tensor" exactly where PyTorch multiplies by the reciprocal. Scales and ranges then differ by an ulp at
# times, and a floor or rounding of such a quotient can flip (I-LayerNorm's integer bias does here, by 1, before
# the requantization absorbs it). Fixed once quant.py routes its float divisions through the backend.


def ranges(weights: dict) -> dict:
    return {name: np.asarray(value) for name, value in weights.items() if name.endswith((".x_min", ".x_max"))}


# ---------------------------------------------------------------------------------------------------------------
# The JAX backend of quant.py


def test_jax_ops_are_exact():
    n = np.arange(-126, 128)
    with jax.enable_x64(True):
        single, double = jax.jit(lambda n: (OPS.pow2(n), OPS.pow2(n, jnp.float64)))(n.astype(np.float32))
    assert single.dtype == jnp.float32 and np.array_equal(single, (2.0 ** n).astype(np.float32))
    assert double.dtype == jnp.float64 and np.array_equal(double, 2.0 ** n)

    rng = np.random.default_rng(0)
    a = (rng.normal(size=(4, 300)) * 1000).astype(np.float32)
    scale = np.array([2.39325e-06], np.float32)
    assert np.array_equal(jax.jit(OPS.divide)(a, scale), a / scale)  # IEEE division, as PyTorch's
    assert np.array_equal(jax.jit(lambda a: OPS.divide(a, 3.7))(a), a / np.float32(3.7))

    x = rng.integers(-128, 128, (2, 3, 5)).astype(np.int8)
    w = rng.integers(-128, 128, (5, 4)).astype(np.int8)
    q, k = (rng.integers(-128, 128, (2, 3, 4, 5)).astype(np.int8) for _ in range(2))
    linear, scores = jax.jit(lambda x, w, q, k: (OPS.int_matmul(x, w), OPS.int_matmul(q, OPS.swap_last(k))))(x, w, q, k)
    assert linear.dtype == scores.dtype == jnp.int32
    assert np.array_equal(linear, x.astype(np.int32) @ w.astype(np.int32))
    assert np.array_equal(scores, q.astype(np.int32) @ np.swapaxes(k, -1, -2).astype(np.int32))

    assert OPS.below_2_31(jnp.asarray([2**31 - 1], jnp.int32))
    with jax.enable_x64(True):
        assert not OPS.below_2_31(jnp.asarray([2**31], jnp.int64))
        assert jax.jit(lambda v: jnp.asarray(OPS.below_2_31(v)))(jnp.asarray([1], jnp.int64)) == np.False_


# ---------------------------------------------------------------------------------------------------------------
# Float path (quant_mode off): every head, every output field, both padding sides


@pytest.mark.parametrize("head", HEADS)
def test_float_head_matches_transformers(head, tmp_path):
    hf = ORACLE.hf_model("IBert", head)
    hf.save_pretrained(tmp_path)
    ours = getattr(zoo, f"FlaxIBert{head}").from_pretrained(tmp_path)
    inputs = {**head_inputs(head, hf.config, labels_seed=1), **EVERY_OUTPUT}
    with torch.no_grad():
        expected = hf(**torch_inputs(inputs))
        expected_tuple = hf(**torch_inputs(inputs), return_dict=False)
    actual = ours(**inputs)
    assert_outputs_close(expected, actual, label=f"float {head}")
    assert len(actual.hidden_states) == TINY["num_hidden_layers"] + 1
    if head != "Model":
        assert np.isfinite(actual.loss)
    assert_outputs_close(expected_tuple, ours(**inputs, return_dict=False), label=f"float {head} as tuple")


# ---------------------------------------------------------------------------------------------------------------
# Simulated path: one jitted optax step of quantization-aware training, from a Hugging Face checkpoint


@pytest.fixture(scope="module")
def qat(tmp_path_factory):
    """Hugging Face's training forward (which calibrates its buffers) and two jitted optax steps of ours from the
    same checkpoint; the first step's forward is the one to compare."""
    folder = tmp_path_factory.mktemp("uncalibrated")
    hf = ORACLE.hf_model("IBert", "ForMaskedLM", quant_mode=True)
    hf.save_pretrained(folder)
    ours = zoo.FlaxIBertForMaskedLM.from_pretrained(folder)
    # No fully masked row: transformers' simulated softmax turns one into NaN (-inf minus -inf).
    inputs = {**head_inputs("ForMaskedLM", hf.config, labels_seed=1, rows=slice(0, 3)), **EVERY_OUTPUT}
    hf.train()
    with torch.no_grad():
        hf_out = hf(**torch_inputs(inputs))
    tx = optax.adam(1e-2)

    @jax.jit
    def step(params, opt_state, quant_stats):
        def loss(params):
            out, new_stats = ours(**inputs, params=params, quant_stats=quant_stats, train=True,
                                  dropout_rng=jax.random.PRNGKey(0))
            return out.loss, (out, new_stats)

        (value, (out, new_stats)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_stats, value, out, grads

    params, opt_state, stats, loss, out, grads = step(ours.params, tx.init(ours.params), ours.quant_stats)
    _, _, stats_after, loss_after, _, _ = step(params, opt_state, stats)
    return SimpleNamespace(hf=hf, hf_out=hf_out, ours=ours, out=out, stats=stats, grads=grads, loss=loss,
                           loss_after=loss_after, stats_after=stats_after, inputs=inputs)


def test_training_forward_calibrates_like_transformers(qat):
    hf_buffers = {name: value.numpy() for name, value in qat.hf.state_dict().items()}
    ours = flatten_params(qat.stats)
    assert ours.keys() <= hf_buffers.keys() and len(ours) == 143
    for name, value in ours.items():
        assert value.shape == hf_buffers[name].shape and value.dtype == jnp.float32, name
    # Every QuantAct that runs moved its range; the two that transformers declares but never calls did not.
    unused = ("embeddings.embeddings_act2.", ".LayerNorm.activation.")
    for name, value in ranges(ours).items():
        initial = -1e-5 if name.endswith("x_min") else 1e-5
        assert (value[0] == np.float32(initial)) == any(u in name for u in unused), name
    assert_outputs_close(qat.hf_out, qat.out, label="simulated training forward")


def test_training_calibrates_every_range_like_transformers(qat):
    hf_buffers = {name: value.numpy() for name, value in qat.hf.state_dict().items()}
    for name, value in ranges(flatten_params(qat.stats)).items():
        np.testing.assert_allclose(value, hf_buffers[name], rtol=1e-6, err_msg=name)


def test_jitted_quantization_aware_step_lowers_the_loss(qat):
    assert np.isfinite(qat.loss) and qat.loss_after < qat.loss
    grads = flatten_params(qat.grads)
    # Straight-through estimators pass gradients to every quantized weight.
    for path in ("ibert.embeddings.word_embeddings.embedding", "ibert.encoder.layer.0.attention.self.query.kernel",
                 "ibert.encoder.layer.1.output.LayerNorm.scale"):
        assert np.abs(grads[path]).max() > 0, path
    # The second step moved the ranges again (momentum 0.95) and wrote the derived buffers.
    before, after = flatten_params(qat.stats), flatten_params(qat.stats_after)
    assert not np.array_equal(before["ibert.encoder.layer.0.pre_output_act.x_max"],
                              after["ibert.encoder.layer.0.pre_output_act.x_max"])
    assert np.abs(after["ibert.encoder.layer.0.intermediate.dense.weight_integer"]).max() == 127


# ---------------------------------------------------------------------------------------------------------------
# Integer path: the calibrated checkpoint through transformers (its float simulation), our PyTorch and our Flax


@pytest.fixture(scope="module")
def calibrated(qat, tmp_path_factory):
    """The checkpoint of the Hugging Face weights with our calibrated statistics, saved by Flax and loaded back in
    all three; each runs it in inference."""
    folder = tmp_path_factory.mktemp("calibrated")
    qat.ours.save_pretrained(folder, quant_stats=qat.stats)
    hf, info = transformers.IBertForMaskedLM.from_pretrained(folder, output_loading_info=True)
    loaded = {name: value.numpy().copy() for name, value in hf.state_dict().items()}  # its forward rewrites buffers
    pt = zoo.IBertForMaskedLM.from_pretrained(folder).eval()
    flax_model = zoo.FlaxIBertForMaskedLM.from_pretrained(folder)
    inputs = dict(qat.inputs)
    with torch.no_grad():
        hf_out, pt_out = (model.eval()(**torch_inputs(inputs)) for model in (hf, pt))
    out = jax.jit(lambda params, stats: flax_model(**inputs, params=params, quant_stats=stats))(
        flax_model.params, flax_model.quant_stats)
    return SimpleNamespace(loaded=loaded, info=info, flax=flax_model, hf_out=hf_out, pt_out=pt_out, out=out, inputs=inputs)


def test_save_pretrained_loads_in_transformers_with_buffers(qat, calibrated):
    assert not any(calibrated.info.values())  # nothing missing, unexpected or mismatched
    saved = {**flatten_params(qat.ours.params), **flatten_params(qat.stats)}
    for path, value in saved.items():
        name, transpose = to_canonical(path, "flax")
        expected = np.asarray(value).T if transpose else np.asarray(value)
        assert np.array_equal(calibrated.loaded[name], expected), path
    # ... and back: the buffers round-trip into Flax unchanged.
    back = flatten_params(calibrated.flax.quant_stats)
    assert back.keys() == flatten_params(qat.stats).keys()
    for path, value in flatten_params(qat.stats).items():
        assert np.array_equal(back[path], value), path


def test_integer_inference_flows_in_integer_dtypes(calibrated):
    model = calibrated.flax

    def intermediates():
        _, state = model.module.apply({"params": model.params, "quant_stats": model.quant_stats},
                                      input_ids=calibrated.inputs["input_ids"], capture_intermediates=True,
                                      mutable=["intermediates"])
        return state["intermediates"]

    # Each module's calls; a quantization block returns (value, scale): the dtype of its first call's value.
    calls = {path.removesuffix(".__call__"): value for path, value in flatten_params(jax.eval_shape(intermediates)).items()}
    layer = "ibert.encoder.layer.0."
    expected = {
        "ibert.embeddings.word_embeddings": jnp.int8,
        "ibert.embeddings.embeddings_act1": jnp.int16,
        "ibert.embeddings.output_activation": jnp.int8,
        layer + "attention.self.query": jnp.int64,  # int8 x int8 accumulated in int32, plus the 32-bit bias
        layer + "attention.self.query_activation": jnp.int8,
        layer + "attention.self.softmax": jnp.int32,
        layer + "attention.output.ln_input_act": jnp.int32,  # 22 bits
        layer + "attention.output.LayerNorm": jnp.int64,
        layer + "intermediate.intermediate_act_fn": jnp.int64,
        "ibert.encoder.layer.1.output.output_activation": jnp.int8,
    }
    assert {path: calls[path][0][0].dtype for path in expected} == expected


def test_integer_inference_matches_pytorch_and_transformers(calibrated):
    ours, pt, hf = (flatten(o) for o in (calibrated.out, calibrated.pt_out, calibrated.hf_out))
    # Our PyTorch equals transformers' float simulation here: every sum and product it rounds stays below 2**24.
    assert_outputs_close(hf, pt, atol=EXACT, label="integer, PyTorch vs transformers")
    assert_outputs_close(hf, ours, label="integer, Flax vs transformers")


def test_integer_inference_is_bit_identical_to_pytorch(calibrated):
    ours, pt = flatten(calibrated.out), flatten(calibrated.pt_out)
    encoder = [k for k in pt if k.startswith(("hidden_states", "attentions"))]
    assert len(encoder) == 5
    assert_outputs_close({k: pt[k] for k in encoder}, {k: ours[k] for k in encoder}, atol=EXACT, label="encoder")
    # The head is float layers on top (a layer norm, a projection), equal to float32 rounding.
    assert_outputs_close(pt, ours, label="integer, Flax vs PyTorch")


def test_checkpoint_without_buffers_loads(tmp_path):
    hf = ORACLE.hf_model("IBert", "ForMaskedLM", quant_mode=True)
    state = {k: v for k, v in hf.state_dict().items()
             if not k.endswith(("x_min", "x_max", "act_scaling_factor", "weight_integer", "_scaling_factor",
                                "bias_integer", "shift"))}
    hf.save_pretrained(tmp_path, state_dict=state)
    ours = zoo.FlaxIBertForMaskedLM.from_pretrained(tmp_path)
    stats = flatten_params(ours.quant_stats)
    assert len(stats) == 143
    for path, value in stats.items():
        initial = {"x_min": -1e-5, "x_max": 1e-5}.get(path.rpartition(".")[2], 0.0)
        assert np.all(value == np.float32(initial)), path
    words = ours.params["ibert"]["embeddings"]["word_embeddings"]["embedding"]
    assert np.array_equal(words, state["ibert.embeddings.word_embeddings.weight"].numpy())


# ---------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.fixture(scope="module")
def small_models():
    config = zoo.IBertConfig(**{**TINY, "max_position_embeddings": 20})
    quantized = zoo.IBertConfig(**{**TINY, "max_position_embeddings": 20, "quant_mode": True})
    return {False: zoo.FlaxIBertModel(config), True: zoo.FlaxIBertModel(quantized)}


IDS = np.array([[0, 5, 6, 7, 2]])


@pytest.mark.parametrize("inputs, error, message, quant_mode", [
    ({"input_ids": np.array([[0, 5, 99, 2]])}, ValueError, r"token id 99, outside the vocabulary \[0, 99\)", True),
    ({"input_ids": np.array([[0, 5, -1, 2]])}, ValueError, r"token id -1, outside the vocabulary", False),
    ({"input_ids": np.full((1, 19), 5)}, ValueError, "sequence length 19 exceeds the 18 positions", True),
    ({"input_ids": IDS, "attention_mask": np.ones((1, 4))}, ValueError, r"attention_mask has shape \[1, 4\]", False),
    ({"input_ids": IDS[0]}, ValueError, "input_ids must have 2 dimensions", False),
    ({"input_ids": IDS, "position_ids": IDS + 16}, ValueError, r"position_ids holds 23, outside \[0, 20\)", True),
    ({"input_ids": IDS, "token_type_ids": IDS}, ValueError, r"token_type_ids holds 7, outside \[0, 2\)", False),
    ({"input_ids": IDS, "head_mask": np.ones(3)}, ValueError, r"head_mask has shape \[3\]", False),
    ({"input_ids": IDS, "head_mask": np.full(4, 0.5)}, ValueError, "head_mask must hold only 0", True),
    ({}, ValueError, "give input_ids or inputs_embeds", False),
    ({"input_ids": IDS, "labels": IDS}, TypeError, "FlaxIBertModel takes no labels", False),
    ({"input_ids": IDS, "train": True}, ValueError, "needs dropout_rng", True),
], ids=["id too large", "negative id", "too long", "mask shape", "ids rank", "position ids", "token types",
        "head mask shape", "fractional head mask", "no input", "labels on base model", "train without rng"])
def test_bad_input_raises_clearly(small_models, inputs, error, message, quant_mode):
    with pytest.raises(error, match=message):
        small_models[quant_mode](**inputs)


def test_multiple_choice_needs_choices_and_float32():
    config = zoo.IBertConfig(**TINY)
    with pytest.raises(ValueError, match="computes in float32"):
        zoo.FlaxIBertForMaskedLM(config, dtype=jnp.bfloat16)
    with pytest.raises(ValueError, match="input_ids must have 3 dimensions"):
        zoo.FlaxIBertForMultipleChoice(config)(IDS)
