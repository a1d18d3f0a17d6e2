"""The one weight converter: canonical (Hugging Face PyTorch state-dict) names <-> each framework's tree."""

from .convert import LoadReport, WeightsError, export_weights, load_weights
from .rules import FRAMEWORKS, WeightsSpec, to_canonical

__all__ = ["FRAMEWORKS", "LoadReport", "WeightsError", "WeightsSpec", "export_weights", "load_weights", "to_canonical"]
