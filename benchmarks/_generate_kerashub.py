"""KerasHub's OPTCausalLM / BartSeq2SeqLM generate on the JAX backend, for benchmarks/generate.py (a subprocess).

The main process runs Keras 3 on TensorFlow; KerasHub is timed on JAX (its generate is a jax.jit program there), and
Keras fixes its backend at import, hence a process of its own. Both models read the folder transformers saved:
BART through KerasHub's own transformers converter (BartBackbone.from_preset of the folder); OPT, which KerasHub has
no converter for, through the name map below. Token ids go in without a preprocessor: the prompt padded to its final
length with a padding mask of 0 where tokens are to be generated, stop_token_ids=None so that exactly the asked number
of new tokens is generated. KerasHub's samplers apply no logits processors: BART's forced final eos and the minimum
length that keeps transformers from choosing eos early do not exist there.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

import numpy as np  # noqa: E402
from _generate_worker import serve  # noqa: E402

OPT_POSITION_OFFSET = 2  # transformers' OPT position table starts two rows in


def opt_weight_map(backbone) -> list:
    """(KerasHub variable, transformers tensor name) for every variable of an OPTBackbone."""
    prefix = "model.decoder."
    pairs = [(backbone.embeddings.token_embedding.embeddings, prefix + "embed_tokens.weight"),
             (backbone.embeddings.position_embedding.position_embeddings, prefix + "embed_positions.weight"),
             (backbone.layer_norm.gamma, prefix + "final_layer_norm.weight"),
             (backbone.layer_norm.beta, prefix + "final_layer_norm.bias")]
    for index, layer in enumerate(backbone.transformer_layers):
        hf = f"{prefix}layers.{index}."
        attention = layer._self_attention_layer
        dense = {"q_proj": attention.query_dense, "k_proj": attention.key_dense, "v_proj": attention.value_dense,
                 "out_proj": attention.output_dense}
        for name, keras_dense in dense.items():
            pairs += [(keras_dense.kernel, f"{hf}self_attn.{name}.weight"), (keras_dense.bias, f"{hf}self_attn.{name}.bias")]
        for name, keras_layer in (("fc1", layer._feedforward_intermediate_dense),
                                  ("fc2", layer._feedforward_output_dense)):
            pairs += [(keras_layer.kernel, f"{hf}{name}.weight"), (keras_layer.bias, f"{hf}{name}.bias")]
        for name, norm in (("self_attn_layer_norm", layer._self_attention_layer_norm),
                           ("final_layer_norm", layer._feedforward_layer_norm)):
            pairs += [(norm.gamma, f"{hf}{name}.weight"), (norm.beta, f"{hf}{name}.bias")]
    return pairs


def load_opt(folder: str, dtype: str):
    import keras_hub
    from safetensors.numpy import load_file

    with open(os.path.join(folder, "config.json")) as file:
        config = json.load(file)
    if not config.get("do_layer_norm_before", True) or config["word_embed_proj_dim"] != config["hidden_size"]:
        raise ValueError("KerasHub's OPTBackbone has pre-layer-norm blocks and no embedding projection only")
    backbone = keras_hub.models.OPTBackbone(
        vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"], hidden_dim=config["hidden_size"], intermediate_dim=config["ffn_dim"],
        dropout=0.0, max_sequence_length=config["max_position_embeddings"], dtype=dtype)
    tensors = load_file(os.path.join(folder, "model.safetensors"))
    pairs = opt_weight_map(backbone)
    if len(pairs) != len(backbone.weights):
        raise ValueError(f"the OPT name map covers {len(pairs)} of the backbone's {len(backbone.weights)} variables")
    for variable, name in pairs:
        tensor = tensors[name]
        if name.endswith("embed_positions.weight"):
            tensor = tensor[OPT_POSITION_OFFSET:]
        elif tensor.ndim == 2 and "embed_" not in name:
            tensor = tensor.T  # torch Linear [out, in] -> Keras kernel [in, out] (split per head by the reshape)
        variable.assign(np.reshape(tensor, variable.shape))
    return keras_hub.models.OPTCausalLM(backbone=backbone, preprocessor=None)


def load(model: str, folder: str, dtype: str) -> tuple:
    """(the task model, BART's decoder start token or None)."""
    import keras_hub

    if model == "opt":
        return load_opt(folder, dtype), None
    with open(os.path.join(folder, "config.json")) as file:
        decoder_start = json.load(file)["decoder_start_token_id"]
    backbone = keras_hub.models.BartBackbone.from_preset(folder, dtype=dtype)
    return keras_hub.models.BartSeq2SeqLM(backbone=backbone, preprocessor=None), decoder_start


def make_call(loaded: tuple, model: str, ids: np.ndarray, mask: np.ndarray, new_tokens: int, beams: int):
    import keras_hub

    task, decoder_start = loaded
    task.compile(sampler="greedy" if beams == 1 else keras_hub.samplers.BeamSampler(num_beams=beams))
    batch = ids.shape[0]
    ids, mask = ids.astype(np.int32), mask.astype(np.int32)
    to_generate = np.zeros((batch, new_tokens), np.int32)
    if model == "opt":
        inputs = {"token_ids": np.concatenate([ids, to_generate], axis=1),
                  "padding_mask": np.concatenate([mask, to_generate], axis=1)}
        key = "token_ids"
    else:
        start = np.full((batch, 1), decoder_start, np.int32)
        inputs = {"encoder_token_ids": ids, "encoder_padding_mask": mask,
                  "decoder_token_ids": np.concatenate([start, to_generate], axis=1),
                  "decoder_padding_mask": np.concatenate([np.ones_like(start), to_generate], axis=1)}
        key = "decoder_token_ids"
    return lambda: np.asarray(task.generate(inputs, stop_token_ids=None)[key]).astype(np.int64)


if __name__ == "__main__":
    serve(load, make_call)
