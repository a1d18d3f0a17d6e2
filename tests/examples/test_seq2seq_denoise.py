"""train_seq2seq.py --task denoise: BART's text infilling on WordNet definitions."""


import numpy as np

from tests.examples import TINY, example


def seq2seq():
    return example("train_seq2seq")


def test_infilling_replaces_one_span_of_words_by_one_mask():
    module = seq2seq()
    rng = np.random.default_rng(0)
    text = "a domesticated carnivorous mammal that typically has a long snout"
    words = text.split()
    lengths = set()
    for _ in range(200):
        noised = module.infill(text, rng, "<mask>").split()
        assert noised.count("<mask>") == 1
        at = noised.index("<mask>")
        removed = len(words) - len(noised) + 1
        assert 1 <= removed < len(words)
        assert words[:at] == noised[:at] and words[at + removed:] == noised[at + 1:]
        lengths.add(removed)
    assert len(lengths) > 3  # Poisson lengths, not one fixed span
    assert module.infill("word", rng, "<mask>") == "<mask>"


def test_denoise_loss_falls_across_a_resume(tmp_path, capsys):
    module = seq2seq()
    out = str(tmp_path / "run")
    args = ["--task", "denoise", "--framework", "pt", "--output-dir", out, "--learning-rate", "3e-3",
            "--eval-every", "10", "--log-every", "5", *TINY]
    first = module.main([*args, "--steps", "10"])
    resumed = module.main([*args, "--steps", "30", "--resume"])
    assert "exact_match" in first and 0.0 <= resumed["exact_match"] <= 1.0
    assert resumed["eval_loss"] < first["eval_loss"]
    printed = capsys.readouterr()
    assert "resumed from" in printed.out + printed.err
