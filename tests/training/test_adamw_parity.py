"""One AdamW step from the same weights on the same batch gives the same weights in PyTorch (torch.optim.AdamW),
Keras (keras.optimizers.AdamW) and optax (optax.adamw), to 1e-5, for a tiny RoBERTa classifier.

The settings that make them agree (all three: lr 1e-3, betas (0.9, 0.999), weight decay 0.01 decoupled and scaled
by the learning rate, bias correction, no AMSGrad; biases and LayerNorm weights not decayed):
- epsilon: PyTorch and optax add it to sqrt(v_hat) (bias-corrected), Keras to sqrt(v) before the correction, so
  Keras takes ``eps * sqrt(1 - beta2 ** step)``: exact on the first step (and within 1e-3 * eps of it from step 3).
- the decay mask: PyTorch by parameter groups, Keras ``exclude_from_weight_decay(var_names=...)`` (its LayerNorm
  weights are gamma and beta), optax ``mask=`` over the Flax tree (LayerNorm weights are scale and bias).
Our TF embeddings give dense gradients (``backend_tf.dense_gradient``): Keras' Adam mishandles sparse ones.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import keras
from safetensors.numpy import load_file

from rosettazoo.roberta import (
    FlaxRobertaForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    TFRobertaForSequenceClassification,
)

LEARNING_RATE, BETAS, EPSILON, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 1e-8, 0.01
STEP = 1


def not_decayed_pt(name: str) -> bool:
    return name.endswith(".bias") or ".LayerNorm." in name


def batch():
    rng = np.random.default_rng(0)
    input_ids = rng.integers(3, 99, (4, 8))
    attention_mask = np.ones_like(input_ids)
    attention_mask[1, -3:] = 0
    input_ids[attention_mask == 0] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}, np.array([0, 2, 1, 1])


def pt_step(folder) -> None:
    model = RobertaForSequenceClassification.from_pretrained(folder).train()
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if not not_decayed_pt(n)], "weight_decay": WEIGHT_DECAY},
         {"params": [p for n, p in named if not_decayed_pt(n)], "weight_decay": 0.0}],
        lr=LEARNING_RATE, betas=BETAS, eps=EPSILON)
    inputs, labels = batch()
    loss = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, labels=torch.from_numpy(labels)).loss
    loss.backward()
    optimizer.step()
    model.save_pretrained(folder / "pt")


def keras_adamw():
    optimizer = keras.optimizers.AdamW(learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY, beta_1=BETAS[0],
                                       beta_2=BETAS[1], epsilon=EPSILON * np.sqrt(1 - BETAS[1] ** STEP))
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def keras_step(folder, *, fit: bool = False) -> None:
    """With ``fit``, Keras' own step; else a step from a gradient tape."""
    model = TFRobertaForSequenceClassification.from_pretrained(folder)
    inputs, labels = batch()
    if fit:
        model.compile(optimizer=keras_adamw(), run_eagerly=True)
        model.fit(inputs, labels, batch_size=4, epochs=STEP, verbose=0)
    else:
        optimizer = keras_adamw()
        with tf.GradientTape() as tape:
            loss = model(inputs, labels=labels, training=True).loss
        gradients = tape.gradient(loss, model.trainable_variables)
        assert not any(isinstance(g, tf.IndexedSlices) for g in gradients)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    model.save_pretrained(folder / "tf")


def optax_step(folder) -> None:
    model = FlaxRobertaForSequenceClassification.from_pretrained(folder)
    decayed = jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key not in ("bias", "scale"), model.params)
    optimizer = optax.adamw(LEARNING_RATE, b1=BETAS[0], b2=BETAS[1], eps=EPSILON, weight_decay=WEIGHT_DECAY,
                            mask=decayed)
    inputs, labels = batch()
    gradients = jax.grad(lambda params: model(**inputs, labels=labels, params=params, train=False).loss)(model.params)
    updates, _ = optimizer.update(gradients, optimizer.init(model.params), model.params)
    model.params = optax.apply_updates(model.params, updates)
    model.save_pretrained(folder / "flax")


def tiny_checkpoint(folder) -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, max_position_embeddings=40, num_labels=3, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
    RobertaForSequenceClassification(config).save_pretrained(folder)
    return load_file(folder / "model.safetensors")


def max_differences(stepped: dict, reference: dict) -> dict[str, float]:
    assert set(stepped) == set(reference)
    return {name: float(np.abs(stepped[name] - reference[name]).max()) for name in reference}


def test_one_adamw_step_agrees_in_three_frameworks(tmp_path):
    initial = tiny_checkpoint(tmp_path)
    pt_step(tmp_path)
    keras_step(tmp_path)
    optax_step(tmp_path)
    stepped = {fw: load_file(tmp_path / fw / "model.safetensors") for fw in ("pt", "tf", "flax")}
    # A step of about lr, except in the attention key biases, whose gradient is zero but for rounding.
    assert np.median(list(max_differences(stepped["pt"], initial).values())) > 0.5 * LEARNING_RATE
    for fw in ("tf", "flax"):
        differences = max_differences(stepped[fw], stepped["pt"])
        assert max(differences.values()) <= 1e-5, (fw, sorted(differences.items(), key=lambda item: -item[1])[:3])


def test_keras_fit_takes_the_same_adamw_step(tmp_path):
    """Keras 3.15's Adam squares a sparse (IndexedSlices) gradient before summing the rows of repeated ids, so
    rows looked up k times would step sqrt(k) * lr: our embeddings' dense gradients keep fit exact."""
    tiny_checkpoint(tmp_path)
    pt_step(tmp_path)
    keras_step(tmp_path, fit=True)
    differences = max_differences(load_file(tmp_path / "tf" / "model.safetensors"),
                                  load_file(tmp_path / "pt" / "model.safetensors"))
    assert max(differences.values()) <= 1e-5, sorted(differences.items(), key=lambda item: -item[1])[:3]
