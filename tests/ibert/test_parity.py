"""I-BERT: PyTorch, TensorFlow and Flax agree on every head in every path.

- float (quant_mode off): every output field within 1e-5, as for RoBERTa;
- integer inference: the encoder's integers are bit-identical (hidden states and attentions, which are those
  integers times float32 scales, differ by exactly 0); the float heads on top agree within 1e-5;
- simulated quantization in training mode: outputs within 1e-5 and the calibrated ranges equal;
- the shared integer kernels give the same integers through all three backends.
"""

import random

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import jax  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

import rosettazoo.ibert as zoo  # noqa: E402
from rosettazoo.ibert import quant  # noqa: E402
from rosettazoo.ibert.quant_flax import OPS as JAX_OPS  # noqa: E402
from rosettazoo.ibert.quant_pt import OPS as TORCH_OPS  # noqa: E402
from rosettazoo.ibert.quant_tf import OPS as TF_OPS  # noqa: E402
from tests.harness import EVERY_OUTPUT, assert_outputs_close, flatten, head_inputs, run, to_numpy  # noqa: E402

HEADS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForMultipleChoice",
         "ForQuestionAnswering")
INTEGER_FIELDS = ("last_hidden_state", "hidden_states", "attentions")


def tiny_config(**overrides):
    values = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=40, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return zoo.IBertConfig(**values)


