"""Train OPT on text in PyTorch, TensorFlow (Keras fit) or Flax (jit + optax).

The text: WordNet's glosses bundled in examples/data, one "words: definition" line per synset. Without --model a
small OPT is trained from scratch with a byte-level BPE learned on that text; with --model (a local OPT folder)
it is fine-tuned. The metric is the held-out perplexity; the run ends with a greedy continuation of a prompt.

    python examples/train_causal_lm.py --framework pt --output-dir runs/lm-pt
    torchrun --nproc-per-node 2 examples/train_causal_lm.py --framework pt --ddp --output-dir runs/lm-ddp
    python examples/train_causal_lm.py --framework tf --strategy mirrored --output-dir runs/lm-tf
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python examples/train_causal_lm.py --framework flax --devices 2 --output-dir runs/lm-flax
"""

from __future__ import annotations

import finetuning
import numpy as np

from rosettazoo.opt import FlaxOPTForCausalLM, OPTConfig, OPTForCausalLM, OPTTokenizer, TFOPTForCausalLM

CLASSES = {"pt": OPTForCausalLM, "tf": TFOPTForCausalLM, "flax": FlaxOPTForCausalLM}
PROMPT = "dog:"


def text(synset) -> str:
    return f"{synset.words}: {synset.definition}"


def encode(tokenizer, synsets, max_length: int) -> dict[str, np.ndarray]:
    enc = tokenizer([text(s) + tokenizer.eos_token for s in synsets], padding="max_length", truncation=True,
                    max_length=max_length, return_tensors="np")
    input_ids = enc["input_ids"].astype(np.int32)
    attention_mask = enc["attention_mask"].astype(np.int32)
    labels = np.where(attention_mask == 1, input_ids, -100).astype(np.int32)  # no loss on padding
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = finetuning.argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    finetuning.check_arguments(args)
    train, evaluation = finetuning.load_wordnet(args.max_train, args.max_eval)
    source, step = finetuning.starting_point(args)
    tokenizer = finetuning.build_tokenizer(args, source, [text(s) for s in train], OPTTokenizer)
    size = finetuning.model_size(args)
    config = OPTConfig(vocab_size=len(tokenizer), hidden_size=size["hidden"], word_embed_proj_dim=size["hidden"],
                       num_hidden_layers=size["layers"], num_attention_heads=size["heads"], ffn_dim=size["ffn"],
                       max_position_embeddings=size["positions"],
                       **finetuning.dropout_settings(args, "dropout", "attention_dropout"))
    engine = finetuning.make_engine(args, lambda: finetuning.build_model(CLASSES, args, source, config), tokenizer)
    eval_columns = encode(tokenizer, evaluation, args.max_length)

    def evaluate(engine) -> dict[str, float]:
        total, tokens = 0.0, 0
        for batch in finetuning.eval_batches(eval_columns, args.batch_size):
            loss, _ = engine.outputs(batch)
            count = int((batch["labels"][:, 1:] != -100).sum())  # tokens that are predicted
            total, tokens = total + loss * count, tokens + count
        return {"eval_loss": total / tokens, "perplexity": finetuning.perplexity(total, tokens)}

    metrics = finetuning.run(args, engine, encode(tokenizer, train, args.max_length), evaluate, "perplexity",
                           start_step=step)
    prompt = tokenizer([PROMPT], return_tensors="np")
    ids = engine.generate(prompt["input_ids"].astype(np.int32), prompt["attention_mask"].astype(np.int32),
                          max_new_tokens=16, do_sample=False)
    engine.log(f"greedy continuation of {PROMPT!r}: {tokenizer.decode(ids[0], skip_special_tokens=True)!r}")
    return metrics


if __name__ == "__main__":
    main()
