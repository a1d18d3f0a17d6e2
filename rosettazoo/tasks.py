"""Text generation and mask filling for any model folder or hub id (bundled ids included), in any framework.

What ``rosettazoo generate``, ``rosettazoo fill-mask`` and ``rosettazoo demo`` run: choose the model class from
config.json, load it and its tokenizer in PyTorch ("pt"), TensorFlow ("tf") or Flax ("flax"), and return numpy
token ids, so callers compare frameworks without knowing their tensor types. Importing this module imports no
framework.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .auto import FRAMEWORK_PREFIXES, AutoTokenizer, family_of, read_config_dict

# framework -> (its name, the modules it needs, the extra that installs them)
FRAMEWORKS = {
    "pt": ("PyTorch", ("torch",), "torch"),
    "tf": ("TensorFlow", ("tensorflow", "keras"), "tf"),
    "flax": ("Flax", ("jax", "flax"), "flax"),
}
GENERATING_HEADS = ("ForConditionalGeneration", "ForCausalLM")


def framework_name(framework: str) -> str:
    return FRAMEWORKS[framework][0]


def is_installed(framework: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in FRAMEWORKS[framework][1])


def require_framework(framework: str) -> None:
    """ValueError for a framework rosettazoo does not have, ImportError (saying what to install) for one that is
    not installed."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    if not is_installed(framework):
        name, modules, extra = FRAMEWORKS[framework]
        raise ImportError(f"{name} is not installed (it needs {' and '.join(modules)}): "
                          f"pip install \"rosettazoo[{extra}]\", or choose another framework")


def default_framework() -> str:
    """The first installed of PyTorch, TensorFlow and Flax."""
    for framework in FRAMEWORKS:
        if is_installed(framework):
            return framework
    raise ImportError("no framework is installed: pip install \"rosettazoo[torch]\", \"rosettazoo[tf]\" or "
                      "\"rosettazoo[flax]\"")


def _named_heads(family, architectures) -> list[str]:
    """The class suffixes ("ForCausalLM", ...) that config.json's ``architectures`` name in ``family``."""
    heads = []
    for name in architectures or []:
        if isinstance(name, str):
            for prefix in ("TF", "Flax"):
                if name.startswith(prefix + family.prefix):
                    name = name[len(prefix):]
            heads.append(name.removeprefix(family.prefix))
    return heads


def generating_head(values: dict[str, Any], source: str) -> str:
    """The class suffix that generates text for a model with config.json ``values``: the generating class its
    ``architectures`` name, else the family's sequence-to-sequence class, else its causal LM when the model is a
    decoder (OPT always is)."""
    family = family_of(values["model_type"])
    named = _named_heads(family, values.get("architectures"))
    for head in named:
        if head in GENERATING_HEADS:
            return head
    if "ForConditionalGeneration" in family.heads():
        return "ForConditionalGeneration"
    if "ForCausalLM" in family.heads() and (values.get("is_decoder") or family.model_type == "opt"):
        return "ForCausalLM"
    what = f"{source} ({family.prefix}{named[0]})" if named else f"{source} ({family.model_type}, not a decoder)"
    hint = "; to fill <mask>, run `rosettazoo fill-mask`" if "ForMaskedLM" in named or not named else ""
    raise ValueError(f"{what} does not generate text: generation needs a causal LM or a sequence-to-sequence model "
                     f"(e.g. OPT, BART, or a RoBERTa decoder with is_decoder=true){hint}")


def masked_lm_head(values: dict[str, Any], source: str) -> str:
    """The class suffix that fills <mask> for a model with config.json ``values``: the masked LM (BART's is its
    conditional-generation model, as in transformers' fill-mask pipeline)."""
    family = family_of(values["model_type"])
    named = _named_heads(family, values.get("architectures"))
    serving = [head for head in ("ForMaskedLM", "ForConditionalGeneration") if head in family.heads()]
    if not serving or "ForCausalLM" in named:
        what = f"{family.prefix}{named[0]}" if named else family.model_type
        raise ValueError(f"{source} ({what}) is a causal LM, which cannot fill <mask>: run `rosettazoo generate` to "
                         f"continue a text, or pass a masked LM (RoBERTa, I-BERT, BART)")
    return next((head for head in named if head in serving), serving[0])


@dataclass
class Loaded:
    """A model and its tokenizer, loaded in ``framework``."""

    source: str
    framework: str
    model: Any
    tokenizer: Any

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(self.model.config.is_encoder_decoder)


def load(source: str | os.PathLike, task: str, framework: str, **hub_kwargs: Any) -> Loaded:
    """Load the model at ``source`` for ``task`` ("generate" or "fill-mask") in ``framework``, with its tokenizer."""
    require_framework(framework)
    source = os.fspath(source)
    values = read_config_dict(source, hub_kwargs)
    head = generating_head(values, source) if task == "generate" else masked_lm_head(values, source)
    family = family_of(values["model_type"])
    cls = family.resolve(FRAMEWORK_PREFIXES[framework] + family.prefix + head)
    return Loaded(source, framework, cls.from_pretrained(source, **hub_kwargs),
                  AutoTokenizer.from_pretrained(source, **hub_kwargs))


