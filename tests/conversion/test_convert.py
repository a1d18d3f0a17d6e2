"""The generic converter against checkpoints that transformers 4.57.6 writes for tiny RoBERTa models.

The TF and Flax trees are derived here from the Hugging Face PyTorch modules' types (Linear -> kernel [in, out],
LayerNorm -> gamma/beta or scale/bias, Embedding -> embeddings / embedding; a tied LM head has no decoder), the
layout the contract prescribes, independently of conversion/rules.py.
"""

import numpy as np
import pytest
import torch
from torch import nn
from transformers import (
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaModel,
)

from rosettazoo.common.checkpoint import open_checkpoint, save_checkpoint
from rosettazoo.conversion import WeightsError, export_weights, load_weights, to_canonical
from rosettazoo.roberta import RobertaConfig
from rosettazoo.roberta.weights import weights_spec
from tests.harness import Oracle

TINY = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 37, "max_position_embeddings": 40}
ORACLE = Oracle(TINY, weights_seed=None)  # transformers' own init
FRAMEWORK_LEAVES = {
    "pt": {},
    "tf": {nn.Linear: {"weight": "kernel"}, nn.LayerNorm: {"weight": "gamma", "bias": "beta"},
           nn.Embedding: {"weight": "embeddings"}},
    "flax": {nn.Linear: {"weight": "kernel"}, nn.LayerNorm: {"weight": "scale"}, nn.Embedding: {"weight": "embedding"}},
}


def framework_tree(model, framework):
    """{framework path: numpy array in that framework's layout} for a transformers PyTorch model."""
    tied = model.config.tie_word_embeddings
    tree = {}
    for module_name, module in model.named_modules():
        for leaf, param in module.named_parameters(recurse=False):
            if framework != "pt" and module_name.endswith("lm_head.decoder") and (tied or leaf == "bias"):
                continue  # TF/Flax multiply by the word embeddings (untied: a decoder kernel) and add lm_head.bias
            renamed = FRAMEWORK_LEAVES[framework].get(type(module), {}).get(leaf, leaf)
            array = param.detach().numpy()
            tree[f"{module_name}.{renamed}" if module_name else renamed] = array.T if renamed == "kernel" else array
    return tree


def shapes(tree):
    return {path: tuple(array.shape) for path, array in tree.items()}


def spec_of(model, prefix="roberta"):
    return weights_spec(RobertaConfig(tie_word_embeddings=model.config.tie_word_embeddings), prefix)


def assert_loaded(expected_tree, loaded):
    assert sorted(loaded) == sorted(expected_tree)
    for path, want in expected_tree.items():
        assert loaded[path].shape == want.shape, path
        np.testing.assert_array_equal(loaded[path], want, err_msg=path)


@pytest.fixture(scope="module")
def masked_lm():
    return ORACLE.hf_model("Roberta", "ForMaskedLM")


@pytest.fixture(scope="module")
def saved(masked_lm, tmp_path_factory):
    """The masked LM as transformers saves it: safetensors, .bin, and both sharded."""
    root = tmp_path_factory.mktemp("hf")
    folders = {
        "safetensors": {}, "bin": {"safe_serialization": False},
        "safetensors-sharded": {"max_shard_size": "20KB"}, "bin-sharded": {"safe_serialization": False, "max_shard_size": "20KB"},
    }
    for name, kwargs in folders.items():
        masked_lm.save_pretrained(root / name, **kwargs)
    assert len(list((root / "bin-sharded").glob("pytorch_model-*.bin"))) > 1
    assert len(list((root / "safetensors-sharded").glob("model-*.safetensors"))) > 1
    return root


FORMATS = ["safetensors", "bin", "safetensors-sharded", "bin-sharded"]


def test_to_canonical_leaves():
    assert to_canonical("roberta.encoder.layer.0.attention.self.query.weight", "pt") == (
        "roberta.encoder.layer.0.attention.self.query.weight", False)
    assert to_canonical("roberta.encoder.layer.0.attention.self.query.kernel", "tf") == (
        "roberta.encoder.layer.0.attention.self.query.weight", True)
    assert to_canonical("a.LayerNorm.gamma", "tf") == ("a.LayerNorm.weight", False)
    assert to_canonical("a.LayerNorm.beta", "tf") == ("a.LayerNorm.bias", False)
    assert to_canonical("a.word_embeddings.embeddings", "tf") == ("a.word_embeddings.weight", False)
    assert to_canonical("a.dense.kernel", "flax") == ("a.dense.weight", True)
    assert to_canonical("a.LayerNorm.scale", "flax") == ("a.LayerNorm.weight", False)
    assert to_canonical("a.LayerNorm.bias", "flax") == ("a.LayerNorm.bias", False)
    assert to_canonical("a.word_embeddings.embedding", "flax") == ("a.word_embeddings.weight", False)
    assert to_canonical("lm_head.bias", "tf") == ("lm_head.bias", False)
    with pytest.raises(ValueError, match="unknown framework"):
        to_canonical("a.weight", "mxnet")


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_hf_checkpoint_loads_into_every_framework(masked_lm, saved, fmt, framework):
    expected = framework_tree(masked_lm, framework)
    with open_checkpoint(saved / fmt) as checkpoint:
        loaded, report = load_weights(shapes(expected), checkpoint, spec_of(masked_lm), framework)
    assert_loaded(expected, loaded)
    assert report.as_dict() == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}


