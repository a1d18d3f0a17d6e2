"""from_pretrained's keyword arguments in the three frameworks: unknown ones are errors, dtype in every spelling."""

import json

import ml_dtypes
import numpy as np
import pytest

from rosettazoo.common.checkpoint import open_checkpoint
from rosettazoo.common.pretrained import dtype_name
from rosettazoo.conversion import convert_checkpoint
from rosettazoo.roberta import RobertaConfig

TINY = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 37, "max_position_embeddings": 40}


def _classes(framework):
    """RobertaModel of ``framework`` and its dtype spellings (a string, the framework's object)."""
    if framework == "pt":
        torch = pytest.importorskip("torch")
        from rosettazoo.roberta import RobertaModel

        return RobertaModel, torch.bfloat16
    if framework == "tf":
        tf = pytest.importorskip("tensorflow")
        from rosettazoo.roberta import TFRobertaModel

        return TFRobertaModel, tf.bfloat16
    jnp = pytest.importorskip("jax.numpy")
    from rosettazoo.roberta import FlaxRobertaModel

    return FlaxRobertaModel, jnp.bfloat16


def _float_dtypes(model, framework) -> set[str]:
    if framework == "pt":
        return {dtype_name(p.dtype) for p in model.parameters()}
    if framework == "tf":
        return {v.dtype for v in model.weights}
    import jax

    return {np.dtype(leaf.dtype).name for leaf in jax.tree_util.tree_leaves(model.params)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A float32 RoBERTa checkpoint and its bfloat16 conversion."""
    torch = pytest.importorskip("torch")
    from rosettazoo.roberta import RobertaModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("f32")
    RobertaModel(RobertaConfig(**TINY)).save_pretrained(folder)
    bf16 = tmp_path_factory.mktemp("bf16") / "model"
    convert_checkpoint(folder, bf16, dtype="bfloat16")
    return folder, bf16


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_unknown_arguments_are_errors_naming_them(checkpoints, framework):
    model_class, _ = _classes(framework)
    folder, _ = checkpoints
    before = (folder / "config.json").read_bytes()
    with pytest.raises(TypeError, match=r"hiden_dropout_prob \(did you mean hidden_dropout_prob\?\)"):
        model_class.from_pretrained(folder, hiden_dropout_prob=0.2)
    with pytest.raises(TypeError, match=r"device_map \(a transformers argument rosettazoo does not take: models load"):
        model_class.from_pretrained(folder, device_map="auto")
    with pytest.raises(TypeError, match="low_cpu_mem_usage.*trust_remote_code"):
        model_class.from_pretrained(folder, low_cpu_mem_usage=True, trust_remote_code=True)
    assert (folder / "config.json").read_bytes() == before


@pytest.mark.parametrize("framework", ["pt", "flax"])
def test_config_fields_override_and_a_given_config_is_not_changed(checkpoints, framework):
    model_class, _ = _classes(framework)
    folder, _ = checkpoints
    model = model_class.from_pretrained(folder, hidden_dropout_prob=0.3, num_labels=5)
    assert model.config.hidden_dropout_prob == 0.3 and model.config.num_labels == 5
    config = RobertaConfig(**TINY)
    model = model_class.from_pretrained(folder, config=config, attention_probs_dropout_prob=0.0)
    assert model.config.attention_probs_dropout_prob == 0.0 and config.attention_probs_dropout_prob == 0.1
    with pytest.raises(ValueError, match="hidden_dropout_prob must be in"):
        model_class.from_pretrained(folder, config=config, hidden_dropout_prob=2.0)


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_dtype_as_string_framework_object_and_auto(checkpoints, framework):
    model_class, framework_bfloat16 = _classes(framework)
    folder, bf16 = checkpoints
    assert _float_dtypes(model_class.from_pretrained(folder), framework) == {"float32"}
    assert _float_dtypes(model_class.from_pretrained(bf16), framework) == {"float32"}  # the default is float32
    for dtype in ("bfloat16", framework_bfloat16):
        assert _float_dtypes(model_class.from_pretrained(folder, dtype=dtype), framework) == {"bfloat16"}
    assert _float_dtypes(model_class.from_pretrained(bf16, dtype="auto"), framework) == {"bfloat16"}
    assert _float_dtypes(model_class.from_pretrained(folder, dtype="auto"), framework) == {"float32"}
    model = model_class.from_pretrained(bf16, dtype="auto")
    with open_checkpoint(bf16) as checkpoint:  # bfloat16 all the way: the loaded weights are the stored bits
        stored = checkpoint["embeddings.word_embeddings.weight"]
    assert stored.dtype == ml_dtypes.bfloat16
    weights = model.numpy_weights()
    key = next(k for k in weights if k.startswith("embeddings.word_embeddings"))
    np.testing.assert_array_equal(np.asarray(weights[key]).view(np.int16), stored.view(np.int16))
    with pytest.raises(ValueError, match=r"dtype must be one of .*got 'int8'"):
        model_class.from_pretrained(folder, dtype="int8")


def test_pytorch_torch_dtype_alias(checkpoints):
    torch = pytest.importorskip("torch")
    from rosettazoo.roberta import RobertaModel

    folder, _ = checkpoints
    assert RobertaModel.from_pretrained(folder, torch_dtype=torch.float16).dtype == torch.float16
    assert RobertaModel.from_pretrained(folder, torch_dtype="float16", dtype=torch.float16).dtype == torch.float16
    with pytest.raises(TypeError, match="disagree; pass one"):
        RobertaModel.from_pretrained(folder, dtype="bfloat16", torch_dtype="float16")


def test_tf_mixed_policy(checkpoints):
    pytest.importorskip("tensorflow")
    import keras

    from rosettazoo.roberta import TFRobertaModel

    folder, _ = checkpoints
    for policy in ("mixed_bfloat16", keras.DTypePolicy("mixed_bfloat16")):
        model = TFRobertaModel.from_pretrained(folder, dtype=policy)
        assert {v.dtype for v in model.weights} == {"float32"}
        assert model.dtype_policy.compute_dtype == "bfloat16"
        output = model(input_ids=np.array([[0, 5, 6, 2]]))
        assert output.last_hidden_state.dtype == "bfloat16"
    with pytest.raises(ValueError, match="not a Keras mixed policy"):
        TFRobertaModel.from_pretrained(folder, dtype="mixed_int8")


def test_auto_reads_the_weights_not_a_stale_config(checkpoints, tmp_path):
    """dtype="auto" follows the stored tensors: a config.json claiming float16 over bfloat16 weights loads bf16."""
    torch = pytest.importorskip("torch")
    from rosettazoo.roberta import RobertaModel

    _, bf16 = checkpoints
    values = json.loads((bf16 / "config.json").read_text())
    assert values["dtype"] == "bfloat16"  # the converter updated it
    (tmp_path / "config.json").write_text(json.dumps({**values, "dtype": "float16", "torch_dtype": "float16"}))
    (tmp_path / "model.safetensors").write_bytes((bf16 / "model.safetensors").read_bytes())
    assert RobertaModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.bfloat16
