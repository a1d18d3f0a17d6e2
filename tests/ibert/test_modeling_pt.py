"""PyTorch I-BERT against transformers 4.57.6, the oracle, in its three paths: float (``quant_mode=False``),
simulated fake quantization (quant_mode while training) and integer arithmetic (quant_mode in inference); plus
checkpoints with and without the quantization buffers in both directions, quantization-aware training and bad input.

Every model starts as a Hugging Face model with weights drawn at O(0.1) scale, saved with ``save_pretrained`` and
loaded by our ``from_pretrained``.
"""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import rosettazoo.ibert as zoo  # noqa: E402
from rosettazoo.ibert.modeling_pt import as_float, position_ids_from_input_ids  # noqa: E402
from rosettazoo.ibert.quant_pt import (  # noqa: E402
    IntGELU,
    IntLayerNorm,
    IntSoftmax,
    QuantAct,
    QuantEmbedding,
    QuantLinear,
)
from rosettazoo.ibert.weights import QUANT_BUFFERS  # noqa: E402
from tests.harness import assert_outputs_close, call, flatten, labels_for  # noqa: E402
from tests.ibert.cases import CONFIG, HEADS, ORACLE, TINY, batch, buffers, calibrated_hf, head_batch  # noqa: E402

QUANT_BLOCKS = (QuantEmbedding, QuantAct, QuantLinear, IntGELU, IntSoftmax, IntLayerNorm)

torch.set_num_threads(1)


def assert_same_state(expected: dict, actual: dict, label: str) -> None:
    assert sorted(expected) == sorted(actual), f"{label}: names differ: {set(expected) ^ set(actual)}"
    different = [name for name in expected if not torch.equal(expected[name], actual[name])]
    assert not different, f"{label}: {different[:5]} differ"


# ----------------------------------------------------------------------------------------------------------------
# float path


@pytest.mark.parametrize("head", HEADS)
def test_float_heads_match_transformers_both_ways(head, tmp_path):
    hf, ours = ORACLE.pair("pt", "IBert", head, tmp_path / "hf")
    assert not any(module.training for module in ours.modules())
    inputs = head_batch(head)
    label = f"IBert{head}"
    assert_outputs_close(call(hf, **inputs, **labels_for(head, ours.config, inputs)),
                         call(ours, **inputs, **labels_for(head, ours.config, inputs)), label=label)
    assert_outputs_close(call(hf, **inputs, output_hidden_states=True, output_attentions=True, return_dict=False),
                         call(ours, **inputs, output_hidden_states=True, output_attentions=True, return_dict=False),
                         label=f"{label} tuple")
    # Our save loads in transformers with nothing missing or unexpected, and gives the same outputs.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = getattr(transformers, f"IBert{head}").from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_outputs_close(call(hf, **inputs, output_hidden_states=True),
                         call(reloaded.eval(), **inputs, output_hidden_states=True), label=f"{label} saved by us")


def test_float_inputs_embeds_positions_head_mask_and_3d_mask(tmp_path):
    hf, ours = ORACLE.pair("pt", "IBert", "Model", tmp_path)
    inputs = batch()
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = ours.embeddings.word_embeddings(ids)[0].detach()
    cases = {
        "inputs_embeds": {"inputs_embeds": embeds, "attention_mask": mask},
        "position_ids": {"input_ids": ids, "attention_mask": mask, "position_ids": torch.arange(3, 12).expand(4, -1)},
        "head_mask": {**inputs, "head_mask": torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]]),
                      "output_attentions": True},
        "3D attention mask": {"input_ids": ids, "attention_mask": mask[:, None, :].expand(-1, 9, -1)},
    }
    for label, case in cases.items():
        assert_outputs_close(call(hf, **case), call(ours, **case), label=label)


def test_sequence_classification_problem_types(tmp_path):
    generator = torch.Generator().manual_seed(3)
    cases = [(1, torch.randn(4, generator=generator), "regression"),
             (3, (torch.rand(4, 3, generator=generator) > 0.5).float(), "multi_label_classification")]
    for num_labels, labels, problem_type in cases:
        hf, ours = ORACLE.pair("pt", "IBert", "ForSequenceClassification", tmp_path / problem_type, num_labels=num_labels)
        assert_outputs_close(call(hf, **batch(), labels=labels), call(ours, **batch(), labels=labels), label=problem_type)
        assert ours.config.problem_type == hf.config.problem_type == problem_type


# ----------------------------------------------------------------------------------------------------------------
# simulated path (quant_mode, training)


