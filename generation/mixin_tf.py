"""``generate`` for the TensorFlow/Keras models: the whole decoding compiled by XLA (``tf.function(jit_compile=True)``
around a ``tf.while_loop``), one program per plan."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .config import GenerationConfig
from .decoding import Bounds, beam_search, cache_rows_of_inputs, rows_of_inputs, search, search_body, search_result, search_start
from .driver import GenerationDriver, stream
from .ops_tf import TFOps
from .settings import GenerateOutput, Plan, Prepared


class TFGenerationMixin(GenerationDriver):
    """Adds ``generate`` to a Keras model that has ``init_cache`` (and, for BART, ``get_encoder``)."""

    def generate(self, input_ids=None, attention_mask=None, generation_config: GenerationConfig | None = None, *,
                 seed: int | None = None, streamer=None, encoder_outputs=None, **kwargs):
        """Generate as transformers' ``generate`` (its settings as keyword arguments or in ``generation_config``);
        BART also takes ``encoder_outputs`` (then ``input_ids`` may be left out).

        Returns the sequences, an int32 tensor [batch * num_return_sequences, length], or with
        ``return_dict_in_generate=True`` an output with ``.sequences`` (and ``.scores`` with ``output_scores=True``,
        ``.sequences_scores`` for beam search). The decoding runs under XLA; ``seed`` makes sampling reproducible
        and the same in PyTorch, TensorFlow and Flax; ``streamer.put`` receives each new token as it is chosen.
        """
        return self._generate(input_ids, attention_mask, generation_config, seed, streamer, encoder_outputs, kwargs)

    def _run_decoding(self, prepared: Prepared, streamer) -> dict:
        arrays = _tensors(prepared)
        if streamer is None:
            result = self._compiled("decode", prepared.plan, self._decode_program)(*arrays)
            return tf.nest.map_structure(lambda t: t.numpy(), result)
        start = self._compiled("start", prepared.plan, self._start_program)
        body = self._compiled("body", prepared.plan, self._body_program)
        state = stream(prepared, lambda: start(*arrays), lambda state: body(state, *arrays), streamer)
        return tf.nest.map_structure(lambda t: t.numpy(), search_result(state))

    def _framework_output(self, output: GenerateOutput) -> GenerateOutput:
        def to_tf(value):
            return (None if value is None else tf.constant(value))
        scores = None if output.scores is None else tuple(to_tf(s) for s in output.scores)
        return GenerateOutput(sequences=tf.constant(output.sequences.astype(np.int32)), scores=scores,
                              sequences_scores=to_tf(output.sequences_scores))

    def _compiled(self, kind: str, plan: Plan, program):
        # In __dict__ directly: Keras would track a dict of tf.functions set as an attribute.
        functions = self.__dict__.setdefault("_generation_programs", {})
        if (kind, plan) not in functions:
            functions[(kind, plan)] = tf.function(lambda *args: program(plan, *args), jit_compile=True,
                                                  reduce_retracing=False)
        return functions[(kind, plan)]

    # -- the traced programs -------------------------------------------------------------------------------------

    def _decode_program(self, plan: Plan, *arrays):
        bounds, sequences, cache, step, encoder_ids, _ = self._decoding_inputs(plan, *arrays)
        decode = beam_search if plan.is_beam_search else search
        return decode(TFOps, plan, bounds, sequences, cache, step, encoder_ids)

    def _start_program(self, plan: Plan, *arrays):
        bounds, sequences, cache, step, encoder_ids, encoder_hidden_states = self._decoding_inputs(plan, *arrays)
        state = search_start(TFOps, plan, bounds, sequences, cache, step, encoder_ids)
        if encoder_hidden_states is not None:  # kept for the steps, so the encoder runs once
            state["encoder_hidden_states"] = encoder_hidden_states
        return state

    def _body_program(self, plan: Plan, state, *arrays):
        bounds, _, _, step, encoder_ids, _ = self._decoding_inputs(
            plan, *arrays[:-1], state.get("encoder_hidden_states"), with_cache=False)
        return search_body(TFOps, plan, bounds, step, encoder_ids)(state)

    def _decoding_inputs(self, plan: Plan, sequences, slot_mask, start, limit, encoder_ids, encoder_mask,
                         encoder_length, seed, encoder_hidden_states, with_cache: bool = True):
        """(bounds, token buffer, a fresh cache, the model step, encoder ids, encoder output) inside the traced
        program. ``encoder_hidden_states`` is the caller's encoder output, or the one the start program computed (a
        step program needs no fresh cache), or None: then the encoder runs here."""
        bounds = Bounds(start, limit, encoder_length, seed)
        if not self.config.is_encoder_decoder:
            def step(tokens, cache):
                out = self(input_ids=tokens, attention_mask=slot_mask, past_key_values=cache, training=False)
                return tf.cast(out.logits[:, -1, :], tf.float32), out.past_key_values

            cache = self.init_cache(plan.rows, plan.width) if with_cache else None
            return bounds, sequences, cache, step, None, None
        every = plan.rows_per_input  # the inputs are encoded once, then repeated for their rows
        if encoder_hidden_states is not None:
            encoder_hidden_states = tf.cast(encoder_hidden_states, self.compute_dtype)
            encoded = encoder_hidden_states[::every]
        else:
            encoded = self.get_encoder()(input_ids=encoder_ids[::every], attention_mask=encoder_mask[::every],
                                         training=False).last_hidden_state
            encoder_hidden_states = rows_of_inputs(TFOps, plan, encoded)

        def step(tokens, cache):
            out = self(attention_mask=encoder_mask, decoder_input_ids=tokens, decoder_attention_mask=slot_mask,
                       encoder_outputs=(encoder_hidden_states,), past_key_values=cache, training=False)
            return tf.cast(out.logits[:, -1, :], tf.float32), out.past_key_values

        cache = None
        if with_cache:
            cache = cache_rows_of_inputs(TFOps, plan, self.init_cache(plan.batch, plan.width, encoded))
        return bounds, sequences, cache, step, encoder_ids, encoder_hidden_states


def _tensors(prepared: Prepared) -> tuple:
    """The buffers and int32 scalars the compiled program takes (scalars as tensors: one program per bucket)."""
    encoder_ids = prepared.encoder_ids if prepared.encoder_ids is not None else np.zeros((1, 1), np.int32)
    encoder_mask = prepared.encoder_mask if prepared.encoder_mask is not None else np.zeros((1, 1), np.int32)
    start, limit, encoder_length, seed = (tf.constant(v, tf.int32) for v in
                                          (prepared.start, prepared.limit, prepared.encoder_length, prepared.seed))
    hidden = None if prepared.encoder_hidden_states is None else tf.constant(prepared.encoder_hidden_states)
    return (tf.constant(prepared.sequences), tf.constant(prepared.slot_mask), start, limit,
            tf.constant(encoder_ids), tf.constant(encoder_mask), encoder_length, seed, hidden)
