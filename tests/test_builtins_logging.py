"""LoggingCallback under a real Lightning Trainer and in a plain loop, read back with each store's own reader.

The parity test runs Lightning's own loggers (TensorBoardLogger, MLFlowLogger, CSVLogger) and LearningRateMonitor
in the same run as LoggingCallback and compares what each store holds.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from callbridge.adapters import to_lightning
from callbridge.callbacks import CallbackContext, CallbackList, LoggingBackend, LoggingCallback
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger
from mlflow import MlflowClient
from toy import ToyRegression, make_trainer

#: what LoggingCallback adds to Lightning's keys (ThroughputMonitor's names); GPU stats only with CUDA
EXTRAS = {"train/batches_per_sec", "train/samples_per_sec"}


class ParityModule(ToyRegression):
    """Logs in every way Lightning forks or keeps names: ``train_loss`` (step and epoch), ``train_mae`` (step
    only), ``val_loss`` (evaluation), ``epoch_score`` (in ``on_train_epoch_end``); two param groups and a
    per-step scheduler, so that ``LearningRateMonitor`` names ``lr-SGD/pg1``, ``lr-SGD/pg2`` and reads them
    before each step."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        x, y = batch
        self.log("train_mae", torch.nn.functional.l1_loss(self(x), y), on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("epoch_score", float(self.current_epoch) + 0.5)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(
            [{"params": [self.layer.weight]}, {"params": [self.layer.bias], "lr": 0.01}], lr=self.hparams.lr
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensorboard_hparams(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    return set(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams)


def mlflow_series(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    run = client.get_run(run_id)
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in run.data.metrics}


def csv_series(path: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as stream:
        for row in csv.DictReader(stream):
            for key, value in row.items():
                if key != "step" and value != "":
                    series.setdefault(key, []).append((int(row["step"]), float(value)))
    return {key: sorted(values) for key, values in series.items()}


def without(series: dict, keys: set[str]) -> dict:
    return {key: value for key, value in series.items() if key not in keys}


def approx_series(series: dict) -> dict:
    return {key: [(step, pytest.approx(value, rel=1e-6)) for step, value in values] for key, values in series.items()}


@contextlib.contextmanager
def restored_mlflow_uri():
    """MLFlowLogger calls mlflow.set_tracking_uri, which also sets MLFLOW_TRACKING_URI for the whole process."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(autouse=True)
def no_tracking_uri_from_the_environment(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow sqlite store for the module: creating one migrates its schema (seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


@pytest.fixture(scope="module")
def parity(tmp_path_factory, store):
    """One run with Lightning's three loggers + LearningRateMonitor and LoggingCallback, both every 2 steps."""
    root = tmp_path_factory.mktemp("parity")
    uri = store
    callback = LoggingCallback(
        ["tensorboard", "mlflow", "csv"], log_steps=2, save_dir=root / "cb", tracking_uri=uri, experiment_name="cb"
    )
    loggers = [
        TensorBoardLogger(root / "pl", name="tb"),
        MLFlowLogger(experiment_name="pl", tracking_uri=uri),
        CSVLogger(root / "pl", name="csv"),
    ]
    callbacks = [*to_lightning([callback]), LearningRateMonitor(logging_interval="step")]
    trainer = make_trainer(callbacks, logger=loggers, log_every_n_steps=2, max_epochs=2)
    with restored_mlflow_uri():
        trainer.fit(ParityModule(n=64, batch_size=16))  # 4 steps per epoch: logged at steps 1, 3, 5, 7
    return callback, loggers, MlflowClient(tracking_uri=uri)


def test_tensorboard_matches_tensorboard_logger(parity):
    callback, (tb, _, _), _ = parity
    ours, theirs = tensorboard_scalars(callback.run_dir), tensorboard_scalars(tb.log_dir)
    assert set(ours) == set(theirs) | EXTRAS
    assert {"train_loss_step", "train_loss_epoch", "train_mae", "epoch_score", "val_loss", "epoch"} <= set(ours)
    assert {"lr-SGD/pg1", "lr-SGD/pg2", "hp_metric"} <= set(ours)
    assert not {"train_loss", "train/loss", "lr/group0"} & set(ours)  # no unforked duplicate, no own names
    assert without(ours, EXTRAS) == approx_series(theirs)  # same steps, same values, same repeats
    assert [step for step, _ in ours["train_loss_step"]] == [1, 3, 5, 7]
    assert [value for _, value in ours["lr-SGD/pg1"]] == pytest.approx([0.05 * 0.9**s for s in (1, 3, 5, 7)])
    assert (
        tensorboard_hparams(callback.run_dir)
        >= tensorboard_hparams(tb.log_dir)
        == {
            "lr",
            "nan_at_step",
            "val_losses",
            "n",
            "batch_size",
            "fail_at_step",
        }
    )


def test_mlflow_matches_mlflow_logger(parity):
    callback, (_, mlf, _), client = parity
    ours, theirs = mlflow_series(client, callback.mlflow_run_id), mlflow_series(client, mlf.run_id)
    assert set(ours) == set(theirs) | EXTRAS
    assert without(ours, EXTRAS) == approx_series(theirs)
    run = client.get_run(callback.mlflow_run_id)
    assert run.info.status == "FINISHED"
    params, native = run.data.params, client.get_run(mlf.run_id).data.params
    assert {key: params[key] for key in native} == native  # the module's hparams, as MLFlowLogger writes them
    settings = {key for key in params if key.startswith("callbacks/")}
    assert "callbacks/LoggingCallback/log_steps" in settings and params["callbacks/LoggingCallback/log_steps"] == "2"
    assert set(params) == set(native) | settings


def test_csv_matches_csv_logger(parity):
    callback, (_, _, csv_logger), _ = parity
    ours = csv_series(callback.run_dir / "metrics.csv")
    theirs = csv_series(Path(csv_logger.log_dir) / "metrics.csv")
    assert set(ours) == set(theirs) | EXTRAS
    assert without(ours, EXTRAS) == approx_series(theirs)
    with (callback.run_dir / "metrics.csv").open(newline="") as stream:
        header = next(csv.reader(stream))
    assert header == sorted(header) and "step" in header  # CSVLogger's layout: one sorted column per metric
    saved = yaml.safe_load((callback.run_dir / "hparams.yaml").read_text())
    assert saved["lr"] == 0.05 and saved["callbacks"]["LoggingCallback"]["log_steps"] == 2


def test_counts_and_the_time_spent(parity):
    callback, _, _ = parity
    assert callback.logged["train_loss_step"] == 4 and callback.logged["epoch"] == 8
    assert callback.logged["val_loss"] == callback.logged["train_loss_epoch"] == 2
    assert callback.run_dir == callback.save_dir / "cb" / "version_0"
    assert callback.blocked_seconds >= callback.flush_seconds > 0
    assert callback.spool_path is not None and not callback.spool_path.exists()  # all stored: spool removed
    assert callback.unsent == []


def test_console_prints_on_log_steps(tmp_path, capsys):
    callback = LoggingCallback(log_steps=4, save_dir=tmp_path)
    assert callback.backends == (LoggingBackend.CONSOLE,)
    make_trainer(to_lightning([callback]), max_epochs=1, limit_val_batches=1).fit(ToyRegression(n=64, batch_size=16))
    out = capsys.readouterr().out
    assert "[step 3 epoch 0] train_loss_step" in out
    assert "lr-SGD 0.05" in out
    assert "val_loss" in out and "train_loss_epoch" in out


def test_a_failing_run_keeps_what_was_logged_and_marks_mlflow_failed(tmp_path, store):
    callback = LoggingCallback(
        ["csv", "mlflow", "tensorboard"], log_steps=2, save_dir=tmp_path, run_name="failing", tracking_uri=store
    )
    trainer = make_trainer(to_lightning([callback]), max_epochs=3, limit_val_batches=1)
    with pytest.raises(RuntimeError, match="training failed at step 6"):
        trainer.fit(ToyRegression(n=64, batch_size=16, fail_at_step=6))
    # logging steps 1, 3, 5 (the batch that took the run to step 6 is logged before the next one raises)
    assert callback.logged["train_loss_step"] == 3 and callback.logged["train_loss_epoch"] == 1
    assert Counter({k: len(v) for k, v in csv_series(callback.run_dir / "metrics.csv").items()}) == Counter(
        callback.logged
    )
    client = MlflowClient(tracking_uri=store)
    assert client.get_run(callback.mlflow_run_id).info.status == "FAILED"
    stored = {k: len(v) for k, v in mlflow_series(client, callback.mlflow_run_id).items()}
    assert stored == callback.logged


def plain_loop(callback: LoggingCallback, steps: int, start: int = 0, batch: int = 4, fail: bool = False) -> None:
    """A hand-written PyTorch loop driving the callback through CallbackList."""
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1)
    callbacks = CallbackList([callback])
    ctx = CallbackContext(model=model, optimizer=optimizer)
    ctx.hparams = {"hidden": 3, "optim": {"name": "SGD", "lr": 0.1}}
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
    if fail:
        ctx.exception = KeyboardInterrupt()
        callbacks.on_exception(ctx)
    else:
        callbacks.on_train_end(ctx)


def test_plain_loop_every_param_group_and_csv_resume(tmp_path):
    first = LoggingCallback(["csv"], log_steps=1, save_dir=tmp_path, experiment_name="plain")
    plain_loop(first, steps=3)
    assert first.run_dir == tmp_path / "plain" / "version_0"
    series = csv_series(first.run_dir / "metrics.csv")
    assert [v for _, v in series["lr-SGD/pg2"]] == [0.5] * 3 and len(series["lr-SGD/pg1"]) == 3
    assert [s for s, _ in series["loss"]] == [0, 1, 2]  # nothing else logged per step: the loss, as `loss`
    assert series["score"] == [(2, 1.5)]
    saved = yaml.safe_load((first.run_dir / "hparams.yaml").read_text())
    assert saved == {"hidden": 3, "optim": {"name": "SGD", "lr": 0.1}, "callbacks": saved["callbacks"]}
    # a checkpoint taken after 3 steps; the run went on to step 5, then was resumed from the checkpoint
    state = first.state_dict()
    plain_loop(
        LoggingCallback(["csv"], log_steps=1, save_dir=tmp_path, experiment_name="plain", run_name="version_0"), 2
    )
    resumed = LoggingCallback(["csv"], log_steps=1, save_dir=tmp_path, experiment_name="plain")
    resumed.load_state_dict(state)
    plain_loop(resumed, steps=2, start=3)
    assert resumed.run_dir == first.run_dir
    series = csv_series(first.run_dir / "metrics.csv")
    assert [s for s, _ in series["loss"]] == [0, 1, 2, 3, 4]  # the rows after the checkpoint were cut off
    # a new run without run_name gets the next version directory
    nxt = LoggingCallback(["csv"], log_steps=1, save_dir=tmp_path, experiment_name="plain")
    plain_loop(nxt, steps=1)
    assert nxt.run_dir == tmp_path / "plain" / "version_1"


def test_plain_loop_mlflow_tracking_uri_from_the_environment_and_killed_status(tmp_path, monkeypatch, store):
    uri = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    callback = LoggingCallback(["mlflow"], log_steps=1, save_dir=tmp_path / "runs", run_name="interrupted")
    assert callback.resolved_tracking_uri() == uri
    plain_loop(callback, steps=3, fail=True)
    assert not (tmp_path / "runs" / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(callback.mlflow_run_id)
    assert run.info.status == "KILLED" and run.info.run_name == "interrupted"
    assert run.data.params["optim/lr"] == "0.1" and run.data.params["hidden"] == "3"
    assert {k: len(v) for k, v in mlflow_series(client, callback.mlflow_run_id).items()} == callback.logged


@contextlib.contextmanager
def caplog_of(name: str):
    """The records that reach a handler on logger ``name`` (after the logger's own filters)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown backend 'tensorbord'; valid backends: 'console', 'tensorboard'"):
        LoggingCallback(backends=["tensorbord"])
    with pytest.raises(ValueError, match="log_steps must be an int >= 1"):
        LoggingCallback(log_steps=0)
    with pytest.raises(TypeError, match="log_steps must be an int >= 1 or None"):
        LoggingCallback(log_steps=2.5)
    with pytest.raises(ValueError, match="close_timeout must be a finite number of seconds > 0"):
        LoggingCallback(close_timeout=0)
    with pytest.raises(TypeError, match="store_timeout must be a number of seconds"):
        LoggingCallback(store_timeout="10")
    assert LoggingCallback(backends="TensorBoard").backends == (LoggingBackend.TENSORBOARD,)
    assert LoggingCallback(backends=["csv", "CSV", LoggingBackend.CSV]).backends == (LoggingBackend.CSV,)


def test_unusable_stores_are_named_before_anything_runs(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"save_dir '.*a-file/runs' cannot be used: .*a-file is a file"):
        LoggingCallback(["csv"], save_dir=blocker / "runs")
    with pytest.raises(ValueError, match=r"tracking_uri 'notascheme://x' has the scheme 'notascheme'.*'sqlite'"):
        LoggingCallback(["mlflow"], save_dir=tmp_path, tracking_uri="notascheme://x")
    with pytest.raises(ValueError, match=r"tracking_uri 'http://' names no host"):
        LoggingCallback(["mlflow"], save_dir=tmp_path, tracking_uri="http://")
    with pytest.raises(ValueError, match=r"tracking_uri 'sqlite:///.*a-file/m.db'.*a-file is a file"):
        LoggingCallback(["mlflow"], save_dir=tmp_path, tracking_uri=f"sqlite:///{blocker}/m.db")
    # the tracking URI is only checked when MLflow is one of the backends
    LoggingCallback(["csv"], save_dir=tmp_path, tracking_uri="notascheme://x")


def test_creating_a_new_sqlite_store_prints_nothing(tmp_path, capfd):
    callback = LoggingCallback(["mlflow"], log_steps=1, save_dir=tmp_path)  # sqlite:///<tmp_path>/mlflow.db
    plain_loop(callback, steps=2)
    assert (tmp_path / "mlflow.db").exists()
    # MLflow migrated a new store on callbridge's thread: its INFO lines are dropped ...
    assert "Creating initial MLflow database tables" not in capfd.readouterr().err
    # ... while what the user's own code logs there still gets through
    with caplog_of("mlflow.store.db.utils") as records:
        logging.getLogger("mlflow.store.db.utils").info("the user's own line")
    assert [r.getMessage() for r in records] == ["the user's own line"]


def test_wandb_offline_run_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    callback = LoggingCallback(["wandb"], log_steps=1, save_dir=tmp_path, run_name="wb")
    plain_loop(callback, steps=3)
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    assert callback.logged["loss"] == 3


# -- DDP: 2 processes on CPU -----------------------------------------------------------------------
@pytest.mark.ddp
def test_ddp_only_rank_zero_logs_and_draws_a_bar(ddp_results):
    rank0, rank1 = ddp_results("builtins_logging_rank_zero")
    assert rank1["logged"] == {} and rank1["run_dir"] is None and rank1["bars_drawn"] == 0
    assert "Epoch" not in rank1["stderr"] and "[step" not in rank1["stdout"]
    assert rank0["bars_drawn"] == 2 and "Epoch 1/1" in rank0["stderr"] and "[step 1 epoch 0]" in rank0["stdout"]
    assert not rank0["lightning_bar"] and not rank1["lightning_bar"]
    save_dir = Path(rank0["save_dir"])
    events = list(save_dir.rglob("events.out.tfevents.*"))
    assert len(events) == 1 and [p.name for p in save_dir.rglob("*.csv")] == ["metrics.csv"]
    stored = csv_series(Path(rank0["run_dir"]) / "metrics.csv")
    assert {k: len(v) for k, v in stored.items()} == rank0["logged"]
    scalars = tensorboard_scalars(events[0].parent)
    assert {key: len(scalars[key]) for key in rank0["logged"]} == rank0["logged"]
    assert [s for s, _ in scalars["train_loss_step"]] == [1, 3, 5, 7]  # 64 samples / (2 ranks x 8)
    for (_, batches), (_, samples) in zip(
        scalars["train/batches_per_sec"], scalars["train/samples_per_sec"], strict=True
    ):
        assert samples == pytest.approx(2 * 8 * batches, rel=1e-4)  # both ranks' samples
    assert all(math.isfinite(v) for _, v in scalars["train_loss_step"])
