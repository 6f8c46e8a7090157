import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
sys.path.insert(0, str(Path(__file__).parent))

import json
import subprocess

import pytest

DDP_TIMEOUT_S = 420


@pytest.fixture(scope="session")
def ddp_results(tmp_path_factory):
    """Runs all DDP scenarios once (2 processes, gloo) and returns ``get(name) -> [rank0, rank1]``.

    The launch has a timeout: a rank that hangs fails every DDP test instead of blocking the suite.
    """
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(Path(__file__).parent / "ddp_runner.py"),
        str(out),
    ]
    try:
        proc = subprocess.run(command, env=env, cwd=out, capture_output=True, text=True, timeout=DDP_TIMEOUT_S)
        log, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as timeout:
        log = f"DDP scenarios timed out after {DDP_TIMEOUT_S}s (a rank hung)\n{timeout.stdout}\n{timeout.stderr}"
        returncode = None
    (out / "launch.log").write_text(log)

    def get(name: str) -> list:
        if returncode != 0:  # a rank that crashed or aborted at exit fails every DDP test, even with results written
            pytest.fail(f"the DDP launch exited with {returncode} (expected 0). Launch log tail:\n{log[-4000:]}")
        results = []
        for rank in (0, 1):
            path = out / name / f"rank{rank}.json"
            if not path.exists():
                pytest.fail(f"DDP scenario {name!r}: rank {rank} wrote no result. Launch log tail:\n{log[-4000:]}")
            data = json.loads(path.read_text())
            if not data["ok"]:
                pytest.fail(f"DDP scenario {name!r} failed on rank {rank}:\n{data['error']}")
            results.append(data["result"])
        return results

    return get
