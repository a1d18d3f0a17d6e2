"""TensorFlow / Keras 3 I-BERT against transformers 4.57.6 (PyTorch), the oracle, and against our PyTorch I-BERT,
in the three paths: float (``quant_mode=False``), simulated fake quantization (quant_mode with ``training=True``)
and integer arithmetic (quant_mode in inference); plus ``TFOps`` against numpy and ``TorchOps``, checkpoints in
both directions with the quantization buffers, Keras ``fit`` and bad input.

Models start as Hugging Face models with O(0.1) random weights (see test_modeling_pt), saved with
``save_pretrained`` and loaded by our ``from_pretrained``. Tracing the integer path is slow (thousands of small
integer ops), so the quantized paths run in a graph once, through Keras ``fit`` and ``predict`` on a one-layer model.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import keras

import rosettazoo.ibert as zoo
from rosettazoo.conversion import to_canonical
from rosettazoo.ibert import quant
from rosettazoo.ibert.quant_pt import OPS as TORCH_OPS
from rosettazoo.ibert.quant_tf import OPS
from rosettazoo.ibert.weights import QUANT_BUFFERS
from tests.harness import assert_outputs_close, call, labels_for, numpy_inputs
from tests.ibert.cases import CONFIG, HEADS, ORACLE, TINY, batch, buffers, calibrated_hf, head_batch


def tf_buffers(model) -> dict:
    """{canonical name: array} of the quantization buffers."""
    named = {to_canonical(path, "tf")[0]: v.numpy() for path, v in model.variables_by_path().items()}
    return {name: value for name, value in named.items() if name.rpartition(".")[2] in QUANT_BUFFERS}


# ---------------------------------------------------------------------------------------------------- the backend


def test_tf_ops_match_numpy():
    values = np.array([0.0, -0.0, 1.0, -3.5, 0.75, 1e-300, 7.3e12, -2.0 ** -1022, np.inf, np.nan], np.float64)
    mantissa, exponent = OPS.frexp(tf.constant(values))
    want_mantissa, want_exponent = np.frexp(values)
    np.testing.assert_array_equal(mantissa.numpy(), want_mantissa)
    np.testing.assert_array_equal(exponent.numpy(), want_exponent)
    for dtype, low, high in ((tf.float32, -126, 127), (tf.float64, -1022, 1023)):
        n = np.arange(low, high + 1)
        got = OPS.pow2(tf.constant(n, tf.int64), dtype).numpy()
        assert got.dtype == dtype.as_numpy_dtype and np.array_equal(got, np.ldexp(1.0, n))
    halves = tf.constant([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    np.testing.assert_array_equal(OPS.round(halves).numpy(), [-2, -2, -0, 0, 2, 2])  # half to even
    ints = tf.constant([-9, -8, -1, 0, 7, 2 ** 40 + 3], tf.int64)
    np.testing.assert_array_equal(OPS.right_shift(ints, 2).numpy(), np.right_shift(ints.numpy(), 2))  # arithmetic
    np.testing.assert_array_equal(OPS.floor_divide(ints, -3).numpy(), ints.numpy() // -3)
    np.testing.assert_array_equal(OPS.fmod(tf.constant([-7.5, 7.5]), 2.0).numpy(), np.fmod([-7.5, 7.5], 2.0))
    np.testing.assert_array_equal(OPS.where(ints > 0, 1, ints).numpy(), np.where(ints.numpy() > 0, 1, ints.numpy()))
    powers = tf.constant(np.ldexp(1.0, np.arange(-40, 60)).astype(np.float32))
    np.testing.assert_array_equal(OPS.log2(powers).numpy(), np.arange(-40, 60))  # exact: the shift's ceil needs it
    rng = np.random.default_rng(0)
    a, b = rng.integers(-128, 128, (2, 3, 5, 64)), rng.integers(-128, 128, (2, 3, 64, 7))
    product = OPS.int_matmul(tf.constant(a, tf.int8), tf.constant(b, tf.int8))
    assert product.dtype == tf.int32 and np.array_equal(product.numpy(), a @ b)
    product = OPS.int_matmul(tf.constant(a, tf.int32), tf.constant(b[0, 0], tf.int8))
    assert product.dtype == tf.int32 and np.array_equal(product.numpy(), a @ b[0, 0])


def test_quant_arithmetic_is_bit_identical_to_torch():
    """The same quant.py calls through TFOps and TorchOps give the same integers and the same floats."""
    rng = np.random.default_rng(1)
    scores = rng.integers(-3000, 3000, (2, 2, 5, 7)).astype(np.int32)
    masked = np.zeros((2, 1, 1, 7), bool)
    masked[1, ..., 4:] = True
    x16 = rng.integers(-30000, 30000, (2, 5, 32)).astype(np.int64)
    gelu_in = rng.integers(-2 ** 20, 2 ** 20, (3, 37)).astype(np.int64)
    weight = (1 + 0.2 * rng.standard_normal(32)).astype(np.float32)
    bias = (0.2 * rng.standard_normal(32)).astype(np.float32)
    scale = np.array([3e-4], np.float32)
    out_scale = np.array([0.0213], np.float32)
    simulated = (rng.standard_normal((2, 5, 32)) * 3).astype(np.float32)

    def calls(ops, tensor):
        return {
            "requantize": quant.requantize(ops, tensor(x16), tensor(scale), 8, tensor(out_scale),
                                           tensor(x16[::-1].copy()), tensor(scale * 3)),
            "int_softmax": quant.int_softmax(ops, tensor(scores), tensor(scale), tensor(masked), tensor(out_scale), 8)[0],
            "int_layer_norm": quant.int_layer_norm(ops, tensor(x16), tensor(weight), tensor(bias),
                                                   tensor(np.array([2.0], np.float32)))[0],
            "int_gelu": quant.int_gelu(ops, tensor(gelu_in), tensor(scale))[0],
            "fixed_point_mul": quant.fixed_point_mul(ops, tensor(simulated), tensor(scale), 8, tensor(out_scale)),
            "simulated_gelu": quant.simulated_gelu(ops, tensor(simulated), tensor(out_scale))[0],
            "simulated_layer_norm": quant.simulated_layer_norm(ops, tensor(simulated), tensor(scale), tensor(weight),
                                                               tensor(bias), tensor(np.zeros(1, np.float32)), True)[0],
        }

    theirs = calls(TORCH_OPS, torch.from_numpy)
    ours = calls(OPS, tf.constant)
    for name, want in theirs.items():
        got = ours[name].numpy()
        assert got.dtype == want.numpy().dtype and np.array_equal(got, want.numpy()), name


# ---------------------------------------------------------------------------------------------------- float path


@pytest.mark.parametrize("head", HEADS)
def test_float_heads_match_transformers_both_ways(head, tmp_path):
    hf, ours = ORACLE.pair("tf", "IBert", head, tmp_path / "hf")
    inputs = head_batch(head)
    labels = labels_for(head, ours.config, inputs)
    label = f"TFIBert{head}"
    assert_outputs_close(call(hf, **inputs, **labels), ours(**numpy_inputs({**inputs, **labels})), label=label)
    assert_outputs_close(call(hf, **inputs, output_hidden_states=True, output_attentions=True, return_dict=False),
                         ours(**numpy_inputs(inputs), output_hidden_states=True, output_attentions=True,
                              return_dict=False), label=f"{label} tuple")
    # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = getattr(transformers, f"IBert{head}").from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_outputs_close(call(reloaded.eval(), **inputs, output_hidden_states=True),
                         ours(**numpy_inputs(inputs), output_hidden_states=True), label=f"{label} saved by us")


def test_float_inputs_embeds_positions_head_mask_and_3d_mask(tmp_path):
    hf, ours = ORACLE.pair("tf", "IBert", "Model", tmp_path)
    inputs = batch()
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = hf.embeddings.word_embeddings(ids)[0].detach()
    cases = {
        "inputs_embeds": {"inputs_embeds": embeds, "attention_mask": mask},
        "position_ids": {"input_ids": ids, "attention_mask": mask, "position_ids": torch.arange(3, 12).expand(4, -1)},
        "head_mask": {**inputs, "head_mask": torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]]),
                      "output_attentions": True},
        "3D attention mask": {"input_ids": ids, "attention_mask": mask[:, None, :].expand(-1, 9, -1)},
    }
    for label, case in cases.items():
        assert_outputs_close(call(hf, **case), ours(**numpy_inputs(case)), label=label)


# ---------------------------------------------------------------------------------------------------- simulated path


def assert_simulation_close(expected, actual, label: str) -> None:
    """Every field within 1e-5, except where a float32 rounding order crosses a floor of the simulation.

    PyTorch's and TensorFlow's float32 matmuls sum the attention scores in different orders; where a score sits on
    a floor boundary of i-exp, one ulp moves a probability by one quantum (1/256). Measured over three weight seeds
    and three steps: one probability of 972 moved, in one forward of nine, and nothing else did.
    """
    expected, actual = dict(expected), dict(actual)
    expected_probs, actual_probs = expected.pop("attentions", None), actual.pop("attentions", None)
    assert_outputs_close(expected, actual, label=label)
    if expected_probs is not None:
        assert_outputs_close(expected_probs, actual_probs, atol=1 / 256, label=f"{label} attentions")
        moved = sum(int(np.sum(np.abs(e.detach().numpy() - np.asarray(a)) > 1e-5))
                    for e, a in zip(expected_probs, actual_probs))
        assert moved <= 2, f"{label}: {moved} attention probabilities moved by a quantum"


def test_simulated_training_forward_matches_transformers_and_buffers(tmp_path):
    hf, ours = ORACLE.pair("tf", "IBert", "ForMaskedLM", tmp_path / "hf", quant_mode=True)
    hf.train()
    for step in range(3):  # the first forward sets the ranges, later ones move them with momentum 0.95
        inputs = batch(seed=step, fully_masked_row=False)
        inputs.update(labels_for("ForMaskedLM", CONFIG, inputs), output_hidden_states=True, output_attentions=True)
        expected = hf(**inputs)
        with tf.GradientTape() as tape:
            actual = ours(**numpy_inputs(inputs), training=True)
        assert_simulation_close(expected, actual, label=f"training step {step}")
        theirs, mine = {k: v.detach().numpy() for k, v in buffers(hf).items()}, tf_buffers(ours)
        assert sorted(theirs) == sorted(mine)
        for name, want in theirs.items():
            # Float32 matmuls sum in another order than PyTorch's: ranges and scales agree to an ulp or two;
            # the integers derived from the weights agree exactly, and the bias integers within one.
            if name.endswith(("x_min", "x_max", "scaling_factor")):
                np.testing.assert_allclose(mine[name], want, rtol=5e-7, err_msg=name)
            else:
                np.testing.assert_allclose(mine[name], want, rtol=0, atol=1 if name.endswith("bias_integer") else 0,
                                           err_msg=name)
        # The straight-through gradients reach every weight but the I-LayerNorm biases (detached in HF as here).
        variables = ours.trainable_variables
        grads = tape.gradient(actual.loss, variables)
        missing = [v.path for v, g in zip(variables, grads) if g is None and not v.path.endswith("LayerNorm/beta")]
        assert not missing and all(np.isfinite(g.numpy()).all() for g in grads if g is not None)

    # Our checkpoint, buffers included, loads in transformers, which then simulates the same outputs.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = transformers.IBertForMaskedLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    saved = tf_buffers(ours)
    assert all(np.array_equal(saved[name], value.detach().numpy()) for name, value in buffers(reloaded).items())
    inputs = {**batch(seed=5, fully_masked_row=False), "output_attentions": True}
    assert_simulation_close(call(reloaded.train(), **inputs), ours(**numpy_inputs(inputs), training=True),
                            label="reloaded in transformers")


# ---------------------------------------------------------------------------------------------------- integer path


def assert_integer_outputs_equal(expected, actual, label: str, atol: float = 0.0) -> None:
    """The encoder's dequantized integers (hidden states, attentions) within ``atol`` (0: bit-identical); the
    float pooler and heads within float32 rounding."""
    expected, actual = dict(expected), dict(actual)
    for field in ("last_hidden_state", "hidden_states", "attentions"):
        if field in expected:
            assert_outputs_close(expected.pop(field), actual.pop(field), atol=atol, label=f"{label} {field}")
    assert_outputs_close(expected, actual, label=label)


@pytest.mark.parametrize("num_hidden_layers, force_dequant", [(1, "none"), (2, "none"), (1, "nonlinear")])
def test_integer_inference_is_integer_and_bit_identical(num_hidden_layers, force_dequant, tmp_path):
    hf = calibrated_hf("ForSequenceClassification", tmp_path, num_hidden_layers=num_hidden_layers,
                       force_dequant=force_dequant)
    ours = zoo.TFIBertForSequenceClassification.from_pretrained(tmp_path)
    torch_ours = zoo.IBertForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = {**batch(seed=4, fully_masked_row=False), "output_hidden_states": True, "output_attentions": True}

    # Integer tensors flow from the embedding lookup on: int8 lookups and activations, int64 accumulators
    # (int32 matmuls plus the bias), int16 embedding sums, int32 probabilities (float where force-dequantized).
    base, tf_inputs = ours.ibert, numpy_inputs(inputs)
    embeddings = base.embeddings
    assert embeddings.word_embeddings(tf_inputs["input_ids"])[0].dtype == tf.int8
    summed, _ = embeddings.embeddings_act1(*embeddings.word_embeddings(tf_inputs["input_ids"]),
                                           *embeddings.token_type_embeddings(tf_inputs["token_type_ids"]))
    assert summed.dtype == tf.int16
    hidden, scale = embeddings(tf_inputs["input_ids"], token_type_ids=tf_inputs["token_type_ids"])
    attention = base.encoder.layer[0].attention.self
    query, query_scale = attention.query(hidden, scale)
    assert hidden.dtype == tf.int8 and query.dtype == tf.int64
    assert attention.query_activation(query, query_scale)[0].dtype == tf.int8
    output, _, probs, _ = base.encoder.layer[0](hidden, scale)
    assert output.dtype == tf.int8 and probs.dtype == (tf.float32 if force_dequant == "nonlinear" else tf.int32)

    actual = ours(**tf_inputs)
    assert all(t.dtype == tf.float32 for t in tf.nest.flatten(actual.to_tuple()))
    # Bit-identical to our PyTorch integer path and, at this size, to transformers' float32 simulation (see
    # test_modeling_pt); the heads are float, so logits agree within float32 rounding. A force-dequantized
    # softmax computes in float32, where TensorFlow's and PyTorch's exp round differently: 1 ulp.
    atol = 0.0 if force_dequant == "none" else 1e-6
    for label, model in (("PyTorch", torch_ours), ("transformers", hf)):
        assert_integer_outputs_equal(call(model, **inputs), actual, label, atol=atol)


def test_integer_head_mask_and_inputs_embeds(tmp_path):
    calibrated_hf("Model", tmp_path / "calibrated", num_hidden_layers=1)
    folder = tmp_path / "calibrated"
    ours, torch_ours = zoo.TFIBertModel.from_pretrained(folder), zoo.IBertModel.from_pretrained(folder)
    inputs = {**batch(seed=4, fully_masked_row=False), "output_attentions": True, "output_hidden_states": True}
    head_mask = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert_integer_outputs_equal(call(torch_ours.eval(), **inputs, head_mask=head_mask),
                                 ours(**numpy_inputs(inputs), head_mask=head_mask.numpy()), "head mask")
    with pytest.raises(ValueError, match="head_mask must hold only 0 .* and 1 .* in integer inference"):
        ours(**numpy_inputs(inputs), head_mask=np.array([1.0, 0.5, 1.0, 1.0]))

    # Float embeddings are quantized on entry to the 16-bit sum, as in PyTorch.
    embeds = np.random.default_rng(3).standard_normal((3, 9, 32)).astype(np.float32) * 0.3
    case = {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"].numpy(), "output_hidden_states": True}
    assert_integer_outputs_equal(call(torch_ours, **{**case, "inputs_embeds": torch.from_numpy(embeds),
                                                          "attention_mask": inputs["attention_mask"]}),
                                 ours(**case), "inputs_embeds")


# ---------------------------------------------------------------------------------------------------- training, graphs


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # the I-LayerNorm biases, detached as in transformers
def test_keras_fit_in_quant_mode_lowers_the_loss_and_predicts_integers(tmp_path):
    _, ours = ORACLE.pair("tf", "IBert", "ForSequenceClassification", tmp_path, quant_mode=True, num_hidden_layers=1)
    inputs = numpy_inputs(batch(seed=6, fully_masked_row=False))
    labels = np.array([0, 2, 1])
    keras.utils.set_random_seed(0)
    ours.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = ours.fit({**inputs, "labels": labels}, epochs=6, batch_size=3, verbose=0).history["loss"]
    assert history[-1] < history[0] and all(np.isfinite(history)), history
    x_max = ours.ibert.encoder.layer[0].output.output_activation.x_max.numpy()
    assert x_max[0] > 1e-3  # calibrated by the training steps
    # predict runs the integer path in a graph; eager gives the same logits.
    predicted = ours.predict(inputs, batch_size=3, verbose=0)["logits"]
    np.testing.assert_allclose(predicted, ours(**inputs).logits.numpy(), atol=1e-6)


# ---------------------------------------------------------------------------------------------------- checkpoints


def test_fresh_model_names_and_checkpoint_without_buffers(tmp_path):
    config = zoo.IBertConfig(**TINY, quant_mode=True)
    ours = zoo.TFIBertForMaskedLM(config)
    assert all(layer.built for layer in ours._flatten_layers())
    theirs = transformers.IBertForMaskedLM(transformers.IBertConfig(**TINY, quant_mode=True))
    tied = {"lm_head.decoder.weight", "lm_head.decoder.bias"}
    paths = ours.variables_by_path()
    assert sorted(to_canonical(path, "tf")[0] for path in paths) == sorted(set(theirs.state_dict()) - tied)
    for path, variable in paths.items():
        name = to_canonical(path, "tf")[0]
        if name in theirs.state_dict() and name.rpartition(".")[2] in QUANT_BUFFERS:
            assert variable.dtype == "float32" and not variable.trainable, path
            assert np.array_equal(variable.numpy(), theirs.state_dict()[name].numpy()), path  # initial values

    # A checkpoint without the buffers (saved before quantization-aware training) loads; buffers keep their
    # initial values, weights come from the file.
    hf = ORACLE.hf_model("IBert", "ForMaskedLM", quant_mode=True)
    state = {k: v for k, v in hf.state_dict().items() if k.rpartition(".")[2] not in QUANT_BUFFERS}
    hf.config.save_pretrained(tmp_path)
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items() if k not in tied}, tmp_path / "model.safetensors")
    loaded = zoo.TFIBertForMaskedLM.from_pretrained(tmp_path)
    fresh = tf_buffers(ours)
    assert all(np.array_equal(value, fresh[name]) for name, value in tf_buffers(loaded).items())
    kernel = loaded.ibert.encoder.layer[0].attention.self.query.kernel.numpy()
    assert np.array_equal(kernel, state["ibert.encoder.layer.0.attention.self.query.weight"].numpy().T)


# ---------------------------------------------------------------------------------------------------- bad input


def test_bad_input_errors(tmp_path):
    _, ours = ORACLE.pair("tf", "IBert", "Model", tmp_path)  # the checks run before any path is chosen
    inputs = numpy_inputs(batch(fully_masked_row=False))
    ids = inputs["input_ids"]
    for training in (False, True):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            ours(input_ids=np.where(ids == ids[0, 0], 99, ids), training=training)
    with pytest.raises(ValueError, match="token_type_ids holds 2"):
        ours(input_ids=ids, token_type_ids=np.full_like(ids, 2))
    with pytest.raises(ValueError, match="position_ids holds 40"):
        ours(input_ids=ids, position_ids=np.full_like(ids, 40))
    with pytest.raises(ValueError, match="exceeds the 38 positions"):
        ours(input_ids=np.full((1, 39), 5))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        ours(input_ids=ids, attention_mask=inputs["attention_mask"][:, :5])
    with pytest.raises(ValueError, match="either input_ids or inputs_embeds"):
        ours(input_ids=ids, inputs_embeds=np.zeros((3, 9, 32), np.float32))
    with pytest.raises(ValueError, match="input_ids must have 2 dimensions"):
        ours(input_ids=ids[0])
    with pytest.raises(ValueError, match="quant_mode=True.* load it in float32, not bfloat16"):
        zoo.TFIBertModel(zoo.IBertConfig(**TINY, quant_mode=True), dtype="bfloat16")
    # In a graph the ids are unknown until run time: an assert stops the gather.
    graph = tf.function(lambda x: ours(input_ids=x).last_hidden_state)
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
        graph(tf.constant(np.where(ids == ids[0, 0], 99, ids)))