def test_pt_state_dict_with_tied_copies_loads(masked_lm, saved):
    """A PyTorch tree listing the tied decoder too (state_dict) fills it from the word embeddings."""
    expected = {name: t.numpy() for name, t in masked_lm.state_dict().items()}
    assert "lm_head.decoder.weight" in expected and "lm_head.decoder.bias" in expected
    with open_checkpoint(saved / "safetensors") as checkpoint:
        loaded, report = load_weights(shapes(expected), checkpoint, spec_of(masked_lm), "pt")
    assert_loaded(expected, loaded)
    assert not report.unexpected and not report.missing


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_export_drops_tied_copies_and_matches_hf_save(masked_lm, saved, framework):
    with open_checkpoint(saved / "safetensors") as checkpoint:
        hf_saved = {name: checkpoint[name] for name in checkpoint}
    tree = framework_tree(masked_lm, framework)
    if framework == "pt":
        tree = {name: t.numpy() for name, t in masked_lm.state_dict().items()}  # with the tied copies
    exported = export_weights(tree, spec_of(masked_lm), framework)
    assert "lm_head.decoder.weight" not in exported and "lm_head.decoder.bias" not in exported
    assert sorted(exported) == sorted(hf_saved)
    for name, array in exported.items():
        np.testing.assert_array_equal(array, hf_saved[name], err_msg=name)
        assert array.flags.c_contiguous, name


def test_round_trip_pt_tf_flax_pt_is_bit_exact(masked_lm, saved):
    spec = spec_of(masked_lm)
    with open_checkpoint(saved / "bin") as checkpoint:
        original = {name: checkpoint[name] for name in checkpoint if not name.startswith("lm_head.decoder.")}
    tensors = original
    for framework in ("pt", "tf", "flax", "pt"):
        target = shapes(framework_tree(masked_lm, framework))
        tree, report = load_weights(target, tensors, spec, framework)
        assert not (report.missing or report.unexpected or report.mismatched)
        tensors = export_weights(tree, spec, framework)
    assert sorted(tensors) == sorted(original)
    for name, array in original.items():
        assert tensors[name].tobytes() == array.tobytes(), name


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_our_export_loads_in_transformers(masked_lm, framework, tmp_path):
    spec = spec_of(masked_lm)
    save_checkpoint(tmp_path, export_weights(framework_tree(masked_lm, framework), spec, framework), max_shard_size="30KB")
    masked_lm.config.save_pretrained(tmp_path)
    again, info = RobertaForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    for name, tensor in masked_lm.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name
    assert again.lm_head.decoder.weight is again.roberta.embeddings.word_embeddings.weight


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
@pytest.mark.parametrize("model_class", [RobertaModel, RobertaForSequenceClassification, RobertaForMaskedLM])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_report_agrees_with_transformers(saved, fmt, model_class, framework):
    """Missing and unexpected names as transformers reports them for the same checkpoint and model."""
    hf, info = model_class.from_pretrained(saved / fmt, output_loading_info=True)
    with open_checkpoint(saved / fmt) as checkpoint:
        _, report = load_weights(shapes(framework_tree(hf, framework)), checkpoint, spec_of(hf), framework,
                                 allow_new_heads=True)
    assert sorted(report.missing) == sorted(info["missing_keys"])
    assert report.unexpected == sorted(info["unexpected_keys"])


