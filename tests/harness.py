"""The parity harness every family's tests share.

It runs the same numpy inputs through a PyTorch, a TensorFlow and a Flax model (and a Hugging Face model as the
oracle), flattens every output field (logits, loss, each hidden state, attention and cache tensor) to numpy and
compares them field by field. The oracle helpers build a transformers (PyTorch) model with weights at O(0.1), save it
and load it in our classes of the same name, then compare the two on every output field.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

FLOAT32_ATOL = 1e-5


def to_numpy(value):
    """Turn a framework tensor (or nested tuples/lists/mappings/caches of them) into numpy."""
    if value is None:
        return None
    if hasattr(value, "to_legacy_cache"):  # transformers Cache objects
        value = value.to_legacy_cache()
    if isinstance(value, Mapping):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(to_numpy(v) for v in value) if isinstance(value, tuple) else [to_numpy(v) for v in value]
    if hasattr(value, "detach"):
        value = value.detach().float() if str(value.dtype) == "torch.bfloat16" else value.detach()
        return value.cpu().numpy()
    return np.asarray(value)


def flatten(output, prefix: str = "") -> dict[str, np.ndarray]:
    """{'logits': ..., 'hidden_states.0': ..., 'past_key_values.1.0': ...} from any nested output."""
    output = to_numpy(output)
    if isinstance(output, Mapping):
        items = output.items()
    elif isinstance(output, (tuple, list)):
        items = ((str(i), v) for i, v in enumerate(output))
    else:
        return {prefix.rstrip("."): np.asarray(output)}
    flat: dict[str, np.ndarray] = {}
    for key, value in items:
        if value is not None:
            flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def assert_outputs_close(expected, actual, *, atol: float = FLOAT32_ATOL, label: str = "") -> float:
    """Every field of ``expected`` is in ``actual`` with the same shape and agrees within ``atol``; returns the max diff."""
    expected, actual = flatten(expected), flatten(actual)
    assert sorted(expected) == sorted(actual), f"{label}: fields differ: {sorted(expected)} vs {sorted(actual)}"
    worst = 0.0
    for name, want in expected.items():
        got = actual[name]
        assert want.shape == got.shape, f"{label}: {name} has shape {got.shape}, expected {want.shape}"
        diff = float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64)))) if want.size else 0.0
        assert diff <= atol, f"{label}: {name} differs by {diff:.3g} > {atol}"
        worst = max(worst, diff)
    return worst


def to_torch(value):
    """A torch tensor for a numpy or JAX array (also inside tuples); torch tensors and Python values as they are."""
    import torch

    if isinstance(value, tuple):
        return tuple(to_torch(v) for v in value)
    if isinstance(value, torch.Tensor) or not hasattr(value, "__array__"):
        return value
    return torch.from_numpy(np.array(value))


def from_torch(value):
    """numpy for a torch tensor (also inside tuples); other values as they are."""
    if isinstance(value, tuple):
        return tuple(from_torch(v) for v in value)
    return value.numpy() if type(value).__module__.startswith("torch") else value


def torch_inputs(inputs: Mapping) -> dict:
    """``inputs`` with numpy and JAX arrays as torch tensors."""
    return {k: to_torch(v) for k, v in inputs.items()}


def numpy_inputs(inputs: Mapping) -> dict:
    """``inputs`` with torch tensors as numpy (TF and Flax models take numpy)."""
    return {k: from_torch(v) for k, v in inputs.items()}


def run_pt(model, inputs: Mapping):
    import torch

    with torch.no_grad():
        return model(**torch_inputs(inputs))


def run_tf(model, inputs: Mapping):
    return model(**numpy_inputs(inputs), training=False)


def run_flax(model, inputs: Mapping):
    return model(**numpy_inputs(inputs))


RUNNERS = {"pt": run_pt, "tf": run_tf, "flax": run_flax}
PREFIXES = {"pt": "", "tf": "TF", "flax": "Flax"}
BACKENDS = {"pt": "torch", "tf": "tensorflow", "flax": "flax"}  # the module each framework needs (importorskip)


def run(framework: str, model, inputs: Mapping):
    return RUNNERS[framework](model, inputs)


def framework_of(model) -> str:
    """"tf" or "flax" for our classes prefixed so; "pt" for the others (ours and transformers')."""
    name = type(model).__name__
    return next((fw for fw, prefix in PREFIXES.items() if prefix and name.startswith(prefix)), "pt")


def call(model, **inputs):
    """``model(**inputs)`` for a model of any framework, the inputs converted to it: without gradients in PyTorch,
    with ``training=False`` in Keras (a PyTorch model in train mode keeps its dropout)."""
    return run(framework_of(model), model, inputs)


def padded_batch(vocab_size: int, pad_token_id: int, length: int = 9, *, seed: int = 0):
    """Four rows: full, right-padded, left-padded and fully masked (all positions masked)."""
    rng = np.random.default_rng(seed)
    low = max(pad_token_id, 3) + 1
    input_ids = rng.integers(low, vocab_size, size=(4, length), dtype=np.int64)
    attention_mask = np.ones((4, length), dtype=np.int64)
    attention_mask[1, length - 3:] = 0
    attention_mask[2, :4] = 0
    attention_mask[3, :] = 0
    input_ids[attention_mask == 0] = pad_token_id
    return input_ids, attention_mask


def load_three(family_module, class_name: str, config, folder, *, seed: int = 0) -> dict:
    """A random PyTorch ``class_name`` saved to ``folder`` and loaded back in all three frameworks."""
    import torch

    torch.manual_seed(seed)
    getattr(family_module, class_name)(config).save_pretrained(folder)
    return {fw: getattr(family_module, prefix + class_name).from_pretrained(folder) for fw, prefix in PREFIXES.items()}


def assert_three_agree(models: Mapping, inputs: Mapping, label: str, *, atol: float = FLOAT32_ATOL) -> dict:
    """Run ``inputs`` through each framework's model; TF and Flax must match PyTorch on every output field."""
    outputs = {fw: run(fw, model, inputs) for fw, model in models.items()}
    for fw in outputs:
        if fw != "pt":
            assert_outputs_close(outputs["pt"], outputs[fw], atol=atol, label=f"{label} pt vs {fw}")
    return outputs


# ------------------------------------------------------------------------------- transformers (PyTorch), the oracle
# Hugging Face's own init has zero biases, unit norms and 0.02 weights, under which a wrong bias, norm or position
# hides below the tolerance: oracle models get weights drawn at O(0.1) instead.

OUR_PACKAGES = ("roberta", "bart", "opt", "ibert")


def randomize(model, seed: int = 1, *, buffers: bool = False, norms_near_one: bool = False):
    """Redraw a torch model's parameters (and, with ``buffers``, its buffers) from N(0, 0.2^2), in order, and return
    it; ``norms_near_one`` adds 1 to the LayerNorm weights (I-LayerNorm divides its bias by its weight)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    named = [*model.named_parameters(), *(model.named_buffers() if buffers else ())]
    with torch.no_grad():
        for name, tensor in named:
            noise = torch.randn(tensor.shape, generator=generator) * 0.2
            is_norm = name.endswith(("LayerNorm.weight", "layer_norm.weight"))
            tensor.copy_(noise + 1 if norms_near_one and is_norm else noise)
    return model


# How a family's weights are redrawn: BART's final_logits_bias is a buffer; I-LayerNorm divides its bias by its weight.
RANDOMIZED = {"Bart": {"buffers": True}, "IBert": {"norms_near_one": True}}


def our_class(framework: str, name: str):
    """Our ``framework`` class of the transformers class name ``name`` ("RobertaForMaskedLM" -> TFRobertaForMaskedLM)."""
    wanted = PREFIXES[framework] + name
    for package in OUR_PACKAGES:
        module = importlib.import_module(f"rosettazoo.{package}")
        if wanted in module.__all__:
            return getattr(module, wanted)
    raise LookupError(f"no rosettazoo package exports {wanted}")


@dataclass(frozen=True)
class Oracle:
    """A family's tiny transformers models: ``config`` for every head, ``head_config`` on top for some heads,
    weights redrawn by ``randomize`` with ``weights_seed`` (None keeps transformers' init)."""

    config: Mapping
    head_config: Mapping = field(default_factory=dict)
    weights_seed: int | None = 1

    def hf_model(self, family: str, head: str, *, init_seed: int = 0, **overrides):
        """transformers' ``{family}{head}`` (``family`` as transformers names it: "Roberta", "Bart", "OPT", "IBert")
        built after ``torch.manual_seed(init_seed)``, in eval mode."""
        import torch
        import transformers

        values = {**self.config, **self.head_config.get(head, {}), **overrides}
        hf_config = getattr(transformers, f"{family}Config")(**values)
        torch.manual_seed(init_seed)
        model = getattr(transformers, f"{family}{head}")(hf_config)
        if self.weights_seed is not None:
            randomize(model, self.weights_seed, **RANDOMIZED.get(family, {}))
        return model.eval()

    def pair(self, framework: str, family: str, head: str, folder, *, safe: bool = True,
             save_kwargs: Mapping | None = None, **overrides):
        """``hf_model(family, head, **overrides)`` saved to ``folder`` (safetensors, or pytorch_model.bin if not
        ``safe``; ``save_kwargs`` go to save_pretrained) and our ``framework`` class of the same name loaded from it:
        (hf, ours)."""
        hf = self.hf_model(family, head, **overrides)
        hf.save_pretrained(folder, **{"safe_serialization": safe, **(save_kwargs or {})})
        return hf, our_class(framework, family + head).from_pretrained(folder)


@contextmanager
def attention_weights(hf, wanted: bool):
    """transformers' SDPA attention returns no attention weights (OPT's gives None): while they are ``wanted``, use
    its eager attention."""
    implementation = getattr(hf.config, "_attn_implementation", None)
    if not wanted or implementation != "sdpa":
        yield
        return
    hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        hf.set_attn_implementation(implementation)


def assert_same(hf, ours, label: str, *, atol: float = FLOAT32_ATOL, **inputs) -> float:
    """The transformers model ``hf`` and ``ours`` (any framework, or another transformers model) agree on every
    output field for ``inputs`` (numpy or torch); returns the largest difference."""
    with attention_weights(hf, bool(inputs.get("output_attentions"))):
        expected = call(hf, **inputs)
    return assert_outputs_close(expected, call(ours, **inputs), label=label, atol=atol)


EVERY_OUTPUT = {"output_hidden_states": True, "output_attentions": True}  # inputs asking for every output field
SEQ2SEQ_LABEL_LENGTH = 6
TOKEN_HEADS = ("ForMaskedLM", "ForCausalLM", "ForTokenClassification")


def labels_for(head: str, config, inputs: Mapping, *, seed: int = 2) -> dict:
    """The targets of ``head`` for ``inputs`` (torch inputs give torch targets, others numpy), drawn with ``seed``:
    token labels are -100 (ignored) where the attention mask is 0; seq2seq labels are [batch, 6] with row 1's last
    two ignored (they become padding in the shifted decoder input); question answering has a start past the end
    (clamped and ignored)."""
    rng = np.random.default_rng(seed)
    ids = inputs.get("input_ids")
    if head in TOKEN_HEADS:
        mask = np.asarray(inputs["attention_mask"])
        high = config.num_labels if head == "ForTokenClassification" else config.vocab_size
        targets = {"labels": np.where(mask == 0, -100, rng.integers(0, high, mask.shape))}
    elif head == "ForConditionalGeneration":
        labels = rng.integers(0, config.vocab_size, (np.shape(ids)[0], SEQ2SEQ_LABEL_LENGTH))
        labels[1, -2:] = -100
        targets = {"labels": labels}
    elif head == "ForSequenceClassification":
        targets = {"labels": rng.integers(0, config.num_labels, np.shape(ids)[:1])}
    elif head == "ForMultipleChoice":
        targets = {"labels": np.array([1, 0])}
    elif head == "ForQuestionAnswering":
        rows = np.shape(ids)[0]
        targets = {"start_positions": np.array([1, 2, 40, 0])[:rows], "end_positions": np.array([3, 5, 6, 0])[:rows]}
    else:
        targets = {}
    torch_given = any(type(v).__module__.startswith("torch") for v in inputs.values())
    return torch_inputs(targets) if torch_given else targets


def head_inputs(head: str, config, *, seed: int = 0, labels_seed: int | None = None, rows=slice(None)) -> dict:
    """numpy inputs of ``head``: the ``padded_batch`` rows (``rows`` picks some), [2 questions, 2 choices] for
    multiple choice, and ``labels_for`` them (drawn with ``labels_seed``, by default ``seed``)."""
    input_ids, attention_mask = (x[rows] for x in padded_batch(config.vocab_size, config.pad_token_id, seed=seed))
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if head == "ForMultipleChoice":
        inputs = {name: value.reshape(2, 2, -1) for name, value in inputs.items()}
    return {**inputs, **labels_for(head, config, inputs, seed=seed if labels_seed is None else labels_seed)}
