"""Bundled-model ids (``rosettazoo/opt-wordnet``): every loader reads the package folder, offline, in every
framework; unknown ids name the bundled models; a local folder of the same path still wins.

Most tests point the package's models folder at tiny random models built here (``tiny_bundle``), so they do not
depend on the trained models; ``test_the_package_ships_the_three_models`` checks the real ones."""

import os

import numpy as np
import pytest

import rosettazoo.bundled as bundled
from rosettazoo.common import hub
from tests import tiny_bundle


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    pytest.importorskip("torch")
    return tiny_bundle.build(str(tmp_path_factory.mktemp("bundle")))


@pytest.fixture
def tiny_models(tiny_root, monkeypatch):
    """The tiny models as the package's bundled models, with the hub out of reach."""
    monkeypatch.setattr(bundled, "models_folder", lambda: tiny_root)

    def no_hub(*args, **kwargs):
        raise AssertionError(f"the hub was asked for {args}")

    monkeypatch.setattr(hub, "hf_hub_download", no_hub)
    return tiny_root


def test_ids_map_to_the_package_folders(tiny_models):
    staging = os.path.join(tiny_models, ".opt-wordnet.staging")  # a model being built beside its place is hidden
    os.makedirs(staging, exist_ok=True)
    with open(os.path.join(staging, "config.json"), "w") as file:
        file.write('{"model_type": "opt"}')
    assert bundled.bundled_names() == sorted(tiny_bundle.NAMES)
    assert bundled.local_folder("rosettazoo/opt-wordnet") == os.path.join(tiny_models, "opt-wordnet")
    assert hub.resolve_file("rosettazoo/opt-wordnet", "config.json") == os.path.join(tiny_models, "opt-wordnet",
                                                                                     "config.json")
    assert hub.resolve_optional_file("rosettazoo/opt-wordnet", "tf_model.h5") is None
    assert bundled.local_folder("facebook/opt-125m") == "facebook/opt-125m"  # other ids go to the hub


def test_unknown_bundled_id_names_the_bundled_models(tiny_models):
    from rosettazoo import AutoConfig
    from rosettazoo.opt import OPTConfig

    for load in (OPTConfig.from_pretrained, AutoConfig.from_pretrained):
        with pytest.raises(FileNotFoundError) as error:
            load("rosettazoo/opt-wordnett")
        message = str(error.value)
        assert "rosettazoo/opt-wordnett is not a model bundled with rosettazoo" in message
        assert "rosettazoo/bart-wordnet, rosettazoo/opt-wordnet, rosettazoo/roberta-wordnet" in message


def test_a_missing_file_of_a_bundled_model_says_so(tiny_models):
    with pytest.raises(FileNotFoundError, match="the bundled model rosettazoo/opt-wordnet .* has no tf_model.h5"):
        hub.resolve_file("rosettazoo/opt-wordnet", "tf_model.h5")


def test_a_local_folder_of_the_same_path_wins(tiny_models, tmp_path, monkeypatch):
    from rosettazoo.opt import OPTConfig

    local = tmp_path / "rosettazoo" / "opt-wordnet"
    local.mkdir(parents=True)
    (local / "config.json").write_text('{"model_type": "opt", "hidden_size": 48, "word_embed_proj_dim": 48}')
    monkeypatch.chdir(tmp_path)
    assert OPTConfig.from_pretrained("rosettazoo/opt-wordnet").hidden_size == 48


def test_tokenizer_config_generation_config_and_auto_classes(tiny_models):
    from rosettazoo import AutoConfig, AutoTokenizer
    from rosettazoo.generation import GenerationConfig
    from rosettazoo.opt import OPTTokenizer

    assert AutoConfig.from_pretrained("rosettazoo/bart-wordnet").model_type == "bart"
    assert type(AutoTokenizer.from_pretrained("rosettazoo/roberta-wordnet")).__name__ == "RobertaTokenizer"
    tokenizer = OPTTokenizer.from_pretrained("rosettazoo/opt-wordnet")
    assert tokenizer("cat:")["input_ids"][0] == tokenizer.bos_token_id
    assert GenerationConfig.from_pretrained("rosettazoo/bart-wordnet").decoder_start_token_id == 2


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_models_load_in_every_framework(tiny_models, framework):
    from tests.generation.models import require

    require(framework)
    from rosettazoo import auto
    from rosettazoo.opt import OPTForCausalLM

    prefix = auto.FRAMEWORK_PREFIXES[framework]
    model = getattr(auto, f"{prefix}AutoModelForCausalLM").from_pretrained("rosettazoo/opt-wordnet")
    reference = OPTForCausalLM.from_pretrained(os.path.join(tiny_models, "opt-wordnet"))
    import torch

    ids = np.array([[2, 40, 41, 42]])
    expected = reference(torch.from_numpy(ids)).logits.detach().numpy()
    got = model(torch.from_numpy(ids) if framework == "pt" else ids).logits
    got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert model.generation_config.pad_token_id == 1  # generation_config.json of the bundle


def test_converter_and_info_read_bundled_ids(tiny_models, tmp_path, capsys):
    from rosettazoo.conversion import convert_checkpoint
    from rosettazoo.conversion.cli import main

    report = convert_checkpoint("rosettazoo/roberta-wordnet", tmp_path / "flax", format="flax")
    assert "tokenizer.json" in report.copied and (tmp_path / "flax" / "flax_model.msgpack").is_file()
    assert main(["info", "rosettazoo/roberta-wordnet"]) == 0
    out = capsys.readouterr().out
    assert "family:        Roberta (model_type 'roberta')" in out
    assert f"bundled:       yes, in {os.path.join(tiny_models, 'roberta-wordnet')}" in out
    assert "A tiny random RobertaForMaskedLM for tests." in out
    assert main(["info", "rosettazoo/nope"]) == 2
    assert "rosettazoo/nope is not a model bundled with rosettazoo" in capsys.readouterr().err


def test_model_card_summary_skips_front_matter_and_headings(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# Title\n\nFirst line.\nSecond.\n\nNext paragraph.\n")
    assert bundled.model_card_summary(str(tmp_path)) == ["First line.", "Second."]
    assert bundled.model_card_summary(str(tmp_path), lines=1) == ["First line."]
    assert bundled.model_card_summary(str(tmp_path / "none")) == []


def test_the_package_ships_the_three_models():
    root = bundled.models_folder()
    if not os.path.isdir(root):
        pytest.skip(f"the bundled models are not in this checkout yet ({root} is absent)")
    assert bundled.bundled_names() == sorted(tiny_bundle.NAMES)
    from rosettazoo import AutoConfig, AutoTokenizer

    for model_id in bundled.bundled_ids():
        folder = bundled.local_folder(model_id)
        assert AutoConfig.from_pretrained(model_id).model_type in ("opt", "roberta", "bart")
        assert len(AutoTokenizer.from_pretrained(model_id)) > 256
        assert bundled.model_card_summary(folder), f"{folder} has no model card"
        assert os.path.isfile(os.path.join(folder, "model.safetensors"))
