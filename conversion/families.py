"""A family's ``WeightsSpec`` from a config.json, for code that has a checkpoint but no model class: the
framework-free converter needs it to name tensors as transformers' TF and Flax classes do."""

from __future__ import annotations

import importlib
from typing import Any

from .rules import WeightsSpec


def weights_spec_for(config: dict[str, Any]) -> WeightsSpec:
    """The ``WeightsSpec`` of the family config.json's ``model_type`` names (a clear error for one rosettazoo
    lacks), built from its config class so the config's values (tied embeddings) count."""
    from ..auto import family_of  # the family table; imports no framework

    family = family_of(config.get("model_type"))
    weights = importlib.import_module(f"rosettazoo.{family.package}.weights")
    return weights.weights_spec(family.config_class.from_dict(dict(config)), family.base_prefix)
