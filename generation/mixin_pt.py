"""``generate`` for the PyTorch models: the decoding in eager PyTorch with a static cache (a Python loop), the model
step optionally under ``torch.compile``."""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch

from .config import GenerationConfig
from .decoding import Bounds, beam_search, cache_rows_of_inputs, rows_of_inputs, search, search_body, search_result, search_start
from .driver import GenerationDriver, stream
from .ops_pt import TorchOps
from .settings import GenerateOutput, Prepared


@contextlib.contextmanager
def onednn_linear_layers(model: torch.nn.Module, enabled: bool = True):
    """Run the model's float32 CPU linear layers through oneDNN's inner product while decoding.

    A decoding step multiplies a few rows by every weight, so generation is bound by how fast the weights stream.
    On this kind of CPU, oneDNN's kernel streams a [out, in] weight at 27-30 GB/s for one row and 13-15 GB/s for
    eight, against 13-14 and 5-7 GB/s for the BLAS call behind ``F.linear`` (measured on OPT-125m's shapes), on
    the same weights in place: nothing is copied or repacked. Other dtypes and devices, and compiled steps, keep
    ``F.linear``. The layers get their own ``forward`` back on exit.
    """
    linear = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    usable = enabled and linear is not None and torch.backends.mkldnn.is_available()
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and usable
              and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu"]
    for layer in layers:
        layer.forward = functools.partial(_onednn_linear, linear, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


# With 2-16 rows, oneDNN multiplies a large weight about 1.2-1.4x faster as the left operand, [out, in] x [rows, in]
# -> [out, rows], than the usual way (the same values, bit for bit: it is the same dot product per output); up to
# 768 x 768 weights and from 32 rows the usual way is as fast or faster.
WEIGHT_STATIONARY_ROWS = (2, 16)
WEIGHT_STATIONARY_MIN_SIZE = 2304 * 768


def _onednn_linear(linear, layer: torch.nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    rows = inputs.numel() // inputs.shape[-1]
    low, high = WEIGHT_STATIONARY_ROWS
    if not low <= rows <= high or layer.weight.numel() < WEIGHT_STATIONARY_MIN_SIZE:
        return linear(inputs, layer.weight, layer.bias, "none", [], "")
    by_output = linear(layer.weight, inputs.reshape(rows, -1), None, "none", [], "")
    out = by_output.t() if layer.bias is None else torch.add(by_output.t(), layer.bias)
    return out.reshape(*inputs.shape[:-1], -1)


class GenerationMixin(GenerationDriver):
    """Adds ``generate`` to a PyTorch model that has ``init_cache`` (and, for BART, ``get_encoder``)."""

    @torch.no_grad()
    def generate(self, input_ids=None, attention_mask=None, generation_config: GenerationConfig | None = None, *,
                 seed: int | None = None, streamer=None, encoder_outputs=None, compile: bool = False, **kwargs):
        """Generate as transformers' ``generate`` (its settings as keyword arguments or in ``generation_config``);
        BART also takes ``encoder_outputs`` (then ``input_ids`` may be left out).

        Returns the sequences, a LongTensor [batch * num_return_sequences, length], or with
        ``return_dict_in_generate=True`` an output with ``.sequences`` (and ``.scores`` with ``output_scores=True``,
        ``.sequences_scores`` for beam search). ``seed`` makes sampling reproducible and the same in PyTorch,
        TensorFlow and Flax; ``streamer.put`` receives each new token as it is chosen; ``compile=True`` runs the
        model step under ``torch.compile`` (one compilation per shape; worth it for long generations).
        """
        self._generation_compile = compile
        with onednn_linear_layers(self, enabled=not compile):
            return self._generate(input_ids, attention_mask, generation_config, seed, streamer, encoder_outputs,
                                  kwargs)

    def _run_decoding(self, prepared: Prepared, streamer) -> dict:
        plan, ops = prepared.plan, TorchOps(self.device)
        bounds, sequences, cache, step, encoder_ids = self._decoding_inputs(prepared, ops)
        if streamer is not None:
            state = stream(prepared, lambda: search_start(ops, plan, bounds, sequences, cache, step, encoder_ids),
                           search_body(ops, plan, bounds, step, encoder_ids), streamer)
            result = search_result(state)
        else:
            decode = beam_search if plan.is_beam_search else search
            result = decode(ops, plan, bounds, sequences, cache, step, encoder_ids)
        return {key: value.cpu().numpy() for key, value in result.items()}

    def _framework_output(self, output: GenerateOutput) -> GenerateOutput:
        def to_torch(value):
            return (None if value is None else torch.from_numpy(np.asarray(value)))
        scores = None if output.scores is None else tuple(to_torch(s) for s in output.scores)
        return GenerateOutput(sequences=to_torch(output.sequences), scores=scores,
                              sequences_scores=to_torch(output.sequences_scores))

    def _compiled_forward(self):
        # In __dict__ directly: a compiled module set as an attribute would register as a submodule.
        return self.__dict__.setdefault("_generation_forward", torch.compile(self.forward))

    def _decoding_inputs(self, prepared: Prepared, ops: TorchOps):
        """(bounds, token buffer, a fresh cache, the model step, encoder ids) as tensors on the ops' device."""
        plan, device = prepared.plan, ops.device

        def tensor(value):
            return torch.as_tensor(np.asarray(value), device=device)

        bounds = Bounds(*(tensor(np.int32(value)) for value in
                          (prepared.start, prepared.limit, prepared.encoder_length, prepared.seed)))
        sequences, slot_mask = tensor(prepared.sequences), tensor(prepared.slot_mask).long()
        call = self._compiled_forward() if self._generation_compile else self
        if not self.config.is_encoder_decoder:
            def step(tokens, cache):
                out = call(input_ids=tokens.long(), attention_mask=slot_mask, past_key_values=cache)
                return out.logits[:, -1, :].float(), out.past_key_values

            return bounds, sequences, self.init_cache(plan.rows, plan.width), step, None
        encoder_ids, encoder_mask = tensor(prepared.encoder_ids), tensor(prepared.encoder_mask).long()
        every = plan.rows_per_input  # the inputs are encoded once, then repeated for their rows
        # Without padding the attention over the source needs no mask: no step builds and adds one.
        step_encoder_mask = None if bool(encoder_mask.all()) else encoder_mask
        if prepared.encoder_hidden_states is not None:
            encoded = tensor(prepared.encoder_hidden_states[::every]).to(self.dtype)
        else:
            source_mask = None if step_encoder_mask is None else encoder_mask[::every]
            encoded = self.get_encoder()(input_ids=encoder_ids[::every].long(),
                                         attention_mask=source_mask).last_hidden_state
        encoder_hidden_states = rows_of_inputs(ops, plan, encoded)

        def step(tokens, cache):
            out = call(attention_mask=step_encoder_mask, decoder_input_ids=tokens.long(), decoder_attention_mask=slot_mask,
                       encoder_outputs=(encoder_hidden_states,), past_key_values=cache)
            return out.logits[:, -1, :].float(), out.past_key_values

        cache = cache_rows_of_inputs(ops, plan, self.init_cache(plan.batch, plan.width, encoded))
        return bounds, sequences, cache, step, encoder_ids
