"""The engine-to-context protocol alone drives the built-ins: a plain PyTorch loop, no Lightning.

The loop below is an engine as the bridge is one: it keeps the public context fields current, hands
over metrics through ``metrics_source`` / ``invalidate_metrics`` / ``clear_metrics``, and applies what
``take_requests`` returns. Nothing here touches a private member of the context.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from callbridge.callbacks import (
    Callback,
    CallbackContext,
    CallbackList,
    CheckpointCallback,
    EarlyStoppingCallback,
    EngineRequests,
    LoggingCallback,
)

VAL_LOSSES = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.6]  # best at epoch 1, no improvement for 3 checks after it


class PlainLoop:
    """A minimal engine: linear regression, 4 steps per epoch, a scripted validation loss."""

    def __init__(self, callbacks: list[Callback], *, epochs: int = len(VAL_LOSSES)) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.live: dict[str, Any] = {}  # what the engine logged, raw tensors
        self.callbacks = CallbackList(callbacks)
        self.ctx = CallbackContext(model=self.model, optimizer=self.optimizer, metrics_source=lambda: self.live)
        self.epochs = epochs
        self.requests: list[EngineRequests] = []
        self.epochs_run: list[int] = []

    def _apply(self) -> None:
        requests = self.ctx.take_requests()
        if requests:
            self.requests.append(requests)

    def fit(self, *, resume_from: str | None = None) -> PlainLoop:
        ctx, callbacks = self.ctx, self.callbacks
        ctx.stage, ctx.max_epochs, ctx.num_batches, ctx.total_steps = "fit", self.epochs, 4, 4 * self.epochs
        ctx.evaluates, ctx.log_every_n_steps, ctx.root_dir = True, 2, None
        ctx.should_stop = False
        ctx.clear_metrics()
        first_epoch = 0
        if resume_from is not None:
            ctx.callbacks = callbacks
            first_epoch = ctx.load_checkpoint(resume_from)["epoch"] + 1
        callbacks.on_stage_begin(ctx)
        callbacks.on_train_begin(ctx)
        x = torch.randn(32, 2)
        y = x.sum(dim=1, keepdim=True)
        for epoch in range(first_epoch, self.epochs):
            ctx.epoch, ctx.evaluated, ctx.is_training = epoch, False, True
            ctx.invalidate_metrics()
            callbacks.on_epoch_begin(ctx)
            for batch_idx, (xb, yb) in enumerate(zip(x.split(8), y.split(8), strict=True)):
                loss = torch.nn.functional.mse_loss(self.model(xb), yb)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                ctx.step, ctx.batch_idx, ctx.batch, ctx.loss = ctx.step + 1, batch_idx, (xb, yb), loss.detach()
                self.live["train_loss"] = loss.detach()
                ctx.invalidate_metrics()
                callbacks.on_step_end(ctx)
                self._apply()
            ctx.is_training = False
            callbacks.on_evaluate_begin(ctx)
            self.live["val_loss"] = torch.tensor(VAL_LOSSES[epoch], dtype=torch.float64)
            ctx.invalidate_metrics()
            callbacks.on_evaluate(ctx)
            ctx.evaluated = True
            callbacks.on_epoch_end(ctx)
            self.epochs_run.append(epoch)
            self._apply()
            if ctx.should_stop:
                break
        callbacks.on_train_end(ctx)
        callbacks.on_stage_end(ctx)
        return self


class HalveLearningRate(Callback):
    def on_epoch_end(self, ctx: CallbackContext) -> None:
        if ctx.epoch == 0:
            ctx.learning_rate = ctx.learning_rate / 2


def test_plain_loop_drives_early_stopping_checkpoints_and_csv_logging(tmp_path: Path) -> None:
    early_stop = EarlyStoppingCallback(monitor="val_loss", patience=3, restore_best=True)
    checkpoints = CheckpointCallback(tmp_path / "ckpt", monitor="val_loss", save_total_limit=2)
    logging_cb = LoggingCallback(backends=["csv"], log_steps=2, save_dir=tmp_path / "runs", run_name="plain")
    loop = PlainLoop([early_stop, checkpoints, logging_cb, HalveLearningRate()]).fit()

    # early stopping: the best value at epoch 1, three checks without improvement, stop at epoch 4
    assert loop.epochs_run == [0, 1, 2, 3, 4]
    assert (early_stop.best, early_stop.best_epoch, early_stop.stopped_epoch) == (0.8, 1, 4)
    assert loop.requests[-1] == EngineRequests(stop=True)
    # the learning-rate request reached the engine once, and the optimizer
    assert [r.learning_rate for r in loop.requests].count(True) == 1
    assert loop.optimizer.param_groups[0]["lr"] == 0.025
    # restore_best put the epoch-1 weights back
    saved = torch.load(checkpoints.best_path, weights_only=True)
    assert saved["epoch"] == 1
    for name, tensor in loop.model.state_dict().items():
        assert torch.equal(tensor, saved["state_dict"][name])
    # checkpoints: the two best by val_loss, plus last; the callbacks' state inside
    assert [Path(p).name for p in checkpoints.kept_paths] == ["epoch=1-step=8.pt", "epoch=3-step=16.pt"]
    assert (tmp_path / "ckpt" / "last.pt").is_file()
    assert saved["callbacks"]["EarlyStoppingCallback"]["best"] == 0.8
    # CSV: the loss every 2 steps, and each epoch's metrics (read through metrics_source)
    with open(logging_cb.run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Lightning's CSV layout: one column per metric, Lightning's 0-based step axis (optimizer step 2 is row step 1)
    losses = [int(row["step"]) for row in rows if row["train_loss"]]
    assert losses == list(range(1, 20, 2))
    val = {int(row["epoch"]): float(row["val_loss"]) for row in rows if row["val_loss"]}
    assert val == {epoch: pytest.approx(VAL_LOSSES[epoch]) for epoch in range(5)}


def test_plain_loop_resumes_from_its_checkpoint_and_stops_at_the_same_epoch(tmp_path: Path) -> None:
    first = EarlyStoppingCallback(monitor="val_loss", patience=3, restore_best=False)
    ckpt = CheckpointCallback(tmp_path / "ckpt")
    PlainLoop([first, ckpt], epochs=3).fit()  # interrupted after epoch 2
    resumed_es = EarlyStoppingCallback(monitor="val_loss", patience=3, restore_best=False)
    resumed = PlainLoop([resumed_es, CheckpointCallback(tmp_path / "ckpt")])
    resumed.fit(resume_from=str(tmp_path / "ckpt" / "last.pt"))
    assert resumed.epochs_run == [3, 4]
    assert (resumed_es.best_epoch, resumed_es.stopped_epoch) == (1, 4)


def test_metrics_protocol_invalidate_and_clear() -> None:
    live: dict[str, Any] = {"a": torch.tensor(1.0)}
    ctx = CallbackContext(metrics_source=lambda: live)
    assert ctx.metrics == {"a": 1.0}
    live["a"] = torch.tensor(2.0)
    assert ctx.metrics == {"a": 1.0}  # converted once, until the engine says the run moved on
    ctx.invalidate_metrics()
    assert ctx.metrics == {"a": 2.0}
    ctx.update_metrics({"b": 3})
    assert ctx.metrics == {"a": 2.0, "b": 3.0}
    ctx.metrics_source = None
    ctx.clear_metrics()
    assert ctx.metrics == {}


def test_stop_request_stays_until_the_engine_resets_it() -> None:
    ctx = CallbackContext(optimizer=torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0))
    assert not ctx.take_requests()
    ctx.should_stop = True
    ctx.learning_rate = 0.5
    assert ctx.take_requests() == EngineRequests(stop=True, learning_rate=True)
    assert ctx.take_requests() == EngineRequests(stop=True)
    ctx.should_stop = False
    assert not ctx.take_requests()


def test_the_engine_side_uses_no_private_member() -> None:
    """The bridge and the context protocol need no private member of another module (ruff's SLF001)."""
    root = Path(__file__).resolve().parent.parent
    targets = ["adapters/lightning", "adapters/registry.py", "adapters/styles.py", "adapters/config.py"]
    targets += ["adapters/cli.py", "callbacks/context.py", "callbacks/callback_list.py", "callbacks/base.py"]
    targets += ["callbacks/early_stopping.py", "callbacks/checkpoint.py", "callbacks/serialization.py"]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "SLF001", *targets],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
