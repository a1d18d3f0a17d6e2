"""``model.export(path)`` with no hand-written signature: the model knows its inputs (int32 ids and masks, any batch
and length; BART's seq2seq heads also decoder ones), and the SavedModel serves the same logits."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tests.training.keras_cases import make_case

EXPORTED = [("roberta", "ForMaskedLM"), ("roberta", "ForMultipleChoice"), ("bart", "ForConditionalGeneration"),
            ("opt", "ForCausalLM")]


def serving_batch(model, batch: int, length: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shape = (batch, 2, length) if model.serving_rank == 3 else (batch, length)
    inputs = {}
    for name in model.serving_inputs:
        if name.endswith("attention_mask"):
            mask = np.ones(shape, np.int32)
            mask[0, ..., -2:] = 0  # right padding in the first row
            inputs[name] = mask
        else:
            inputs[name] = rng.integers(3, model.config.vocab_size, shape).astype(np.int32)
    return inputs


@pytest.mark.parametrize(("family", "head"), EXPORTED)
def test_export_serves_the_models_logits(family, head, tmp_path):
    model = make_case(family, head).model
    signature = model.input_signature()
    assert all(spec.dtype == tf.int32 and spec.shape.rank == model.serving_rank and None in spec.shape
               for spec in signature.values())
    model.export(tmp_path / "saved", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved"))
    for batch, length, seed in ((3, 7, 0), (1, 11, 1)):  # dynamic batch and length
        inputs = serving_batch(model, batch, length, seed)
        expected = model(inputs).logits
        output = served.serve({name: tf.constant(value) for name, value in inputs.items()})
        assert "past_key_values" not in output
        np.testing.assert_allclose(output["logits"], expected, atol=1e-5)
