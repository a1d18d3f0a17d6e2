"""Train RoBERTa as a masked language model in PyTorch, TensorFlow (Keras fit) or Flax (jit + optax).

The text: WordNet's definitions and usage examples bundled in examples/data, joined and cut into rows of
--max-length tokens. Every step masks a new 15% (--mask-probability) of each row's tokens (of those, 80% become
<mask>, 10% a random token, 10% stay), as transformers' DataCollatorForLanguageModeling does, drawn with numpy from
a generator seeded by --seed and the step, so the same run masks the same tokens in every framework and after
--resume. Without --model a small RoBERTa is trained from scratch with a byte-level BPE learned on that text;
with --model (a local RoBERTa folder) it is fine-tuned. The metrics: masked-token accuracy and perplexity on
held-out rows masked once (15%) with a fixed seed; the run ends with the top 5 fillers of a prompt's <mask>.

    python examples/train_masked_lm.py --framework pt --output-dir runs/mlm-pt
    torchrun --nproc-per-node 2 examples/train_masked_lm.py --framework pt --ddp --output-dir runs/mlm-ddp
    python examples/train_masked_lm.py --framework tf --strategy mirrored --output-dir runs/mlm-tf
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python examples/train_masked_lm.py --framework flax --devices 2 --output-dir runs/mlm-flax
"""

from __future__ import annotations

import itertools

import finetuning
import numpy as np

from rosettazoo.roberta import (
    FlaxRobertaForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaTokenizer,
    TFRobertaForMaskedLM,
)

CLASSES = {"pt": RobertaForMaskedLM, "tf": TFRobertaForMaskedLM, "flax": FlaxRobertaForMaskedLM}
PROMPT = "a domesticated <mask> mammal"
MASK_PROBABILITY = 0.15
EVAL_MASK_SEED = 1234  # the held-out rows are masked once, the same way in every run


def texts(synsets) -> list[str]:
    """Each synset's definition and its usage examples, one text each."""
    return [text for s in synsets for text in (s.definition, *s.examples.split(" | ")) if text]


def encode(tokenizer, synsets, max_length: int) -> dict[str, np.ndarray]:
    """The texts, each as ``<s> text </s>``, joined and cut into rows of ``max_length`` tokens (the last partial
    row dropped), as RoBERTa was pretrained: no padding, so every position trains. Unmasked: masking happens per
    batch (``mask_tokens``)."""
    stream = np.fromiter(itertools.chain.from_iterable(tokenizer(texts(synsets))["input_ids"]), np.int32)
    rows = len(stream) // max_length
    input_ids = stream[:rows * max_length].reshape(rows, max_length)
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}


def mask_tokens(batch: dict[str, np.ndarray], rng: np.random.Generator, mask_token_id: int, vocab_size: int,
                special_ids: list[int], probability: float = MASK_PROBABILITY) -> dict[str, np.ndarray]:
    """``batch`` with ``probability`` of its ordinary tokens chosen as labels (others -100); a chosen token is
    replaced by <mask> with probability 0.8, by a random token of the vocabulary with 0.1, and kept with 0.1."""
    ids = batch["input_ids"]
    chosen = (rng.random(ids.shape) < probability) & ~np.isin(ids, special_ids)
    roll = rng.random(ids.shape)
    masked = chosen & (roll < 0.8)
    randomized = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs = np.where(masked, mask_token_id, ids)
    inputs = np.where(randomized, rng.integers(0, vocab_size, ids.shape), inputs).astype(ids.dtype)
    labels = np.where(chosen, ids, -100).astype(ids.dtype)
    return {**batch, "input_ids": inputs, "labels": labels}


def fill_mask(engine, tokenizer, text: str, top: int = 5) -> list[tuple[str, float]]:
    """The ``top`` most probable tokens at the first <mask> of ``text``, with their probabilities."""
    enc = tokenizer([text], return_tensors="np")
    ids = enc["input_ids"].astype(np.int32)
    position = int(np.flatnonzero(ids[0] == tokenizer.mask_token_id)[0])
    # outputs() wants labels; any valid ones do, only the logits are used.
    _, logits = engine.outputs({"input_ids": ids, "attention_mask": enc["attention_mask"].astype(np.int32),
                                "labels": ids})
    scores = logits[0, position].astype(np.float64)
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    best = np.argsort(-probabilities)[:top]
    return [(tokenizer.decode([int(i)]).strip(), float(probabilities[i])) for i in best]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = finetuning.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--mask-probability", type=float, default=MASK_PROBABILITY,
                        help="share of the tokens each step predicts (more: more to learn from per step)")
    args = parser.parse_args(argv)
    finetuning.check_arguments(args)
    if not 0.0 < args.mask_probability < 1.0:
        raise SystemExit(f"--mask-probability must be in (0, 1), got {args.mask_probability}")
    train, evaluation = finetuning.load_wordnet(args.max_train, args.max_eval)
    source, step = finetuning.starting_point(args)
    tokenizer = finetuning.build_tokenizer(args, source, texts(train), RobertaTokenizer)
    size = finetuning.model_size(args)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                           num_attention_heads=size["heads"], intermediate_size=size["ffn"],
                           max_position_embeddings=size["positions"],
                           **finetuning.dropout_settings(args, "hidden_dropout_prob", "attention_probs_dropout_prob"))
    engine = finetuning.make_engine(args, lambda: finetuning.build_model(CLASSES, args, source, config), tokenizer)

    def masked(batch: dict, rng: np.random.Generator, probability: float = args.mask_probability) -> dict:
        return mask_tokens(batch, rng, tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids,
                           probability)

    # Held out at the standard 15% whatever --mask-probability, so runs compare.
    eval_columns = masked(encode(tokenizer, evaluation, args.max_length), np.random.default_rng(EVAL_MASK_SEED),
                          MASK_PROBABILITY)

    def evaluate(engine) -> dict[str, float]:
        total, tokens, correct = 0.0, 0, 0
        for batch in finetuning.eval_batches(eval_columns, args.batch_size):
            loss, logits = engine.outputs(batch)
            chosen = batch["labels"] != -100
            count = int(chosen.sum())
            total, tokens = total + loss * count, tokens + count
            correct += int((logits.argmax(-1)[chosen] == batch["labels"][chosen]).sum())
        return {"eval_loss": total / tokens, "perplexity": finetuning.perplexity(total, tokens),
                "accuracy": correct / tokens}

    metrics = finetuning.run(args, engine, encode(tokenizer, train, args.max_length), evaluate, "accuracy",
                             start_step=step,
                             prepare=lambda batch, index: masked(batch, np.random.default_rng([args.seed, index])))
    fillers = ", ".join(f"{token!r} {p:.3f}" for token, p in fill_mask(engine, tokenizer, PROMPT))
    engine.log(f"top 5 for {PROMPT!r}: {fillers}")
    return metrics


if __name__ == "__main__":
    main()
