"""GenerationConfig against transformers 4.57.6's, the oracle: defaults, legacy model-config keys, files both ways,
and every value validate() refuses. Framework-neutral: no torch, tf or jax import."""

import json
import subprocess
import sys

import pytest

from rosettazoo.bart import BartConfig
from rosettazoo.common.config import ConfigError
from rosettazoo.generation import GenerationConfig
from rosettazoo.generation.config import FIELDS, GENERATION_CONFIG_NAME

transformers = pytest.importorskip("transformers")

# facebook/bart-large-cnn's config.json: decoding settings from before generation_config.json existed.
BART_LARGE_CNN = {
    "_num_labels": 3, "activation_dropout": 0.0, "activation_function": "gelu", "add_final_layer_norm": False,
    "architectures": ["BartForConditionalGeneration"], "attention_dropout": 0.0, "bos_token_id": 0, "d_model": 1024,
    "decoder_attention_heads": 16, "decoder_ffn_dim": 4096, "decoder_layerdrop": 0.0, "decoder_layers": 12,
    "decoder_start_token_id": 2, "dropout": 0.1, "early_stopping": True, "encoder_attention_heads": 16,
    "encoder_ffn_dim": 4096, "encoder_layerdrop": 0.0, "encoder_layers": 12, "eos_token_id": 2,
    "force_bos_token_to_be_generated": True, "forced_bos_token_id": 0, "forced_eos_token_id": 2,
    "gradient_checkpointing": False, "id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}, "init_std": 0.02,
    "is_encoder_decoder": True, "label2id": {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}, "length_penalty": 2.0,
    "max_length": 142, "max_position_embeddings": 1024, "min_length": 56, "model_type": "bart",
    "no_repeat_ngram_size": 3, "normalize_before": False, "num_beams": 4, "num_hidden_layers": 12, "output_past": True,
    "pad_token_id": 1, "prefix": " ", "scale_embedding": False,
    "task_specific_params": {"summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 142,
                                               "min_length": 56, "no_repeat_ngram_size": 3, "num_beams": 4}},
    "transformers_version": "4.7.0.dev0", "use_cache": True, "vocab_size": 50264,
}

NON_DEFAULT = {
    "max_new_tokens": 7, "min_new_tokens": 2, "num_beams": 3, "num_return_sequences": 2, "length_penalty": 0.5,
    "early_stopping": "never", "no_repeat_ngram_size": 2, "encoder_no_repeat_ngram_size": 3,
    "repetition_penalty": 1.3, "bad_words_ids": [[5], [6, 7]], "forced_bos_token_id": 0, "forced_eos_token_id": [2, 3],
    "eos_token_id": [2, 4], "pad_token_id": 1, "bos_token_id": 0, "decoder_start_token_id": 2, "use_cache": False,
    "output_scores": True, "return_dict_in_generate": True,
}


def ours_of_fields(config) -> dict:
    return {name: getattr(config, name) for name in FIELDS}


def test_importing_it_imports_no_framework():
    code = ("import sys, rosettazoo.generation\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'flax', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_defaults_and_keys_agree_with_transformers():
    theirs = transformers.GenerationConfig().to_dict()
    ours = GenerationConfig().to_dict()
    assert set(ours) == set(FIELDS) and set(FIELDS) <= set(theirs)
    for name in FIELDS:
        assert ours[name] == theirs[name] and type(ours[name]) is type(theirs[name]), name


def test_from_model_config_reads_legacy_bart_keys_as_transformers_does():
    ours = GenerationConfig.from_model_config(BartConfig.from_dict(BART_LARGE_CNN))
    theirs = transformers.GenerationConfig.from_model_config(transformers.BartConfig.from_dict(BART_LARGE_CNN))
    assert ours_of_fields(ours) == ours_of_fields(theirs)
    assert (ours.num_beams, ours.min_length, ours.max_length, ours.length_penalty) == (4, 56, 142, 2.0)
    assert (ours.forced_bos_token_id, ours.forced_eos_token_id, ours.decoder_start_token_id) == (0, 2, 2)
    assert ours.extra == {}  # model settings (d_model, prefix, ...) are not generation settings


def test_from_model_config_of_a_default_config_takes_only_the_token_ids():
    ours = GenerationConfig.from_model_config(BartConfig())
    theirs = transformers.GenerationConfig.from_model_config(transformers.BartConfig())
    assert ours_of_fields(ours) == ours_of_fields(theirs)
    assert ours == GenerationConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, decoder_start_token_id=2,
                                    forced_eos_token_id=2)


