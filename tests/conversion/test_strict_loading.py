"""Loading refuses checkpoints that would silently change the answer, the same in PyTorch, TensorFlow and Flax:
tensors of layers the config lacks, integer or bool tensors where float weights belong. Other unused tensors are
logged, as transformers does, and reported by ``output_loading_info``."""

import json
import logging

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import torch  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

import rosettazoo.bart as bart  # noqa: E402
import rosettazoo.opt as opt  # noqa: E402
import rosettazoo.roberta as roberta  # noqa: E402
from rosettazoo.conversion import WeightsError  # noqa: E402
from tests.harness import PREFIXES  # noqa: E402

FRAMEWORKS = list(PREFIXES)
LOGGER = "rosettazoo.conversion.convert"


def tiny_roberta(layers: int) -> roberta.RobertaConfig:
    return roberta.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                                 intermediate_size=37, max_position_embeddings=20)


@pytest.fixture(scope="module")
def two_layer_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roberta-2-layers")
    torch.manual_seed(0)
    roberta.RobertaForMaskedLM(tiny_roberta(2)).save_pretrained(folder)
    return folder


def edited_copy(source, destination, edit=None, **config_changes):
    """``source``'s checkpoint in ``destination`` with ``edit(tensors)`` applied and config values changed."""
    tensors = load_file(source / "model.safetensors")
    if edit is not None:
        edit(tensors)
    save_file(tensors, destination / "model.safetensors", metadata={"format": "pt"})
    values = json.loads((source / "config.json").read_text())
    (destination / "config.json").write_text(json.dumps({**values, **config_changes}))
    return destination


def model_class(framework, name="RobertaForMaskedLM", family=roberta):
    return getattr(family, PREFIXES[framework] + name)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layers_the_config_lacks_are_an_error(framework, two_layer_checkpoint, tmp_path):
    folder = edited_copy(two_layer_checkpoint, tmp_path, num_hidden_layers=1)
    with pytest.raises(WeightsError, match=r"holds 16 tensor\(s\) for layers the config does not have, starting "
                                           r"with roberta\.encoder\.layer\.1\.attention\.output\.LayerNorm\.bias: "
                                           r"the checkpoint is deeper"):
        model_class(framework).from_pretrained(folder)


@pytest.mark.parametrize(("family", "name", "config", "depth_field", "first_extra"), [
    (bart, "BartForConditionalGeneration",
     dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
          decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=20),
     "decoder_layers", r"model\.decoder\.layers\.1\."),
    (opt, "OPTForCausalLM",
     dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=37,
          max_position_embeddings=20),
     "num_hidden_layers", r"model\.decoder\.layers\.1\."),
])
def test_layers_the_config_lacks_in_other_families(family, name, config, depth_field, first_extra, tmp_path):
    config_class = bart.BartConfig if family is bart else opt.OPTConfig
    source = tmp_path / "source"
    torch.manual_seed(0)
    getattr(family, name)(config_class(**config)).save_pretrained(source)
    folder = edited_copy(source, tmp_path, **{depth_field: 1})
    with pytest.raises(WeightsError, match=rf"layers the config does not have, starting with {first_extra}"):
        getattr(family, name).from_pretrained(folder)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_other_unused_tensors_are_logged_and_reported(framework, two_layer_checkpoint, tmp_path, caplog):
    def add_extra(tensors):
        tensors["roberta.encoder.layer.0.attention.self.distance_embedding.weight"] = np.zeros((3, 32), np.float32)
        tensors["classifier.dense.weight"] = np.zeros((32, 32), np.float32)

    folder = edited_copy(two_layer_checkpoint, tmp_path, add_extra)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _, info = model_class(framework).from_pretrained(folder, output_loading_info=True)
    expected = ["classifier.dense.weight", "roberta.encoder.layer.0.attention.self.distance_embedding.weight"]
    assert info["unexpected_keys"] == expected
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 tensor(s) the model does not use, ignored: " + ", ".join(expected) in warnings[0]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_new_heads_are_logged(framework, two_layer_checkpoint, caplog):
    cls = model_class(framework, "RobertaForSequenceClassification")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _, info = cls.from_pretrained(two_layer_checkpoint, allow_new_heads=True, output_loading_info=True)
    assert "classifier.out_proj.weight" in info["missing_keys"]
    assert any("initialized randomly" in r.getMessage() and "classifier.out_proj.weight" in r.getMessage()
               for r in caplog.records if r.name == LOGGER)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("dtype", [np.int64, np.bool_])
def test_integer_or_bool_weights_are_an_error(framework, dtype, two_layer_checkpoint, tmp_path):
    name = "roberta.encoder.layer.1.output.dense.bias"

    def make_integer(tensors):
        tensors[name] = np.ones(tensors[name].shape, dtype)

    folder = edited_copy(two_layer_checkpoint, tmp_path, make_integer)
    with pytest.raises(WeightsError, match=rf"1 tensor\(s\) hold integers or bools where the model needs float "
                                           rf"weights .*: {name} \({np.dtype(dtype).name}\)"):
        model_class(framework).from_pretrained(folder)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_float16_and_bfloat16_weights_still_load(framework, two_layer_checkpoint, tmp_path):
    import ml_dtypes

    def lower_precision(tensors):
        tensors["roberta.encoder.layer.1.output.dense.bias"] = tensors[
            "roberta.encoder.layer.1.output.dense.bias"].astype(ml_dtypes.bfloat16)
        tensors["roberta.encoder.layer.0.output.dense.bias"] = tensors[
            "roberta.encoder.layer.0.output.dense.bias"].astype(np.float16)

    folder = edited_copy(two_layer_checkpoint, tmp_path, lower_precision)
    _, info = model_class(framework).from_pretrained(folder, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
