"""The static key/value cache of the decoders in all three frameworks, built for compiled generation.

A generation loop under ``tf.function(jit_compile=True)``, ``jax.jit`` or ``torch.compile`` needs shapes that do not
change from step to step, so the cache is preallocated to ``max_length`` slots and each call writes its new keys and
values at ``index`` and returns the cache with ``index`` advanced. Cross-attention keys and values are computed once
per encoding and stored beside them. The decoders also keep transformers' dynamic (concatenating) cache. PyTorch
writes into the slots in place (the returned cache is the advanced one); TF and JAX return new arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class StaticCache:
    """layers: per decoder layer ``(key, value)`` or ``(key, value, cross_key, cross_value)``, each
    [batch, heads, slots, head_dim] (self-attention: ``max_length`` slots); index: the slots filled, a scalar
    (int32 in TF and JAX, int64 in PyTorch)."""

    layers: tuple[tuple[Any, ...], ...]
    index: Any

    @property
    def max_length(self) -> int:
        return int(self.layers[0][0].shape[2])

    def to_legacy_cache(self) -> tuple[tuple[Any, ...], ...]:
        """The filled part, in transformers' legacy layout (outside compiled code: ``index`` must be concrete)."""
        filled = int(self.index)
        if filled > self.max_length:
            raise ValueError(f"the StaticCache overflowed: its index {filled} is past its {self.max_length} slots, "
                             f"so its keys and values are NaN; make it with init_cache(batch, max_length) for as "
                             f"many tokens as the prompt and every step write")
        return tuple((k[:, :, :filled], v[:, :, :filled], *cross) for k, v, *cross in self.layers)
