"""Fixtures of the OPT tests in every framework."""

import pytest


@pytest.fixture
def hf_init_skips_plain_layer_norms(monkeypatch):
    """transformers 4.57.6 fails to initialize LayerNorms without weights (layer_norm_elementwise_affine=False):
    its _init_weights fills ``module.weight``, which is None. Skip them so that the oracle can be built."""
    torch = pytest.importorskip("torch")
    from transformers.models.opt import modeling_opt

    original = modeling_opt.OPTPreTrainedModel._init_weights

    def init_weights(self, module):
        if not (isinstance(module, torch.nn.LayerNorm) and module.weight is None):
            original(self, module)

    monkeypatch.setattr(modeling_opt.OPTPreTrainedModel, "_init_weights", init_weights)
