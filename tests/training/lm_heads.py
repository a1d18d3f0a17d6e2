"""Tiny LM heads of every family, shared by the training tests: name -> (package, class name, config factory)."""

import rosettazoo.bart as bart
import rosettazoo.ibert as ibert
import rosettazoo.opt as opt
import rosettazoo.roberta as roberta

ENCODER = dict(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=40)
BART = dict(vocab_size=96, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=40)
OPT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, ffn_dim=37,
           max_position_embeddings=40)

LM_HEADS = {
    "roberta": (roberta, "RobertaForMaskedLM", lambda **kw: roberta.RobertaConfig(**ENCODER, **kw)),
    "roberta_prelayernorm": (roberta, "RobertaPreLayerNormForMaskedLM",
                             lambda **kw: roberta.RobertaPreLayerNormConfig(**ENCODER, **kw)),
    "ibert": (ibert, "IBertForMaskedLM", lambda **kw: ibert.IBertConfig(**ENCODER, **kw)),
    "bart": (bart, "BartForConditionalGeneration", lambda **kw: bart.BartConfig(**BART, **kw)),
    "opt": (opt, "OPTForCausalLM", lambda **kw: opt.OPTConfig(**OPT, **kw)),
}
