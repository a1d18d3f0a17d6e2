"""transformers 4.57.6's side of the format tests, run in a subprocess: its TF classes need tf-keras
(TF_USE_LEGACY_KERAS=1), which cannot share a process with the Keras 3 our TF models use.

    python hf_formats_worker.py WRITE_FOLDER LOAD_FOLDER

writes tiny models of each family in every layout to WRITE_FOLDER/<family>/<layout>, with the inputs and the
PyTorch logits (inputs.npz, expected.npz), then loads each LOAD_FOLDER/<family>/<case>_<framework> in that
framework's transformers class and writes the logits to LOAD_FOLDER/loaded.npz.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["USE_TF"] = "AUTO"  # the tests' conftest turns TF off for transformers; here it is wanted, with torch
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()

# One class per family, at the tiny sizes the tests use; OPT in the opt-350m layout (word embeddings narrower
# than the hidden size, projected in and out, layer norm after each block).
FAMILIES = {
    "roberta": ("RobertaForMaskedLM", transformers.RobertaConfig, dict(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40)),
    "bart": ("BartForConditionalGeneration", transformers.BartConfig, dict(
        vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=40)),
    "opt": ("OPTForCausalLM", transformers.OPTConfig, dict(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=37,
        max_position_embeddings=40, word_embed_proj_dim=16, do_layer_norm_before=False)),
}
# A batch with right padding; BART also gets decoder tokens.
INPUT_IDS = np.array([[0, 5, 6, 7, 8, 9, 2], [0, 11, 12, 13, 2, 1, 1]], dtype=np.int64)
ATTENTION_MASK = np.array([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]], dtype=np.int64)
DECODER_INPUT_IDS = np.array([[2, 0, 5, 6], [2, 0, 11, 12]], dtype=np.int64)
SHARD = "6KB"  # small enough to split every tiny model into several shards


def inputs(family: str, framework: str) -> dict:
    arrays = {"input_ids": INPUT_IDS, "attention_mask": ATTENTION_MASK}
    if family == "bart":
        arrays["decoder_input_ids"] = DECODER_INPUT_IDS
    if framework == "pt":
        return {k: torch.from_numpy(v) for k, v in arrays.items()}
    return arrays


def logits(model, family: str, framework: str) -> np.ndarray:
    if framework == "pt":
        with torch.no_grad():
            return model(**inputs(family, "pt")).logits.numpy()
    return np.asarray(model(**inputs(family, framework)).logits)


def write(folder: str) -> None:
    expected = {}
    for family, (name, config_class, sizes) in FAMILIES.items():
        torch.manual_seed(0)
        model = getattr(transformers, name)(config_class(**sizes)).eval()
        expected[family] = logits(model, family, "pt")
        pt = os.path.join(folder, family, "pt")
        model.save_pretrained(pt)
        tf_model = getattr(transformers, "TF" + name).from_pretrained(pt, from_pt=True)
        tf_model.save_pretrained(os.path.join(folder, family, "h5"), safe_serialization=False)
        tf_model.save_pretrained(os.path.join(folder, family, "h5_sharded"), safe_serialization=False,
                                 max_shard_size=SHARD)
        tf_model.save_pretrained(os.path.join(folder, family, "tf_safetensors"), safe_serialization=True)
        flax_model = getattr(transformers, "Flax" + name).from_pretrained(pt, from_pt=True)
        flax_model.save_pretrained(os.path.join(folder, family, "msgpack"))
        flax_model.save_pretrained(os.path.join(folder, family, "msgpack_sharded"), max_shard_size=SHARD)
        flax_model.save_pretrained(os.path.join(folder, family, "flax_safetensors"), safe_serialization=True)
    np.savez(os.path.join(folder, "expected.npz"), **expected)
    np.savez(os.path.join(folder, "inputs.npz"), input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK,
             decoder_input_ids=DECODER_INPUT_IDS)


def load(folder: str) -> None:
    loaded = {}
    for family, (name, _, _) in FAMILIES.items():
        for case in sorted(os.listdir(os.path.join(folder, family))):
            framework = case.rsplit("_", 1)[1]
            prefix = {"pt": "", "tf": "TF", "flax": "Flax"}[framework]
            model = getattr(transformers, prefix + name).from_pretrained(os.path.join(folder, family, case))
            loaded[f"{family}/{case}"] = logits(model, family, framework)
    np.savez(os.path.join(folder, "loaded.npz"), **loaded)


if __name__ == "__main__":
    write(sys.argv[1])
    load(sys.argv[2])
