"""examples/roberta_from_bart.py: a RoBERTa masked LM whose encoder computes what the BART's encoder computes, in
PyTorch and, loaded from the saved folder, in Flax; a BART that is not RoBERTa-shaped is refused."""

import numpy as np
import pytest

from tests import tiny_bundle

from . import example

torch = pytest.importorskip("torch")

TEXTS = ["a domesticated carnivorous mammal", "water: a clear liquid"]


@pytest.fixture(scope="module")
def bart_folder(tmp_path_factory):
    return tiny_bundle.build(str(tmp_path_factory.mktemp("bundle"))) + "/bart-wordnet"


def test_the_roberta_encodes_as_the_bart_encoder(bart_folder, tmp_path):
    from rosettazoo.bart import BartForConditionalGeneration, BartTokenizer
    from rosettazoo.roberta import FlaxRobertaForMaskedLM, RobertaForMaskedLM

    with torch.no_grad():  # nonzero LayerNorm and bias values, so a weight left behind would show
        bart = BartForConditionalGeneration.from_pretrained(bart_folder)
        for name, parameter in bart.named_parameters():
            if "layer_norm" in name or "layernorm" in name or name.endswith("bias"):
                parameter.add_(torch.randn_like(parameter) * 0.1)
        bart.save_pretrained(str(tmp_path / "bart"))
    BartTokenizer.from_pretrained(bart_folder).save_pretrained(str(tmp_path / "bart"))
    example("roberta_from_bart").main([str(tmp_path / "bart"), str(tmp_path / "roberta")])

    batch = BartTokenizer.from_pretrained(str(tmp_path / "roberta"))(TEXTS, return_tensors="np", padding=True)
    keep = batch["attention_mask"].astype(bool)
    tensors = {k: torch.from_numpy(v).long() for k, v in batch.items()}
    with torch.no_grad():
        want = bart.eval().get_encoder()(**tensors).last_hidden_state.numpy()
        got = RobertaForMaskedLM.from_pretrained(str(tmp_path / "roberta")).roberta(**tensors).last_hidden_state
    np.testing.assert_allclose(got.numpy()[keep], want[keep], atol=1e-5)
    flax = pytest.importorskip("flax")  # noqa: F841
    model = FlaxRobertaForMaskedLM.from_pretrained(str(tmp_path / "roberta"))
    hidden = model(**batch, output_hidden_states=True).hidden_states[-1]
    np.testing.assert_allclose(np.asarray(hidden)[keep], want[keep], atol=1e-5)


def test_a_bart_with_scaled_embeddings_is_refused(bart_folder, tmp_path):
    from rosettazoo.bart import BartForConditionalGeneration

    bart = BartForConditionalGeneration.from_pretrained(bart_folder, scale_embedding=True)
    bart.save_pretrained(str(tmp_path / "scaled"))
    with pytest.raises(SystemExit, match="scale_embedding=False"):
        example("roberta_from_bart").main([str(tmp_path / "scaled"), str(tmp_path / "out")])
