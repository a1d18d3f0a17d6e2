"""Inputs that used to fail deep inside a framework (or, worse, succeed in one and fail in another) get the same
clear ValueError in PyTorch, TensorFlow (eager) and Flax (eager): empty batches, caches of the wrong depth, a
rank-2 encoder output, OPT masks other than 0/1, labels of the wrong shape or dtype."""

import re

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flax")

import rosettazoo.bart as bart  # noqa: E402
import rosettazoo.opt as opt  # noqa: E402
import rosettazoo.roberta as roberta  # noqa: E402
from tests.harness import PREFIXES, load_three, run  # noqa: E402

FRAMEWORKS = list(PREFIXES)
EMPTY = "has shape {}: give at least one sequence (batch size > 0) of at least one token (sequence length > 0)"
ROBERTA = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=20)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The models the cases below need, each in the three frameworks."""
    def three(family, name, config):
        return load_three(family, name, config, tmp_path_factory.mktemp(name))

    return {
        "mlm": three(roberta, "RobertaForMaskedLM", roberta.RobertaConfig(**ROBERTA)),
        "roberta_decoder": three(roberta, "RobertaForCausalLM", roberta.RobertaConfig(**ROBERTA, is_decoder=True)),
        "classifier": three(roberta, "RobertaForSequenceClassification",
                            roberta.RobertaConfig(**ROBERTA, num_labels=3)),
        "regressor": three(roberta, "RobertaForSequenceClassification",
                           roberta.RobertaConfig(**ROBERTA, num_labels=1)),
        "qa": three(roberta, "RobertaForQuestionAnswering", roberta.RobertaConfig(**ROBERTA)),
        "bart": three(bart, "BartForConditionalGeneration", bart.BartConfig(
            vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=20)),
        "opt": three(opt, "OPTForCausalLM", opt.OPTConfig(
            vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=37,
            max_position_embeddings=20)),
    }


def ids(batch, seq):
    return np.full((batch, seq), 5, dtype=np.int64)


def cache(layers, batch=1, length=2, heads=4, head_dim=8, entries=2):
    return tuple(tuple(np.zeros((batch, heads, length, head_dim), np.float32) for _ in range(entries))
                 for _ in range(layers))


# (case id, model, inputs, message): each message is the whole text, the same in every framework.
CASES = [
    ("empty sequence", "mlm", {"input_ids": ids(1, 0)}, "input_ids " + EMPTY.format([1, 0])),
    ("batch of 0", "mlm", {"input_ids": ids(0, 5)}, "input_ids " + EMPTY.format([0, 5])),
    ("empty embeddings", "mlm", {"inputs_embeds": np.zeros((2, 0, 32), np.float32)},
     "inputs_embeds " + EMPTY.format([2, 0, 32])),
    ("bart empty sequence", "bart", {"input_ids": ids(1, 0)}, "input_ids " + EMPTY.format([1, 0])),
    ("bart empty decoder input", "bart", {"input_ids": ids(1, 3), "decoder_input_ids": ids(1, 0)},
     "decoder_input_ids " + EMPTY.format([1, 0])),
    ("opt batch of 0", "opt", {"input_ids": ids(0, 3)}, "input_ids " + EMPTY.format([0, 3])),
    ("roberta cache too shallow", "roberta_decoder", {"input_ids": ids(1, 1), "past_key_values": cache(1)},
     "past_key_values holds 1 layer(s) but the model has 2 (num_hidden_layers); pass the past_key_values this model "
     "returned, or a cache from its init_cache"),
    ("bart cache too shallow", "bart",
     {"input_ids": ids(1, 3), "decoder_input_ids": ids(1, 1), "past_key_values": cache(1, entries=4)},
     "past_key_values holds 1 layer(s) but the model has 2 (decoder_layers); pass the past_key_values this model "
     "returned, or a cache from its init_cache"),
    ("bart rank-2 encoder output", "bart",
     {"decoder_input_ids": ids(1, 3), "encoder_outputs": (np.zeros((1, 32), np.float32),)},
     "the encoder output (encoder_outputs[0] or encoder_hidden_states) must have 3 dimensions (batch, encoder "
     "sequence, hidden), got shape [1, 32]"),
    ("bart encoder output of another batch", "bart",
     {"decoder_input_ids": ids(2, 3), "encoder_outputs": (np.zeros((1, 4, 32), np.float32),)},
     "the encoder output has batch size 1 but the decoder input has batch size 2; they must be equal"),
    ("opt mask of 2", "opt", {"input_ids": ids(1, 4), "attention_mask": np.array([[1, 2, 1, 1]])},
     "attention_mask must hold only 0 (padding) and 1 (token), got 2; positions are counted from it"),
    ("opt mask of 0.5", "opt", {"input_ids": ids(1, 4), "attention_mask": np.array([[1, 1, 0.5, 1]], np.float32)},
     "attention_mask must hold only 0 (padding) and 1 (token), got 0.5; positions are counted from it"),
    ("opt mask of -1", "opt", {"input_ids": ids(1, 4), "attention_mask": np.array([[-1, 1, 1, 1]])},
     "attention_mask must hold only 0 (padding) and 1 (token), got -1; positions are counted from it"),
    ("mlm float labels", "mlm", {"input_ids": ids(2, 5), "labels": np.full((2, 5), 5.0, np.float32)},
     "labels must hold integer class ids (one class id per prediction, -100 to ignore it), got floats; "
     "float labels are for regression (num_labels=1 or problem_type='regression') or "
     "problem_type='multi_label_classification'"),
    ("mlm labels of the wrong shape", "mlm", {"input_ids": ids(2, 5), "labels": ids(2, 4)},
     "labels has shape [2, 4] but must have shape [2, 5] (one class id per prediction, -100 to ignore it)"),
    ("causal lm labels of the wrong shape", "opt", {"input_ids": ids(2, 5), "labels": ids(2, 6)},
     "labels has shape [2, 6] but must have shape [2, 5] (one class id per prediction, -100 to ignore it)"),
    ("causal lm bool labels", "opt", {"input_ids": ids(2, 5), "labels": np.ones((2, 5), bool)},
     "labels must hold integer class ids (one class id per prediction, -100 to ignore it), got bools; "
     "float labels are for regression (num_labels=1 or problem_type='regression') or "
     "problem_type='multi_label_classification'"),
    ("seq2seq labels of the wrong shape", "bart",
     {"input_ids": ids(2, 5), "decoder_input_ids": ids(2, 5), "labels": ids(2, 4)},
     "labels has shape [2, 4] but must have shape [2, 5] (one class id per prediction, -100 to ignore it)"),
    ("class labels of the wrong shape", "classifier", {"input_ids": ids(2, 5), "labels": np.array([0, 1, 2])},
     "labels has shape [3] but must have shape [2] (one class id per example)"),
    ("multi-label targets of the wrong shape", "classifier",
     {"input_ids": ids(2, 5), "labels": np.ones((2, 2), np.float32)},
     "labels has shape [2, 2] but must have shape [2, 3] (multi-label targets, 0 or 1 per class)"),
    ("regression with integer labels", "regressor", {"input_ids": ids(2, 5), "labels": np.array([1, 2])},
     "labels must hold floats (regression targets, one per output), got integers; integer labels are class ids, "
     "for problem_type='single_label_classification'"),
    ("regression targets of the wrong shape", "regressor",
     {"input_ids": ids(2, 5), "labels": np.ones((2, 2), np.float32)},
     "labels has shape [2, 2] but must have shape [2, 1] (regression targets, one per output)"),
    ("float answer positions", "qa",
     {"input_ids": ids(2, 5), "start_positions": np.array([1.0, 2.0]), "end_positions": np.array([1, 2])},
     "start_positions must hold integer class ids (one token index per example), got floats; float labels "
     "are for regression (num_labels=1 or problem_type='regression') or problem_type='multi_label_classification'"),
    ("answer positions of the wrong shape", "qa",
     {"input_ids": ids(2, 5), "start_positions": np.array([1, 2]), "end_positions": np.array([1, 2, 3])},
     "end_positions has shape [3] but must have shape [2] (one token index per example)"),
]


def reset_problem_type(model):
    model.config.problem_type = None  # inferred from the labels and recorded by each call, as in transformers


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("model", "inputs", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_clear_error(framework, model, inputs, message, models):
    model = models[model][framework]
    reset_problem_type(model)
    with pytest.raises(ValueError, match=re.escape(message)):
        run(framework, model, inputs)


# The valid neighbours of the cases above work, so the checks refuse only what is wrong.
ACCEPTED = [
    ("class ids of shape [batch, 1]", "classifier", {"input_ids": ids(2, 5), "labels": np.array([[0], [2]])}),
    ("multi-label float targets", "classifier", {"input_ids": ids(2, 5), "labels": np.ones((2, 3), np.float32)}),
    ("regression targets of shape [batch]", "regressor",
     {"input_ids": ids(2, 5), "labels": np.array([0.5, 1.5], np.float32)}),
    ("answer positions of shape [batch, 1]", "qa",
     {"input_ids": ids(2, 5), "start_positions": np.array([[1], [2]]), "end_positions": np.array([1, 2])}),
    ("opt boolean mask", "opt", {"input_ids": ids(2, 5), "attention_mask": np.arange(10).reshape(2, 5) > 2}),
    ("cache of the right depth", "roberta_decoder", {"input_ids": ids(1, 1), "past_key_values": cache(2)}),
]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("model", "inputs"), [case[1:] for case in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_valid_neighbours_are_accepted(framework, model, inputs, models):
    model = models[model][framework]
    reset_problem_type(model)
    output = run(framework, model, inputs)
    if "labels" in inputs or "start_positions" in inputs:
        assert np.isfinite(float(np.asarray(output.loss)))
