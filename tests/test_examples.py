"""Every example runs, in a short smoke mode, as a user would start it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run_example(*args: str, timeout: int = 300, stderr: list[str] | None = None) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if stderr is not None:
        stderr.append(proc.stderr)
    return proc.stdout


def test_digits_demo_smoke(tmp_path: Path) -> None:
    err: list[str] = []
    out = run_example("examples/digits/train.py", "--smoke", "--out", str(tmp_path), stderr=err)
    assert "callbridge demo: trained 1 epochs (2 optimizer steps)" in out
    assert "Epoch 0: train_loss" in out and "[warprec-style] training complete" in out
    # quiet: no warnings, no tips
    printed = out + err[0]
    assert not re.search(r"warn|litlogger|LeafSpec", printed, re.IGNORECASE), printed[-3000:]
    assert f"open: tensorboard --logdir {tmp_path}/runs" in out
    assert list((tmp_path / "checkpoints").glob("*.safetensors"))
    assert (tmp_path / "runs" / "mlflow.db").exists() and (tmp_path / "keras_history.csv").exists()


def test_plain_loop_example() -> None:
    out = run_example("examples/plain_loop.py")
    assert "stopping" in out and "'stopped_early': True" in out


def test_ray_sweep_example(tmp_path: Path) -> None:
    out = run_example("examples/ray_sweep.py", str(tmp_path), timeout=400)
    assert "best config" in out and "val_rmse=" in out and "plot of 6 points written" in out
    # the points the plot was drawn from: one per validation (2 trials x 3 epochs), as Ray reported them
    import csv

    rows = list(csv.DictReader((tmp_path / "val_rmse.csv").open()))
    reported = sorted(
        float(row["val_rmse"])
        for progress in (tmp_path / "ray_results" / "mf_sweep").glob("*/progress.csv")
        for row in csv.DictReader(progress.open())
    )
    assert [float(row["iteration"]) for row in rows] == [float(i) for i in range(1, len(reported) + 1)]
    assert sorted(float(row["val_rmse"]) for row in rows) == reported and len(reported) == 6
    assert (tmp_path / "val_rmse.png").stat().st_size > 1000