def test_from_model_config_turns_on_dict_outputs_for_output_flags():
    config = BartConfig(output_hidden_states=True)
    theirs = transformers.GenerationConfig.from_model_config(transformers.BartConfig(output_hidden_states=True))
    assert GenerationConfig.from_model_config(config).return_dict_in_generate is theirs.return_dict_in_generate is True


def test_save_and_load_round_trip_keeps_unknown_keys(tmp_path):
    config = GenerationConfig(**NON_DEFAULT, typical_p=0.9)
    config.save_pretrained(tmp_path)
    again = GenerationConfig.from_pretrained(tmp_path)
    assert again == config and again.extra == {"typical_p": 0.9}
    assert json.loads((tmp_path / GENERATION_CONFIG_NAME).read_text()) == config.to_dict()


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    GenerationConfig().save_pretrained(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        GenerationConfig(num_beams=2).save_pretrained(tmp_path)
    GenerationConfig(num_beams=2).save_pretrained(tmp_path, overwrite=True)
    assert GenerationConfig.from_pretrained(tmp_path).num_beams == 2


def test_save_refuses_an_invalid_config(tmp_path):
    config = GenerationConfig()
    config.num_beams = 0
    with pytest.raises(ConfigError, match="num_beams must be at least 1"):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / GENERATION_CONFIG_NAME).exists()


def test_reads_what_transformers_writes(tmp_path):
    transformers.GenerationConfig(**NON_DEFAULT, max_time=5.0).save_pretrained(tmp_path)
    ours = GenerationConfig.from_pretrained(tmp_path)
    assert ours == GenerationConfig(**NON_DEFAULT, max_time=5.0)
    assert ours.extra["transformers_version"] == transformers.__version__


def test_transformers_reads_what_we_write(tmp_path):
    GenerationConfig(**NON_DEFAULT, max_time=5.0).save_pretrained(tmp_path)
    theirs = transformers.GenerationConfig.from_pretrained(tmp_path)
    assert ours_of_fields(theirs) == ours_of_fields(GenerationConfig(**NON_DEFAULT))
    assert theirs.max_time == 5.0


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=GENERATION_CONFIG_NAME):
        GenerationConfig.from_pretrained(tmp_path)


def test_from_pretrained_overrides_and_bad_json(tmp_path):
    GenerationConfig(num_beams=4).save_pretrained(tmp_path)
    assert GenerationConfig.from_pretrained(tmp_path, num_beams=2).num_beams == 2
    (tmp_path / GENERATION_CONFIG_NAME).write_text("{not json")
    with pytest.raises(ConfigError, match="not valid UTF-8 JSON"):
        GenerationConfig.from_pretrained(tmp_path)


def test_update_sets_known_keys_returns_the_rest_and_is_all_or_nothing():
    config = GenerationConfig(typical_p=0.9)
    unused = config.update(num_beams=4, typical_p=0.5, my_flag=True)
    assert unused == {"my_flag": True}
    assert config.num_beams == 4 and config.extra == {"typical_p": 0.5}
    with pytest.raises(ConfigError, match="top_k"):
        config.update(num_beams=2, top_k=-1)
    assert config.num_beams == 4 and config.top_k == 50


def test_copy_is_deep_and_equality_ignores_metadata():
    config = GenerationConfig(bad_words_ids=[[3]], eos_token_id=[1, 2])
    duplicate = config.copy()
    duplicate.bad_words_ids[0].append(4)
    assert config.bad_words_ids == [[3]] and duplicate != config
    assert GenerationConfig(transformers_version="4.57.6") == GenerationConfig()
    assert GenerationConfig(typical_p=0.5) != GenerationConfig()
    assert repr(GenerationConfig(num_beams=3)) == "GenerationConfig " + GenerationConfig(num_beams=3).to_json_string()