@pytest.mark.parametrize("force_dequant", ["none", "gelu", "softmax", "layernorm", "nonlinear"])
def test_simulated_training_forward_matches_transformers_and_buffers(force_dequant, tmp_path):
    hf, ours = ORACLE.pair("pt", "IBert", "ForMaskedLM", tmp_path / "hf", quant_mode=True, force_dequant=force_dequant)
    hf.train()
    ours.train()
    for step in range(3):  # the first forward sets the ranges, later ones move them with momentum 0.95
        inputs = batch(seed=step, fully_masked_row=False)
        inputs.update(labels_for("ForMaskedLM", CONFIG, inputs), output_hidden_states=True, output_attentions=True)
        expected, actual = hf(**inputs), ours(**inputs)
        assert_outputs_close(expected, actual, label=f"training step {step}")
        assert_same_state(buffers(hf), buffers(ours), f"buffers after step {step}")

    # Our checkpoint, buffers included, loads in transformers and its simulation gives the same outputs.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = transformers.IBertForMaskedLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same_state(buffers(ours), buffers(reloaded), "buffers loaded by transformers")
    inputs = batch(seed=5, fully_masked_row=False)
    assert_outputs_close(call(hf.eval(), **inputs), call(reloaded.eval(), **inputs), atol=0.0, label="reloaded")


def test_float_training_moves_the_ranges_as_transformers(tmp_path):
    """Hugging Face records activation ranges in training even with quant_mode off: a checkpoint fine-tuned in
    float carries calibrated buffers."""
    hf, ours = ORACLE.pair("pt", "IBert", "Model", tmp_path)
    inputs = batch(fully_masked_row=False)
    assert_outputs_close(hf.train()(**inputs), ours.train()(**inputs), label="float training")
    assert_same_state(buffers(hf), buffers(ours), "buffers after a float training step")
    assert float(ours.encoder.layer[0].output.ln_input_act.x_max) > 1e-3


def test_simulated_gradients_match_transformers(tmp_path, monkeypatch):
    """The straight-through gradients are Hugging Face's, with one slip of transformers corrected: its
    FixedPointMul.backward returns the residual's gradient in the slot of the residual's scaling factor, so the
    residual connections get none. Patched to hand it to the residual, transformers agrees with us.

    Every weight trains, but I-LayerNorm's bias: as in Hugging Face, its integer bias is a constant."""
    quant_modules = pytest.importorskip("transformers.models.ibert.quant_modules")

    def backward(ctx, grad_output):
        identity_grad = None if ctx.identity is None else grad_output / ctx.z_scaling_factor
        return grad_output / ctx.z_scaling_factor, None, None, None, identity_grad, None

    monkeypatch.setattr(quant_modules.FixedPointMul, "backward", staticmethod(backward))
    hf, ours = ORACLE.pair("pt", "IBert", "ForSequenceClassification", tmp_path, quant_mode=True)
    inputs = {**batch(fully_masked_row=False), "labels": torch.tensor([0, 1, 2])}
    for model in (hf, ours):
        model.train()(**inputs).loss.backward()
    expected = {name: p.grad for name, p in hf.named_parameters() if p.grad is not None}
    actual = {name: p.grad for name, p in ours.named_parameters() if p.grad is not None}
    assert sorted(expected) == sorted(actual)
    assert all(name.endswith("LayerNorm.bias") for name, _ in ours.named_parameters() if name not in actual)
    assert_outputs_close(expected, actual, label="gradients")  # measured: 6e-8


# ----------------------------------------------------------------------------------------------------------------
# integer path (quant_mode, inference)


