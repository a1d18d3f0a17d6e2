"""transformers 4.57.6's TensorFlow generate under XLA, for benchmarks/generate.py (run by it as a subprocess).

transformers' TF classes are legacy Keras 2 models, so this process uses tf-keras (TF_USE_LEGACY_KERAS=1) while the
main process keeps Keras 3. The PyTorch-saved folder loads with from_pt=True; generate runs inside
tf.function(jit_compile=True) on fixed-shape inputs, as transformers documents for XLA generation. Its TF generate
ignores min_new_tokens, so the same exact length is asked for as min_length (prompt, or BART's decoder start, + new).

In bfloat16 its eos logits processors (min length, BART's forced final eos) cannot be traced: they mix a float32 -inf
into the bfloat16 logits ("Input 'e' of 'SelectV2' Op has type bfloat16 that does not match type float32 of argument
't'"). There the eos rules are switched off on the model's generation config (eos_token_id and forced_eos_token_id
None): exactly max_new_tokens are generated, the same work per step; bfloat16 ids are not compared anyway.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["USE_TF"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _generate_worker import serve  # noqa: E402

CLASSES = {"opt": "TFOPTForCausalLM", "bart": "TFBartForConditionalGeneration"}


def load(model: str, folder: str, dtype: str) -> tuple:
    """(the model, its dtype)."""
    import tensorflow as tf
    import transformers

    # Legacy Keras builds the variables in the global policy's dtype; "bfloat16" makes weights and compute bfloat16.
    tf.keras.mixed_precision.set_global_policy("bfloat16" if dtype == "bfloat16" else "float32")
    try:
        return getattr(transformers, CLASSES[model]).from_pretrained(folder, from_pt=True), dtype
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def make_call(loaded: tuple, model: str, ids: np.ndarray, mask: np.ndarray, new_tokens: int, beams: int):
    import tensorflow as tf

    hf_model, dtype = loaded
    settings = dict(max_new_tokens=new_tokens, num_beams=beams, do_sample=False)
    if dtype == "bfloat16":
        # On the model's own generation config: its search loops fall back to that eos when given eos_token_id=None.
        hf_model.generation_config.eos_token_id = hf_model.generation_config.forced_eos_token_id = None
    else:
        settings["min_length"] = (ids.shape[1] if model == "opt" else 1) + new_tokens
    generate = tf.function(lambda i, m: hf_model.generate(i, attention_mask=m, **settings), jit_compile=True)
    ids_t, mask_t = tf.constant(ids.astype(np.int32)), tf.constant(mask.astype(np.int32))
    return lambda: generate(ids_t, mask_t).numpy().astype(np.int64)


if __name__ == "__main__":
    serve(load, make_call)
