"""Lightning on Ray Train, with callbridge callbacks, 2 CPU workers and fault-tolerant resume.

Ray Train runs one Lightning Trainer per worker (``TorchTrainer`` + ``RayDDPStrategy`` +
``RayLightningEnvironment`` + ``prepare_trainer``) and reports a checkpoint at every epoch end through
``RayTrainReportCallback``. When a worker fails, Ray restarts the worker group (``FailureConfig``) and the
training function resumes with ``fit(ckpt_path=...)`` from the last reported checkpoint: the callbacks'
state (early-stopping counters, the kept checkpoints, the CSV log position) comes back with it.

Run: ``python examples/ray_train.py [OUT_DIR] [--fail-at-epoch N] [--smoke]`` (needs ``pip install
"callbridge[ray]"``; CPU, about a minute). ``--fail-at-epoch`` makes rank 0 crash once at the start of
that epoch; the result must equal an uninterrupted run's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import ray
import torch
from callbridge.adapters import to_lightning
from callbridge.callbacks import (
    Callback,
    CallbackContext,
    CheckpointCallback,
    EarlyStoppingCallback,
    LoggingCallback,
)
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from torch.utils.data import DataLoader, TensorDataset


class Regression(L.LightningModule):
    """A linear regression on fixed data; ``val_losses`` scripts the monitored value so decisions are exact."""

    def __init__(self, val_losses: list[float]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=generator)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            scripted = self.hparams.val_losses
            self.log("val_loss", float(scripted[min(self.current_epoch, len(scripted) - 1)]), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x[:16], self.y[:16]), batch_size=16)


class FailOnce(Callback):
    """Crashes rank 0 once, at the start of epoch ``epoch`` (a marker file remembers that it did)."""

    def __init__(self, epoch: int | None, marker: str) -> None:
        self.epoch, self.marker = epoch, marker

    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        if ctx.epoch == self.epoch and ctx.is_global_zero and not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise RuntimeError(f"injected worker failure at the start of epoch {ctx.epoch}")


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: a Lightning fit, resumed from Ray's checkpoint after a failure."""
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback, prepare_trainer

    out = Path(config["out"])
    L.seed_everything(0, verbose=False)
    callbacks = to_lightning(
        [
            EarlyStoppingCallback(monitor="val_loss", patience=2),
            CheckpointCallback(save_dir=out / "checkpoints", monitor="val_loss", save_total_limit=2, save_last=False),
            LoggingCallback(backends=["csv"], save_dir=out / "logs", run_name="run"),
            FailOnce(config["fail_at_epoch"], str(out / "failed.marker")),
        ]
    )
    trainer = L.Trainer(
        max_epochs=config["max_epochs"],
        accelerator="cpu",
        devices="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        callbacks=[*callbacks, RayTrainReportCallback()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer = prepare_trainer(trainer)
    model = Regression(config["val_losses"])
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        trainer.fit(model)
    else:
        with checkpoint.as_directory() as directory:
            trainer.fit(model, ckpt_path=os.path.join(directory, RayTrainReportCallback.CHECKPOINT_NAME))
    if trainer.is_global_zero:
        (out / "summary.json").write_text(
            json.dumps({"stopped_at_epoch": trainer.current_epoch, "global_step": trainer.global_step})
        )


def run(out: Path, *, fail_at_epoch: int | None = None, max_epochs: int = 6) -> dict[str, Any]:
    """Trains on 2 Ray Train CPU workers; returns the summary, the kept checkpoints and the CSV rows."""
    out.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "out": str(out),
            "fail_at_epoch": fail_at_epoch,
            "max_epochs": max_epochs,
            # improves at epochs 0-2, then never again: early stopping (patience 2) stops after epoch 4
            "val_losses": [1.0, 0.8, 0.5, 0.6, 0.7, 0.9, 1.0, 1.0],
        },
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(
            storage_path=str(out / "ray_results"),
            name="ray_train_example",
            failure_config=FailureConfig(max_failures=1),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    logs = sorted((out / "logs").rglob("*.csv"))
    return {
        "summary": json.loads((out / "summary.json").read_text()),
        "checkpoints": sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")),
        "csv": {str(p.relative_to(out / "logs")): p.read_text() for p in logs},
        "ray_checkpoint": isinstance(result.checkpoint, Checkpoint),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=None)
    parser.add_argument("--fail-at-epoch", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="3 epochs")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ray-train-"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run(out, fail_at_epoch=args.fail_at_epoch, max_epochs=3 if args.smoke else 6)
    finally:
        ray.shutdown()
    print(f"stopped at epoch {report['summary']['stopped_at_epoch']}; kept checkpoints: {report['checkpoints']}")
    print(f"outputs in {out}")


if __name__ == "__main__":
    main()