def integer_outputs(model, inputs: dict):
    """Run ``model`` recording the output dtype of every quantization block; returns (output, {block: dtype})."""
    dtypes = {}

    def record(name):
        def hook(module, args, output):
            dtypes[name] = output[0].dtype
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules()
               if isinstance(module, QUANT_BLOCKS)]
    try:
        return call(model, **inputs), dtypes
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize(("num_hidden_layers", "force_dequant"), [(1, "none"), (3, "none"), (1, "nonlinear")])
def test_integer_inference_is_integer_and_matches_transformers(num_hidden_layers, force_dequant, tmp_path):
    hf = calibrated_hf("ForSequenceClassification", tmp_path, num_hidden_layers=num_hidden_layers,
                       force_dequant=force_dequant)
    ours = zoo.IBertForSequenceClassification.from_pretrained(tmp_path)
    assert_same_state(buffers(hf), buffers(ours), "calibrated buffers loaded from transformers")
    inputs = {**batch(seed=4, fully_masked_row=False), "output_hidden_states": True, "output_attentions": True}
    actual, dtypes = integer_outputs(ours, inputs)

    # Integer tensors from the embedding lookup to the last requantization: int8 lookups, activations and
    # probabilities' inputs, wider accumulators; only the returned values are float (dequantized). Force-dequantized
    # non-linear blocks compute in float, and the QuantAct after them quantizes again.
    kept_float = {name for name, module in ours.named_modules()
                  if isinstance(module, (IntGELU, IntSoftmax, IntLayerNorm)) and not module.quant_mode}
    assert len(kept_float) == (4 * num_hidden_layers + 1 if force_dequant == "nonlinear" else 0)
    assert all(dtype.is_floating_point == (name in kept_float) for name, dtype in dtypes.items()), dtypes
    assert dtypes["ibert.embeddings.word_embeddings"] == torch.int8
    assert dtypes["ibert.encoder.layer.0.attention.self.query_activation"] == torch.int8
    assert dtypes["ibert.encoder.layer.0.attention.self.query"] in (torch.int32, torch.int64)
    assert dtypes["ibert.encoder.layer.0.output.output_activation"] == torch.int8
    assert all(value.dtype == np.float32 for value in flatten(actual).values())

    expected = call(hf, **inputs)
    # At this size Hugging Face's float32 simulation computes the same integers (its dot products stay far below
    # 2**24, and the rounding of its wider layer-norm values vanishes in the 8-bit requantization after it), so the
    # integer path is bit-identical to it, every layer included (each is handed the embeddings' scale as in HF,
    # see IBertLayer). A force-dequantized softmax instead takes scores rebuilt from integers, rounded differently
    # from Hugging Face's float ones: its probabilities differ by 2.4e-7.
    atol = 0.0 if force_dequant == "none" else 1e-6
    assert_outputs_close(expected, actual, atol=atol, label=f"{num_hidden_layers} layers")


def test_integer_head_mask_and_inputs_embeds(tmp_path):
    hf = calibrated_hf("Model", tmp_path, num_hidden_layers=1)
    ours = zoo.IBertModel.from_pretrained(tmp_path)
    inputs = {**batch(seed=4, fully_masked_row=False), "output_attentions": True}
    head_mask = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert_outputs_close(call(hf, **inputs, head_mask=head_mask), call(ours, **inputs, head_mask=head_mask), atol=0.0,
                         label="head mask")
    with pytest.raises(ValueError, match="head_mask must hold only 0 .* and 1 .* in integer inference"):
        call(ours, **inputs, head_mask=torch.tensor([1.0, 0.5, 1.0, 1.0]))

    # Float embeddings are quantized on entry. Given the dequantized int8 lookups, the integer path rounds their
    # sum with the token types once where the input_ids path requantizes each term: at most one quantum apart
    # (measured: identical on this batch).
    embeddings = ours.embeddings
    inputs_embeds = as_float(*call(embeddings.word_embeddings, ids=inputs["input_ids"]))
    others = {name: inputs[name] for name in ("attention_mask", "token_type_ids")}
    others["position_ids"] = position_ids_from_input_ids(inputs["input_ids"], ours.config.pad_token_id)
    from_embeds, dtypes = integer_outputs(ours, {"inputs_embeds": inputs_embeds, "output_hidden_states": True, **others})
    assert dtypes["embeddings.embeddings_act1"] == torch.int16
    from_ids = call(ours, input_ids=inputs["input_ids"], output_hidden_states=True, **others)
    scale = float(embeddings.output_activation.act_scaling_factor)
    assert_outputs_close(from_ids.hidden_states[0], from_embeds.hidden_states[0], atol=scale * 1.001,
                         label="embeddings from inputs_embeds")


# ----------------------------------------------------------------------------------------------------------------
# quantization-aware training


def test_quantization_aware_training_lowers_the_loss():
    config = zoo.IBertConfig(**TINY, quant_mode=True)
    torch.manual_seed(0)
    model = zoo.IBertForSequenceClassification(config)
    inputs = {**batch(seed=6, fully_masked_row=False), "labels": torch.tensor([0, 2, 1])}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses  # measured: 1.10 -> 0.088
    # The integer path runs on the calibrated ranges, and agrees that the model learned.
    model.eval()
    assert call(model, **inputs).loss.item() < 0.25 * losses[0]  # measured: 0.063


