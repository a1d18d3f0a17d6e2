"""Fine-tune BART from one text to another in PyTorch, TensorFlow (Keras fit) or Flax (jit + optax).

Two tasks on the WordNet glosses bundled in examples/data. --task headword (summarization-style): a definition
-> its headword ("a domesticated carnivorous mammal ..." -> "dog"). --task denoise, BART's own pretraining
objective (text infilling): a span of a definition's words (Poisson length, mean 3) replaced by one <mask> -> the
whole definition ("a domesticated <mask> that barks" -> "a domesticated carnivorous mammal that barks"); every
step draws new spans, from a generator seeded by --seed and the step. Without --model a small BART is trained
from scratch with a byte-level BPE learned on the glosses; with --model (a local BART folder) it is fine-tuned.
The metric is the exact-match rate of greedy `generate` on held-out definitions (denoise: spans drawn once with
a fixed seed).

    python examples/train_seq2seq.py --framework pt --output-dir runs/s2s-pt
    torchrun --nproc-per-node 2 examples/train_seq2seq.py --framework pt --ddp --output-dir runs/s2s-ddp
    python examples/train_seq2seq.py --framework tf --strategy mirrored --output-dir runs/s2s-tf
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python examples/train_seq2seq.py --framework flax --devices 2 --output-dir runs/s2s-flax
"""

from __future__ import annotations

import finetuning
import numpy as np

from rosettazoo.bart import (
    BartConfig,
    BartForConditionalGeneration,
    BartTokenizer,
    FlaxBartForConditionalGeneration,
    TFBartForConditionalGeneration,
)

CLASSES = {"pt": BartForConditionalGeneration, "tf": TFBartForConditionalGeneration,
           "flax": FlaxBartForConditionalGeneration}
TARGET_LENGTH = 16
SPAN_MEAN = 3.0  # words per infilled span, as BART's Poisson(3)
EVAL_NOISE_SEED = 1234  # the held-out definitions are noised once, the same way in every run


def headword(synset) -> str:
    return synset.words.split(", ")[0]


def encode(tokenizer, synsets, max_length: int) -> dict[str, np.ndarray]:
    source = tokenizer([s.definition for s in synsets], padding="max_length", truncation=True,
                       max_length=max_length, return_tensors="np")
    target = tokenizer([headword(s) for s in synsets], padding="max_length", truncation=True,
                       max_length=TARGET_LENGTH, return_tensors="np")
    labels = np.where(target["attention_mask"] == 1, target["input_ids"], -100)  # no loss on padding
    return {"input_ids": source["input_ids"].astype(np.int32),
            "attention_mask": source["attention_mask"].astype(np.int32), "labels": labels.astype(np.int32)}


def infill(text: str, rng: np.random.Generator, mask_token: str) -> str:
    """``text`` with one span of its words (at least one, never all of a text of two or more) replaced by
    ``mask_token``."""
    words = text.split()
    length = int(np.clip(rng.poisson(SPAN_MEAN), 1, max(len(words) - 1, 1)))
    start = int(rng.integers(0, len(words) - length + 1))
    return " ".join(words[:start] + [mask_token] + words[start + length:])


def encode_denoise(tokenizer, definitions: list[str], rng: np.random.Generator, max_length: int):
    """Noised definitions as inputs, the definitions as labels (no loss on padding)."""
    noised = [infill(d, rng, tokenizer.mask_token) for d in definitions]
    source = tokenizer(noised, padding="max_length", truncation=True, max_length=max_length, return_tensors="np")
    target = tokenizer(definitions, padding="max_length", truncation=True, max_length=max_length,
                       return_tensors="np")
    labels = np.where(target["attention_mask"] == 1, target["input_ids"], -100)
    return {"input_ids": source["input_ids"].astype(np.int32),
            "attention_mask": source["attention_mask"].astype(np.int32), "labels": labels.astype(np.int32)}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = finetuning.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("headword", "denoise"), default="headword",
                        help="definition -> headword, or a definition with a span masked -> the definition")
    args = parser.parse_args(argv)
    finetuning.check_arguments(args)
    train, evaluation = finetuning.load_wordnet(args.max_train, args.max_eval)
    source, step = finetuning.starting_point(args)
    texts = [s.definition for s in train] + [headword(s) for s in train]
    tokenizer = finetuning.build_tokenizer(args, source, texts, BartTokenizer)
    if args.task == "denoise":
        return denoise(args, train, evaluation, source, step, tokenizer)
    engine = make_engine(args, source, tokenizer)
    eval_columns = encode(tokenizer, evaluation, args.max_length)
    answers = [headword(s) for s in evaluation]
    evaluate = exact_match(args, tokenizer, eval_columns, answers, TARGET_LENGTH)
    return finetuning.run(args, engine, encode(tokenizer, train, args.max_length), evaluate, "exact_match",
                          start_step=step)


def denoise(args, train, evaluation, source, step, tokenizer) -> dict[str, float]:
    engine = make_engine(args, source, tokenizer)
    answers = [s.definition for s in evaluation]
    eval_columns = encode_denoise(tokenizer, answers, np.random.default_rng(EVAL_NOISE_SEED), args.max_length)
    evaluate = exact_match(args, tokenizer, eval_columns, answers, args.max_length)
    definitions = [s.definition for s in train]

    def noised(batch: dict, index: int) -> dict:
        rng = np.random.default_rng([args.seed, index])
        return encode_denoise(tokenizer, [definitions[i] for i in batch["row"]], rng, args.max_length)

    return finetuning.run(args, engine, {"row": np.arange(len(definitions))}, evaluate, "exact_match",
                          start_step=step, prepare=noised)


def make_engine(args, source, tokenizer):
    size = finetuning.model_size(args)
    config = BartConfig(vocab_size=len(tokenizer), d_model=size["hidden"], encoder_layers=size["layers"],
                        decoder_layers=size["layers"], encoder_attention_heads=size["heads"],
                        decoder_attention_heads=size["heads"], encoder_ffn_dim=size["ffn"],
                        decoder_ffn_dim=size["ffn"], max_position_embeddings=size["positions"],
                        **finetuning.dropout_settings(args, "dropout", "attention_dropout", "activation_dropout"))
    return finetuning.make_engine(args, lambda: finetuning.build_model(CLASSES, args, source, config), tokenizer)


def exact_match(args, tokenizer, eval_columns: dict, answers: list[str], max_new_tokens: int):
    """evaluate(engine): the held-out loss per target token, and how often greedy generate writes the answer
    exactly (up to surrounding spaces; a target cut at --max-length counts as its cut text)."""
    answers = [tokenizer.decode(tokenizer(a)["input_ids"][:max_new_tokens], skip_special_tokens=True).strip()
               for a in answers]

    def evaluate(engine) -> dict[str, float]:
        total, tokens, matches = 0.0, 0, 0
        for start, batch in zip(range(0, len(answers), args.batch_size),
                                finetuning.eval_batches(eval_columns, args.batch_size)):
            loss, _ = engine.outputs(batch)
            count = int((batch["labels"] != -100).sum())
            total, tokens = total + loss * count, tokens + count
            ids = engine.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=max_new_tokens,
                                  num_beams=1, do_sample=False)
            predictions = tokenizer.batch_decode(ids, skip_special_tokens=True)
            matches += sum(p.strip() == a for p, a in zip(predictions, answers[start:start + args.batch_size]))
        return {"eval_loss": total / tokens, "exact_match": matches / len(answers)}

    return evaluate


if __name__ == "__main__":
    main()
