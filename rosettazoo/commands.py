"""The ``rosettazoo generate``, ``rosettazoo fill-mask`` and ``rosettazoo demo`` commands (the command line itself,
with ``convert`` and ``info``, is ``rosettazoo.conversion.cli``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from . import tasks

# Generation settings the command line takes: option -> (GenerationConfig name, type, help).
GENERATION_OPTIONS = {
    "--max-new-tokens": ("max_new_tokens", int, "tokens to generate (default: the model's generation config)"),
    "--min-new-tokens": ("min_new_tokens", int, "generate at least this many tokens"),
    "--num-beams": ("num_beams", int, "beam search with this many beams"),
    "--num-return-sequences": ("num_return_sequences", int, "sequences to return per prompt"),
    "--temperature": ("temperature", float, "sampling temperature"),
    "--top-k": ("top_k", int, "sample from the k most probable tokens"),
    "--top-p": ("top_p", float, "sample from the smallest set of tokens whose probability reaches p"),
    "--no-repeat-ngram-size": ("no_repeat_ngram_size", int, "never repeat an n-gram of this size"),
    "--repetition-penalty": ("repetition_penalty", float, "penalize tokens already in the sequence (> 1)"),
    "--length-penalty": ("length_penalty", float, "beam search: exponent of the length in a beam's score"),
}


def _add_framework_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--framework", choices=list(tasks.FRAMEWORKS),
                        help="pt (PyTorch), tf (TensorFlow) or flax (default: the first of them installed)")


def add_parsers(commands, add_hub_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the generate, fill-mask and demo subcommands to ``commands`` (argparse subparsers)."""
    generate = commands.add_parser(
        "generate", help="generate text with a causal LM or a sequence-to-sequence model",
        description="Continue each PROMPT (a causal LM such as OPT) or map it to a new text (BART), in PyTorch, "
                    "TensorFlow or Flax, and print the text; a single prompt without beam search is printed as it "
                    "is generated. Settings not given come from the model's generation_config.json.")
    generate.add_argument("model", help="a model folder, a hub id, or a bundled id such as rosettazoo/opt-wordnet")
    generate.add_argument("prompts", nargs="+", metavar="PROMPT", help="the text(s) to start from (several: a batch)")
    _add_framework_argument(generate)
    for option, (_, kind, text) in GENERATION_OPTIONS.items():
        generate.add_argument(option, type=kind, help=text)
    generate.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=None,
                          help="sample instead of greedy or beam search (--no-do-sample: the opposite)")
    generate.add_argument("--seed", type=int, help="seed of the sampling; the same in PyTorch, TensorFlow and Flax")
    generate.add_argument("--no-stream", action="store_true", help="print the text only when generation ends")
    generate.add_argument("--print-ids", action="store_true", help="also print the generated token ids")
    add_hub_arguments(generate)

    fill = commands.add_parser(
        "fill-mask", help="predict the token at each <mask> with a masked LM",
        description="Print the most probable tokens for each <mask> in TEXT, with their probabilities, as "
                    "transformers' fill-mask pipeline gives them.")
    fill.add_argument("model", help="a model folder, a hub id, or a bundled id such as rosettazoo/roberta-wordnet")
    fill.add_argument("text", help="a text with one or more <mask> tokens")
    _add_framework_argument(fill)
    fill.add_argument("--top-k", type=int, default=5, help="how many tokens to show per mask (default: 5)")
    fill.add_argument("--json", action="store_true", help="print the pipeline's list of dicts as JSON")
    add_hub_arguments(fill)

    demo = commands.add_parser(
        "demo", help="run the bundled models in PyTorch, TensorFlow and Flax",
        description="Load the models bundled with rosettazoo in each installed framework, run them (OPT continues "
                    "prompts, RoBERTa fills <mask>, BART writes out a text with missing words), check that the "
                    "frameworks produce the same token ids, and show tokens per second.")
    demo.add_argument("--frameworks", default="pt,tf,flax",
                      help="comma-separated frameworks to run (default: pt,tf,flax; those not installed are skipped)")


def generation_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The generation settings given on the command line (the others stay the model's)."""
    settings = {name: getattr(args, name) for name, _, _ in GENERATION_OPTIONS.values()}
    settings["do_sample"] = args.do_sample
    return {name: value for name, value in settings.items() if value is not None}


def run_generate(args: argparse.Namespace, hub_kwargs: dict[str, Any]) -> str | None:
    from .generation import TextStreamer

    loaded = tasks.load(args.model, "generate", args.framework or tasks.default_framework(), **hub_kwargs)
    settings = generation_settings(args)
    defaults = loaded.model.generation_config
    one_row = (len(args.prompts) == 1 and settings.get("num_beams", defaults.num_beams) == 1
               and settings.get("num_return_sequences", defaults.num_return_sequences) == 1)
    streamer = TextStreamer(loaded.tokenizer, skip_special_tokens=True) if one_row and not args.no_stream else None
    generated = tasks.generate(loaded, args.prompts, seed=args.seed, streamer=streamer, **settings)
    lines = [] if streamer is not None else tasks.decode_generated(loaded, generated)
    if args.print_ids:
        lines += [f"ids: {row.tolist()}" for row in generated.sequences]
    return "\n".join(lines) if lines else None


def format_predictions(predictions: list[list[tasks.Prediction]]) -> str:
    """One table per mask: probability, token id, token text and the filled sequence."""
    lines = []
    for number, candidates in enumerate(predictions, 1):
        if len(predictions) > 1:
            lines.append(f"mask {number} of {len(predictions)}:")
        width = max(len("token_str"), *(len(repr(p.token_str)) for p in candidates))
        lines.append(f"{'score':>8}  {'token':>6}  {'token_str':<{width}}  sequence")
        for p in candidates:
            lines.append(f"{p.score:8.4f}  {p.token:>6}  {p.token_str!r:<{width}}  {p.sequence}")
    return "\n".join(lines)


def run_fill_mask(args: argparse.Namespace, hub_kwargs: dict[str, Any]) -> str:
    loaded = tasks.load(args.model, "fill-mask", args.framework or tasks.default_framework(), **hub_kwargs)
    predictions = tasks.fill_mask(loaded, [args.text], args.top_k)[0]
    if args.json:  # transformers' pipeline: a list of dicts for one mask, a list of such lists for several
        rows = [[asdict(p) for p in candidates] for candidates in predictions]
        return json.dumps(rows[0] if len(rows) == 1 else rows, indent=2, ensure_ascii=False)
    return format_predictions(predictions)


def run_demo(args: argparse.Namespace) -> str | None:
    from . import demo

    frameworks = [name.strip() for name in args.frameworks.split(",") if name.strip()]
    unknown = [name for name in frameworks if name not in tasks.FRAMEWORKS]
    if unknown or not frameworks:
        raise ValueError(f"--frameworks takes a comma-separated subset of {', '.join(tasks.FRAMEWORKS)}, got "
                         f"{args.frameworks!r}")
    demo.run(frameworks, out=sys.stdout, err=sys.stderr)
    return None


COMMANDS = {"generate", "fill-mask", "demo"}


def run(args: argparse.Namespace, hub_arguments: Callable[[argparse.Namespace], dict[str, Any]]) -> str | None:
    """Run one of COMMANDS; returns the text to print (None when it printed as it went)."""
    if args.command == "demo":
        return run_demo(args)
    runner = run_generate if args.command == "generate" else run_fill_mask
    return runner(args, hub_arguments(args))
