"""Auto classes: family from model_type, class from the task (or architectures), in the three frameworks."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rosettazoo
from rosettazoo import auto
from rosettazoo.common.config import ConfigError

DATA = Path(__file__).parent / "data" / "roberta-base"
ENCODER = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 37, "max_position_embeddings": 40}
TINY = {
    "roberta": ENCODER,
    "roberta-prelayernorm": ENCODER,
    "ibert": ENCODER,
    "bart": {"vocab_size": 99, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
             "decoder_attention_heads": 4, "encoder_ffn_dim": 37, "decoder_ffn_dim": 37, "max_position_embeddings": 40},
    "opt": {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 37,
            "max_position_embeddings": 40},
}
# The head each family's test checkpoint is saved with (its pretraining head).
SAVED_HEAD = {"roberta": "ForMaskedLM", "roberta-prelayernorm": "ForMaskedLM", "ibert": "ForMaskedLM",
              "bart": "ForConditionalGeneration", "opt": "ForCausalLM"}
# Auto task -> the head each family answers with.
EXPECTED = {
    "roberta": {"Model": "Model", "ForMaskedLM": "ForMaskedLM", "ForCausalLM": "ForCausalLM",
                "ForSequenceClassification": "ForSequenceClassification", "ForTokenClassification": "ForTokenClassification",
                "ForQuestionAnswering": "ForQuestionAnswering", "ForMultipleChoice": "ForMultipleChoice"},
    "ibert": {"Model": "Model", "ForMaskedLM": "ForMaskedLM", "ForSequenceClassification": "ForSequenceClassification",
              "ForTokenClassification": "ForTokenClassification", "ForQuestionAnswering": "ForQuestionAnswering",
              "ForMultipleChoice": "ForMultipleChoice"},
    "bart": {"Model": "Model", "ForMaskedLM": "ForConditionalGeneration", "ForCausalLM": "ForCausalLM",
             "ForSeq2SeqLM": "ForConditionalGeneration", "ForSequenceClassification": "ForSequenceClassification",
             "ForQuestionAnswering": "ForQuestionAnswering"},
    "opt": {"Model": "Model", "ForCausalLM": "ForCausalLM", "ForSequenceClassification": "ForSequenceClassification",
            "ForQuestionAnswering": "ForQuestionAnswering"},
}
EXPECTED["roberta-prelayernorm"] = EXPECTED["roberta"]
PREFIXES = {"pt": "", "tf": "TF", "flax": "Flax"}


def auto_class(framework: str, task: str):
    return getattr(rosettazoo, f"{PREFIXES[framework]}AutoModel{'' if task == 'Model' else task}")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{model_type: a folder with a tiny PyTorch checkpoint of the family's pretraining head}."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    out = {}
    for model_type, values in TINY.items():
        config = rosettazoo.AutoConfig.for_model(model_type, **values)
        folder = tmp_path_factory.mktemp(model_type)
        family = auto.FAMILIES[model_type]
        family.resolve(family.prefix + SAVED_HEAD[model_type])(config).save_pretrained(folder)
        out[model_type] = folder
    return out


def test_import_loads_no_framework_and_names_every_auto_class():
    code = ("import sys, rosettazoo; rosettazoo.TFAutoModelForMaskedLM; rosettazoo.AutoConfig;"
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'flax', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    assert rosettazoo.__all__ == sorted(auto.AUTO_NAMES)
    for framework in PREFIXES:
        for task in ("Model", "ForMaskedLM", "ForCausalLM", "ForSeq2SeqLM", "ForSequenceClassification",
                     "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice"):
            assert auto_class(framework, task).task == task


@pytest.mark.parametrize("framework", ["pt", "tf", "flax"])
def test_every_family_and_task_picks_its_class(framework):
    for model_type, heads in EXPECTED.items():
        family = auto.FAMILIES[model_type]
        for task in auto.TASKS:
            if task == "ForArchitecture":
                continue
            if task not in heads:
                with pytest.raises(ConfigError, match=f"{model_type} has no such head; it has {family.prefix}Model"):
                    auto.model_class(model_type, task, framework)
                continue
            name = auto_class(framework, task).class_for(model_type).__name__
            assert name == PREFIXES[framework] + family.prefix + heads[task]


def test_pytorch_from_pretrained_every_family_and_head(folders):
    for model_type, folder in folders.items():
        for task, head in EXPECTED[model_type].items():
            model, info = auto_class("pt", task).from_pretrained(folder, allow_new_heads=True, output_loading_info=True)
            assert type(model).__name__ == auto.FAMILIES[model_type].prefix + head
            assert not info["unexpected_keys"] or head != SAVED_HEAD[model_type], info
        own = rosettazoo.AutoModelForArchitecture.from_pretrained(folder)
        assert type(own).__name__ == auto.FAMILIES[model_type].prefix + SAVED_HEAD[model_type]


@pytest.mark.parametrize("framework", ["tf", "flax"])
def test_tf_and_flax_from_pretrained_and_from_config(folders, framework):
    pytest.importorskip("tensorflow" if framework == "tf" else "flax")
    for model_type, folder in folders.items():
        prefix = PREFIXES[framework] + auto.FAMILIES[model_type].prefix
        model = getattr(rosettazoo, f"{PREFIXES[framework]}AutoModelForArchitecture").from_pretrained(folder)
        assert type(model).__name__ == prefix + SAVED_HEAD[model_type]
    config = rosettazoo.AutoConfig.from_pretrained(folders["opt"], num_labels=4)
    model = auto_class(framework, "ForSequenceClassification").from_config(config)
    assert type(model).__name__ == f"{PREFIXES[framework]}OPTForSequenceClassification" and model.config.num_labels == 4


def test_pytorch_from_config_and_architectures_break_ties(folders):
    pytest.importorskip("torch")
    config = rosettazoo.AutoConfig.from_pretrained(folders["bart"])
    assert type(config).__name__ == "BartConfig" and config.architectures == ["BartForConditionalGeneration"]
    assert type(rosettazoo.AutoModelForMaskedLM.from_config(config)).__name__ == "BartForConditionalGeneration"
    # transformers' TF and Flax classes write their own names into architectures.
    assert auto.head_for(auto.FAMILIES["roberta"], "ForMaskedLM", ["TFRobertaForCausalLM"]) == "ForMaskedLM"
    assert auto.head_for(auto.FAMILIES["roberta"], "ForArchitecture", ["FlaxRobertaForCausalLM"]) == "ForCausalLM"
    config = rosettazoo.AutoConfig.for_model("roberta", **ENCODER)
    with pytest.raises(ConfigError, match="AutoModelForArchitecture needs config.json's architectures"):
        rosettazoo.AutoModelForArchitecture.from_config(config)
    with pytest.raises(TypeError, match="needs a config object"):
        rosettazoo.AutoModel.from_config({"model_type": "roberta"})
    with pytest.raises(TypeError, match="use from_pretrained"):
        rosettazoo.AutoModel()


def test_unsupported_or_missing_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    message = "model_type 'gpt2' is not supported; rosettazoo has bart, ibert, opt, roberta, roberta-prelayernorm"
    for load in (rosettazoo.AutoConfig.from_pretrained, rosettazoo.AutoModel.from_pretrained,
                 rosettazoo.FlaxAutoModelForCausalLM.from_pretrained, rosettazoo.AutoTokenizer.from_pretrained):
        with pytest.raises(ConfigError, match=message):
            load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ConfigError, match="config.json has no model_type"):
        rosettazoo.AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="AutoModelForCausalLM: ibert has no such head.*families with one: bart, opt"):
        rosettazoo.AutoModelForCausalLM.from_config(rosettazoo.AutoConfig.for_model("ibert", **ENCODER))


def test_auto_tokenizer(tmp_path):
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(DATA / name, tmp_path / name)
    with pytest.raises(ConfigError, match="has no config.json, and its tokenizer_config.json names tokenizer_class None"):
        rosettazoo.AutoTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BartTokenizerFast"}))
    assert type(rosettazoo.AutoTokenizer.from_pretrained(tmp_path)).__name__ == "BartTokenizer"
    for model_type, expected in (("opt", "OPTTokenizer"), ("ibert", "RobertaTokenizer"), ("roberta", "RobertaTokenizer")):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
        tokenizer = rosettazoo.AutoTokenizer.from_pretrained(tmp_path)
        assert type(tokenizer).__name__ == expected
        assert tokenizer("Hello world")["input_ids"][:3] == ([2, 31414, 232] if model_type == "opt" else [0, 31414, 232])
