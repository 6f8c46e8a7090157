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
