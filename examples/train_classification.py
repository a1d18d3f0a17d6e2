"""Fine-tune RoBERTa for sequence classification in PyTorch, TensorFlow (Keras fit) or Flax (jit + optax).

The task: WordNet's lexicographer class of a gloss ("a domesticated carnivorous mammal ..." -> noun.animal), over
the 45 classes, on the WordNet glosses bundled in examples/data. Without --model a small RoBERTa is trained from
scratch with a byte-level BPE learned on the glosses; with --model (e.g. a local roberta-base folder) it is
fine-tuned.

    python examples/train_classification.py --framework pt --output-dir runs/cls-pt
    torchrun --nproc-per-node 2 examples/train_classification.py --framework pt --ddp --output-dir runs/cls-ddp
    python examples/train_classification.py --framework tf --strategy mirrored --output-dir runs/cls-tf
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python examples/train_classification.py --framework flax --devices 2 --output-dir runs/cls-flax
"""

from __future__ import annotations

import finetuning
import numpy as np

from rosettazoo.roberta import (
    FlaxRobertaForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaTokenizer,
    TFRobertaForSequenceClassification,
)

CLASSES = {"pt": RobertaForSequenceClassification, "tf": TFRobertaForSequenceClassification,
           "flax": FlaxRobertaForSequenceClassification}


def encode(tokenizer, synsets, label_ids: dict[str, int], max_length: int) -> dict[str, np.ndarray]:
    enc = tokenizer([s.definition for s in synsets], padding="max_length", truncation=True, max_length=max_length,
                    return_tensors="np")
    labels = np.array([label_ids[s.lexname] for s in synsets], np.int32)
    return {"input_ids": enc["input_ids"].astype(np.int32), "attention_mask": enc["attention_mask"].astype(np.int32),
            "labels": labels}


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = finetuning.argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    finetuning.check_arguments(args)
    train, evaluation = finetuning.load_wordnet(args.max_train, args.max_eval)
    source, step = finetuning.starting_point(args)
    tokenizer = finetuning.build_tokenizer(args, source, [s.definition for s in train], RobertaTokenizer)
    names = sorted({s.lexname for s in train + evaluation})
    label_ids = {name: i for i, name in enumerate(names)}
    id2label = dict(enumerate(names))
    size = finetuning.model_size(args)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                           num_attention_heads=size["heads"], intermediate_size=size["ffn"],
                           max_position_embeddings=size["positions"], id2label=id2label)
    engine = finetuning.make_engine(
        args, lambda: finetuning.build_model(CLASSES, args, source, config, id2label=id2label), tokenizer)
    eval_columns = encode(tokenizer, evaluation, label_ids, args.max_length)

    def evaluate(engine) -> dict[str, float]:
        correct, losses = 0, []
        for batch in finetuning.eval_batches(eval_columns, args.batch_size):
            loss, logits = engine.outputs(batch)
            losses.append(loss * len(batch["labels"]))
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
        count = len(eval_columns["labels"])
        return {"eval_loss": sum(losses) / count, "accuracy": correct / count}

    return finetuning.run(args, engine, encode(tokenizer, train, label_ids, args.max_length), evaluate, "accuracy",
                        start_step=step)


if __name__ == "__main__":
    main()
