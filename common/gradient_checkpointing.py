"""The switch for gradient checkpointing of PyTorch and TF models, whose layer stacks (encoder, decoder) each carry a
``gradient_checkpointing`` flag that their layer loop reads. (Flax rebuilds its module instead.)"""

from __future__ import annotations

from .validation import check_gradient_checkpointing


class LayerStackCheckpointing:
    """Mixin for a model whose ``_layer_stacks()`` lists the stacks that carry the flag."""

    def _set_gradient_checkpointing(self, enabled: bool) -> None:
        if enabled:
            check_gradient_checkpointing(self.config)
        for stack in self._layer_stacks():
            stack.gradient_checkpointing = enabled

    def gradient_checkpointing_disable(self) -> None:
        self._set_gradient_checkpointing(False)

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(stack.gradient_checkpointing for stack in self._layer_stacks())
