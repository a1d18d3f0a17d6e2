"""Glue between our PyTorch models' own losses and data-parallel training (DDP, FSDP's ``fully_shard``).

Both average the ranks' gradients. The models' losses are means over counted items (label tokens that are not
-100, examples), so when ranks hold unequally many items the average of their means is not the global batch's
mean; ``global_mean_loss`` reweights each rank's loss so that it is.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def count_labels(labels: torch.Tensor, *, causal: bool = False, ignore_index: int = -100) -> torch.Tensor:
    """How many labels a token loss averages over: those not equal to ``ignore_index``; ``causal=True`` for the
    causal LMs, whose loss skips each row's first label (position i predicts label i + 1)."""
    if causal:
        labels = labels[:, 1:]
    return (labels != ignore_index).sum()


def global_mean_loss(loss: torch.Tensor, count, group=None) -> torch.Tensor:
    """This rank's mean ``loss`` over its ``count`` items, reweighted to ``loss * count * world / global count``.

    DDP and ``fully_shard`` divide the summed gradients by the world size, so the gradients of the reweighted losses
    average to the gradient of the mean over every rank's items, exactly as one process on the global batch would
    compute it; the reweighted losses too average to that mean. A rank with no items (a NaN mean) contributes zero
    loss and zero gradients. Without an initialized process group, ``loss`` is returned as it is.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return loss
    count = torch.as_tensor(count, dtype=torch.float64, device=loss.device)
    total = count.clone()
    dist.all_reduce(total, group=group)
    weight = (count * dist.get_world_size(group) / total).to(loss.dtype)
    return torch.where(count > 0, loss * weight, torch.zeros_like(loss))
