"""The one weight converter: canonical (Hugging Face PyTorch state-dict) names <-> each framework's tree, and the
checkpoint converter behind the ``rosettazoo`` command line (``convert_checkpoint``, ``checkpoint_info``)."""

from ..common.lazy import lazy_getattr
from .convert import LoadReport, WeightsError, export_weights, load_weights
from .rules import FRAMEWORKS, WeightsSpec, to_canonical

# The command line's API loads on first use: it reads checkpoints, which import this package's rules.
_CLI_NAMES = ["CheckpointInfo", "ConversionReport", "Float16OverflowError", "checkpoint_info", "convert_checkpoint"]
__getattr__ = lazy_getattr(__name__, dict.fromkeys(_CLI_NAMES, "cli"))

__all__ = ["FRAMEWORKS", "LoadReport", "WeightsError", "WeightsSpec", "export_weights", "load_weights", "to_canonical",
           *_CLI_NAMES]
