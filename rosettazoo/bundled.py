"""The models that ship inside the package, addressed by hub-style ids: ``rosettazoo/opt-wordnet``.

Each bundled model is a Hugging Face model folder in the package's ``models/`` folder (config.json, weights,
generation config, tokenizer files, model card). ``common.hub`` maps an id in the ``rosettazoo/`` namespace to
its folder before any hub lookup, so every loader (models in the three frameworks, configs, generation configs,
tokenizers, Auto classes, the converter, ``rosettazoo info``) reads it offline. A local folder of the same path
still wins, as a local folder shadows a hub id everywhere else.
"""

from __future__ import annotations

import importlib.resources
import os

NAMESPACE = "rosettazoo"
MODEL_CARD_NAME = "README.md"


def models_folder() -> str:
    """The package folder that holds one folder per bundled model (it may be absent in a source checkout)."""
    return os.fspath(importlib.resources.files(NAMESPACE) / "models")


def bundled_names() -> list[str]:
    """The bundled models' names (``opt-wordnet``, ...): the folders of ``models_folder()`` with a config.json
    (hidden ones, such as a model being built, excluded)."""
    root = models_folder()
    if not os.path.isdir(root):
        return []
    return sorted(name for name in os.listdir(root)
                  if not name.startswith(".") and os.path.isfile(os.path.join(root, name, "config.json")))


def bundled_ids() -> list[str]:
    return [f"{NAMESPACE}/{name}" for name in bundled_names()]


def is_bundled_id(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` is an id in the bundled namespace (``rosettazoo/NAME``) and not a local path."""
    name = os.fspath(name_or_path)
    namespace, _, model = name.partition("/")
    return namespace == NAMESPACE and bool(model) and "/" not in model and not os.path.exists(name)


def bundled_folder(model_id: str) -> str:
    """The folder of the bundled model ``model_id`` (``rosettazoo/NAME``); FileNotFoundError naming the bundled
    models when there is no such model."""
    name = model_id.partition("/")[2]
    if name in bundled_names():
        return os.path.join(models_folder(), name)
    available = ", ".join(bundled_ids()) or f"none (the package folder {models_folder()} holds no model)"
    raise FileNotFoundError(f"{model_id} is not a model bundled with rosettazoo; the bundled models are: {available}")


def local_folder(name_or_path: str | os.PathLike) -> str:
    """``name_or_path`` as a path: a bundled id becomes its package folder; anything else is returned as it is."""
    name = os.fspath(name_or_path)
    return bundled_folder(name) if is_bundled_id(name) else name


def model_card_summary(folder: str, lines: int = 4) -> list[str]:
    """The first paragraph of the folder's model card (README.md), at most ``lines`` lines; YAML front matter,
    headings, tables and images before it are skipped."""
    path = os.path.join(folder, MODEL_CARD_NAME)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as file:
        text = [line.strip() for line in file.read().splitlines()]
    if text and text[0] == "---":  # YAML front matter, as hub model cards have
        end = next((i for i, line in enumerate(text[1:], 1) if line == "---"), 0)
        text = text[end + 1:]
    paragraph = []
    for line in text:
        if line and not line.startswith(("#", "|", "!", "```")):
            paragraph.append(line)
        elif paragraph:
            break
    return paragraph[:lines]
