"""Gradient checkpointing in every family and framework: with dropout on, the checkpointed model recomputes each
layer in the backward pass (checked by counting layer calls, or by the remat in the Flax program) and its
gradients equal the plain ones <= 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import jax  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

import rosettazoo.bart as bart  # noqa: E402
import rosettazoo.ibert as ibert  # noqa: E402
import rosettazoo.opt as opt  # noqa: E402
import rosettazoo.roberta as roberta  # noqa: E402
from rosettazoo.common.modeling_flax import flatten_params  # noqa: E402

TOLERANCE = 1e-6  # the recomputation repeats the same float operations; only fusion may reorder them
ENCODER = dict(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=40)
FAMILIES = {
    "roberta": (roberta, "RobertaForMaskedLM", lambda: roberta.RobertaConfig(**ENCODER), 1),
    "roberta_prelayernorm": (roberta, "RobertaPreLayerNormForMaskedLM",
                             lambda: roberta.RobertaPreLayerNormConfig(**ENCODER), 1),
    "ibert": (ibert, "IBertForMaskedLM", lambda: ibert.IBertConfig(**ENCODER), 1),
    "bart": (bart, "BartForConditionalGeneration", lambda: bart.BartConfig(
        vocab_size=96, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=40), 2),
    "opt": (opt, "OPTForCausalLM", lambda: opt.OPTConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1,
                                                        num_attention_heads=4, ffn_dim=37,
                                                        max_position_embeddings=40), 1),
}


def batch():
    rng = np.random.default_rng(0)
    input_ids = rng.integers(4, 96, size=(2, 8))
    attention_mask = np.ones_like(input_ids)
    attention_mask[1, -2:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": rng.integers(0, 96, size=(2, 8))}


def layers_of(model) -> list:
    """Every layer of every stack, PyTorch or Keras."""
    if isinstance(model, torch.nn.Module):
        stacks = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
        return [layer for stack in stacks for layer in (getattr(stack, "layer", None) or stack.layers)]
    stacks = [m for m in model._flatten_layers() if hasattr(m, "gradient_checkpointing")]
    return [layer for stack in stacks for layer in (getattr(stack, "layer", None) or stack.layers)]


def pt_gradients(model, inputs) -> tuple[dict[str, np.ndarray], int]:
    calls = []
    # A pre-hook: the recomputation stops (early stop) once it has what the backward pass needs.
    hooks = [layer.register_forward_pre_hook(lambda *_: calls.append(1)) for layer in layers_of(model)]
    torch.manual_seed(0)
    model.zero_grad()
    model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).loss.backward()
    for hook in hooks:
        hook.remove()
    return {name: p.grad.numpy().copy() for name, p in model.named_parameters()}, len(calls)


def tf_gradients(model, inputs, state) -> tuple[dict[str, np.ndarray], int]:
    calls = []
    for layer in layers_of(model):
        call = type(layer).call
        layer.call = lambda *args, _call=call, _layer=layer, **kwargs: calls.append(1) or _call(_layer, *args,
                                                                                               **kwargs)
    for variable, value in state:  # the dropout seed counters back to where the plain run started
        variable.assign(value)
    with tf.GradientTape() as tape:
        loss = model(**inputs, training=True).loss
    grads = tape.gradient(loss, model.trainable_variables)
    for layer in layers_of(model):
        del layer.call
    return {v.path: tf.convert_to_tensor(g).numpy() for v, g in zip(model.trainable_variables, grads)}, len(calls)


def flax_gradients(model, inputs) -> tuple[dict[str, np.ndarray], str]:
    def loss(params):
        output = model(**inputs, params=params, train=True, dropout_rng=jax.random.PRNGKey(0))
        return (output[0] if isinstance(output, tuple) else output).loss  # I-BERT: (output, new quant stats)

    traced = jax.jit(jax.grad(loss)).trace(model.params)  # one trace gives the program and the compiled step
    program = str(traced.jaxpr)
    grads = traced.lower().compile()(model.params)
    return {k: np.asarray(v) for k, v in flatten_params(grads).items()}, program


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_pytorch(family):
    module, name, config, layers = FAMILIES[family]
    torch.manual_seed(0)
    model = getattr(module, name)(config()).train()
    plain, plain_calls = pt_gradients(model, batch())
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    checkpointed, calls = pt_gradients(model, batch())
    assert (plain_calls, calls) == (layers, 2 * layers)  # each layer ran again in the backward pass
    assert max_difference(plain, checkpointed) <= TOLERANCE
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tensorflow(family):
    module, name, config, layers = FAMILIES[family]
    model = getattr(module, "TF" + name)(config())
    state = [(v, v.numpy()) for v in model.variables if not v.trainable]
    plain, plain_calls = tf_gradients(model, batch(), state)
    model.gradient_checkpointing_enable()
    checkpointed, calls = tf_gradients(model, batch(), state)
    assert (plain_calls, calls) == (layers, 2 * layers)
    assert max_difference(plain, checkpointed) <= TOLERANCE


@pytest.mark.parametrize("family", list(FAMILIES))
def test_flax(family):
    module, name, config, _ = FAMILIES[family]
    model = getattr(module, "Flax" + name)(config())
    plain, program = flax_gradients(model, batch())
    assert "remat" not in program and "checkpoint" not in program
    model.gradient_checkpointing_enable()
    checkpointed, program = flax_gradients(model, batch())
    assert "checkpoint" in program or "remat" in program
    assert max_difference(plain, checkpointed) <= TOLERANCE


def test_quantized_ibert_refuses_in_every_framework():
    config = ibert.IBertConfig(**ENCODER, quant_mode=True)
    for prefix in ("", "TF", "Flax"):
        model = getattr(ibert, prefix + "IBertForMaskedLM")(config)
        with pytest.raises(ValueError, match="quant_mode=True updates its activation ranges"):
            model.gradient_checkpointing_enable()
