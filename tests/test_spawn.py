"""Every bridge pickles, whatever styles it holds; ``ddp_spawn`` ships them to worker processes."""

from __future__ import annotations

import csv
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from callbridge.adapters import LightningBridge, to_lightning
from callbridge.callbacks import CheckpointCallback, EarlyStoppingCallback, LoggingCallback
from hydra_seed import MyCallback
from toy import ToyRegression, make_trainer
from warprec_callbacks import ComputeMetricOverIterations

SPAWN_TIMEOUT_S = 420


def _round_trip(bridge: LightningBridge) -> LightningBridge:
    copy = pickle.loads(pickle.dumps(bridge))
    assert isinstance(copy, LightningBridge) and copy.state_key == bridge.state_key
    assert [type(cb).__name__ for cb in copy.callbacks] == [type(cb).__name__ for cb in bridge.callbacks]
    return copy


def test_bridges_of_every_style_pickle_before_and_after_a_run(tmp_path: Path) -> None:
    import keras

    built_ins = [
        EarlyStoppingCallback(monitor="val_loss"),
        CheckpointCallback(tmp_path / "ckpt"),
        LoggingCallback(backends=["csv"], save_dir=tmp_path / "runs"),
    ]
    foreign = [MyCallback("bucket", "f.txt"), ComputeMetricOverIterations(), keras.callbacks.CSVLogger("k.csv")]
    for objects in [built_ins, *([obj] for obj in foreign)]:
        _round_trip(to_lightning(objects)[0])
    (bridge,) = to_lightning(built_ins)
    make_trainer([bridge], limit_train_batches=1, limit_val_batches=1).fit(ToyRegression())
    assert bridge.context is not None
    copy = _round_trip(bridge)
    assert copy.context is None  # the trainer stays behind; the next setup builds a new context


@pytest.mark.ddp
def test_ddp_spawn_runs_keras_hydra_and_warprec_callbacks_on_rank_zero(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), OMP_NUM_THREADS="1", KERAS_BACKEND="torch")
    script = Path(__file__).parent / "spawn_run.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SPAWN_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    main = json.loads((tmp_path / "main.json").read_text())
    assert main["relays_left"] == 0
    # Keras: CSVLogger wrote one row per epoch, from a worker
    with open(tmp_path / "keras.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"loss", "val_loss"} <= set(rows[0])
    # Hydra: the job ended COMPLETED, in a worker process, its output dir the trainer's log dir
    job = json.loads((tmp_path / "hydra_job_end.json").read_text())
    assert job["status"] == "COMPLETED" and job["pid"] != main["main_pid"]
    assert Path(job["output_dir"]).resolve() == tmp_path.resolve()
    # WarpRec: on_training_complete saw the trained LightningModule
    complete = json.loads((tmp_path / "warprec_complete.json").read_text())
    assert complete["hparams"]["lr"] == 0.01 and complete["pid"] != main["main_pid"]