# ----------------------------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_without_quantization_buffers_loads_both_ways(tmp_path):
    hf = calibrated_hf("ForMaskedLM", tmp_path / "hf")
    pattern = re.compile(r"\.(" + "|".join(QUANT_BUFFERS) + r")$")
    tensors = safetensors_torch.load_file(tmp_path / "hf" / "model.safetensors")
    (tmp_path / "stripped").mkdir()
    (tmp_path / "stripped" / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    kept = {name: tensor for name, tensor in tensors.items() if not pattern.search(name)}
    assert len(kept) < len(tensors)
    safetensors_torch.save_file(kept, tmp_path / "stripped" / "model.safetensors", metadata={"format": "pt"})

    ours, info = zoo.IBertForMaskedLM.from_pretrained(tmp_path / "stripped", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same_state(dict(hf.named_parameters()), dict(ours.named_parameters()), "parameters")
    fresh = zoo.IBertForMaskedLM(zoo.IBertConfig(**TINY, quant_mode=True))
    assert_same_state(buffers(fresh), buffers(ours), "buffers keep their initial values")

    # Saved again, the checkpoint holds every buffer: transformers loads it with nothing missing.
    ours.save_pretrained(tmp_path / "ours")
    reloaded, info = transformers.IBertForMaskedLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    assert_same_state(buffers(ours), buffers(reloaded), "buffers in transformers")


# ----------------------------------------------------------------------------------------------------------------
# bad input


@pytest.fixture(scope="module")
def tiny_models():
    """A float and a quantized (integer inference) model with random weights."""
    models = {}
    for quant_mode in (False, True):
        torch.manual_seed(0)
        models[quant_mode] = zoo.IBertForMaskedLM(zoo.IBertConfig(**TINY, quant_mode=quant_mode)).eval()
    return models


GOOD_IDS = torch.tensor([[0, 5, 6, 7, 2]])
BAD_INPUTS = [
    ({"input_ids": torch.tensor([[0, 5, 99, 7, 2]])}, r"input_ids holds token id 99, outside the vocabulary \[0, 99\)"),
    ({"input_ids": torch.tensor([[0, 5, -1, 7, 2]])}, r"input_ids holds token id -1, outside the vocabulary"),
    # 40 positions, numbered from pad_token_id + 1 = 2, leave room for 38 tokens
    ({"input_ids": torch.full((1, 39), 5)}, "sequence length 39 exceeds the 38 positions"),
    ({"input_ids": GOOD_IDS, "attention_mask": torch.ones(1, 4)}, r"attention_mask has shape \[1, 4\]"),
    ({"input_ids": GOOD_IDS, "attention_mask": torch.ones(5)}, "attention_mask must have 2 or 3 dimensions"),
    ({"input_ids": GOOD_IDS, "token_type_ids": torch.full((1, 5), 2)}, r"token_type_ids holds 2, outside \[0, 2\)"),
    ({"input_ids": GOOD_IDS, "position_ids": torch.full((1, 5), 40)}, r"position_ids holds 40, outside \[0, 40\)"),
    ({"input_ids": GOOD_IDS, "head_mask": torch.ones(3)}, r"head_mask has shape \[3\]"),
    ({"input_ids": GOOD_IDS[0]}, "input_ids must have 2 dimensions"),
    ({"input_ids": GOOD_IDS, "inputs_embeds": torch.zeros(1, 5, 32)}, "give either input_ids or inputs_embeds"),
]


@pytest.mark.parametrize("quant_mode", [False, True], ids=["float", "integer"])
@pytest.mark.parametrize(("inputs", "message"), BAD_INPUTS)
def test_bad_input_raises_a_clear_error(inputs, message, quant_mode, tiny_models):
    model = tiny_models[quant_mode]
    with pytest.raises(ValueError, match=message):
        call(model, **inputs)
    call(model, input_ids=GOOD_IDS)


def test_multiple_choice_needs_choices():
    model = zoo.IBertForMultipleChoice(zoo.IBertConfig(**TINY)).eval()
    with pytest.raises(ValueError, match=r"input_ids must have 3 dimensions \(batch, num_choices, sequence\)"):
        call(model, input_ids=GOOD_IDS)


def test_quantized_model_refuses_half_precision(tmp_path):
    config = zoo.IBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                             intermediate_size=37, max_position_embeddings=40, quant_mode=True)
    model = zoo.IBertModel(config).to(torch.bfloat16).eval()
    with pytest.raises(ValueError, match="load it in float32"):
        model(torch.tensor([[0, 5, 6, 2]]))
