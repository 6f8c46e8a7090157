"""LoggingCallback under a real Lightning Trainer and in a plain loop, read back with each store's own reader."""

from __future__ import annotations

import csv
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import torch
from callbridge.adapters import to_lightning
from callbridge.callbacks import CallbackContext, CallbackList, LoggingBackend, LoggingCallback
from mlflow import MlflowClient
from toy import ToyRegression, make_trainer

STEP_KEYS = {"train/loss", "lr/group0", "throughput/steps_per_sec", "throughput/samples_per_sec"}


def csv_counts(path: Path) -> Counter:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return Counter(row["name"] for row in rows)


def mlflow_counts(client: MlflowClient, run_id: str, keys) -> dict[str, int]:
    return {key: len(client.get_metric_history(run_id, key)) for key in keys}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One save_dir for the module, so MLflow's sqlite database is created once."""
    return tmp_path_factory.mktemp("logging")


@pytest.fixture(scope="module")
def fitted(store):
    """One fit with TensorBoard, CSV, MLflow (local sqlite) and console: 4 batches x 2 epochs, logged every 2 steps."""
    callback = LoggingCallback(
        backends=["Console", LoggingBackend.TENSORBOARD, "csv", "MLFLOW"], log_steps=2, save_dir=store, run_name="fit"
    )
    trainer = make_trainer(to_lightning([callback]), max_epochs=2)
    trainer.fit(ToyRegression(n=64, batch_size=16))
    return callback, trainer


def test_logs_the_expected_keys_every_log_steps(fitted):
    callback, _ = fitted
    # 8 optimizer steps, logged at 2, 4, 6, 8; two epoch ends
    assert {key: callback.logged[key] for key in STEP_KEYS} == dict.fromkeys(STEP_KEYS, 4)
    assert callback.logged["epoch"] == callback.logged["val_loss"] == callback.logged["train_loss_epoch"] == 2
    assert not any(key.endswith("_step") for key in callback.logged)
    assert callback.run_dir == callback.save_dir / "callbridge" / "fit"
    assert callback.blocked_seconds >= callback.flush_seconds > 0


def test_tensorboard_holds_every_value(fitted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callback, _ = fitted
    assert len(list(callback.run_dir.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(callback.run_dir))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(callback.logged)
    for key, count in callback.logged.items():
        assert len(events.Scalars(key)) == count, key
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8]
    assert [e.value for e in events.Scalars("lr/group0")] == pytest.approx([0.05] * 4)
    for steps, samples in zip(
        events.Scalars("throughput/steps_per_sec"), events.Scalars("throughput/samples_per_sec"), strict=True
    ):
        # 2 steps of 16 samples per window: samples/s is 16 x steps/s
        assert samples.value == pytest.approx(16 * steps.value, rel=1e-4)


def test_csv_holds_every_value(fitted):
    callback, _ = fitted
    path = callback.run_dir / "metrics.csv"
    assert csv_counts(path) == Counter(callback.logged)
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] == "epoch"]
    assert [(int(r["step"]), float(r["value"])) for r in rows] == [(4, 0.0), (8, 1.0)]
    assert callback.state_dict()["csv_rows"] == sum(callback.logged.values())


def test_mlflow_local_sqlite_holds_every_value(fitted, store):
    callback, trainer = fitted
    assert (store / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    run = client.get_run(callback.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fit"
    assert client.get_experiment(run.info.experiment_id).name == "callbridge"
    assert mlflow_counts(client, callback.mlflow_run_id, callback.logged) == callback.logged
    val = client.get_metric_history(callback.mlflow_run_id, "val_loss")
    assert [m.step for m in val] == [4, 8]
    assert val[-1].value == pytest.approx(float(trainer.callback_metrics["val_loss"]))


def test_console_prints_on_log_steps(store, capsys):
    callback = LoggingCallback(log_steps=4, save_dir=store)
    assert callback.backends == (LoggingBackend.CONSOLE,)
    make_trainer(to_lightning([callback]), max_epochs=1, limit_val_batches=1).fit(ToyRegression(n=64, batch_size=16))
    out = capsys.readouterr().out
    assert "[step 4 epoch 0] train/loss" in out
    assert "lr/group0 0.05" in out
    assert "val_loss" in out


def test_a_failing_run_keeps_what_was_logged_and_marks_mlflow_failed(store):
    callback = LoggingCallback(["csv", "mlflow", "tensorboard"], log_steps=2, save_dir=store, run_name="failing")
    trainer = make_trainer(to_lightning([callback]), max_epochs=3, limit_val_batches=1)
    with pytest.raises(RuntimeError, match="training failed at step 6"):
        trainer.fit(ToyRegression(n=64, batch_size=16, fail_at_step=6))
    # steps 2, 4 and 6 (step 6 is logged before the batch that raises) and epoch 0's end
    assert callback.logged["train/loss"] == 3 and callback.logged["epoch"] == 1
    assert csv_counts(callback.run_dir / "metrics.csv") == Counter(callback.logged)
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    assert client.get_run(callback.mlflow_run_id).info.status == "FAILED"
    assert mlflow_counts(client, callback.mlflow_run_id, callback.logged) == callback.logged


def plain_loop(callback: LoggingCallback, steps: int, start: int = 0, batch: int = 4) -> None:
    """A hand-written PyTorch loop driving the callback through CallbackList."""
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1)
    callbacks = CallbackList([callback])
    ctx = CallbackContext(model=model, optimizer=optimizer)
    ctx.step = start
    callbacks.on_train_begin(ctx)
    for _ in range(steps):
        x = torch.randn(batch, 3)
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.step, ctx.batch, ctx.loss = ctx.step + 1, (x,), loss.detach()
        callbacks.on_step_end(ctx)
    ctx.metrics = {"score": 1.5}
    callbacks.on_epoch_end(ctx)
    callbacks.on_train_end(ctx)


def test_plain_loop_every_param_group_and_csv_resume(store):
    first = LoggingCallback(["csv"], log_steps=1, save_dir=store, experiment_name="plain")
    plain_loop(first, steps=3)
    assert first.run_dir == store / "plain" / "version_0"
    assert first.logged["lr/group0"] == first.logged["lr/group1"] == 3
    with (first.run_dir / "metrics.csv").open(newline="") as f:
        lrs = {float(r["value"]) for r in csv.DictReader(f) if r["name"] == "lr/group1"}
    assert lrs == {0.5}
    # a checkpoint taken after 3 steps; the run went on to step 5, then was resumed from the checkpoint
    state = first.state_dict()
    plain_loop(LoggingCallback(["csv"], log_steps=1, save_dir=store, experiment_name="plain", run_name="version_0"), 2)
    resumed = LoggingCallback(["csv"], log_steps=1, save_dir=store, experiment_name="plain")
    resumed.load_state_dict(state)
    plain_loop(resumed, steps=2, start=3)
    assert resumed.run_dir == first.run_dir
    with (first.run_dir / "metrics.csv").open(newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["name"] == "train/loss"]
    assert steps == [1, 2, 3, 4, 5]  # the rows written after the checkpoint were cut off, none duplicated
    # a new run without run_name gets the next version directory
    nxt = LoggingCallback(["csv"], log_steps=1, save_dir=store, experiment_name="plain")
    plain_loop(nxt, steps=1)
    assert nxt.run_dir == store / "plain" / "version_1"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"unknown backend 'tensorbord'; valid backends: 'console', 'tensorboard'"):
        LoggingCallback(backends=["tensorbord"])
    with pytest.raises(ValueError, match="log_steps must be an int >= 1"):
        LoggingCallback(log_steps=0)
    assert LoggingCallback(backends="TensorBoard").backends == (LoggingBackend.TENSORBOARD,)
    assert LoggingCallback(backends=["csv", "CSV", LoggingBackend.CSV]).backends == (LoggingBackend.CSV,)


