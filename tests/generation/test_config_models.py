"""Models carry a GenerationConfig: from their model config when built, from generation_config.json when loaded
(falling back to the model config without one), written by save_pretrained when they can generate. One tiny OPT
per framework."""

import json
import os

os.environ.setdefault("USE_TF", "0")  # keep transformers from importing TensorFlow: slow and not needed here

import numpy as np
import pytest

import rosettazoo.opt as zoo
from rosettazoo.common.config import ConfigError
from rosettazoo.generation import GenerationConfig
from rosettazoo.generation.config import GENERATION_CONFIG_NAME
from tests.harness import BACKENDS, PREFIXES

TINY = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 37,
        "max_position_embeddings": 40}
FRAMEWORKS = tuple(PREFIXES)


def causal_lm_class(framework: str):
    pytest.importorskip(BACKENDS[framework])
    return getattr(zoo, f"{PREFIXES[framework]}OPTForCausalLM")


def tiny_model(framework: str, **config_values):
    return causal_lm_class(framework)(zoo.OPTConfig(**{**TINY, **config_values}))


def allow_generation(monkeypatch, model_class, can: bool) -> None:
    """Decide ``can_generate()`` here, whether or not the class has the generation mixin yet."""
    monkeypatch.setattr(model_class, "can_generate", classmethod(lambda cls: can))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_base_classes_cannot_generate(framework):
    pytest.importorskip(BACKENDS[framework])
    module = __import__(f"rosettazoo.common.modeling_{framework}", fromlist=["_"])
    base = {"pt": "PreTrainedModel", "tf": "TFPreTrainedModel", "flax": "FlaxPreTrainedModel"}[framework]
    assert getattr(module, base).can_generate() is False


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_new_model_takes_the_settings_its_config_carries(framework):
    model = tiny_model(framework, num_beams=3, no_repeat_ngram_size=2)  # legacy keys, kept in config.extra
    assert model.generation_config == GenerationConfig.from_model_config(model.config)
    config = model.generation_config
    assert (config.num_beams, config.no_repeat_ngram_size) == (3, 2)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (2, 2, 1)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_saved_generation_config_loads_back(framework, tmp_path, monkeypatch):
    model_class = causal_lm_class(framework)
    allow_generation(monkeypatch, model_class, True)
    model = tiny_model(framework)
    model.generation_config = GenerationConfig(num_beams=4, max_new_tokens=5, eos_token_id=[2, 7], early_stopping=True)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / GENERATION_CONFIG_NAME).read_text()) == model.generation_config.to_dict()
    assert model_class.from_pretrained(tmp_path).generation_config == model.generation_config


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_save_overwrites_a_generation_config_only_when_asked(framework, tmp_path, monkeypatch):
    allow_generation(monkeypatch, causal_lm_class(framework), True)
    model = tiny_model(framework)
    GenerationConfig().save_pretrained(tmp_path)
    with pytest.raises(FileExistsError, match=f"{GENERATION_CONFIG_NAME}.*overwrite=True"):
        model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [GENERATION_CONFIG_NAME]  # refused before writing anything
    model.generation_config.num_beams = 2
    model.save_pretrained(tmp_path, overwrite=True)
    assert GenerationConfig.from_pretrained(tmp_path).num_beams == 2


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_invalid_generation_config_is_refused_before_saving(framework, tmp_path, monkeypatch):
    allow_generation(monkeypatch, causal_lm_class(framework), True)
    model = tiny_model(framework)
    model.generation_config.top_k = -1
    with pytest.raises(ConfigError, match="top_k must be >= 0"):
        model.save_pretrained(tmp_path)
    assert not tmp_path.exists() or os.listdir(tmp_path) == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_without_generation_config_json_the_model_config_decides(framework, tmp_path, monkeypatch):
    model_class = causal_lm_class(framework)
    allow_generation(monkeypatch, model_class, False)  # so save_pretrained writes no generation_config.json
    tiny_model(framework, num_beams=3, min_length=4).save_pretrained(tmp_path)
    assert not (tmp_path / GENERATION_CONFIG_NAME).exists()
    loaded = model_class.from_pretrained(tmp_path)
    assert loaded.generation_config == GenerationConfig.from_model_config(loaded.config)
    assert (loaded.generation_config.num_beams, loaded.generation_config.min_length) == (3, 4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_broken_generation_config_json_is_an_error(framework, tmp_path, monkeypatch):
    model_class = causal_lm_class(framework)
    allow_generation(monkeypatch, model_class, False)
    tiny_model(framework).save_pretrained(tmp_path)
    (tmp_path / GENERATION_CONFIG_NAME).write_text(json.dumps({"num_beams": 0}))
    with pytest.raises(ConfigError, match="num_beams must be at least 1"):
        model_class.from_pretrained(tmp_path)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_loads_the_generation_config_transformers_saves_with_its_model(framework, tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf = transformers.OPTForCausalLM(transformers.OPTConfig(**TINY))
    hf.generation_config.update(num_beams=3, no_repeat_ngram_size=2, max_new_tokens=6)
    hf.save_pretrained(tmp_path)
    loaded = causal_lm_class(framework).from_pretrained(tmp_path).generation_config
    assert loaded == GenerationConfig.from_pretrained(tmp_path)
    assert (loaded.num_beams, loaded.no_repeat_ngram_size, loaded.max_new_tokens, loaded.eos_token_id) == (3, 2, 6, 2)


def test_keras_keeps_the_generation_config_out_of_its_weights_and_in_its_config():
    keras = pytest.importorskip("keras")
    model = tiny_model("tf", num_hidden_layers=1)
    model.generation_config = GenerationConfig(num_beams=2)
    assert type(model.generation_config) is GenerationConfig  # not wrapped by Keras' attribute tracking
    assert len(model.variables_by_path()) == len(model.weights)  # raises on a weight outside the layer tree
    inputs = {"input_ids": np.arange(12).reshape(2, 6) % 100, "attention_mask": np.ones((2, 6), np.int32)}
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit({**inputs, "labels": inputs["input_ids"]}, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert type(model).from_config(model.get_config()).generation_config == GenerationConfig(num_beams=2)