def test_base_checkpoint_into_head_model(tmp_path):
    base = ORACLE.hf_model("Roberta", "Model", init_seed=1)
    base.save_pretrained(tmp_path)
    head = ORACLE.hf_model("Roberta", "ForMaskedLM", init_seed=2)
    target = shapes(framework_tree(head, "tf"))
    with open_checkpoint(tmp_path) as checkpoint:
        assert not any(name.startswith("roberta.") for name in checkpoint)
        with pytest.raises(WeightsError, match="allow_new_heads=True") as err:
            load_weights(target, checkpoint, spec_of(head), "tf")
        assert "lm_head.dense.weight" in str(err.value) and "lm_head.bias" in str(err.value)
        loaded, report = load_weights(target, checkpoint, spec_of(head), "tf", allow_new_heads=True)
    assert sorted(report.missing) == ["lm_head.bias", "lm_head.dense.bias", "lm_head.dense.weight",
                                      "lm_head.layer_norm.bias", "lm_head.layer_norm.weight"]
    assert report.unexpected == ["pooler.dense.bias", "pooler.dense.weight"]  # the masked LM has no pooler
    assert not any(path.startswith("lm_head.") for path in loaded)
    expected = framework_tree(base, "tf")
    for path, array in loaded.items():
        np.testing.assert_array_equal(array, expected[path.removeprefix("roberta.")], err_msg=path)


def test_head_checkpoint_into_base_model(masked_lm, saved):
    with_pooler = ORACLE.hf_model("Roberta", "Model")
    without_pooler = ORACLE.hf_model("Roberta", "Model", init_seed=0)
    without_pooler.pooler = None
    expected = framework_tree(masked_lm, "flax")
    with open_checkpoint(saved / "safetensors") as checkpoint:
        loaded, report = load_weights(shapes(framework_tree(without_pooler, "flax")), checkpoint, spec_of(masked_lm), "flax")
        for path, array in loaded.items():
            np.testing.assert_array_equal(array, expected["roberta." + path], err_msg=path)
        assert report.unexpected == sorted(n for n in checkpoint if n.startswith("lm_head."))
        assert not report.missing
        with pytest.raises(WeightsError, match="pooler.dense.weight"):
            load_weights(shapes(framework_tree(with_pooler, "flax")), checkpoint, spec_of(masked_lm), "flax")
        _, report = load_weights(shapes(framework_tree(with_pooler, "flax")), checkpoint, spec_of(masked_lm), "flax",
                                 allow_new_heads=True)
    assert sorted(report.missing) == ["pooler.dense.bias", "pooler.dense.weight"]


def test_export_of_a_base_model_loads_in_transformers(tmp_path):
    base = ORACLE.hf_model("Roberta", "Model", init_seed=3)
    exported = export_weights(framework_tree(base, "tf"), spec_of(base), "tf")
    assert sorted(exported) == sorted(base.state_dict())
    save_checkpoint(tmp_path, exported)
    base.config.save_pretrained(tmp_path)
    again, info = RobertaModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    assert all(torch.equal(again.state_dict()[n], t) for n, t in base.state_dict().items())


def numpy_checkpoint(model, folder, drop=(), extra=None):
    """Save ``model``'s state dict with numpy/safetensors, less ``drop``, plus ``extra`` tensors."""
    tensors = {n: t.numpy() for n, t in model.state_dict().items() if n not in drop and not n.startswith("lm_head.decoder.")}
    save_checkpoint(folder, {**tensors, **(extra or {})})
    return open_checkpoint(folder)


def test_missing_base_weight_is_an_error_even_with_new_heads(masked_lm, tmp_path):
    dropped = "roberta.encoder.layer.1.output.dense.weight"
    with numpy_checkpoint(masked_lm, tmp_path, drop={dropped}) as checkpoint, \
            pytest.raises(WeightsError, match="missing 1 tensor") as err:
        load_weights(shapes(framework_tree(masked_lm, "pt")), checkpoint, spec_of(masked_lm), "pt",
                     allow_new_heads=True, source=checkpoint.description)
    assert dropped in str(err.value) and f"checkpoint {tmp_path}" in str(err.value)
    assert "allow_new_heads" not in str(err.value)  # it would not help


def test_buffers_are_ignored_and_strangers_reported(masked_lm, tmp_path):
    extra = {
        "roberta.embeddings.position_ids": np.arange(40, dtype=np.int64)[None],
        "roberta.embeddings.token_type_ids": np.zeros((1, 40), dtype=np.int64),
        "roberta.encoder.layer.0.attention.self.rotary.weight": np.ones(3, np.float32),
    }
    with numpy_checkpoint(masked_lm, tmp_path, extra=extra) as checkpoint:
        loaded, report = load_weights(shapes(framework_tree(masked_lm, "tf")), checkpoint, spec_of(masked_lm), "tf")
    assert report.unexpected == ["roberta.encoder.layer.0.attention.self.rotary.weight"]
    assert not any("position_ids" in path or "token_type_ids" in path for path in loaded)


