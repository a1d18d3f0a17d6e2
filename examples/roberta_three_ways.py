"""Load one tiny RoBERTa checkpoint in PyTorch, TensorFlow and Flax and print how far their outputs lie apart.

The checkpoint is made here (random weights saved by the PyTorch model), since nothing can be downloaded.
"""

import tempfile

import numpy as np
import torch

from rosettazoo.roberta import FlaxRobertaForMaskedLM, RobertaConfig, RobertaForMaskedLM, TFRobertaForMaskedLM


def main() -> None:
    config = RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, max_position_embeddings=40)
    torch.manual_seed(0)
    input_ids = np.array([[0, 31, 41, 51, 61, 2], [0, 71, 81, 2, 1, 1]], dtype=np.int64)
    attention_mask = (input_ids != config.pad_token_id).astype(np.int64)
    with tempfile.TemporaryDirectory() as folder:
        RobertaForMaskedLM(config).save_pretrained(folder)
        models = {
            "PyTorch": RobertaForMaskedLM.from_pretrained(folder),
            "TensorFlow": TFRobertaForMaskedLM.from_pretrained(folder),
            "Flax": FlaxRobertaForMaskedLM.from_pretrained(folder),
        }
    logits = {}
    for name, model in models.items():
        if name == "PyTorch":
            with torch.no_grad():
                out = model(torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
            logits[name] = out.logits.numpy()
        else:
            logits[name] = np.asarray(model(input_ids, attention_mask=attention_mask).logits)
    reference = logits["PyTorch"]
    print(f"masked-LM logits of shape {reference.shape}, max |difference| against PyTorch:")
    for name in ("TensorFlow", "Flax"):
        print(f"  {name:<10} {np.abs(logits[name] - reference).max():.2e}")


if __name__ == "__main__":
    main()
