"""Multi-process training on PyTorch's own engine: DistributedDataParallel + DistributedSampler.

    torchrun --nproc_per_node=K -m agan.train --preset paper --out runs/x     # K GPUs (nccl)
    torchrun --nproc_per_node=2 -m agan.train --preset cpu --device cpu ...   # CPU processes (gloo)

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; :func:`setup` joins the process group (nccl on
CUDA, gloo on CPU) and picks this process's device (cuda:LOCAL_RANK). ``cfg.batch_size`` is per
process, so the effective batch is K * batch_size. Only rank 0 writes logs, samples and
checkpoints. A process group that the caller initialised already (tests, notebooks) is reused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

if TYPE_CHECKING:
    from agan.config import Config

__all__ = ["DistInfo", "ShardedBatches", "any_flag", "barrier", "resolve_workers", "setup", "teardown",
           "wrap"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when setup() created the group (and teardown() must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join (or reuse) the process group when WORLD_SIZE > 1; return (info, this process's device)."""
    if dist.is_available() and dist.is_initialized():
        info = DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), True)
    else:
        return DistInfo(), device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return info, device


def teardown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module | None, info: DistInfo, device: torch.device) -> nn.Module | None:
    """DDP-wrap a model when running with several processes (identity otherwise)."""
    if model is None or not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, gradient_as_bucket_view=True)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any rank (a collective: call it on all ranks together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def resolve_workers(num_workers: int, device: torch.device) -> int:
    """Config.num_workers -> DataLoader workers: -1 (auto) = min(4, CPUs - 1) for a CUDA device, whose steps
    outrun the synthesiser in the main process, and 0 on the CPU, where the cores are busy training. Under
    torchrun the CPUs are shared among the node's processes (LOCAL_WORLD_SIZE)."""
    if num_workers >= 0:
        return num_workers
    if device.type != "cuda":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(4, per_process - 1))


class ShardedBatches:
    """Endless batches whose order is a function of (seed, epoch, rank) only, so a resumed run at step s
    sees exactly the batches an uninterrupted run would (DistributedSampler shards the data per rank)."""

    def __init__(self, dataset: Dataset, cfg: Config, info: DistInfo, device: torch.device):
        self.dataset, self.cfg = dataset, cfg
        self.sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=True)
        self.per_epoch = len(self.sampler) // cfg.batch_size
        if self.per_epoch == 0:
            raise ValueError(f"the training set has {len(dataset)} items, fewer than batch_size "
                             f"({cfg.batch_size}) x processes ({info.world_size})")
        self.pin = device.type == "cuda"
        self.workers = resolve_workers(cfg.num_workers, device)

    def from_step(self, step: int):
        while True:
            epoch, offset = divmod(step, self.per_epoch)
            self.sampler.set_epoch(epoch)
            # e.g. RaindropPairs: random crops per (seed, epoch, index)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            indices = list(self.sampler)[offset * self.cfg.batch_size:]
            loader = DataLoader(self.dataset, batch_size=self.cfg.batch_size, sampler=indices, drop_last=True,
                                num_workers=self.workers, pin_memory=self.pin,
                                generator=torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch))
            for batch in loader:
                yield batch
                step += 1
