"""DDP scenarios for the bridge itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbridge.adapters import to_lightning
from callbridge.callbacks import Callback, CallbackContext
from toy import ToyRegression

from ddp_scenarios import ddp_trainer, scenario


class StopOnRankOne(Callback):
    """Requests a stop at global step 3, on rank 1 only."""

    def __init__(self) -> None:
        self.steps_seen = 0

    def on_step_end(self, ctx: CallbackContext) -> None:
        self.steps_seen += 1
        if ctx.trainer.global_rank == 1 and ctx.step == 3:
            ctx.should_stop = True


class RankZeroLR(Callback):
    """A rank-zero-only callback that changes the learning rate and the weights at epoch 0's end."""

    rank_zero_only = True

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        if ctx.epoch == 0:
            ctx.learning_rate = 0.123
            for p in ctx.model.parameters():
                p.data.fill_(0.5)
            ctx.mark_weights_changed()


class RankZeroStepStop(Callback):
    """A rank-zero-only step listener: rank 1 has no step listeners but must join every step sync."""

    rank_zero_only = True

    def on_step_end(self, ctx: CallbackContext) -> None:
        if ctx.step == 2:
            ctx.should_stop = True


@scenario
def bridge_rank_zero_only_step_stop(workdir: Path) -> dict[str, Any]:
    trainer = ddp_trainer(to_lightning([RankZeroStepStop()]), max_epochs=3, limit_val_batches=1)
    trainer.fit(ToyRegression(n=64, batch_size=8))
    return {"global_step": trainer.global_step}


@scenario
def bridge_stop_on_rank_one(workdir: Path) -> dict[str, Any]:
    callback = StopOnRankOne()
    trainer = ddp_trainer(to_lightning([callback]), max_epochs=5, limit_val_batches=1)
    trainer.fit(ToyRegression(n=64, batch_size=8))
    return {"global_step": trainer.global_step, "steps_seen": callback.steps_seen, "epoch": trainer.current_epoch}


@scenario
def bridge_rank_zero_writes_broadcast(workdir: Path) -> dict[str, Any]:
    model = ToyRegression(n=32, batch_size=8, lr=0.01)
    trainer = ddp_trainer(to_lightning([RankZeroLR()]), max_epochs=1, limit_val_batches=1)
    trainer.fit(model)
    return {
        "lr": trainer.optimizers[0].param_groups[0]["lr"],
        "weights": [p.detach().flatten().tolist() for p in model.parameters()],
    }