def calibrated_three(class_name: str, config, folder, inputs: dict, *, seed: int = 0) -> dict:
    """A PyTorch model whose ranges were calibrated by two training-mode forwards, saved with its buffers and
    loaded in all three frameworks (in inference mode)."""
    torch.manual_seed(seed)
    model = getattr(zoo, class_name)(config).train()
    calibration = {k: torch.from_numpy(v) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        for _ in range(2):
            model(**calibration)
    model.save_pretrained(folder)
    return {fw: getattr(zoo, prefix + class_name).from_pretrained(folder)
            for fw, prefix in (("pt", ""), ("tf", "TF"), ("flax", "Flax"))}


def split_fields(output) -> tuple[dict, dict]:
    flat = flatten(output)
    integer = {k: v for k, v in flat.items() if k.split(".")[0] in INTEGER_FIELDS}
    return integer, {k: v for k, v in flat.items() if k not in integer}


@pytest.mark.parametrize("head", HEADS)
def test_float_path_agrees(head, tmp_path):
    config = tiny_config(num_labels=2 if head == "ForQuestionAnswering" else 3)
    inputs = {**head_inputs(head, config), **EVERY_OUTPUT}
    torch.manual_seed(0)
    getattr(zoo, "IBert" + head)(config).save_pretrained(tmp_path)
    outputs = {fw: run(fw, getattr(zoo, prefix + "IBert" + head).from_pretrained(tmp_path), inputs)
               for fw, prefix in (("pt", ""), ("tf", "TF"), ("flax", "Flax"))}
    for fw in ("tf", "flax"):
        assert_outputs_close(outputs["pt"], outputs[fw], label=f"float {head} pt vs {fw}")


@pytest.mark.parametrize("head", HEADS)
def test_integer_inference_is_bit_identical(head, tmp_path):
    config = tiny_config(quant_mode=True, num_labels=2 if head == "ForQuestionAnswering" else 3)
    inputs = {**head_inputs(head, config), **EVERY_OUTPUT}
    models = calibrated_three("IBert" + head, config, tmp_path, inputs)
    outputs = {fw: run(fw, model, inputs) for fw, model in models.items()}
    pt_integer, pt_float = split_fields(outputs["pt"])
    assert "last_hidden_state" in pt_integer or "hidden_states.2" in pt_integer
    if head != "Model":
        assert {"logits", "loss"} <= pt_float.keys() or {"start_logits", "loss"} <= pt_float.keys()
    for fw in ("tf", "flax"):
        integer, floats = split_fields(outputs[fw])
        assert_outputs_close(pt_integer, integer, atol=0.0, label=f"integer {head} pt vs {fw}")
        # the heads and pooler are float layers over the dequantized encoder output
        assert_outputs_close(pt_float, floats, label=f"integer {head} heads pt vs {fw}")


def _train_forward(fw: str, model, inputs: dict):
    if fw == "pt":
        model.train()
        with torch.no_grad():
            return model(**{k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v
                            for k, v in inputs.items()})
    if fw == "tf":
        return model(**inputs, training=True)
    output, stats = model(**inputs, train=True, dropout_rng=jax.random.PRNGKey(0))
    model.quant_stats = stats
    return output


def _ranges(fw: str, model) -> dict:
    if fw == "pt":
        weights = {k: v for k, v in model.state_dict().items()}
    elif fw == "tf":
        weights = {path: variable.numpy() for path, variable in model.variables_by_path().items()}
    else:
        weights = model.numpy_weights()
    return {k: to_numpy(v) for k, v in weights.items() if k.endswith((".x_min", ".x_max", ".shift"))}


@pytest.mark.parametrize("head", ["ForMaskedLM", "ForSequenceClassification"])
def test_simulated_training_forward_agrees(head, tmp_path):
    config = tiny_config(quant_mode=True)
    inputs = {**head_inputs(head, config), **EVERY_OUTPUT}
    models = calibrated_three("IBert" + head, config, tmp_path, inputs)
    inputs = {k: v for k, v in inputs.items() if k not in ("output_attentions", "output_hidden_states")}
    outputs = {fw: _train_forward(fw, model, inputs) for fw, model in models.items()}
    ranges = {fw: _ranges(fw, model) for fw, model in models.items()}
    assert len(ranges["pt"]) > 20
    for fw in ("tf", "flax"):
        assert_outputs_close(outputs["pt"], outputs[fw], label=f"simulated {head} pt vs {fw}")
        assert ranges[fw].keys() == ranges["pt"].keys()
        for name, value in ranges["pt"].items():
            np.testing.assert_allclose(ranges[fw][name], value, rtol=1e-6, err_msg=f"{fw} {name}")


def test_checkpoint_round_trip_across_frameworks_keeps_buffers(tmp_path):
    config = tiny_config(quant_mode=True)
    inputs = {**head_inputs("ForMaskedLM", config), **EVERY_OUTPUT}
    models = calibrated_three("IBertForMaskedLM", config, tmp_path / "pt", inputs)
    models["tf"].save_pretrained(tmp_path / "tf")
    flax_model = zoo.FlaxIBertForMaskedLM.from_pretrained(tmp_path / "tf")
    flax_model.save_pretrained(tmp_path / "flax")
    back = zoo.IBertForMaskedLM.from_pretrained(tmp_path / "flax")
    original = models["pt"].state_dict()
    assert back.state_dict().keys() == original.keys()
    for name, value in back.state_dict().items():
        assert torch.equal(value, original[name]), name


BACKENDS = {"pt": (TORCH_OPS, torch.tensor, lambda x: x.numpy()),
            "tf": (TF_OPS, tf.constant, lambda x: x.numpy()),
            "flax": (JAX_OPS, np.asarray, np.asarray)}


def _through(fw: str, kernel, *columns):
    ops, to_tensor, to_numpy_ = BACKENDS[fw]
    if fw == "flax":
        with jax.enable_x64(True):
            return to_numpy_(kernel(ops, *(jax.numpy.asarray(c) for c in columns)))
    return to_numpy_(kernel(ops, *(to_tensor(c) for c in columns)))


def test_integer_kernels_agree_across_backends():
    rng = random.Random(0)
    x = np.array([rng.randrange(-2**40, 2**40) for _ in range(3000)] + [rng.randrange(-300, 300) for _ in range(1000)])
    m = np.array([rng.randrange(2**30, 2**31) for _ in range(len(x))])
    e = np.array([rng.randrange(0, 80) for _ in range(len(x))])
    results = {fw: _through(fw, quant.rounding_mul_shift, x, m, e) for fw in BACKENDS}
    variances = np.array([rng.randrange(0, 2**62) for _ in range(1000)])
    roots = {fw: _through(fw, quant.isqrt, variances) for fw in BACKENDS}
    for fw in ("tf", "flax"):
        np.testing.assert_array_equal(results[fw], results["pt"])
        np.testing.assert_array_equal(roots[fw], roots["pt"])
