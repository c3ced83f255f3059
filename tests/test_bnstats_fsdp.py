"""FSDP (both ``FullyShardedDataParallel`` and ``fully_shard``) is refused with the reason, the model
untouched. The real FSDP classes are built on CPU in a one-rank gloo group, in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, torch, torch.nn as nn, torch.distributed as dist
    import traineval as te
    dist.init_process_group("gloo", rank=0, world_size=1)
    from torch.distributed.fsdp import FullyShardedDataParallel, fully_shard

    def fresh():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 4), nn.BatchNorm1d(4))

    wrapped = FullyShardedDataParallel(fresh(), device_id=torch.device("cpu"))
    sharded = fresh()
    fully_shard(sharded[2])                    # one submodule sharded is enough to refuse
    data = [torch.randn(8, 4) for _ in range(2)]
    for name, model in (("fsdp1", wrapped), ("fully_shard", sharded)):
        bufs = {k: v.clone() for k, v in model.named_buffers()}
        modes = [m.training for m in model.modules()]
        try:
            te.recalibrate_batchnorm(model, data, progress=False)
            print(name, "ACCEPTED")
        except te.TraineValError as exc:
            same = all(torch.equal(v, dict(model.named_buffers())[k]) for k, v in bufs.items())
            print(name, "REFUSED", same and modes == [m.training for m in model.modules()], str(exc))
    dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fsdp_is_refused_naming_the_reason_and_model_untouched():
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = {line.split(" ", 1)[0]: line for line in proc.stdout.splitlines()}
    assert lines["fsdp1"].startswith("fsdp1 REFUSED True ")
    assert "FullyShardedDataParallel" in lines["fsdp1"]
    assert lines["fully_shard"].startswith("fully_shard REFUSED True ")
    assert "(fully_shard)" in lines["fully_shard"]
    for line in lines.values():
        assert "collective per batch" in line and "deadlock" in line
