"""``generate`` for the Flax models: the whole decoding compiled as one ``jax.jit`` program (``lax.while_loop``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .config import GenerationConfig
from .decoding import Bounds, beam_search, cache_rows_of_inputs, rows_of_inputs, search, search_body, search_result, search_start
from .driver import GenerationDriver, stream
from .ops_jax import JaxOps
from .settings import GenerateOutput, Plan, Prepared


class FlaxGenerationMixin(GenerationDriver):
    """Adds ``generate`` to a Flax model object that has ``init_cache`` (and, for BART, ``encode``)."""

    def generate(self, input_ids=None, attention_mask=None, generation_config: GenerationConfig | None = None, *,
                 params=None, seed: int | None = None, prng_key=None, streamer=None, encoder_outputs=None,
                 **kwargs) -> GenerateOutput:
        """Generate as transformers' ``generate`` (its settings as keyword arguments or in ``generation_config``);
        BART also takes ``encoder_outputs`` (then ``input_ids`` may be left out).

        Returns an output with ``.sequences`` [batch * num_return_sequences, length] (int32), ``.scores`` with
        ``output_scores=True`` and ``return_dict_in_generate=True``, and ``.sequences_scores`` for beam search.
        Sampling draws from ``seed`` (or a seed taken from ``prng_key``): the same seed samples the same tokens
        in PyTorch, TensorFlow and Flax. ``streamer.put`` receives each new token as it is chosen.
        """
        if prng_key is not None:
            if seed is not None:
                raise ValueError("pass seed= or prng_key=, not both")
            seed = int(jax.random.randint(prng_key, (), 0, np.iinfo(np.int32).max))
        self._generation_params = self._require_params(params)
        try:
            output = self._generate(input_ids, attention_mask, generation_config, seed, streamer, encoder_outputs,
                                    {**kwargs, "return_dict_in_generate": True})
        finally:
            self._generation_params = None
        return output

    def _run_decoding(self, prepared: Prepared, streamer) -> dict:
        arrays = _device_arrays(prepared)
        params = self._generation_params
        if streamer is None:
            result = self._compiled("decode", prepared.plan, self._decode_program)(params, *arrays)
            return jax.tree_util.tree_map(np.asarray, result)
        start = self._compiled("start", prepared.plan, self._start_program)
        body = self._compiled("body", prepared.plan, self._body_program)
        state = stream(prepared, lambda: start(params, *arrays), lambda state: body(params, state, *arrays), streamer)
        return jax.tree_util.tree_map(np.asarray, search_result(state))

    def _framework_output(self, output: GenerateOutput) -> GenerateOutput:
        def to_jax(value):
            return (None if value is None else jnp.asarray(value))
        sequences = jnp.asarray(output.sequences.astype(np.int32))
        scores = None if output.scores is None else tuple(to_jax(s) for s in output.scores)
        return GenerateOutput(sequences=sequences, scores=scores, sequences_scores=to_jax(output.sequences_scores))

    def _compiled(self, kind: str, plan: Plan, program):
        functions = self.__dict__.setdefault("_generation_programs", {})
        if (kind, plan) not in functions:
            functions[(kind, plan)] = jax.jit(lambda *args: program(plan, *args))
        return functions[(kind, plan)]

    # -- the traced programs -------------------------------------------------------------------------------------

    def _decode_program(self, plan: Plan, params, *arrays):
        bounds, sequences, cache, step, encoder_ids, _ = self._decoding_inputs(plan, params, *arrays)
        decode = beam_search if plan.is_beam_search else search
        return decode(JaxOps, plan, bounds, sequences, cache, step, encoder_ids)

    def _start_program(self, plan: Plan, params, *arrays):
        bounds, sequences, cache, step, encoder_ids, encoder_hidden_states = self._decoding_inputs(plan, params, *arrays)
        state = search_start(JaxOps, plan, bounds, sequences, cache, step, encoder_ids)
        if encoder_hidden_states is not None:  # kept for the steps, so the encoder runs once
            state["encoder_hidden_states"] = encoder_hidden_states
        return state

    def _body_program(self, plan: Plan, params, state, *arrays):
        bounds, _, _, step, encoder_ids, _ = self._decoding_inputs(
            plan, params, *arrays[:-1], state.get("encoder_hidden_states"), with_cache=False)
        return search_body(JaxOps, plan, bounds, step, encoder_ids)(state)

    def _decoding_inputs(self, plan: Plan, params, sequences, slot_mask, start, limit, encoder_ids, encoder_mask,
                         encoder_length, seed, encoder_hidden_states, with_cache: bool = True):
        """(bounds, token buffer, a fresh cache, the model step, encoder ids, encoder output) inside the traced
        program. ``encoder_hidden_states`` is the caller's encoder output, or the one the start program computed (a
        step program needs no fresh cache), or None: then the encoder runs here."""
        bounds = Bounds(start, limit, encoder_length, seed)
        if not self.config.is_encoder_decoder:
            def step(tokens, cache):
                out = self(input_ids=tokens, attention_mask=slot_mask, past_key_values=cache, params=params)
                return out.logits[:, -1, :].astype(jnp.float32), out.past_key_values

            cache = self.init_cache(plan.rows, plan.width) if with_cache else None
            return bounds, sequences, cache, step, None, None
        every = plan.rows_per_input  # the inputs are encoded once, then repeated for their rows
        if encoder_hidden_states is not None:
            encoder_hidden_states = encoder_hidden_states.astype(self.dtype)
            encoded = encoder_hidden_states[::every]
        else:
            encoded = self.encode(encoder_ids[::every], encoder_mask[::every], params=params).last_hidden_state
            encoder_hidden_states = rows_of_inputs(JaxOps, plan, encoded)

        def step(tokens, cache):
            out = self(attention_mask=encoder_mask, decoder_input_ids=tokens, decoder_attention_mask=slot_mask,
                       encoder_outputs=(encoder_hidden_states,), past_key_values=cache, params=params)
            return out.logits[:, -1, :].astype(jnp.float32), out.past_key_values

        cache = None
        if with_cache:
            cache = cache_rows_of_inputs(JaxOps, plan, self.init_cache(plan.batch, plan.width, encoded, params=params))
        return bounds, sequences, cache, step, encoder_ids, encoder_hidden_states


def _device_arrays(prepared: Prepared) -> tuple:
    """The buffers and int32 scalars the compiled program takes (scalars as arrays: one program per bucket)."""
    encoder_ids = prepared.encoder_ids if prepared.encoder_ids is not None else np.zeros((1, 1), np.int32)
    encoder_mask = prepared.encoder_mask if prepared.encoder_mask is not None else np.zeros((1, 1), np.int32)
    scalars = (prepared.start, prepared.limit, prepared.encoder_length, prepared.seed)
    start, limit, encoder_length, seed = (jnp.asarray(v, jnp.int32) for v in scalars)
    hidden = None if prepared.encoder_hidden_states is None else jnp.asarray(prepared.encoder_hidden_states)
    return (jnp.asarray(prepared.sequences), jnp.asarray(prepared.slot_mask), start, limit,
            jnp.asarray(encoder_ids), jnp.asarray(encoder_mask), encoder_length, seed, hidden)
