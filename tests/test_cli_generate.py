"""``rosettazoo generate`` and ``rosettazoo fill-mask`` on tiny models (PyTorch): the command prints what calling
``generate`` / the masked LM directly gives, streams a single prompt, and bad input exits with status 2 and a
clear message instead of a traceback."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import tiny_bundle

import rosettazoo.bundled as bundled
from rosettazoo import tasks
from rosettazoo.conversion.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_bundle.build(str(tmp_path_factory.mktemp("bundle")))


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def printed_ids(out: str) -> list[list[int]]:
    return [json.loads(line.removeprefix("ids: ")) for line in out.split("\n") if line.startswith("ids: ")]


def test_generate_prints_what_generate_returns(root, capsys):
    from rosettazoo.opt import OPTForCausalLM, OPTTokenizer

    folder = os.path.join(root, "opt-wordnet")
    status, out, err = run(capsys, "generate", folder, "cat:", "water is", "--framework", "pt", "--max-new-tokens",
                           "6", "--do-sample", "--seed", "3", "--top-k", "20", "--print-ids")
    assert status == 0, err
    tokenizer = OPTTokenizer.from_pretrained(folder)
    batch = tokenizer(["cat:", "water is"], padding=True, padding_side="left", return_tensors="pt")
    expected = OPTForCausalLM.from_pretrained(folder).generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                                                               max_new_tokens=6, do_sample=True, seed=3, top_k=20)
    assert printed_ids(out) == expected.tolist()
    texts = tokenizer.batch_decode(expected, skip_special_tokens=True)
    assert out.split("\n")[:2] == texts  # not splitlines: random tokens may decode to \x1c, a line break to it


def test_generate_streams_a_single_prompt(root, capsys):
    folder = os.path.join(root, "opt-wordnet")
    status, out, err = run(capsys, "generate", folder, "cat:", "--max-new-tokens", "5", "--no-repeat-ngram-size", "2",
                           "--print-ids")
    assert status == 0, err
    loaded = tasks.load(folder, "generate", "pt")
    generated = tasks.generate(loaded, ["cat:"], max_new_tokens=5, no_repeat_ngram_size=2)
    assert printed_ids(out) == generated.sequences.tolist()
    streamed = out[:out.index("ids: ")]
    assert streamed == tasks.decode_generated(loaded, generated)[0] + "\n"


def test_generate_seq2seq_with_beams(root, capsys):
    folder = os.path.join(root, "bart-wordnet")
    status, out, err = run(capsys, "generate", folder, "a tall woody plant", "--num-beams", "2",
                           "--num-return-sequences", "2", "--max-new-tokens", "4", "--print-ids")
    assert status == 0, err
    loaded = tasks.load(folder, "generate", "pt")
    generated = tasks.generate(loaded, ["a tall woody plant"], num_beams=2, num_return_sequences=2, max_new_tokens=4)
    assert printed_ids(out) == generated.sequences.tolist()


def test_fill_mask_matches_the_masked_lm(root, capsys):
    import torch

    from rosettazoo.roberta import RobertaForMaskedLM, RobertaTokenizer

    folder = os.path.join(root, "roberta-wordnet")
    status, out, err = run(capsys, "fill-mask", folder, "a tall <mask> plant", "--top-k", "3", "--json")
    assert status == 0, err
    rows = json.loads(out)
    tokenizer = RobertaTokenizer.from_pretrained(folder)
    ids = tokenizer(["a tall <mask> plant"], return_tensors="pt")["input_ids"]
    logits = RobertaForMaskedLM.from_pretrained(folder)(ids).logits[0, ids[0].tolist().index(tokenizer.mask_token_id)]
    probabilities, tokens = torch.softmax(logits.double(), -1).topk(3)
    assert [row["token"] for row in rows] == tokens.tolist()
    np.testing.assert_allclose([row["score"] for row in rows], probabilities.detach().numpy(), rtol=1e-6)
    assert rows[0]["token_str"] == tokenizer.decode([rows[0]["token"]])
    status, out, _ = run(capsys, "fill-mask", folder, "a <mask> <mask> plant")  # the table, one per mask
    assert status == 0 and "mask 1 of 2:" in out and "mask 2 of 2:" in out and len(out.rstrip("\n").split("\n")) == 14


@pytest.mark.parametrize("argv, message", [
    (["fill-mask", "roberta-wordnet", "no mask here"], "has no <mask>"),
    (["fill-mask", "roberta-wordnet", "a <mask>", "--top-k", "0"], "top_k must be at least 1"),
    (["fill-mask", "opt-wordnet", "a <mask>"], "is a causal LM, which cannot fill <mask>"),
    (["generate", "roberta-wordnet", "a dog"], "(RobertaForMaskedLM) does not generate text"),
    (["generate", "opt-wordnet", "cat:", "--do-sample", "--top-p", "1.5"], "top_p"),
    (["generate", "rosettazoo/unknown", "cat:"], "is not a model bundled with rosettazoo; the bundled models are"),
    (["generate", "no/such/folder", "cat:"], "no/such/folder"),
])
def test_bad_input_exits_2_with_a_message(root, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(bundled, "models_folder", lambda: root)
    folder = os.path.join(root, argv[1])
    if os.path.isdir(folder):
        argv = [argv[0], folder, *argv[2:]]
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_framework_that_is_not_installed_is_a_clear_error(root, capsys, monkeypatch):
    monkeypatch.setattr(tasks, "is_installed", lambda framework: framework == "pt")
    status, _, err = run(capsys, "generate", os.path.join(root, "opt-wordnet"), "cat:", "--framework", "tf")
    assert status == 2
    assert 'TensorFlow is not installed (it needs tensorflow and keras): pip install "rosettazoo[tf]"' in err
