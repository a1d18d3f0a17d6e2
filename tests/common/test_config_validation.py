"""Config values that would make every output NaN or meaningless are ConfigErrors naming the field."""

import json
import math

import pytest

from rosettazoo.bart import BartConfig
from rosettazoo.common.config import ConfigError
from rosettazoo.ibert import IBertConfig
from rosettazoo.opt import OPTConfig
from rosettazoo.roberta import RobertaConfig, RobertaPreLayerNormConfig

ROBERTA_LIKE = [RobertaConfig, RobertaPreLayerNormConfig, IBertConfig]
# Which std field each family has (BART and OPT have no layer_norm_eps: their layer norms use 1e-5).
STD_FIELDS = [(RobertaConfig, "initializer_range"), (RobertaPreLayerNormConfig, "initializer_range"),
              (IBertConfig, "initializer_range"), (BartConfig, "init_std"), (OPTConfig, "init_std")]


@pytest.mark.parametrize("config_class", ROBERTA_LIKE)
@pytest.mark.parametrize("eps", [math.nan, math.inf, -math.inf, 0.0, -1e-12, 0])
def test_layer_norm_eps_must_be_positive_and_finite(config_class, eps):
    with pytest.raises(ConfigError, match=rf"{config_class.__name__}\.layer_norm_eps must be positive and finite, "
                                          rf"got {eps!r}"):
        config_class(layer_norm_eps=eps)


@pytest.mark.parametrize(("config_class", "field"), STD_FIELDS)
@pytest.mark.parametrize("std", [math.nan, math.inf, -0.02])
def test_init_std_must_be_finite_and_not_negative(config_class, field, std):
    with pytest.raises(ConfigError, match=rf"{config_class.__name__}\.{field} \(the standard deviation of the "
                                          rf"initial weights\) must be finite and >= 0, got {std!r}"):
        config_class(**{field: std})


@pytest.mark.parametrize(("config_class", "field"), STD_FIELDS)
def test_zero_std_and_tiny_eps_are_accepted(config_class, field):
    assert getattr(config_class(**{field: 0.0}), field) == 0.0
    if config_class in ROBERTA_LIKE:
        assert config_class(layer_norm_eps=1e-30).layer_norm_eps == 1e-30


@pytest.mark.parametrize("config_class", [BartConfig, OPTConfig])
def test_dropout_nan_is_refused(config_class):
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\], got nan"):
        config_class(dropout=math.nan)


def test_nan_in_config_json_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(RobertaConfig().to_dict()).replace('"layer_norm_eps": 1e-12', '"layer_norm_eps": NaN'))
    with pytest.raises(ConfigError, match=rf"{path}: RobertaConfig\.layer_norm_eps must be positive and finite, "
                                          r"got nan"):
        RobertaConfig.from_json_file(path)
