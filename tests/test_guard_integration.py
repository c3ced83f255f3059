"""te.guard inside real training set-ups: DistributedDataParallel over 2 gloo processes, AMP
autocast, gradient accumulation, and torch.compile (degrades with one notice, never crashes)."""

from __future__ import annotations

import datetime
import socket
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te
import traineval.examples as ex

WORLD = 2
DEADLINE_S = 120


def batches(n: int, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 20, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


# ------------------------------------------------------------------------------ DDP (gloo)


def ddp_worker(rank: int, port: int, out: str) -> None:
    """One rank of the DDP test, run as ``python test_guard_integration.py RANK PORT OUT``."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from traineval.runtime._scans import batchnorm_values

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        inner = ex.mlp()
        ddp = DDP(inner)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
        found: list[te.Diagnostic] = []
        data = batches(3, 16, seed=rank)
        with te.guard(ddp, opt, on=found.append) as g:
            ddp.train()
            for x, y in data:
                step(ddp, opt, x, y)
            ddp.eval()                                     # validation ...
            with torch.no_grad():
                ddp(data[0][0])
            for x, y in data:                              # ... and training never calls train()
                step(ddp, opt, x, y)
            ddp.train()
            small = 4 if rank == 1 else 16                 # an uneven last shard on rank 1
            step(ddp, opt, data[0][0][:small], data[0][1][:small])
        sync = nn.SyncBatchNorm(8).train()
        torch.save(
            {
                "found": [d.to_dict() for d in found],
                "counts": g.summary().counts,
                "params": torch.cat([p.detach().flatten() for p in inner.parameters()]),
                "sync_values": batchnorm_values(sync, torch.randn(4, 8)),
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:  # the OS picks a free port
        return server.getsockname()[1]


@pytest.mark.distributed
def test_ddp_two_gloo_processes(tmp_path) -> None:
    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, __file__, str(rank), str(port), str(tmp_path)]) for rank in range(WORLD)
    ]
    try:  # a hang fails: wait() raises TimeoutExpired after the deadline
        codes = [p.wait(timeout=DEADLINE_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0] * WORLD
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for rank, result in enumerate(ranks):
        found = [(d["code"], d["where"]) for d in result["found"]]
        # module paths are relative to the wrapped model ("1", not "module.1")
        expected = [("TE102", "")] + ([("TE105", "1")] if rank == 1 else [])
        assert found == expected, rank
        assert all(d["data"]["rank"] == rank and f"[rank {rank}]" in d["message"] for d in result["found"])
        assert result["counts"]["TE102"] == {"": 3}
        assert result["sync_values"] == 4 * WORLD          # SyncBatchNorm normalises over every process
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])  # DDP still keeps replicas in sync


# ------------------------------------------------------------------------------ AMP autocast


def test_autocast_bfloat16_loop() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = ex.mlp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(self.body(x), 0.1)            # TE103 in eval

    found: list[te.Diagnostic] = []
    outputs = []
    for guarded in (False, True):
        torch.manual_seed(0)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        g = te.guard(model, opt, on=found.append) if guarded else None
        outs = []
        for x, y in batches(3, 16, seed=0):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
                loss = F.cross_entropy(out.float(), y)
            loss.backward()
            outs += [out.detach(), *[p.grad.clone() for p in model.parameters()]]
            opt.step()
            opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            assert model(x).dtype == torch.bfloat16       # autocast really ran
            model.eval()
            model(x)
        outputs.append(outs)
        if g is not None:
            g.remove()
    assert all(torch.equal(a, b) for a, b in zip(*outputs, strict=True))
    assert [(d.code, d.where) for d in found] == [("TE101", ""), ("TE103", "")]


# ---------------------------------------------------------------------- gradient accumulation


def test_gradient_accumulation() -> None:
    model = ex.mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    micro = batches(8, 16, seed=0)
    with te.guard(model, opt, on=found.append) as g:
        for epoch in range(2):
            for i, (x, y) in enumerate(micro):
                (F.cross_entropy(model(x), y) / 4).backward()
                if i % 4 == 3:                            # one optimizer step per 4 micro-batches
                    opt.step()
                    opt.zero_grad()
            if epoch == 0:
                model.eval()                               # validation that never calls train() again
    assert [(d.code, d.where) for d in found] == [("TE102", "")]
    assert g.summary().counts == {"TE102": {"": 2}}       # per optimizer step, not per micro-batch
    found.clear()
    model.train()
    with te.guard(model, opt, on=found.append):
        for x, y in batches(4, 4, seed=1):                # micro-batches of 4: BatchNorm sees 4 values
            (F.cross_entropy(model(x), y) / 4).backward()
        opt.step()
    assert [(d.code, d.where, d.data["count"]) for d in found] == [("TE105", "1", 4)]


# ---------------------------------------------------------------------------- torch.compile


def test_torch_compile_degrades_with_one_notice() -> None:
    model = ex.mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    data = batches(3, 16, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with te.guard(model, opt, on=found.append) as g:
            compiled = torch.compile(model, backend="eager")  # dynamo only: no C++ toolchain needed
            for x, y in data:
                step(compiled, opt, x, y)
            model.eval()                                   # step-time rules keep working
            step(compiled, opt, *data[0])
    notices = [w for w in caught if issubclass(w.category, te.TraineValWarning)]
    assert len(notices) == 1 and "torch.compile" in str(notices[0].message)
    assert [(d.code, d.where) for d in found] == [("TE102", "")]
    assert g.summary().notices and "TE105" in g.summary().notices[0]

    with pytest.warns(te.TraineValWarning, match="runs under torch.compile"):
        te.guard(torch.compile(ex.mlp(), backend="eager")).remove()

    # compiled in place before the guard: checks outside the compiled call still run
    model = ex.mlp()
    model.compile(backend="eager")
    found.clear()
    with pytest.warns(te.TraineValWarning, match="runs under torch.compile"):
        g = te.guard(model, on=found.append)
    with g, torch.no_grad():
        model(torch.randn(32, 20))                        # validation without eval(): TE101
    assert [(d.code, d.where) for d in found] == [("TE101", "")]
    assert "_compiled_call_impl" in model.__dict__          # the user's compiled call is back


if __name__ == "__main__":
    ddp_worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
