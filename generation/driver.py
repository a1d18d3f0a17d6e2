"""The framework-neutral half of ``generate``, shared by the three frameworks' mixins.

A framework mixin provides ``_run_decoding(prepared, streamer)`` (run ``decoding.py`` with its ops and its model step,
compiled where the framework compiles, and return numpy arrays) and ``_framework_output(output)`` (convert the
cropped numpy output into its tensors); everything else, from resolving the settings to cropping the buffers,
happens here once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..common.outputs import as_encoder_output
from .config import GenerationConfig
from .settings import GenerateOutput, ModelFacts, Prepared, collect, prepare, resolve_config


class GenerationDriver:
    """Mixed into a framework's generation mixin; the model class supplies ``config`` and ``generation_config``."""

    @classmethod
    def can_generate(cls) -> bool:
        return True

    def generation_facts(self) -> ModelFacts:
        config = self.config
        return ModelFacts(vocab_size=config.vocab_size, is_encoder_decoder=bool(config.is_encoder_decoder),
                          position_limit=config.max_sequence_length,
                          positions_count_slots=config.positions_count_slots)

    def _generate(self, input_ids, attention_mask, generation_config: GenerationConfig | None, seed,
                  streamer, encoder_outputs, kwargs: dict[str, Any]):
        config, unused = resolve_config(self.generation_config, generation_config, kwargs)
        if unused:
            raise TypeError(f"{type(self).__name__}.generate() got unexpected arguments {sorted(unused)}: pass "
                            f"generation settings by their GenerationConfig names")
        encoder_hidden_states = None
        if encoder_outputs is not None:
            encoder_hidden_states = _numpy(as_encoder_output(encoder_outputs).last_hidden_state)
        prepared = prepare(self.generation_facts(), config, _numpy(input_ids), _numpy(attention_mask), seed,
                           encoder_hidden_states)
        if streamer is not None and prepared.plan.is_beam_search:
            raise ValueError("streamer= works with greedy search and sampling, not with beam search (num_beams > 1)")
        output = collect(prepared, self._run_decoding(prepared, streamer))
        output = self._framework_output(output)
        return output if config.return_dict_in_generate else output.sequences


def stream(prepared: Prepared, start, body, streamer):
    """Decode with a Python loop around the compiled ``start()`` and ``body(state)``, handing each new token to
    ``streamer.put`` (after the prompt, as transformers does) and calling ``streamer.end()`` at the end."""
    streamer.put(prepared.sequences[:, prepared.start:prepared.plan.prompt_columns].astype(np.int64))
    state = start()
    streamer.put(_last_tokens(state))
    while np.asarray(state["unfinished"]).any():
        state = body(state)
        streamer.put(_last_tokens(state))
    streamer.end()
    return state


def _last_tokens(state) -> np.ndarray:
    cur = int(np.asarray(state["cur"]))
    return np.asarray(state["sequences"])[:, cur - 1].astype(np.int64)


def _numpy(value):
    """A framework tensor (or array-like, or None) as numpy, for the checks that run before any compute."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        return (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()
    return np.asarray(value)


__all__ = ["GenerateOutput", "GenerationDriver", "stream"]
