"""The framework-neutral generation settings: reads and writes Hugging Face ``generation_config.json``.

Names, meanings and defaults are those of transformers 4.x's ``GenerationConfig``. Keys this class does not know
(transformers' other decoding options, ``transformers_version``) are kept and written back unchanged.
"""

from __future__ import annotations

import copy
import json
import math
import os
from typing import Any

from ..common.config import ConfigError, Field, PretrainedConfig, from_json_file
from ..common.io import save_files

GENERATION_CONFIG_NAME = "generation_config.json"

# Written by transformers to describe the file rather than the decoding; equality ignores them, as transformers does.
METADATA_KEYS = ("transformers_version", "_from_model_config", "_commit_hash", "_original_object_hash")

# transformers turns return_dict_in_generate on when a model config asks for any of these outputs.
OUTPUT_FLAGS = ("output_attentions", "output_hidden_states", "output_scores", "output_logits")

# Token ids may also be lists (several end-of-sequence tokens); their contents are checked in validate().
TOKEN_IDS = (int, list)

FIELDS: dict[str, Field] = {
    # length
    "max_length": Field(int, 20),
    "max_new_tokens": Field(int, None, optional=True),
    "min_length": Field(int, 0),
    "min_new_tokens": Field(int, None, optional=True),
    # strategy
    "do_sample": Field(bool, False),
    "num_beams": Field(int, 1),
    "length_penalty": Field(float, 1.0),
    "early_stopping": Field((bool, str), False, choices=(True, False, "never")),
    "num_return_sequences": Field(int, 1),
    # logits processing
    "temperature": Field(float, 1.0),
    "top_k": Field(int, 50),
    "top_p": Field(float, 1.0),
    "repetition_penalty": Field(float, 1.0),
    "no_repeat_ngram_size": Field(int, 0),
    "encoder_no_repeat_ngram_size": Field(int, 0),
    "bad_words_ids": Field(list, None, optional=True),
    "forced_bos_token_id": Field(int, None, optional=True),
    "forced_eos_token_id": Field(TOKEN_IDS, None, optional=True),
    # special tokens
    "eos_token_id": Field(TOKEN_IDS, None, optional=True),
    "pad_token_id": Field(int, None, optional=True),
    "bos_token_id": Field(int, None, optional=True),
    "decoder_start_token_id": Field(int, None, optional=True),
    # cache and outputs
    "use_cache": Field(bool, True),
    "output_scores": Field(bool, False),
    "return_dict_in_generate": Field(bool, False),
}

# Settings that must be >= 0, with what 0 means where it is a choice rather than a bound.
NON_NEGATIVE = {"max_length": "", "min_length": "", "min_new_tokens": "", "top_k": " (0 turns top-k filtering off)",
                "no_repeat_ngram_size": " (0 turns it off)", "encoder_no_repeat_ngram_size": " (0 turns it off)"}
TOKEN_ID_FIELDS = ("forced_bos_token_id", "forced_eos_token_id", "eos_token_id", "pad_token_id", "bos_token_id",
                   "decoder_start_token_id")


