"""transformers 4.57.6 and our formats, both ways, for RoBERTa, BART and OPT (the opt-350m layout):

- tf_model.h5, flax_model.msgpack (single and sharded) and TF / Flax safetensors that transformers' TF and Flax
  classes write load in our PyTorch, TF and Flax classes and agree with transformers' PyTorch outputs;
- what our classes write in each format loads in transformers' PyTorch, TF and Flax classes and agrees.

transformers' side runs in one subprocess (hf_formats_worker.py): its TF classes need tf-keras.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("flax")
pytest.importorskip("tf_keras")

import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

from rosettazoo import bart, opt, roberta  # noqa: E402
from rosettazoo.common.checkpoint import open_checkpoint  # noqa: E402
from tests.conversion.tiny_models import FAMILIES  # noqa: E402  (the same tiny models)
from tests.harness import FLOAT32_ATOL, PREFIXES, run, to_numpy  # noqa: E402

# One worker runs them all (pyproject's --dist loadgroup): the other keeps running tests instead of waiting on the
# lock while transformers writes the checkpoints.
pytestmark = pytest.mark.xdist_group("formats_hf")

WORKER = Path(__file__).with_name("hf_formats_worker.py")
CLASSES = {"roberta": (roberta, "RobertaForMaskedLM"), "bart": (bart, "BartForConditionalGeneration"),
           "opt": (opt, "OPTForCausalLM")}
SHARD = "6KB"
# What transformers writes (hf/<family>/<layout>) and the file each layout must be read from.
HF_LAYOUTS = {"h5": "tf_model.h5", "h5_sharded": "tf_model.h5.index.json", "tf_safetensors": "model.safetensors",
              "msgpack": "flax_model.msgpack", "msgpack_sharded": "flax_model.msgpack.index.json",
              "flax_safetensors": "model.safetensors"}
# The layouts each of our three frameworks loads (the reading is framework-free, so the rest load in PyTorch).
IN_EVERY_FRAMEWORK = ("h5", "msgpack", "msgpack_sharded")
HF_CASES = [(family, layout, framework) for family in CLASSES for layout in HF_LAYOUTS
            for framework in (PREFIXES if layout in IN_EVERY_FRAMEWORK else ["pt"])]
# What we write (ours/<family>/<case>_<framework whose transformers class loads it>): every format from our
# PyTorch model for each family; sharding (format-level, not family-level logic) for BART, which has the most
# naming exceptions; and our Flax and TF models' own trees once each, in the other framework's format.
# case -> (format, max_shard_size, the framework of our model that writes it)
CASES = {"safetensors_pt": ("safetensors", None, "pt"), "pytorch_pt": ("pytorch", None, "pt"),
         "tf_tf": ("tf", None, "pt"), "flax_flax": ("flax", None, "pt"), "tfsharded_tf": ("tf", SHARD, "pt"),
         "flaxsharded_flax": ("flax", SHARD, "pt"), "fromflax_tf": ("tf", None, "flax"),
         "fromtf_flax": ("flax", None, "tf")}
OUR_CASES = {family: ["safetensors_pt", "pytorch_pt", "tf_tf", "flax_flax"] for family in CLASSES}
OUR_CASES["bart"] += ["tfsharded_tf", "flaxsharded_flax"]
OUR_CASES["roberta"] += ["fromflax_tf"]
OUR_CASES["opt"] += ["fromtf_flax"]


@dataclass
class Exchange:
    hf: Path  # transformers' checkpoints
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]  # transformers' PyTorch logits for its checkpoints, by family
    ours: dict[str, np.ndarray]  # our PyTorch logits for our checkpoints, by family
    loaded: dict[str, np.ndarray]  # transformers' logits for our checkpoints, by "family/case"


def family_inputs(inputs: dict, family: str) -> dict:
    names = ("input_ids", "attention_mask", "decoder_input_ids") if family == "bart" else ("input_ids", "attention_mask")
    return {name: inputs[name] for name in names}


def logits(model, framework: str, inputs: dict) -> np.ndarray:
    return to_numpy(run(framework, model, inputs).logits)


def save_ours(folder: Path, family: str) -> None:
    """Our PyTorch model in the formats OUR_CASES names; our Flax or TF model (loaded from it) where named."""
    module, name = CLASSES[family]
    torch.manual_seed(0)
    model = FAMILIES[family]()
    model.save_pretrained(folder / "safetensors_pt")
    for case in OUR_CASES[family][1:]:
        fmt, max_shard_size, framework = CASES[case]
        if framework != "pt":
            model = getattr(module, PREFIXES[framework] + name).from_pretrained(folder / "safetensors_pt")
        model.save_pretrained(folder / case, format=fmt, max_shard_size=max_shard_size)


def write_exchange(root: Path) -> None:
    for family in CLASSES:
        save_ours(root / "ours" / family, family)
    done = subprocess.run([sys.executable, str(WORKER), str(root / "hf"), str(root / "ours")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]


@pytest.fixture(scope="session")
def exchange(tmp_path_factory, worker_id) -> Exchange:
    # Written once for all pytest-xdist workers (their base folders share a parent), under a lock.
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    root = root / "formats-hf"
    with FileLock(str(root) + ".lock"):
        if not (root / "ours" / "loaded.npz").exists():
            write_exchange(root)
    inputs = load_npz(root / "hf" / "inputs.npz")
    ours = {}
    for family, (module, name) in CLASSES.items():
        model = getattr(module, name).from_pretrained(root / "ours" / family / "safetensors_pt").eval()
        ours[family] = logits(model, "pt", family_inputs(inputs, family))
    return Exchange(root / "hf", inputs, load_npz(root / "hf" / "expected.npz"), ours,
                    load_npz(root / "ours" / "loaded.npz"))


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return dict(arrays)


def assert_close(expected: np.ndarray, actual: np.ndarray, label: str) -> None:
    assert actual.shape == expected.shape, label
    diff = float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64))))
    assert diff <= FLOAT32_ATOL, f"{label}: logits differ by {diff:.3g}"


@pytest.mark.parametrize("family, layout, framework", HF_CASES)
def test_transformers_checkpoints_load_in_our_classes(exchange, family, layout, framework):
    folder = exchange.hf / family / layout
    with open_checkpoint(folder) as checkpoint:  # the layout under test is the one read
        assert checkpoint.description.startswith(f"checkpoint {folder / HF_LAYOUTS[layout]}")
    module, name = CLASSES[family]
    model = getattr(module, PREFIXES[framework] + name).from_pretrained(folder)
    if framework == "pt":
        model.eval()
    actual = logits(model, framework, family_inputs(exchange.inputs, family))
    assert_close(exchange.expected[family], actual, f"{family} {layout} in {framework}")


@pytest.mark.parametrize("family, case", [(family, case) for family, cases in OUR_CASES.items() for case in cases])
def test_transformers_loads_what_we_write(exchange, family, case):
    framework = case.rsplit("_", 1)[1]
    assert_close(exchange.ours[family], exchange.loaded[f"{family}/{case}"],
                 f"{family} {case.rsplit('_', 1)[0]} in transformers' {framework} class")


def test_worker_wrote_every_layout(exchange):
    for family in CLASSES:
        for layout, file in HF_LAYOUTS.items():
            assert os.path.exists(exchange.hf / family / layout / file), (family, layout)
