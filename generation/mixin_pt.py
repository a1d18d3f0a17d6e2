"""``generate`` for the PyTorch models: the decoding in eager PyTorch with a static cache (a Python loop), the model
step optionally under ``torch.compile``."""

from __future__ import annotations

import numpy as np
import torch

from .config import GenerationConfig
from .decoding import Bounds, beam_search, search, search_body, search_result, search_start
from .driver import GenerationDriver, stream
from .ops_pt import TorchOps
from .settings import GenerateOutput, Prepared


def use_column_major_weights(model: torch.nn.Module) -> None:
    """Store every float32 linear layer's weight [out, in] column-major (its transpose contiguous), keeping its
    values, shape and Parameter object, so state dicts, tying and optimizers see no change.

    Decoding multiplies one row per sequence by each weight; CPU BLAS streams a column-major float32 weight about
    twice as fast then (27 against 14 GB/s for OPT-125m's LM head here, 21 against 13 for its feed-forward
    weights), and a step reads every weight once, so this sets the speed of generation. Other dtypes stay (or
    become again) row-major: bfloat16's column-major kernels are 8x slower here. In place, per parameter.
    """
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        weight = module.weight.data
        if weight.dtype == torch.float32 and not weight.t().is_contiguous():
            module.weight.data = weight.t().contiguous().t()
        elif weight.dtype != torch.float32 and not weight.is_contiguous():  # e.g. cast to bfloat16 after a generate
            module.weight.data = weight.contiguous()


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
        use_column_major_weights(self)
        return self._generate(input_ids, attention_mask, generation_config, seed, streamer, encoder_outputs, kwargs)

    def _run_decoding(self, prepared: Prepared, streamer) -> dict:
        plan, device = prepared.plan, self.device
        ops = TorchOps(device)
        bounds, sequences, cache, step, encoder_ids = self._decoding_inputs(prepared, device)
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

    def _decoding_inputs(self, prepared: Prepared, device):
        """(bounds, token buffer, a fresh cache, the model step, encoder ids) as tensors on the model's device."""
        plan = prepared.plan

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
        if prepared.encoder_hidden_states is not None:
            encoder_hidden_states = tensor(prepared.encoder_hidden_states).to(self.dtype)
        else:
            encoder_hidden_states = self.get_encoder()(input_ids=encoder_ids.long(),
                                                       attention_mask=encoder_mask).last_hidden_state

        def step(tokens, cache):
            out = call(attention_mask=encoder_mask, decoder_input_ids=tokens.long(), decoder_attention_mask=slot_mask,
                       encoder_outputs=(encoder_hidden_states,), past_key_values=cache)
            return out.logits[:, -1, :].float(), out.past_key_values

        cache = self.init_cache(plan.rows, plan.width, encoder_hidden_states)
        return bounds, sequences, cache, step, encoder_ids
