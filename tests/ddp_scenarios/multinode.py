"""A scenario that runs both as 2 processes on one node and as 1 process on each of 2 nodes.

The node layout comes from torchrun's environment (``LOCAL_WORLD_SIZE``, ``WORLD_SIZE``), so the same code
runs in the standalone launch of the whole suite and in ``tests/test_scale_out.py``'s two-node launch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from callbridge.adapters import to_lightning
from callbridge.callbacks import Callback, CallbackContext
from toy import ToyRegression

from ddp_scenarios import ddp_trainer, scenario


class StopOnLastRank(Callback):
    """Requests a stop at global step 3 on the last rank only; every rank must stop there."""

    def on_step_end(self, ctx: CallbackContext) -> None:
        if ctx.global_rank == ctx.world_size - 1 and ctx.step == 3:
            ctx.should_stop = True


class RankZeroLR(Callback):
    """A rank-zero-only learning-rate change at the first step: every rank must train with it."""

    rank_zero_only = True

    def on_step_end(self, ctx: CallbackContext) -> None:
        if ctx.step == 1:
            ctx.learning_rate = 0.0321


@scenario
def nodes_agree_on_stop_and_lr(workdir: Path) -> dict[str, Any]:
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "2"))
    world = int(os.environ.get("WORLD_SIZE", "2"))
    trainer = ddp_trainer(to_lightning([StopOnLastRank(), RankZeroLR()]), devices=local, num_nodes=world // local)
    model = ToyRegression()
    trainer.fit(model)
    return {
        "global_step": trainer.global_step,
        "lr": trainer.optimizers[0].param_groups[0]["lr"],
        "node_rank": trainer.node_rank,
        "global_rank": trainer.global_rank,
        "num_nodes": trainer.num_nodes,
    }
