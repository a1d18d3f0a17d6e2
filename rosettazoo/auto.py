"""Auto classes: the family from config.json's ``model_type``, the class from the task the Auto class names.

``AutoModelForMaskedLM.from_pretrained("roberta-base")`` reads config.json, finds the RoBERTa family and loads
``RobertaForMaskedLM``; ``TFAutoModel...`` and ``FlaxAutoModel...`` do the same in TensorFlow and Flax. Where a
family serves a task with more than one class (BART's masked LM is its conditional-generation model), the class
config.json's ``architectures`` names wins. ``AutoModelForArchitecture`` loads exactly the class ``architectures``
names. Nothing here imports a framework until a model class is asked for.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from .common.config import CONFIG_NAME, ConfigError, PretrainedConfig, read_json_object
from .common.hub import HUB_ARGUMENTS, resolve_file, resolve_optional_file
from .common.tokenization import TOKENIZER_CONFIG_NAME


@dataclass(frozen=True)
class Family:
    """A family as the Auto classes and ``rosettazoo info`` see it, without importing its modeling files.

    ``base_modules`` are the top-level modules of the bare model (held under ``base_prefix`` in head models) and
    ``head_tensors`` the tensors outside the bare model that each head cannot load without (tied output
    embeddings excepted, since they come from the input embeddings).
    """

    model_type: str
    package: str  # the subpackage of rosettazoo
    prefix: str  # of its class names: "RobertaPreLayerNorm" + "ForMaskedLM"
    tokenizer: str
    base_prefix: str
    base_modules: tuple[str, ...]
    head_tensors: dict[str, tuple[str, ...]]
    untied_output: str  # the output embedding a checkpoint must hold when tie_word_embeddings is false

    def exports(self) -> list[str]:
        return list(importlib.import_module(f"rosettazoo.{self.package}").__all__)

    def resolve(self, name: str):
        return getattr(importlib.import_module(f"rosettazoo.{self.package}"), name)

    @property
    def config_class(self) -> type[PretrainedConfig]:
        return self.resolve(f"{self.prefix}Config")

    def heads(self) -> list[str]:
        """The class suffixes the family has ("Model", "ForMaskedLM", ...), the same in the three frameworks."""
        exports = set(self.exports())
        return [head for head in HEADS if self.prefix + head in exports]


_ENCODER_HEADS = {
    "Model": (), "ForMaskedLM": ("lm_head.dense.weight",), "ForCausalLM": ("lm_head.dense.weight",),
    "ForSequenceClassification": ("classifier.out_proj.weight",), "ForTokenClassification": ("classifier.weight",),
    "ForMultipleChoice": ("classifier.weight",), "ForQuestionAnswering": ("qa_outputs.weight",),
}
_ENCODER_BASE = ("embeddings", "encoder", "pooler")


def _encoder(model_type: str, package: str, prefix: str, base_prefix: str) -> Family:
    return Family(model_type, package, prefix, "RobertaTokenizer", base_prefix, _ENCODER_BASE, _ENCODER_HEADS,
                  "lm_head.decoder.weight")


FAMILIES = {family.model_type: family for family in (
    Family("bart", "bart", "Bart", "BartTokenizer", "model", ("shared", "encoder", "decoder"),
           {"Model": (), "ForConditionalGeneration": (), "ForCausalLM": (), "ForQuestionAnswering": ("qa_outputs.weight",),
            "ForSequenceClassification": ("classification_head.out_proj.weight",)}, "lm_head.weight"),
    _encoder("ibert", "ibert", "IBert", "ibert"),  # I-BERT checkpoints ship RoBERTa's tokenizer files
    Family("opt", "opt", "OPT", "OPTTokenizer", "model", ("decoder",),
           {"Model": (), "ForCausalLM": (), "ForSequenceClassification": ("score.weight",),
            "ForQuestionAnswering": ("qa_outputs.weight",)}, "lm_head.weight"),
    _encoder("roberta", "roberta", "Roberta", "roberta"),
    _encoder("roberta-prelayernorm", "roberta", "RobertaPreLayerNorm", "roberta_prelayernorm"),
)}
# Each tokenizer class with the family that defines it.
TOKENIZERS = {family.tokenizer: family for family in FAMILIES.values() if family.tokenizer.startswith(family.prefix)}
HEADS = ("Model", "ForMaskedLM", "ForCausalLM", "ForConditionalGeneration", "ForSequenceClassification",
         "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")
# Auto class task -> the class suffixes that serve it, preferred first (None: the one config.json names).
TASKS: dict[str, tuple[str, ...] | None] = {
    "Model": ("Model",),
    "ForMaskedLM": ("ForMaskedLM", "ForConditionalGeneration"),
    "ForCausalLM": ("ForCausalLM",),
    "ForSeq2SeqLM": ("ForConditionalGeneration",),
    "ForSequenceClassification": ("ForSequenceClassification",),
    "ForTokenClassification": ("ForTokenClassification",),
    "ForQuestionAnswering": ("ForQuestionAnswering",),
    "ForMultipleChoice": ("ForMultipleChoice",),
    "ForArchitecture": None,
}
FRAMEWORK_PREFIXES = {"pt": "", "tf": "TF", "flax": "Flax"}


def family_of(model_type: Any) -> Family:
    if model_type not in FAMILIES:
        raise ConfigError(f"model_type {model_type!r} is not supported; rosettazoo has {', '.join(sorted(FAMILIES))}")
    return FAMILIES[model_type]


def read_config_dict(name_or_path: str | os.PathLike, hub_kwargs: dict[str, Any]) -> dict[str, Any]:
    """config.json of a folder or hub repository as a dict (errors name the file)."""
    path = resolve_file(name_or_path, CONFIG_NAME, **hub_kwargs)
    values = read_json_object(path)
    if "model_type" not in values:
        raise ConfigError(f"{path} has no model_type; rosettazoo reads {', '.join(sorted(FAMILIES))}")
    return values


def _strip_framework(name: str) -> str:
    for prefix in ("TF", "Flax"):
        if name.startswith(prefix) and name[len(prefix):len(prefix) + 1].isupper():
            return name[len(prefix):]
    return name


def head_for(family: Family, task: str, architectures: list[str] | None) -> str:
    """The class suffix of ``family`` that serves ``task`` (a key of TASKS), preferring what ``architectures`` names."""
    heads = family.heads()
    named = [_strip_framework(a).removeprefix(family.prefix) for a in architectures or [] if isinstance(a, str)]
    named = [head for head in named if head in heads]
    wanted = TASKS[task]
    if wanted is None:  # the class config.json names
        if named:
            return named[0]
        raise ConfigError(
            f"AutoModelForArchitecture needs config.json's architectures to name a {family.model_type} class, got "
            f"{architectures!r}; {family.model_type} has {', '.join(family.prefix + h for h in heads)}"
        )
    serving = [head for head in wanted if head in heads]
    if not serving:
        raise ConfigError(
            f"AutoModel{task}: {family.model_type} has no such head; it has {', '.join(family.prefix + h for h in heads)}"
            f" (the families with one: {', '.join(families_with_task(task))})"
        )
    return next((head for head in named if head in serving), serving[0])


def families_with_task(task: str) -> list[str]:
    """The model types that have a class for ``task`` (a key of TASKS)."""
    wanted = set(TASKS[task] or HEADS)
    return sorted(model_type for model_type, family in FAMILIES.items() if wanted & set(family.heads()))


def model_class(model_type: str, task: str, framework: str, architectures: list[str] | None = None) -> type:
    """The model class of ``model_type`` for ``task`` in ``framework`` ("pt", "tf" or "flax")."""
    family = family_of(model_type)
    return family.resolve(FRAMEWORK_PREFIXES[framework] + family.prefix + head_for(family, task, architectures))


def _hub_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs[name] for name in HUB_ARGUMENTS if name in kwargs}


class AutoConfig:
    """The family's config class, chosen by config.json's ``model_type``."""

    def __init__(self):
        raise TypeError("AutoConfig is not instantiated: use AutoConfig.from_pretrained(...) or AutoConfig.for_model(...)")

    @staticmethod
    def for_model(model_type: str, **kwargs: Any) -> PretrainedConfig:
        return family_of(model_type).config_class(**kwargs)

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, **kwargs: Any) -> PretrainedConfig:
        values = read_config_dict(name_or_path, _hub_arguments(kwargs))
        return family_of(values["model_type"]).config_class.from_pretrained(name_or_path, **kwargs)


class AutoTokenizer:
    """The family's tokenizer, chosen by config.json's ``model_type`` (or, in a folder without config.json, by
    tokenizer_config.json's ``tokenizer_class``)."""

    def __init__(self):
        raise TypeError("AutoTokenizer is not instantiated: use AutoTokenizer.from_pretrained(...)")

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, **kwargs: Any):
        hub_kwargs = _hub_arguments(kwargs)
        if resolve_optional_file(name_or_path, CONFIG_NAME, **hub_kwargs) is not None:
            tokenizer = family_of(read_config_dict(name_or_path, hub_kwargs)["model_type"]).tokenizer
        else:
            tokenizer = _tokenizer_class_named(name_or_path, hub_kwargs)
        return TOKENIZERS[tokenizer].resolve(tokenizer).from_pretrained(name_or_path, **kwargs)


