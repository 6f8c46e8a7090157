"""No hidden cost: callbacks that use only epoch hooks turn no tensor into a Python number during training steps.

On an accelerator each ``Tensor.item()`` (``float(t)``, ``t.tolist()`` ...) is a device-to-host sync. On
CPU we count those conversions instead: `ConversionCounter` wraps them on ``torch.Tensor`` and
counts the calls made while a training step is in progress (from the first callback's
``on_train_batch_start`` to the module's ``on_train_batch_end``, which Lightning runs after every
callback's), in total and from callbridge's own code. ``benchmarks/gpu_sync_check.py`` checks the same
on a GPU with ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import callbridge.adapters
import callbridge.callbacks
import lightning as L
import pytest
import torch
from callbridge.adapters import detect_style, to_lightning
from callbridge.callbacks import Callback
from toy import ToyRegression, make_trainer

CALLBRIDGE_DIRS = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep for module in (callbridge.adapters, callbridge.callbacks)
)
CONVERSIONS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy")
EPOCHS = 2
STEPS = EPOCHS * 4  # ToyRegression: 64 samples, batch size 16


class ConversionCounter:
    """Context manager counting tensor-to-Python conversions made during training steps.

    ``step_total``: all conversions inside steps; ``step_callbridge``: those with a callbridge frame
    (adapters/ or callbacks/) on the stack; ``outside_callbridge``: callbridge's conversions outside steps.
    """

    def __init__(self) -> None:
        self.in_step = False
        self.step_total = 0
        self.step_callbridge = 0
        self.outside_callbridge = 0
        self._saved: dict[str, Any] = {}

    def _from_callbridge(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename.startswith(CALLBRIDGE_DIRS):
                return True
            frame = frame.f_back
        return False

    def _wrap(self, name: str) -> Any:
        original = getattr(torch.Tensor, name)
        counter = self

        def counted(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            mine = counter._from_callbridge()
            if counter.in_step:
                counter.step_total += 1
                counter.step_callbridge += mine
            else:
                counter.outside_callbridge += mine
            return original(tensor, *args, **kwargs)

        return counted

    def __enter__(self) -> ConversionCounter:
        for name in CONVERSIONS:
            self._saved[name] = torch.Tensor.__dict__.get(name)
            setattr(torch.Tensor, name, self._wrap(name))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            if original is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, original)


class StepWindowOpen(L.Callback):
    """First callback: a training step starts here."""

    def __init__(self, counter: ConversionCounter) -> None:
        self.counter = counter

    def on_train_batch_start(self, *args: Any) -> None:
        self.counter.in_step = True


class WindowedToy(ToyRegression):
    """Closes the step window in the module's ``on_train_batch_end``, after every callback's."""

    counter: ConversionCounter | None = None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.counter is not None:
            self.counter.in_step = False


def count_conversions(callbacks: list[Any]) -> ConversionCounter:
    model = WindowedToy()
    with ConversionCounter() as counter:
        model.counter = counter
        trainer = make_trainer([StepWindowOpen(counter), *callbacks], max_epochs=EPOCHS, num_sanity_val_steps=0)
        trainer.fit(model)
    assert trainer.global_step == STEPS
    return counter


class EpochOnly(Callback):
    """Reads metrics (and the loss) at epoch level only."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_epoch_begin(self, ctx):
        self.seen.append(float(ctx.epoch))

    def on_epoch_end(self, ctx):
        self.seen.append(ctx.metrics["train_loss_epoch"])
        self.seen.append(ctx.loss)

    def on_evaluate(self, ctx):
        self.seen.append(ctx.metrics["val_loss"])


class LossReader(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, ctx):
        self.losses.append(ctx.loss)


class KerasEpochEnd:
    """Duck-typed Keras callback: no base class, epoch-level hook only."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs or {}))


@pytest.fixture(scope="module")
def baseline() -> ConversionCounter:
    return count_conversions([])


def test_counter_sees_conversions_from_callbridge():
    reader = LossReader()
    counter = count_conversions(to_lightning([reader]))
    assert len(reader.losses) == STEPS
    assert all(isinstance(loss, float) for loss in reader.losses)
    # a callback reading ctx.loss in on_step_end costs a conversion per step (a device sync on a GPU)
    assert counter.step_callbridge >= STEPS


def test_epoch_only_unified_callbacks_convert_nothing_per_step(baseline):
    callbacks = [EpochOnly() for _ in range(20)]
    counter = count_conversions(to_lightning(callbacks))
    assert counter.step_callbridge == 0
    assert counter.step_total == baseline.step_total  # nothing added inside steps, from anywhere
    # they did read numbers, at epoch level: conversions happen there, not per step
    assert all(len(cb.seen) == 4 * EPOCHS for cb in callbacks)
    assert counter.outside_callbridge > 0


def test_epoch_only_keras_callbacks_convert_nothing_per_step(baseline):
    callbacks = [KerasEpochEnd() for _ in range(5)]
    assert detect_style(callbacks[0]) == "keras"  # duck-typed: no keras import needed
    counter = count_conversions(to_lightning(callbacks))
    assert counter.step_callbridge == 0
    assert counter.step_total == baseline.step_total
    assert all(len(cb.logs) == EPOCHS for cb in callbacks)
    assert all(isinstance(value, float) for cb in callbacks for logs in cb.logs for value in logs.values())
