"""DDP scenarios for EarlyStoppingCallback and CheckpointCallback."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import callbridge.callbacks.checkpoint as checkpoint_module
import callbridge.callbacks.serialization as serialization
from callbridge.adapters import to_lightning
from callbridge.callbacks import Callback, CallbackContext, CheckpointCallback, EarlyStoppingCallback
from toy import ToyRegression

from ddp_scenarios import ddp_trainer, scenario

# Each rank logs its own val_loss, unsynced: alone, rank 0 would stop after epoch 3 and rank 1 never.
RANK_LOSSES = {0: [1.0, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0, 1.0], 1: [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]}


class PerRankLosses(ToyRegression):
    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            losses = RANK_LOSSES[self.global_rank]
            self.log("val_loss", losses[min(self.current_epoch, len(losses) - 1)])


class WeightsAt(Callback):
    priority = 10

    def __init__(self) -> None:
        self.weights: dict[int, list[list[float]]] = {}

    def on_evaluate(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit":
            self.weights[ctx.epoch] = [p.detach().flatten().tolist() for p in ctx.model.parameters()]


@scenario
def builtins_es_ckpt(workdir: Path) -> dict[str, Any]:
    writes = 0
    real = serialization.atomic_path

    @contextlib.contextmanager
    def counting(path):
        nonlocal writes
        writes += 1
        with real(path) as tmp:
            yield tmp

    serialization.atomic_path = checkpoint_module.atomic_path = counting
    try:
        seen = WeightsAt()
        early = EarlyStoppingCallback(monitor="eval_loss", patience=2)
        ckpt = CheckpointCallback(workdir / "ckpt", save_total_limit=2, monitor="val_loss")
        model = PerRankLosses(n=32, batch_size=8)
        trainer = ddp_trainer(to_lightning([seen, early, ckpt]), max_epochs=8, limit_val_batches=1)
        trainer.fit(model)
    finally:
        serialization.atomic_path = checkpoint_module.atomic_path = real
    trainer.strategy.barrier()
    weights = [p.detach().flatten().tolist() for p in model.parameters()]
    return {
        "stopped_epoch": early.stopped_epoch,
        "current_epoch": trainer.current_epoch,
        "weights": weights,
        "restored_best": weights == seen.weights[early.best_epoch],
        "writes": writes,
        "kept": ckpt.kept_paths,
        "kept_names": [Path(p).name for p in ckpt.kept_paths],
        "files": sorted(p.name for p in (workdir / "ckpt").iterdir()),
    }
