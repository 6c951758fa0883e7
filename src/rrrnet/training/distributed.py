"""Data-parallel training on ``torch.distributed``: ``rrrnet fit --nproc N`` or
``torchrun --nproc-per-node N -m rrrnet fit ...`` (several nodes: torchrun's ``--nnodes``,
``--node-rank``, ``--rdzv-endpoint``).

Each process trains the same model on a disjoint shard of every epoch's shuffled images
(``DistributedSampler`` seeded per epoch); ``DistributedDataParallel`` averages the gradients,
so every process takes the same optimiser step and the weights stay identical. Gloo on CPU, NCCL
on GPU. The batch size is per process (the global batch is N times ``--batch-size``).

What each process sees:

* the frozen stump is warmed on every training image by every process (same draws, same
  statistics), and every process scores the whole validation set (same weights, so the same
  early-stopping decision everywhere);
* BatchNorm running statistics of the trained layers and the weight average are taken from
  rank 0 after every epoch's steps (:class:`SyncReplicas`), so all processes hold rank 0's;
* only rank 0 writes the run folder, draws progress bars and logs; every process restores the
  same checkpoint on ``--resume``.

The history's training loss and error are rank 0's shard's.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from ..errors import ConfigError, RRRNetError
from .events import Callback, TrainState
from .stump import trained_part


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` data-parallel processes."""

    rank: int
    size: int
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def from_main(self, work: Callable[[], Any]) -> Any:
        """Rank 0 runs ``work``; every process gets its result (or rank 0's error, raised
        everywhere with the same message, so that no process waits for ever)."""
        box: list[Any] = [None]
        if self.main:
            try:
                box[0] = ("ok", work())
            except RRRNetError as err:
                box[0] = ("error", type(err), str(err))
        dist.broadcast_object_list(box, src=0)
        if box[0][0] == "error":
            raise box[0][1](box[0][2])
        return box[0][1]


def from_environment(device: str = "auto") -> World | None:
    """The world torchrun describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` (None when not
    launched by it, or alone), its process group started: NCCL where CUDA is used, else gloo."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return world


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, argv: Sequence[str]) -> int:
    """``rrrnet fit --nproc N``: run ``rrrnet <argv>`` as N processes under torchrun on this
    machine; returns the exit code (rank 0's user error exits every process with 2)."""
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "rrrnet", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    return subprocess.call(command, env=env)


class SyncReplicas(Callback):
    """Wraps what a step runs in ``DistributedDataParallel`` (gradients averaged between the
    processes) and, after every epoch's steps, copies rank 0's BatchNorm statistics and weight
    average to the other processes."""

    order = 950   # after the frozen stump has set state.forward

    def on_fit_start(self, state: TrainState) -> None:
        from torch.nn.parallel import DistributedDataParallel
        device_ids = [state.device.index or 0] if state.device.type == "cuda" else None
        # Buffers are synchronised once per epoch, from rank 0 (on_train_epoch_end).
        state.forward = DistributedDataParallel(state.forward, device_ids=device_ids,
                                                forward_sync_buffers=False)

    def on_train_epoch_end(self, state: TrainState) -> None:
        for module in (trained_part(state.model), state.ema):
            if module is not None:
                for tensor in (*module.buffers(), *module.parameters()):
                    dist.broadcast(tensor.data, src=0)