def test_a_failing_store_is_reported_on_the_training_thread(tmp_path):
    callback = LoggingCallback(["mlflow"], log_steps=1, save_dir=tmp_path, tracking_uri="notascheme://x")
    with pytest.raises(RuntimeError, match=r"LoggingCallback: the mlflow backend \(open\) failed"):
        plain_loop(callback, steps=2)


def test_wandb_offline_run_is_written(store, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    callback = LoggingCallback(["wandb"], log_steps=1, save_dir=store, run_name="wb")
    plain_loop(callback, steps=3)
    runs = list((store / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    assert callback.logged["train/loss"] == 3


# -- a real MLflow tracking server -----------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{root / 'srv.db'}", "--default-artifact-root", str(root / "art")]
    command += ["--workers", "1"]
    log = (root / "server.log").open("w")
    # its own session: the server's uvicorn workers are stopped with it, by process group
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def server_log() -> str:
        return (root / "server.log").read_text()[-3000:]

    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{server_log()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 120 s:\n{server_log()}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_mlflow_server_holds_every_value(mlflow_server, tmp_path):
    callback = LoggingCallback(
        ["mlflow"], log_steps=2, save_dir=tmp_path, tracking_uri=mlflow_server, experiment_name="remote"
    )
    trainer = make_trainer(to_lightning([callback]), max_epochs=2, limit_val_batches=1)
    trainer.fit(ToyRegression(n=64, batch_size=16))
    assert not (tmp_path / "mlflow.db").exists()  # the tracking URI replaced the local store
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(callback.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "remote"
    assert mlflow_counts(client, callback.mlflow_run_id, callback.logged) == callback.logged
    assert sum(callback.logged.values()) == 4 * 4 + 2 * 4  # 4 step logs of 4 keys, 2 epoch logs of 4 keys
    losses = client.get_metric_history(callback.mlflow_run_id, "train/loss")
    assert all(math.isfinite(m.value) for m in losses) and [m.step for m in losses] == [2, 4, 6, 8]


# -- DDP: 2 processes on CPU -----------------------------------------------------------------------
@pytest.mark.ddp
def test_ddp_only_rank_zero_logs_and_draws_a_bar(ddp_results):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rank0, rank1 = ddp_results("builtins_logging_rank_zero")
    assert rank1["logged"] == {} and rank1["run_dir"] is None and rank1["bars_drawn"] == 0
    assert "Epoch" not in rank1["stderr"] and "[step" not in rank1["stdout"]
    assert rank0["bars_drawn"] == 2 and "Epoch 2/2" in rank0["stderr"] and "[step 2 epoch 0]" in rank0["stdout"]
    assert not rank0["lightning_bar"] and not rank1["lightning_bar"]
    save_dir = Path(rank0["save_dir"])
    events = list(save_dir.rglob("events.out.tfevents.*"))
    assert len(events) == 1 and [p.name for p in save_dir.rglob("*.csv")] == ["metrics.csv"]
    assert csv_counts(Path(rank0["run_dir"]) / "metrics.csv") == Counter(rank0["logged"])
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert {key: len(accumulator.Scalars(key)) for key in rank0["logged"]} == rank0["logged"]
    assert [e.step for e in accumulator.Scalars("train/loss")] == [2, 4, 6, 8]  # 64 samples / (2 ranks x 8)
    for steps, samples in zip(
        accumulator.Scalars("throughput/steps_per_sec"), accumulator.Scalars("throughput/samples_per_sec"), strict=True
    ):
        assert samples.value == pytest.approx(2 * 8 * steps.value, rel=1e-4)  # both ranks' samples
