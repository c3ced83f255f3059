"""te.recalibrate_batchnorm inside real torch.distributed process groups (gloo, 3 CPU processes).

Every rank passes its own shard — of unequal sizes, one of them empty — and must end with
identical statistics equal to one process over the union of the shards: plain model,
DDP-wrapped SyncBatchNorm model, layerwise order; and a failure on one rank must roll back
every rank.
"""

from __future__ import annotations

import datetime
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn

import traineval as te
import traineval.examples as ex

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

WORLD = 3
SHARDS = {0: [0, 1, 2], 1: [3], 2: []}      # batch indices per rank: unequal, one rank empty
DEADLINE_S = 150


def batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.randn(n, 3, 12, 12, generator=g) * 2 + 1 for n in (5, 3, 7, 2)]


def mlp_batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(8)
    return [torch.randn(n, 20, generator=g) + 3 for n in (6, 2, 9, 4)]


def sync_resnet() -> nn.Module:
    return nn.SyncBatchNorm.convert_sync_batchnorm(ex.small_resnet())


def stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)  # three processes share the CPU cores
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results: dict[str, object] = {}
        mine = [batches()[i] for i in SHARDS[rank]]
        model = ex.small_resnet()
        report = te.recalibrate_batchnorm(model, mine, progress=False)
        results["plain"] = (stats(model), report.to_dict())

        inner = ex.small_resnet()
        ddp = DDP(inner)                  # CPU DDP refuses SyncBatchNorm: that one is tested below
        modes = te.modes(ddp)
        report = te.recalibrate_batchnorm(ddp, [(x, 0) for x in mine], progress=False)
        results["ddp"] = (stats(inner), report.to_dict(), te.modes(ddp) == modes)

        sync = sync_resnet()
        report = te.recalibrate_batchnorm(sync, mine, progress=False)
        results["sync"] = (stats(sync), report.to_dict())

        mlp = ex.mlp()
        shard = [mlp_batches()[i] for i in SHARDS[rank]]
        report = te.recalibrate_batchnorm(mlp, shard, order="layerwise", progress=False)
        results["layerwise"] = (stats(mlp), report.to_dict())

        model = ex.small_resnet()
        before = {k: v.clone() for k, v in model.state_dict().items()}

        def data():
            for i, x in enumerate(mine):
                if rank == 0 and i == 1:
                    raise RuntimeError("bad batch on rank 0")
                yield x

        try:
            te.recalibrate_batchnorm(model, data(), progress=False)
            results["failure"] = ("no error", None)
        except Exception as exc:  # recorded for the parent to check
            same = all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
            results["failure"] = (f"{type(exc).__name__}: {exc}", same)
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("bnstats_dist")
    ctx = mp.start_processes(worker, args=(free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"distributed recalibration did not finish within {DEADLINE_S}s (hang?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def assert_rank_equal(per_rank: list[dict[str, torch.Tensor]]) -> None:
    for other in per_rank[1:]:
        for k, v in per_rank[0].items():
            assert torch.equal(v, other[k]), f"ranks disagree on {k}"


def assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    for k, v in want.items():
        if "num_batches" in k:
            assert got[k].item() == v.item(), k
        else:
            rel = ((got[k].double() - v.double()) / v.double().abs()).abs().max().item()
            assert rel <= 1e-6, (k, rel)


def test_plain_model_equals_one_process_over_the_union(ranks):
    per_rank = [r["plain"][0] for r in ranks]
    assert_rank_equal(per_rank)
    reference = ex.small_resnet()
    te.recalibrate_batchnorm(reference, batches(), progress=False)
    assert_close(per_rank[0], stats(reference))
    report = ranks[0]["plain"][1]
    assert report["world_size"] == WORLD and report["batches"] == 3 and ranks[2]["plain"][1]["batches"] == 0
    assert report["layers"][0]["samples"] == sum(x.shape[0] for x in batches()) * 12 * 12
    assert report["layers"][0]["calls"] == len(batches())


def test_ddp_wrapped_model(ranks):
    per_rank = [r["ddp"][0] for r in ranks]
    assert_rank_equal(per_rank)
    assert all(r["ddp"][2] for r in ranks)                   # modes restored on every rank
    assert_close(per_rank[0], ranks[0]["plain"][0])          # same as the unwrapped model
    assert ranks[0]["ddp"][1]["layers"][0]["name"] == "stem.1"   # names of model.module


def test_syncbatchnorm_model(ranks):
    """SyncBatchNorm normalises with the local batch during the pass: no per-batch collective,
    so the empty rank cannot deadlock; the population statistics are all-reduced once."""
    per_rank = [r["sync"][0] for r in ranks]
    assert_rank_equal(per_rank)
    reference = sync_resnet()                                 # no process group here
    te.recalibrate_batchnorm(reference, batches(), progress=False)
    assert_close(per_rank[0], stats(reference))
    assert {x["type_name"] for x in ranks[0]["sync"][1]["layers"]} == {"SyncBatchNorm"}


def test_layerwise_across_ranks(ranks):
    per_rank = [r["layerwise"][0] for r in ranks]
    assert_rank_equal(per_rank)
    reference = ex.mlp()
    report = te.recalibrate_batchnorm(reference, mlp_batches(), order="layerwise", progress=False)
    assert_close(per_rank[0], stats(reference))
    assert ranks[0]["layerwise"][1]["rounds"] == report.rounds


def test_failure_on_one_rank_rolls_back_every_rank(ranks):
    messages = [r["failure"][0] for r in ranks]
    assert messages[0] == "RuntimeError: bad batch on rank 0"
    assert all(m.startswith("RemoteFailure: recalibration failed on 1 other rank") for m in messages[1:])
    assert all(r["failure"][1] for r in ranks)                # every model restored bit for bit
