"""The tiny models of the format tests (test_formats.py, test_formats_hf.py), one per family."""

from rosettazoo import bart, ibert, opt, roberta

FAMILIES = {
    "roberta": lambda: roberta.RobertaForMaskedLM(roberta.RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40)),
    "bart": lambda: bart.BartForConditionalGeneration(bart.BartConfig(
        vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=40)),
    "opt": lambda: opt.OPTForCausalLM(opt.OPTConfig(  # the opt-350m layout: projected word embeddings
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=37,
        max_position_embeddings=40, word_embed_proj_dim=16, do_layer_norm_before=False)),
    "ibert": lambda: ibert.IBertForMaskedLM(ibert.IBertConfig(  # quantization buffers next to the weights
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40, quant_mode=True)),
}