def test_new_classifier_head_is_listed(masked_lm, saved):
    classifier = ORACLE.hf_model("Roberta", "ForSequenceClassification", num_labels=3)
    target = shapes(framework_tree(classifier, "flax"))
    with open_checkpoint(saved / "safetensors-sharded") as checkpoint:
        with pytest.raises(WeightsError, match="allow_new_heads=True.*classifier.out_proj.weight"):
            load_weights(target, checkpoint, spec_of(classifier), "flax")
        loaded, report = load_weights(target, checkpoint, spec_of(classifier), "flax", allow_new_heads=True)
        lm_head = sorted(n for n in checkpoint if n.startswith("lm_head."))
    assert sorted(report.missing) == ["classifier.dense.bias", "classifier.dense.weight",
                                      "classifier.out_proj.bias", "classifier.out_proj.weight"]
    assert report.unexpected == lm_head and "lm_head.dense.weight" in lm_head
    assert set(target) - set(loaded) == {p for p in target if p.startswith("classifier.")}


def test_mismatched_shapes(tmp_path):
    three = ORACLE.hf_model("Roberta", "ForSequenceClassification", num_labels=3)
    five = ORACLE.hf_model("Roberta", "ForSequenceClassification", init_seed=1, num_labels=5)
    three.save_pretrained(tmp_path)
    target = shapes(framework_tree(five, "tf"))
    with open_checkpoint(tmp_path) as checkpoint:
        with pytest.raises(WeightsError) as err:
            load_weights(target, checkpoint, spec_of(five), "tf")
        assert "classifier.out_proj.weight is [3, 32] but the model needs [5, 32]" in str(err.value)
        assert "ignore_mismatched_sizes=True" in str(err.value)
        loaded, report = load_weights(target, checkpoint, spec_of(five), "tf", ignore_mismatched_sizes=True)
    assert sorted(report.mismatched) == [("classifier.out_proj.bias", (3,), (5,)),
                                         ("classifier.out_proj.weight", (3, 32), (5, 32))]
    assert "classifier.out_proj.kernel" not in loaded and "classifier.out_proj.bias" not in loaded
    np.testing.assert_array_equal(loaded["classifier.dense.kernel"], three.classifier.dense.weight.detach().numpy().T)
    assert not report.missing and not report.unexpected


@pytest.mark.parametrize("framework", ["tf", "flax"])
def test_untied_lm_head(framework, tmp_path):
    untied = ORACLE.hf_model("Roberta", "ForMaskedLM", tie_word_embeddings=False)
    untied.save_pretrained(tmp_path)
    tree = framework_tree(untied, framework)
    assert "lm_head.decoder.kernel" in tree
    spec = spec_of(untied)
    with open_checkpoint(tmp_path) as checkpoint:
        assert "lm_head.decoder.weight" in checkpoint
        loaded, report = load_weights(shapes(tree), checkpoint, spec, framework)
    assert_loaded(tree, loaded)
    assert not (report.missing or report.unexpected)
    exported = export_weights(tree, spec, framework)
    np.testing.assert_array_equal(exported["lm_head.decoder.weight"], untied.lm_head.decoder.weight.detach().numpy())


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_prelayernorm_checkpoint(framework, tmp_path):
    model = ORACLE.hf_model("RobertaPreLayerNorm", "ForMaskedLM")
    model.save_pretrained(tmp_path, safe_serialization=False)
    spec = spec_of(model, "roberta_prelayernorm")
    tree = framework_tree(model, framework)
    norm_leaf = {"pt": "weight", "tf": "gamma", "flax": "scale"}[framework]
    assert f"roberta_prelayernorm.encoder.layer.0.attention.LayerNorm.{norm_leaf}" in tree
    assert f"roberta_prelayernorm.LayerNorm.{norm_leaf}" in tree
    with open_checkpoint(tmp_path) as checkpoint:
        loaded, report = load_weights(shapes(tree), checkpoint, spec, framework)
    assert_loaded(tree, loaded)
    assert not (report.missing or report.unexpected or report.mismatched)
    assert "lm_head.decoder.weight" not in export_weights(tree, spec, framework)


def test_optional_tensors_keep_their_initial_value():
    from rosettazoo.conversion import WeightsSpec, load_weights

    spec = WeightsSpec(base_model_prefix="model", optional=(r"^final_logits_bias$",))
    target = {"model.shared.weight": (4, 2), "final_logits_bias": (1, 4)}
    checkpoint = {"model.shared.weight": np.ones((4, 2), dtype=np.float32)}
    loaded, report = load_weights(target, checkpoint, spec, "pt")
    assert list(loaded) == ["model.shared.weight"] and report.missing == [] and report.unexpected == []
    checkpoint["final_logits_bias"] = np.full((1, 4), 0.5, dtype=np.float32)
    loaded, _ = load_weights(target, checkpoint, spec, "pt")
    assert loaded["final_logits_bias"].tolist() == [[0.5] * 4]