def to_numpy(value) -> np.ndarray:
    """A tensor of any framework as numpy."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@dataclass
class Generated:
    """What ``generate`` returns: the prompt width and the ids, as numpy."""

    prompt_ids: np.ndarray  # [batch, prompt width] as the model received them (padded)
    sequences: np.ndarray  # [rows, length]: decoder-only models repeat the prompt first

    def new_tokens(self, is_encoder_decoder: bool) -> np.ndarray:
        return self.sequences if is_encoder_decoder else self.sequences[:, self.prompt_ids.shape[1]:]


def encode_prompts(loaded: Loaded, prompts: list[str]) -> dict[str, np.ndarray]:
    """The prompts as a padded numpy batch; decoder-only models pad on the left, so every prompt ends where
    generation begins."""
    side = "right" if loaded.is_encoder_decoder else "left"
    batch = loaded.tokenizer(prompts, padding=True, padding_side=side, return_tensors="np")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def generate(loaded: Loaded, prompts: list[str], *, seed: int | None = None, streamer=None,
             **settings: Any) -> Generated:
    """Generate from ``prompts`` with ``settings`` (GenerationConfig names, over the model's own)."""
    batch = encode_prompts(loaded, prompts)
    output = loaded.model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], seed=seed,
                                   streamer=streamer, **settings)
    return Generated(batch["input_ids"], to_numpy(getattr(output, "sequences", output)))


def decode_generated(loaded: Loaded, generated: Generated) -> list[str]:
    """The texts of the generated rows: decoder-only models' with their prompt, as a stream prints them."""
    return loaded.tokenizer.batch_decode(generated.sequences, skip_special_tokens=True)


def _forward_logits(loaded: Loaded, batch: dict[str, np.ndarray]) -> np.ndarray:
    if loaded.framework == "pt":
        import torch

        with torch.no_grad():
            output = loaded.model(**{name: torch.from_numpy(array) for name, array in batch.items()})
    elif loaded.framework == "tf":
        output = loaded.model(**batch, training=False)
    else:
        output = _jitted_flax_forward(loaded)(loaded.model.params, batch)
    return to_numpy(output.logits).astype(np.float64)


def _jitted_flax_forward(loaded: Loaded):
    """The Flax model's forward under ``jax.jit``, kept with the model: one compiled program per input shape
    instead of one per operation, as calling it eagerly would compile."""
    if not hasattr(loaded, "_flax_forward"):
        import jax

        model = loaded.model
        loaded._flax_forward = jax.jit(lambda params, batch: model(**batch, params=params))
    return loaded._flax_forward


@dataclass
class Prediction:
    """One candidate for one <mask>, as transformers' fill-mask pipeline gives it."""

    score: float
    token: int
    token_str: str
    sequence: str


def fill_mask(loaded: Loaded, texts: list[str], top_k: int = 5) -> list[list[list[Prediction]]]:
    """For each text, for each mask token in it, the ``top_k`` most probable tokens, most probable first (the
    texts run as one padded batch)."""
    tokenizer = loaded.tokenizer
    mask = tokenizer.mask_token
    if mask is None:
        raise ValueError(f"the tokenizer of {loaded.source} has no mask token, so it cannot fill masks")
    for text in texts:
        if mask not in text:
            raise ValueError(f"the text {text!r} has no {mask}: write {mask} where a word should be predicted, e.g. "
                             f"\"a person whose occupation is {mask}\"")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    encoded = tokenizer(list(texts), padding=True, return_tensors="np")
    batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    logits = _forward_logits(loaded, batch)
    return [_predictions(tokenizer, ids[mask_row == 1], row_logits, top_k)
            for ids, mask_row, row_logits in zip(batch["input_ids"], batch["attention_mask"], logits)]


def _predictions(tokenizer, ids: np.ndarray, logits: np.ndarray, top_k: int) -> list[list[Prediction]]:
    """The candidates at each mask position of one text (``ids`` without padding)."""
    results = []
    for position in np.flatnonzero(ids == tokenizer.mask_token_id):
        scores = np.exp(logits[position] - logits[position].max())
        probabilities = scores / scores.sum()
        best = np.argsort(-probabilities, kind="stable")[:top_k]
        candidates = []
        for token in best:
            filled = ids.copy()
            filled[position] = token
            candidates.append(Prediction(float(probabilities[token]), int(token), tokenizer.decode([int(token)]),
                                         tokenizer.decode(filled, skip_special_tokens=True)))
        results.append(candidates)
    return results
