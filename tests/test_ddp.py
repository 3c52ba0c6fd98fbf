"""DistributedDataParallel on CPU: two gloo processes train a few steps; replicas must hold identical
weights, match one process training on the union of their batches, and only rank 0 writes files."""

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agan.checkpoint import safe_load
from agan.train.distributed import DistInfo
from agan.train.loop import Trainer, train
from tests.test_train import Pairs, tiny

WORLD = 2
STEPS = 3


def _cfg(batch_size):
    # fp32: the DDP-vs-one-process comparison below holds to float32 summation order; under bf16 autocast
    # (auto on CPUs with native bf16) batches of 2 and 4 round their activations differently
    return tiny(iterations=STEPS, batch_size=batch_size, device="cpu", precision="fp32", log_every=1,
                val_every=STEPS, ckpt_every=STEPS, sample_every=STEPS)


def _worker(rank: int, port: int, out: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        res = train(_cfg(2), out, progress=False, train_set=Pairs(8, flip=False),
                    val_set=Pairs(2, seed=9, flip=False))
        torch.save({"step": res.step, "G": res.G.state_dict(), "D": res.D.state_dict(),
                    "checkpoint": str(res.checkpoint)}, os.path.join(result, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_keep_identical_replicas(tmp_path):
    out, result = tmp_path / "run", tmp_path / "result"
    result.mkdir()
    mp.start_processes(_worker, args=(_free_port(), str(out), str(result)), nprocs=WORLD,
                       start_method="spawn")
    r0, r1 = (torch.load(result / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    assert r0["step"] == r1["step"] == STEPS
    for net in ("G", "D"):
        for k in r0[net]:
            assert torch.equal(r0[net][k], r1[net][k]), f"replicas differ in {net}.{k}"

    # rank 0 alone wrote the run: one header line, one metrics row per step, the checkpoint = the replicas
    log = (out / "train.log").read_text()
    assert log.count("x2 processes") == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, STEPS + 1))
    assert r0["checkpoint"].endswith("last.pt") and r1["checkpoint"] == "None"
    ck = safe_load(out / "checkpoints" / "last.pt")
    assert all(torch.equal(ck["G"][k], v) for k, v in r0["G"].items())

    # gradients were averaged: one process with the union of both ranks' batches (DistributedSampler
    # shards each epoch's permutation, so step k's union is the same 4 samples) reaches the same weights
    single = train(_cfg(4), tmp_path / "single", progress=False, train_set=Pairs(8, flip=False),
                   val_set=Pairs(2, seed=9, flip=False))
    init = Trainer(_cfg(4), tmp_path / "init", False, False, False, DistInfo(), torch.device("cpu"),
                   Pairs(8), None).gan.G_bare.state_dict()
    moved = 0.0
    for k, v in single.G.state_dict().items():
        # float32 sums in another order; Adam's steps are lr-sized, so 1e-5 is far below a step's effect
        torch.testing.assert_close(r0["G"][k], v, rtol=1e-4, atol=1e-5,
                                   msg=f"DDP and single-process differ: {k}")
        moved = max(moved, (v - init[k]).abs().max().item())
    assert moved > 1e-4  # the comparison is not vacuous: the weights did move
