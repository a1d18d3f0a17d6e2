"""The parity harness every family's tests share.

It runs the same numpy inputs through a PyTorch, a TensorFlow and a Flax model (and a Hugging Face model as the
oracle), flattens every output field (logits, loss, each hidden state, attention and cache tensor) to numpy and
compares them field by field.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def run_pt(model, inputs: Mapping):
    import torch

    def tensor(value):
        if isinstance(value, tuple):
            return tuple(tensor(v) for v in value)
        return None if value is None else torch.from_numpy(np.asarray(value))

    with torch.no_grad():
        return model(**{k: tensor(v) for k, v in inputs.items()})


def run_tf(model, inputs: Mapping):
    return model(**inputs, training=False)


def run_flax(model, inputs: Mapping):
    return model(**inputs)


RUNNERS = {"pt": run_pt, "tf": run_tf, "flax": run_flax}
PREFIXES = {"pt": "", "tf": "TF", "flax": "Flax"}


def run(framework: str, model, inputs: Mapping):
    return RUNNERS[framework](model, inputs)


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
