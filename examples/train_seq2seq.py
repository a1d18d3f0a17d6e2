"""Fine-tune BART from one text to another in PyTorch, TensorFlow (Keras fit) or Flax (jit + optax).

The task, summarization-style: a WordNet definition -> its headword ("a domesticated carnivorous mammal ..." ->
"dog"), on the WordNet glosses bundled in examples/data. Without --model a small BART is trained from scratch with
a byte-level BPE learned on the glosses; with --model (a local BART folder) it is fine-tuned. The metric is the
exact-match rate of greedy `generate` on held-out definitions.

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


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = finetuning.argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    finetuning.check_arguments(args)
    train, evaluation = finetuning.load_wordnet(args.max_train, args.max_eval)
    source, step = finetuning.starting_point(args)
    texts = [s.definition for s in train] + [headword(s) for s in train]
    tokenizer = finetuning.build_tokenizer(args, source, texts, BartTokenizer)
    size = finetuning.model_size(args)
    config = BartConfig(vocab_size=len(tokenizer), d_model=size["hidden"], encoder_layers=size["layers"],
                        decoder_layers=size["layers"], encoder_attention_heads=size["heads"],
                        decoder_attention_heads=size["heads"], encoder_ffn_dim=size["ffn"],
                        decoder_ffn_dim=size["ffn"], max_position_embeddings=size["positions"])
    engine = finetuning.make_engine(args, lambda: finetuning.build_model(CLASSES, args, source, config), tokenizer)
    eval_columns = encode(tokenizer, evaluation, args.max_length)
    answers = [headword(s) for s in evaluation]

    def evaluate(engine) -> dict[str, float]:
        total, tokens, matches = 0.0, 0, 0
        for start, batch in zip(range(0, len(answers), args.batch_size),
                                finetuning.eval_batches(eval_columns, args.batch_size)):
            loss, _ = engine.outputs(batch)
            count = int((batch["labels"] != -100).sum())
            total, tokens = total + loss * count, tokens + count
            ids = engine.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=TARGET_LENGTH,
                                  num_beams=1, do_sample=False)
            predictions = tokenizer.batch_decode(ids, skip_special_tokens=True)
            matches += sum(p.strip() == a for p, a in zip(predictions, answers[start:start + args.batch_size]))
        return {"eval_loss": total / tokens, "exact_match": matches / len(answers)}

    return finetuning.run(args, engine, encode(tokenizer, train, args.max_length), evaluate, "exact_match",
                        start_step=step)


if __name__ == "__main__":
    main()
