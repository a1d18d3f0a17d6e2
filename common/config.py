"""The framework-neutral config base: reads and writes Hugging Face ``config.json`` and validates values.

A family config declares its fields once, with types and Hugging Face's defaults; keys it does not know are
kept and written back unchanged, so a config passes through rosettazoo without losing anything.
"""

from __future__ import annotations

import copy
import json
import math
import os
from typing import Any, ClassVar

from .io import save_files

CONFIG_NAME = "config.json"

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


class ConfigError(ValueError):
    """A config value or config.json file that cannot be used, with what was wrong and how to fix it."""


class Field:
    """A config field: the accepted types (``float`` also accepts ``int``; ``None`` allowed when ``optional``)."""

    def __init__(self, kind: type | tuple[type, ...], default: Any, *, optional: bool = False, choices=None):
        self.kinds = kind if isinstance(kind, tuple) else (kind,)
        self.default = default
        self.optional = optional
        self.choices = tuple(choices) if choices is not None else None

    def check(self, owner: str, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        kinds = self.kinds + ((int,) if float in self.kinds else ())
        is_bool = isinstance(value, bool)
        if not isinstance(value, kinds) or (is_bool and bool not in self.kinds):
            wanted = " or ".join(k.__name__ for k in self.kinds) + (" or null" if self.optional else "")
            raise ConfigError(f"{owner}.{name} must be {wanted}, got {value!r} ({type(value).__name__})")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{owner}.{name} must be one of {list(self.choices)}, got {value!r}")
        if float in self.kinds and not is_bool and isinstance(value, int):
            return float(value)
        return value


# Fields every Hugging Face config has (transformers' PretrainedConfig), with its defaults.
COMMON_FIELDS: dict[str, Field] = {
    "is_decoder": Field(bool, False),
    "add_cross_attention": Field(bool, False),
    "is_encoder_decoder": Field(bool, False),
    "tie_word_embeddings": Field(bool, True),
    "output_attentions": Field(bool, False),
    "output_hidden_states": Field(bool, False),
    "return_dict": Field(bool, True),
    "pad_token_id": Field(int, None, optional=True),
    "bos_token_id": Field(int, None, optional=True),
    "eos_token_id": Field(int, None, optional=True),
    "decoder_start_token_id": Field(int, None, optional=True),
    "problem_type": Field(str, None, optional=True, choices=PROBLEM_TYPES),
    "architectures": Field(list, None, optional=True),
}


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file holding one object (config.json, generation_config.json); errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid UTF-8 JSON ({err}); fix or regenerate the file") from err
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(values).__name__}")
    return values


def from_json_file(from_dict, path: str | os.PathLike, overrides: dict[str, Any]):
    """``from_dict(values, **overrides)`` of a JSON file; errors name the file."""
    values = read_json_object(path)
    try:
        return from_dict(values, **overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


class PretrainedConfig:
    """Base of every family config. Subclasses set ``model_type`` and ``fields``."""

    model_type: ClassVar[str] = ""
    fields: ClassVar[dict[str, Field]] = {}
    default_num_labels: ClassVar[int] = 2
    # Whether a decoder numbers positions by cache slot (BART) rather than by the tokens the mask keeps (OPT,
    # RoBERTa): generation may then not pad a prompt on the left.
    positions_count_slots: ClassVar[bool] = False

    def __init__(self, **kwargs: Any):
        owner = type(self).__name__
        num_labels = kwargs.pop("num_labels", None)
        id2label = kwargs.pop("id2label", None)
        kwargs.pop("label2id", None)  # always derived from id2label
        model_type = kwargs.pop("model_type", self.model_type)
        if model_type != self.model_type:
            raise ConfigError(
                f"{owner} is for model_type {self.model_type!r}, but the config says {model_type!r}; "
                f"use the config class of that family"
            )
        for name, field in self.all_fields().items():
            value = kwargs.pop(name) if name in kwargs else copy.deepcopy(field.default)
            setattr(self, name, field.check(owner, name, value))
        self.id2label = self._labels(owner, id2label, num_labels)
        # Keys this class does not know, kept verbatim and written back by to_dict().
        self.extra = dict(kwargs)
        self.validate()

    @classmethod
    def all_fields(cls) -> dict[str, Field]:
        return {**COMMON_FIELDS, **cls.fields}

    @classmethod
    def _labels(cls, owner: str, id2label: Any, num_labels: Any) -> dict[int, str]:
        if id2label is not None:
            if not isinstance(id2label, dict):
                raise ConfigError(f"{owner}.id2label must be a mapping from label id to name, got {id2label!r}")
            try:
                labels = {int(k): str(v) for k, v in id2label.items()}
            except (TypeError, ValueError) as err:
                raise ConfigError(f"{owner}.id2label keys must be integers, got {list(id2label)}") from err
            if num_labels is not None and num_labels != len(labels):
                raise ConfigError(f"{owner}: num_labels={num_labels} disagrees with id2label of {len(labels)} labels")
            return labels
        if num_labels is None:
            num_labels = cls.default_num_labels
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ConfigError(f"{owner}.num_labels must be a positive int, got {num_labels!r}")
        return {i: f"LABEL_{i}" for i in range(num_labels)}

    def validate(self) -> None:
        """Check relations between values; subclasses extend it."""

    def require_positive(self, *names: str) -> None:
        """Sizes, counts and epsilons: a number > 0 (NaN and infinity refused: a NaN passes every comparison)."""
        for name in names:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{type(self).__name__}.{name} must be positive and finite, got {value!r}")

    def require_std(self, *names: str) -> None:
        """Standard deviations of the initial weights: finite and >= 0 (0 starts every weight at zero)."""
        for name in names:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{type(self).__name__}.{name} (the standard deviation of the initial weights) "
                                  f"must be finite and >= 0, got {value!r}")

    def require_probability(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{type(self).__name__}.{name} must be in [0, 1], got {value!r}")

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        self.id2label = self._labels(type(self).__name__, None, value)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in self.id2label.items()}

    @property
    def use_return_dict(self) -> bool:
        return self.return_dict

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update({name: copy.deepcopy(getattr(self, name)) for name in self.all_fields()})
        out["id2label"] = {str(i): name for i, name in self.id2label.items()}
        out["label2id"] = self.label2id
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any):
        if not isinstance(values, dict):
            raise ConfigError(f"a {cls.__name__} needs a JSON object, got {type(values).__name__}")
        if "num_labels" in overrides and "id2label" not in overrides:
            # A new label count replaces the stored labels, as in transformers.
            values = {k: v for k, v in values.items() if k not in ("id2label", "label2id")}
        return cls(**{**values, **overrides})

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any):
        return from_json_file(cls.from_dict, path, overrides)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any):
        """Read ``config.json`` from a local folder or a hub id; extra keyword arguments override its values.

        Hub arguments (``revision``, ``cache_dir``, ``local_files_only``, ``token``) are taken out first.
        """
        from .hub import HUB_ARGUMENTS, resolve_file

        hub_kwargs = {k: kwargs.pop(k) for k in HUB_ARGUMENTS if k in kwargs}
        return cls.from_json_file(resolve_file(name_or_path, CONFIG_NAME, **hub_kwargs), **kwargs)

    def save_pretrained(self, folder: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``config.json`` to ``folder`` (created if missing), atomically; an existing one only with ``overwrite``."""
        save_files(folder, {CONFIG_NAME: self.to_json_string()}, overwrite=overwrite)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
