"""Unified callbacks in a hand-written PyTorch loop, driven by ``CallbackList`` (no Lightning involved).

Run: python examples/plain_loop.py
"""

from __future__ import annotations

from typing import Any

import torch
from callbridge.callbacks import Callback, CallbackContext, CallbackList


class HaltOnNan(Callback):
    def on_step_end(self, ctx: CallbackContext) -> None:
        if ctx.loss != ctx.loss:
            print(f"NaN overflow detected at step {ctx.step}!")
            ctx.should_stop = True


class StopWhenConverged(Callback):
    """Stops once the epoch's mean loss falls under ``threshold``."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        if ctx.metrics["epoch_loss"] < self.threshold:
            print(f"epoch {ctx.epoch}: loss {ctx.metrics['epoch_loss']:.4f} < {self.threshold}, stopping")
            ctx.should_stop = True


class EventLog(Callback):
    priority = 0  # runs before the others

    def __init__(self) -> None:
        self.events: list[str] = []

    def on_train_begin(self, ctx: CallbackContext) -> None:
        self.events.append("on_train_begin")

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self.events.append("on_epoch_end")

    def on_train_end(self, ctx: CallbackContext) -> None:
        self.events.append("on_train_end")


def train(epochs: int = 50) -> dict[str, Any]:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    log = EventLog()
    callbacks = CallbackList([HaltOnNan(), StopWhenConverged(threshold=0.01), log])
    ctx = CallbackContext(model=model, optimizer=optimizer, total_steps=epochs * 8)

    callbacks.on_train_begin(ctx)
    for epoch in range(epochs):
        ctx.epoch = epoch
        callbacks.on_epoch_begin(ctx)
        total = torch.zeros(())
        for batch_idx, (xb, yb) in enumerate(zip(x.split(32), y.split(32), strict=True)):
            ctx.batch_idx = batch_idx
            callbacks.on_step_begin(ctx)
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ctx.step += 1
            ctx.loss = loss.detach()  # converted to a float only if a callback reads it
            total += loss.detach()
            callbacks.on_step_end(ctx)
        ctx.update_metrics({"epoch_loss": total / 8})
        callbacks.on_epoch_end(ctx)
        if ctx.should_stop:
            break
    callbacks.on_train_end(ctx)
    return {"epochs_run": ctx.epoch + 1, "stopped_early": ctx.should_stop, "events": log.events}


if __name__ == "__main__":
    print(train())