def _tokenizer_class_named(name_or_path, hub_kwargs: dict[str, Any]) -> str:
    path = resolve_optional_file(name_or_path, TOKENIZER_CONFIG_NAME, **hub_kwargs)
    ours = sorted(TOKENIZERS)
    named = None
    if path is not None:
        named = read_json_object(path).get("tokenizer_class")
    named = named.removesuffix("Fast") if isinstance(named, str) else named
    if named not in ours:
        raise ConfigError(
            f"{os.fspath(name_or_path)} has no config.json, and its {TOKENIZER_CONFIG_NAME} names tokenizer_class "
            f"{named!r}; rosettazoo has {', '.join(ours)}"
        )
    return named


class _AutoModel:
    """Base of the Auto model classes; each sets ``task`` (a key of TASKS) and ``framework``."""

    task: str
    framework: str

    def __init__(self):
        raise TypeError(f"{type(self).__name__} is not instantiated: use from_pretrained(...) or from_config(config)")

    @classmethod
    def class_for(cls, model_type: str, architectures: list[str] | None = None) -> type:
        return model_class(model_type, cls.task, cls.framework, architectures)

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs: Any):
        """A randomly initialized model of ``config``'s family (``kwargs`` go to the model's ``__init__``)."""
        if not isinstance(config, PretrainedConfig):
            raise TypeError(f"{cls.__name__}.from_config needs a config object (e.g. AutoConfig.from_pretrained(...)), "
                            f"got {type(config).__name__}")
        return cls.class_for(config.model_type, config.architectures)(config, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, config: PretrainedConfig | None = None, **kwargs: Any):
        """Load ``name_or_path`` into the class of its family for this Auto class's task (see the model classes'
        ``from_pretrained`` for the arguments)."""
        if config is not None:
            if not isinstance(config, PretrainedConfig):
                raise TypeError(f"config must be a config object (e.g. AutoConfig.from_pretrained(...)), got "
                                f"{type(config).__name__}")
            model_type, architectures = config.model_type, config.architectures
            kwargs["config"] = config
        else:
            values = read_config_dict(name_or_path, _hub_arguments(kwargs))
            model_type, architectures = values["model_type"], values.get("architectures")
        return cls.class_for(model_type, architectures).from_pretrained(name_or_path, **kwargs)


def _auto_classes() -> dict[str, type]:
    classes = {}
    for framework, prefix in FRAMEWORK_PREFIXES.items():
        for task in TASKS:
            name = f"{prefix}AutoModel{'' if task == 'Model' else task}"
            doc = f"The {framework} model class of config.json's family for the task {task} (see rosettazoo.auto)."
            classes[name] = type(name, (_AutoModel,), {"task": task, "framework": framework, "__doc__": doc,
                                                       "__module__": __name__})
    return classes


_CLASSES = _auto_classes()
globals().update(_CLASSES)
AUTO_NAMES = ["AutoConfig", "AutoTokenizer", *_CLASSES]
__all__ = [*AUTO_NAMES, "FAMILIES", "model_class", "read_config_dict"]
