"""Keras fit / evaluate / predict with labels as targets y, for every head of every family.

Targets train exactly as labels in the inputs (BART's decoder inputs are built from them), on the model's own
loss, or on a Keras loss and metrics applied to the logits. The per-head tests run eagerly (``run_eagerly=True``:
no tracing per class); the compiled path (Keras' default, XLA) runs for BART, whose targets are the trickiest.
Mixed precision (``mixed_bfloat16``) trains too.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras

from tests.training.keras_cases import all_heads, make_case

HEADS = all_heads()
SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
LABEL_TO_OUTPUT = {"labels": "logits", "start_positions": "start_logits", "end_positions": "end_logits"}
LEARNING_RATE = 0.5


def with_ignored_tokens(labels: dict) -> dict:
    """Token labels with -100 at a few places (left out of the model's own loss)."""
    labels = {name: value.copy() for name, value in labels.items()}
    if labels.get("labels") is not None and labels["labels"].ndim == 2:
        labels["labels"][0, :2] = -100
        labels["labels"][3, -1] = -100
    return labels


def max_difference(a: dict, b: dict) -> float:
    return max(float(np.abs(a[name] - b[name]).max()) for name in a)


def sgd_step_by_hand(model, inputs: dict) -> tuple[float, dict]:
    """The model's own loss and its weights after one SGD step, computed with a tape (labels in the inputs); the
    model is left as it was (I-BERT's training forward also updates its activation ranges)."""
    initial = model.numpy_weights()
    with tf.GradientTape() as tape:
        loss = model(inputs, training=True).loss
    gradients = tape.gradient(loss, model.trainable_variables)
    stepped = {id(v): v.numpy() - LEARNING_RATE * tf.convert_to_tensor(g).numpy()
               for v, g in zip(model.trainable_variables, gradients) if g is not None}
    weights = {path: stepped.get(id(v), v.numpy()) for path, v in model.variables_by_path().items()}
    model.load_arrays(initial)
    return float(loss), weights


def compile_keras_loss(model, y):
    if isinstance(y, dict):  # question answering: a loss and a metric per output
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), run_eagerly=True, loss={k: SCCE for k in y},
                      metrics={k: ["accuracy"] for k in y})
    else:
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), run_eagerly=True, loss=SCCE,
                      metrics=["accuracy"])


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # BartForCausalLM without encoder states
@pytest.mark.parametrize(("family", "head"), HEADS)
def test_fit_evaluate_predict_with_targets(family, head):
    case = make_case(family, head)
    model, x = case.model, case.inputs

    # The model's own loss: targets y (a few tokens ignored) train exactly as labels in the inputs.
    labels = with_ignored_tokens(case.labels)
    y = labels["labels"] if "labels" in labels else labels
    initial = model.numpy_weights()
    expected_loss, expected_weights = sgd_step_by_hand(model, {**x, **labels})
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), run_eagerly=True)
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert abs(history["loss"][0] - expected_loss) <= 1e-5
    assert max_difference(model.numpy_weights(), expected_weights) <= 1e-6
    assert max_difference(model.numpy_weights(), initial) > 1e-3  # the step trained

    # A Keras loss and metric, applied to the logits of the same batch (BART's follow its decoder inputs).
    y = case.targets
    output = model({**x, **case.labels})
    expected_loss, accuracy = 0.0, {}
    for name, target in case.labels.items():
        logits = output[LABEL_TO_OUTPUT[name]].numpy()
        expected_loss += float(SCCE(target, logits))
        accuracy["accuracy" if name == "labels" else f"{name}_accuracy"] = float(np.mean(logits.argmax(-1) == target))
    compile_keras_loss(model, y)
    result = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert abs(result["loss"] - expected_loss) <= 1e-5
    assert all(abs(result[key] - value) <= 1e-6 for key, value in accuracy.items()), (accuracy, result)

    predicted = model.predict(x, batch_size=4, verbose=0)
    assert "loss" not in predicted
    field = "logits" if "logits" in predicted else "start_logits"
    np.testing.assert_allclose(predicted[field], model(x)[field], atol=1e-5)


def test_bart_targets_of_another_length_compiled():
    """Keras' default compiled step: decoder inputs built from targets y in the graph, own loss and Keras loss."""
    case = make_case("bart", "ForConditionalGeneration")
    model, x, y = case.model, case.inputs, case.targets
    assert y.shape[1] != x["input_ids"].shape[1]
    initial = model.numpy_weights()
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    own_loss = float(model({**x, "labels": y}).loss)
    assert abs(model.evaluate(x, y, batch_size=4, verbose=0) - own_loss) <= 1e-5
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    with_targets = model.numpy_weights()
    model.load_arrays(initial)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=SCCE, metrics=["accuracy"])
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # the same mean cross entropy, as a Keras loss
    assert max_difference(model.numpy_weights(), with_targets) <= 1e-5
    assert max_difference(with_targets, initial) > 1e-3


def test_targets_the_model_cannot_take_are_a_clear_error():
    case = make_case("roberta", "ForSequenceClassification")
    model, x, y = case.model, case.inputs, case.targets
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), run_eagerly=True)
    with pytest.raises(ValueError, match=r"\['labels'\] both in the inputs x and as targets y"):
        model.evaluate({**x, "labels": y}, y, verbose=0)
    with pytest.raises(ValueError, match=r"its labels are \['labels'\], not \['start_positions'\]"):
        model.evaluate(x, {"start_positions": y}, verbose=0)
    bare = make_case("roberta", "ForMaskedLM").model.get_base_model()
    bare.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), run_eagerly=True)
    with pytest.raises(ValueError, match="computes no loss of its own"):
        bare.evaluate(x, y, verbose=0)


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_bfloat16_trains(mixed_bfloat16):
    case = make_case("bart", "ForConditionalGeneration")
    model = case.model
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert model(case.inputs).logits.dtype == tf.bfloat16
    initial = model.numpy_weights()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), run_eagerly=True)  # eager: no tracing to wait for
    losses = model.fit(case.inputs, case.targets, batch_size=4, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[1] < losses[0]
    weights = model.numpy_weights()
    assert all(np.isfinite(array).all() for array in weights.values())
    assert max(float(np.abs(weights[path] - initial[path]).max()) for path in initial) > 1e-4
