"""PyTorch data parallel over 2 CPU processes (gloo): DDP and FSDP2's ``fully_shard`` take the same step as one
process on the global batch.

The ranks hold unequally many label tokens (the loss is a mean over tokens that are not -100), so each rank's loss
goes through ``global_mean_loss``, which reweights it to ``loss * count * world / global count``: the ranks'
averaged gradients are then those of the global batch's token mean. One model (a tiny RobertaForMaskedLM) and one
spawn of 2 processes serve both checks; SGD, so the weights after the step compare the gradients themselves.
"""

import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from rosettazoo.common.training_pt import count_labels, global_mean_loss
from rosettazoo.roberta import RobertaConfig, RobertaForMaskedLM

WORLD = 2
LEARNING_RATE = 0.5
# Label tokens per row: the ranks get rows (0, 1) and (2, 3), so 3 and 11 label tokens.
LABELS_PER_ROW = (1, 2, 4, 7)
MODES = ("ddp", "fsdp")

pytestmark = pytest.mark.xdist_group("torch_distributed")  # one worker, so the module fixture runs once


def tiny_model() -> RobertaForMaskedLM:
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, max_position_embeddings=40, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
    return RobertaForMaskedLM(config)


def global_batch():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, 99, (4, 9), generator=generator)
    labels = torch.full_like(input_ids, -100)
    for row, count in enumerate(LABELS_PER_ROW):
        labels[row, :count] = input_ids[row, :count]
    return input_ids, labels


def sgd_step(model, forward, input_ids, labels):
    """One SGD step on ``forward``'s loss; returns the loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss = forward(input_ids=input_ids, labels=labels).loss
    loss = global_mean_loss(loss, count_labels(labels))
    loss.backward()
    optimizer.step()
    return loss.detach()


def wrap(model, mode: str):
    if mode == "ddp":
        return DistributedDataParallel(model)
    mesh = init_device_mesh("cpu", (WORLD,))
    for layer in model.roberta.encoder.layer:
        fully_shard(layer, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def full_weights(model) -> dict[str, np.ndarray]:
    """The whole parameters (FSDP keeps shards as DTensors: gathering them is a collective, every rank calls it)."""
    state = model.state_dict()
    return {name: (value.full_tensor() if hasattr(value, "full_tensor") else value).detach().numpy().copy()
            for name, value in state.items()}


def rank_main(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        input_ids, labels = global_batch()
        rows = slice(rank * 2, rank * 2 + 2)
        for mode in MODES:
            model = tiny_model()
            model.load_state_dict(torch.load(os.path.join(folder, "init.pt")))
            wrapped = wrap(model, mode)
            share = sgd_step(model, wrapped, input_ids[rows], labels[rows])
            dist.all_reduce(share)
            weights = full_weights(model)
            if rank == 0:
                np.savez(os.path.join(folder, f"{mode}.npz"), loss=(share / WORLD).numpy(), **weights)
    finally:
        dist.destroy_process_group()
    # Leave without interpreter finalization: under load, gloo/FSDP worker threads still being torn down then can
    # abort the process (SIGABRT, "terminate called without an active exception") after its results are written.
    os._exit(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """{mode: the weights and loss after one step on 2 ranks}, and one process's step on the global batch."""
    folder = tmp_path_factory.mktemp("torch_distributed")
    model = tiny_model()
    torch.save(model.state_dict(), folder / "init.pt")
    initial = full_weights(model)
    mp.spawn(rank_main, args=(free_port(), str(folder)), nprocs=WORLD, join=True)
    input_ids, labels = global_batch()
    loss = sgd_step(model, model, input_ids, labels)
    single = {"loss": loss.numpy(), **full_weights(model)}
    return {mode: dict(np.load(folder / f"{mode}.npz")) for mode in MODES}, single, initial


def test_the_ranks_hold_unequal_label_counts():
    """Otherwise averaging the ranks' plain means would give the global mean too, and the tests could not tell."""
    model = tiny_model().eval()
    input_ids, labels = global_batch()
    with torch.no_grad():
        halves = [model(input_ids=input_ids[rows], labels=labels[rows]).loss for rows in (slice(0, 2), slice(2, 4))]
        whole = model(input_ids=input_ids, labels=labels).loss
    assert abs(float(sum(halves) / 2 - whole)) > 1e-2


@pytest.mark.parametrize("mode", MODES)
def test_one_step_equals_the_single_process_step(steps, mode):
    distributed, single, initial = steps
    result = distributed[mode]
    assert set(result) == set(single)
    assert abs(float(result["loss"] - single["loss"])) <= 1e-5
    assert max(float(np.abs(single[name] - initial[name]).max()) for name in initial) > 0.1  # the step moved
    differences = {name: float(np.abs(result[name] - single[name]).max()) for name in single if name != "loss"}
    assert max(differences.values()) <= 1e-5, sorted(differences.items(), key=lambda item: -item[1])[:3]
