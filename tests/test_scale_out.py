"""Scale-out on existing engines: two nodes with torchrun (simulated on loopback)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ddp

TESTS = Path(__file__).parent
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_on_loopback_agree_on_stop_and_learning_rate(tmp_path: Path) -> None:
    """Two torchrun launchers (one per "node", one process each) rendezvous on 127.0.0.1; every rank stops at
    the step the last rank asked for and trains with rank zero's learning rate; both launchers exit 0."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(TESTS), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    launchers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={node}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(TESTS / "ddp_runner.py"),
                str(tmp_path / f"node{node}"),
                "nodes_agree_on_stop_and_lr",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    logs, codes = [], []
    try:
        for launcher in launchers:
            out, _ = launcher.communicate(timeout=TIMEOUT_S)
            logs.append(out)
            codes.append(launcher.returncode)
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
    assert codes == [0, 0], "\n----\n".join(log[-3000:] for log in logs)
    results = []
    for node in (0, 1):
        data = json.loads((tmp_path / f"node{node}" / "nodes_agree_on_stop_and_lr" / f"rank{node}.json").read_text())
        assert data["ok"], data.get("error")
        results.append(data["result"])
    assert [r["node_rank"] for r in results] == [0, 1]
    assert [r["num_nodes"] for r in results] == [2, 2]
    assert [r["global_step"] for r in results] == [3, 3]
    assert [r["lr"] for r in results] == [0.0321, 0.0321]


def test_fsdp2_sharded_weights_snapshot_and_restore_on_every_rank(ddp_results) -> None:
    """EarlyStoppingCallback(restore_best=True) over FSDP2-sharded weights: each rank keeps its own shard (on
    the host with offload_snapshot), and at train end the whole model is the best epoch's again."""
    for rank in ddp_results("fsdp2_restore_best_weights"):
        assert rank["stopped_epoch"] == 3
        assert rank["snapshot_is_sharded"] and rank["snapshot_on_cpu"]
        assert rank["snapshot_in_checkpoint"] is False
    rank0, _ = ddp_results("fsdp2_restore_best_weights")  # the full state is gathered on rank 0 only
    assert rank0["changed_since_best"]
    assert rank0["restored_equals_best"]
