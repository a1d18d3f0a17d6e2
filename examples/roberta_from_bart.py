"""Start a RoBERTa masked LM from a trained BART's encoder, to continue with train_masked_lm.py --model.

BART's encoder is RoBERTa's: post-norm layers of the same attention and GELU feed-forward blocks, learned positions
that start at index 2 for the first token (BART adds an offset of 2, RoBERTa starts at pad_token_id + 1), and a
LayerNorm after the embeddings. So the token and position tables, the embedding LayerNorm and every encoder layer
carry over unchanged and the copy computes what BART's encoder computes (checked here before saving); the token
type table is zero (adds nothing) and the masked-LM head starts new. A small RoBERTa trained from scratch with
masked-LM alone sits for thousands of steps on the plateau where it predicts the unigram distribution whatever the
context; from BART's encoder it uses the context from the first steps.

    python examples/roberta_from_bart.py rosettazoo/models/bart-wordnet runs/roberta-from-bart
    python examples/train_masked_lm.py --framework pt --model runs/roberta-from-bart --output-dir runs/mlm
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from rosettazoo.bart import BartForConditionalGeneration, BartTokenizer
from rosettazoo.roberta import RobertaConfig, RobertaForMaskedLM

# RoBERTa parameter name -> BART's, per encoder layer.
LAYER_NAMES = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}
EMBEDDING_NAMES = {
    "word_embeddings": "shared",
    "position_embeddings": "encoder.embed_positions",
    "LayerNorm": "encoder.layernorm_embedding",
}


def roberta_config(bart) -> RobertaConfig:
    c = bart.config
    if c.scale_embedding or c.activation_function != "gelu" or c.encoder_layerdrop:
        raise SystemExit("this BART's encoder is not RoBERTa's: it needs scale_embedding=False, "
                         f"activation_function='gelu' and no encoder_layerdrop, got {c.scale_embedding}, "
                         f"{c.activation_function!r}, {c.encoder_layerdrop}")
    return RobertaConfig(vocab_size=c.vocab_size, hidden_size=c.d_model, num_hidden_layers=c.encoder_layers,
                         num_attention_heads=c.encoder_attention_heads, intermediate_size=c.encoder_ffn_dim,
                         hidden_act="gelu", max_position_embeddings=bart.model.encoder.embed_positions.num_embeddings,
                         type_vocab_size=1, layer_norm_eps=1e-5, initializer_range=c.init_std,
                         hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.attention_dropout,
                         pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id)


def encoder_weights(bart) -> dict[str, torch.Tensor]:
    """BART's encoder under RoBERTa's parameter names."""
    source = bart.state_dict()
    weights = {}
    for ours, theirs in EMBEDDING_NAMES.items():
        for kind in ("weight", "bias"):
            if f"model.{theirs}.{kind}" in source:
                weights[f"roberta.embeddings.{ours}.{kind}"] = source[f"model.{theirs}.{kind}"]
    for i in range(bart.config.encoder_layers):
        for ours, theirs in LAYER_NAMES.items():
            for kind in ("weight", "bias"):
                weights[f"roberta.encoder.layer.{i}.{ours}.{kind}"] = source[f"model.encoder.layers.{i}.{theirs}.{kind}"]
    return weights


def check_same_encoding(bart, roberta, tokenizer) -> float:
    """The largest difference between BART's encoder and the RoBERTa's last hidden states on a few texts."""
    batch = tokenizer(["a domesticated carnivorous mammal", "a building where people live"], return_tensors="pt",
                      padding=True)
    with torch.no_grad():
        want = bart.get_encoder()(**batch).last_hidden_state
        got = roberta.roberta(**batch).last_hidden_state
    keep = batch["attention_mask"].bool()  # positions differ only where padding sits
    return float((want - got).abs()[keep].max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bart", help="a BART folder (BartForConditionalGeneration, with its tokenizer)")
    parser.add_argument("output_dir", help="where the RoBERTa masked LM and the tokenizer go")
    parser.add_argument("--seed", type=int, default=0, help="draws the new masked-LM head")
    args = parser.parse_args(argv)
    bart = BartForConditionalGeneration.from_pretrained(args.bart).eval()
    config = roberta_config(bart)
    tokenizer = BartTokenizer.from_pretrained(args.bart)
    torch.manual_seed(args.seed)
    roberta = RobertaForMaskedLM(config).eval()
    missing, unexpected = roberta.load_state_dict(encoder_weights(bart), strict=False)
    if unexpected:
        raise SystemExit(f"RoBERTa has no parameters {unexpected}")
    with torch.no_grad():
        roberta.roberta.embeddings.token_type_embeddings.weight.zero_()
    difference = check_same_encoding(bart, roberta, tokenizer)
    if not np.isfinite(difference) or difference > 1e-4:
        raise SystemExit(f"the RoBERTa does not compute BART's encoding (largest difference {difference:.2e})")
    roberta.save_pretrained(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    state = roberta.state_dict()
    loaded = {state[name].data_ptr() for name in state if name not in missing}
    new = sorted(name for name in missing if state[name].data_ptr() not in loaded
                 and not name.startswith("roberta.embeddings.token_type"))  # tied copies and the zero table aside
    print(f"{args.output_dir}: BART's encoder as a RoBERTa (largest difference {difference:.1e}); new: {', '.join(new)}")


if __name__ == "__main__":
    main()