class GenerationConfig:
    """How ``generate()`` decodes: length limits, greedy / sampling / beam search, logits processing, special tokens.

    ``GenerationConfig(num_beams=4, max_new_tokens=32)``; values are checked on construction and by ``validate()``
    (call it again after assigning attributes directly; ``update()`` checks for you).
    """

    def __init__(self, **kwargs: Any):
        for name, field in FIELDS.items():
            setattr(self, name, copy.deepcopy(field.default))
        # Keys this class does not know, kept verbatim and written back by to_dict().
        self.extra: dict[str, Any] = {}
        self._assign(kwargs)
        self.validate()

    def _assign(self, values: dict[str, Any]) -> None:
        """Set fields (types checked, ints of float fields made floats) and keep every other key in ``extra``."""
        for name, value in values.items():
            if name in FIELDS:
                setattr(self, name, FIELDS[name].check(type(self).__name__, name, value))
            else:
                self.extra[name] = value

    # -- checks ------------------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ConfigError (a ValueError) for a value ``generate()`` cannot use, saying how to fix it.

        Stricter than transformers, which only warns about some of these.
        """
        owner = type(self).__name__
        for name, field in FIELDS.items():
            field.check(owner, name, getattr(self, name))
        self._check_numbers(owner)
        self._check_beams(owner)
        self._check_sampling(owner)
        self._check_token_ids(owner)
        self._check_bad_words_ids(owner)

    def _check_numbers(self, owner: str) -> None:
        for name in ("temperature", "top_p", "repetition_penalty", "length_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{owner}.{name} must be a finite number, got {getattr(self, name)!r}")
        for name, zero_means in NON_NEGATIVE.items():
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{owner}.{name} must be >= 0{zero_means}, got {value!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(
                f"{owner}.max_new_tokens must be at least 1, got {self.max_new_tokens!r}; "
                f"set it to None to let max_length alone limit the output"
            )
        if self.repetition_penalty <= 0:
            raise ConfigError(
                f"{owner}.repetition_penalty must be positive (1.0 means no penalty, above 1 discourages repeats), "
                f"got {self.repetition_penalty!r}"
            )

    def _check_beams(self, owner: str) -> None:
        if self.num_beams < 1:
            raise ConfigError(f"{owner}.num_beams must be at least 1 (1 means no beam search), got {self.num_beams!r}")
        if self.num_return_sequences < 1:
            raise ConfigError(f"{owner}.num_return_sequences must be at least 1, got {self.num_return_sequences!r}")
        # Sampling without beams draws any number of sequences; a beam search returns at most its beams.
        if self.num_return_sequences > self.num_beams and (self.num_beams > 1 or not self.do_sample):
            raise ConfigError(
                f"{owner}.num_return_sequences ({self.num_return_sequences}) exceeds num_beams ({self.num_beams}): "
                f"a search returns at most num_beams sequences per input; raise num_beams, lower "
                f"num_return_sequences, or sample them with do_sample=True and num_beams=1"
            )

    def _check_sampling(self, owner: str) -> None:
        if not self.do_sample:
            return
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(
                f"{owner}.top_p must be in (0, 1] when do_sample=True (1.0 keeps every token), got {self.top_p!r}"
            )
        if self.temperature <= 0:
            raise ConfigError(
                f"{owner}.temperature must be positive when do_sample=True, got {self.temperature!r}; "
                f"for deterministic (greedy) decoding set do_sample=False instead"
            )

    def _check_token_ids(self, owner: str) -> None:
        for name in TOKEN_ID_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            ids = value if isinstance(value, list) else [value]
            if not ids or not all(is_token_id(i) for i in ids):
                lists = ", or a non-empty list of them" if list in FIELDS[name].kinds else ""
                wanted = f"a non-negative int token id{lists}"
                raise ConfigError(f"{owner}.{name} must be {wanted} (or None), got {value!r}")

    def _check_bad_words_ids(self, owner: str) -> None:
        words = self.bad_words_ids
        if words is None:
            return
        if not all(isinstance(word, list) and word and all(is_token_id(i) for i in word) for word in words):
            raise ConfigError(
                f"{owner}.bad_words_ids must be a list of non-empty lists of non-negative int token ids, one list "
                f"per banned token sequence (e.g. [[42], [7, 8]]), got {words!r}"
            )

    # -- building ----------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> GenerationConfig:
        if not isinstance(values, dict):
            raise ConfigError(f"a {cls.__name__} needs a JSON object, got {type(values).__name__}")
        return cls(**{**values, **overrides})

    @classmethod
    def from_model_config(cls, model_config: PretrainedConfig) -> GenerationConfig:
        """The generation settings a model config carries, as transformers' ``from_model_config`` reads them.

        Old config.json files (BART's among them) hold decoding keys such as ``num_beams`` or ``min_length``; a
        config class keeps those it declares as fields and the others in ``extra``, so both are read. A None value
        leaves the default, and keys that are not generation settings are not taken.
        """
        values = {**model_config.extra, **{name: getattr(model_config, name) for name in model_config.all_fields()}}
        config = cls(**{name: value for name, value in values.items() if name in FIELDS and value is not None})
        if any(values.get(flag) is True for flag in OUTPUT_FLAGS):
            config.return_dict_in_generate = True
        return config

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any) -> GenerationConfig:
        return from_json_file(cls.from_dict, path, overrides)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> GenerationConfig:
        """Read ``generation_config.json`` from a local folder or a hub id; extra keyword arguments override it.

        Hub arguments (``revision``, ``cache_dir``, ``local_files_only``, ``token``) are taken out first.
        """
        from ..common.hub import HUB_ARGUMENTS, resolve_file

        hub_kwargs = {k: kwargs.pop(k) for k in HUB_ARGUMENTS if k in kwargs}
        return cls.from_json_file(resolve_file(name_or_path, GENERATION_CONFIG_NAME, **hub_kwargs), **kwargs)

    # -- changing and writing ----------------------------------------------------------------------------------

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set the known settings among ``kwargs`` and return the others, as transformers does.

        Known are the fields and the keys already kept in ``extra``. All or nothing: an invalid value raises and
        leaves this config unchanged.
        """
        known = {k: v for k, v in kwargs.items() if k in FIELDS or k in self.extra}
        updated = self.copy()
        updated._assign(known)
        updated.validate()
        self.__dict__.update(updated.__dict__)
        return {k: v for k, v in kwargs.items() if k not in known}

    def copy(self) -> GenerationConfig:
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        out = copy.deepcopy(self.extra)
        out.update({name: copy.deepcopy(getattr(self, name)) for name in FIELDS})
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, folder: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``generation_config.json`` atomically; an invalid config is refused, as transformers does."""
        self.validate()
        save_files(folder, {GENERATION_CONFIG_NAME: self.to_json_string()}, overwrite=overwrite)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        return without_metadata(self.to_dict()) == without_metadata(other.to_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


def is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def without_metadata(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in METADATA_KEYS}