def test_float_settings_accept_ints_as_floats():
    config = GenerationConfig(length_penalty=2, temperature=1)
    assert config.length_penalty == 2.0 and isinstance(config.length_penalty, float)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"num_beams": 0}, r"num_beams must be at least 1 \(1 means no beam search\), got 0"),
        ({"num_beams": "4"}, r"num_beams must be int, got '4' \(str\)"),
        ({"num_beams": 2.0}, r"num_beams must be int, got 2.0"),
        ({"do_sample": 1}, r"do_sample must be bool, got 1"),
        ({"num_return_sequences": 0}, r"num_return_sequences must be at least 1, got 0"),
        ({"num_return_sequences": 2}, r"num_return_sequences \(2\) exceeds num_beams \(1\).*do_sample=True"),
        ({"num_return_sequences": 3, "num_beams": 2, "do_sample": True}, r"num_return_sequences \(3\) exceeds num_beams \(2\)"),
        ({"do_sample": True, "top_p": 0.0}, r"top_p must be in \(0, 1\] when do_sample=True .*got 0.0"),
        ({"do_sample": True, "top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"do_sample": True, "temperature": 0.0}, r"temperature must be positive when do_sample=True, got 0.0.*do_sample=False"),
        ({"top_k": -1}, r"top_k must be >= 0 \(0 turns top-k filtering off\), got -1"),
        ({"repetition_penalty": 0.0}, r"repetition_penalty must be positive \(1.0 means no penalty"),
        ({"length_penalty": "long"}, r"length_penalty must be float, got 'long'"),
        ({"length_penalty": float("nan")}, r"length_penalty must be a finite number, got nan"),
        ({"early_stopping": "always"}, r"early_stopping must be one of \[True, False, 'never'\], got 'always'"),
        ({"early_stopping": 1}, r"early_stopping must be bool or str, got 1"),
        ({"no_repeat_ngram_size": -1}, r"no_repeat_ngram_size must be >= 0 \(0 turns it off\), got -1"),
        ({"encoder_no_repeat_ngram_size": -2}, r"encoder_no_repeat_ngram_size must be >= 0"),
        ({"min_length": -1}, r"min_length must be >= 0"),
        ({"max_length": -1}, r"max_length must be >= 0, got -1"),
        ({"min_new_tokens": -1}, r"min_new_tokens must be >= 0"),
        ({"max_new_tokens": 0}, r"max_new_tokens must be at least 1, got 0; set it to None"),
        ({"bad_words_ids": [5, 6]}, r"bad_words_ids must be a list of non-empty lists of non-negative int token ids"),
        ({"bad_words_ids": [[]]}, r"bad_words_ids must be a list of non-empty lists.*e.g. \[\[42\], \[7, 8\]\]"),
        ({"bad_words_ids": [[3, -1]]}, r"bad_words_ids must be a list of non-empty lists of non-negative"),
        ({"bad_words_ids": [["a"]]}, r"bad_words_ids must be a list of non-empty lists"),
        ({"bad_words_ids": "[[3]]"}, r"bad_words_ids must be list or null"),
        ({"eos_token_id": -1}, r"eos_token_id must be a non-negative int token id, or a non-empty list of them"),
        ({"eos_token_id": [2, -1]}, r"eos_token_id must be a non-negative int token id.*got \[2, -1\]"),
        ({"eos_token_id": []}, r"eos_token_id must be a non-negative int token id, or a non-empty list"),
        ({"forced_eos_token_id": -2}, r"forced_eos_token_id must be a non-negative int token id"),
        ({"forced_eos_token_id": [True]}, r"forced_eos_token_id must be a non-negative int token id"),
        ({"pad_token_id": -1}, r"pad_token_id must be a non-negative int token id \(or None\), got -1"),
        ({"decoder_start_token_id": "2"}, r"decoder_start_token_id must be int or null"),
    ],
)
def test_validate_refuses(values, message):
    with pytest.raises(ConfigError, match=message):
        GenerationConfig(**values)
    config = GenerationConfig()
    for name, value in values.items():  # assigned directly, then caught by validate()
        setattr(config, name, value)
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_validate_accepts_what_only_sampling_or_beams_use():
    GenerationConfig(top_p=0.0, temperature=0.0).validate()  # greedy decoding ignores them
    GenerationConfig(do_sample=True, num_return_sequences=5).validate()  # five independent samples
    GenerationConfig(num_beams=4, num_return_sequences=4, early_stopping="never").validate()
