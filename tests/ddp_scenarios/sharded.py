"""Weights sharded with FSDP2 (``fully_shard``) over 2 gloo processes, driven through callbridge's own code path.

Lightning's FSDP strategy needs a GPU; PyTorch's FSDP2 runs on CPU. These scenarios drive the built-in
``EarlyStoppingCallback`` from a plain loop (``CallbackList`` + ``CallbackContext(weights_sharded=...)``),
which is the same snapshot/restore path the bridge takes under Lightning's FSDP strategy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from callbridge.callbacks import CallbackContext, CallbackList, EarlyStoppingCallback

from ddp_scenarios import scenario


def _full_state(model: torch.nn.Module) -> dict[str, list[float]]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {key: [round(float(x), 6) for x in value.flatten()] for key, value in state.items()}


@scenario
def fsdp2_restore_best_weights(workdir: Path) -> dict[str, Any]:
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    fully_shard(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    early = EarlyStoppingCallback(monitor="val_loss", patience=2, restore_best=True, offload_snapshot=True)
    callbacks = CallbackList([early], is_global_zero=dist.get_rank() == 0)
    ctx = CallbackContext(model=model, optimizer=optimizer, world_size=dist.get_world_size())
    ctx.weights_sharded = True
    ctx.global_rank = dist.get_rank()
    ctx.is_global_zero = dist.get_rank() == 0
    scripted = [1.0, 0.6, 0.7, 0.8, 0.9]  # best after epoch 1, stop after epoch 3
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 4, generator=generator), torch.randn(32, 1, generator=generator)
    callbacks.dispatch("on_train_begin", ctx)
    full_at_best = None
    for epoch, val_loss in enumerate(scripted):
        ctx.epoch = epoch
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.metrics = {"val_loss": val_loss}
        callbacks.dispatch("on_epoch_end", ctx)
        if epoch == 1:
            full_at_best = _full_state(model)
        if ctx.should_stop:
            break
    full_before_restore = _full_state(model)
    callbacks.dispatch("on_train_end", ctx)
    full_after_restore = _full_state(model)
    return {
        "stopped_epoch": early.stopped_epoch,
        "snapshot_is_sharded": all(type(v).__name__ == "DTensor" for v in early.best_weights.values()),
        "snapshot_on_cpu": all(v.device.type == "cpu" for v in early.best_weights.values()),
        "changed_since_best": full_before_restore != full_at_best,
        "restored_equals_best": full_after_restore == full_at_best,
        "snapshot_in_checkpoint": "best_weights" in early.state_dict(),
    }


class _ShardedRegression:
    """ToyRegression whose linear layer FSDP2 shards over Lightning's ModelParallelStrategy device mesh (CPU)."""

    @staticmethod
    def make(val_losses: list[float]):
        from torch.distributed.fsdp import fully_shard
        from toy import ToyRegression

        class ShardedRegression(ToyRegression):
            def configure_model(self) -> None:
                fully_shard(self.layer, mesh=self.device_mesh["data_parallel"])

        return ShardedRegression(val_losses=val_losses)


def _model_parallel_trainer(callbacks: list[Any]):
    from lightning.pytorch.strategies import ModelParallelStrategy
    from toy import make_trainer

    strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)
    return make_trainer(callbacks, strategy=strategy, accelerator="cpu", devices=2, max_epochs=4)


@scenario
def model_parallel_restore_best_weights(workdir: Path) -> dict[str, Any]:
    """Lightning's ModelParallelStrategy with FSDP2 on CPU: EarlyStoppingCallback(restore_best=True) snapshots
    each rank's shard (on the host) and restores the best epoch's weights at train end."""
    from callbridge.adapters import to_lightning
    from callbridge.callbacks import Callback

    class FullStateAtEpochEnd(Callback):  # runs on every rank: gathering the full state is a collective
        def __init__(self) -> None:
            self.states: dict[int, Any] = {}

        def on_epoch_end(self, ctx: CallbackContext) -> None:
            self.states[ctx.epoch] = _full_state(ctx.model)

    recorder = FullStateAtEpochEnd()
    early = EarlyStoppingCallback(monitor="val_loss", patience=2, restore_best=True, offload_snapshot=True)
    trainer = _model_parallel_trainer(to_lightning([early, recorder]))
    model = _ShardedRegression.make([1.0, 0.6, 0.7, 0.8])
    trainer.fit(model)
    restored = _full_state(model)
    bridge = trainer.callbacks[0]
    return {
        "strategy": type(trainer.strategy).__name__,
        "weights_sharded": bridge.context.weights_sharded,
        "stopped_epoch": early.stopped_epoch,
        "best_epoch": early.best_epoch,
        "snapshot_on_cpu": all(v.device.type == "cpu" for v in early.best_weights.values()),
        "restored_equals_best": restored == recorder.states.get(1),
        "differs_from_last": restored != recorder.states.get(3),
    }


@scenario
def model_parallel_refuses_rank_zero_weight_writer(workdir: Path) -> dict[str, Any]:
    """A rank-zero-only callback that writes weights is refused before training, on every rank (no hang)."""
    from callbridge.adapters import to_lightning
    from callbridge.callbacks import Callback

    class RankZeroRestore(Callback):
        rank_zero_only = True
        writes_weights = True

        def on_epoch_end(self, ctx: CallbackContext) -> None:
            ctx.mark_weights_changed()

    steps = []

    class CountSteps(Callback):
        def on_step_end(self, ctx: CallbackContext) -> None:
            steps.append(ctx.step)

    trainer = _model_parallel_trainer(to_lightning([RankZeroRestore(), CountSteps()]))
    try:
        trainer.fit(_ShardedRegression.make([1.0]))
    except ValueError as error:
        return {"error": str(error), "steps": len(steps)}
    return {"error": None, "steps": len(steps)}
