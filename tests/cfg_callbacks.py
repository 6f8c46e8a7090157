"""Callbacks that the config and CLI tests name by class path (``cfg_callbacks.X``)."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning.pytorch as pl
from callbridge.callbacks import Callback, CallbackContext

#: (callback name, hook) in the order they ran, across every callback below.
EVENTS: list[tuple[str, str]] = []


class Recorder(Callback):
    """A unified callback that records its epoch-level hooks under its ``name``."""

    def __init__(self, name: str = "recorder", every: int = 1) -> None:
        self.name = name
        self.every = every

    def on_train_begin(self, ctx: CallbackContext) -> None:
        EVENTS.append((self.name, "on_train_begin"))

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        EVENTS.append((self.name, "on_epoch_end"))


class NativeRecorder(pl.Callback):
    """A native Lightning callback that records ``on_train_start``."""

    def __init__(self, name: str = "native") -> None:
        self.name = name

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        EVENTS.append((self.name, "on_train_start"))


class KerasStyle:
    """Keras-style by hook signature only (no keras import)."""

    seen: ClassVar[list[int]] = []

    def __init__(self, tag: str = "k") -> None:
        self.tag = tag

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        KerasStyle.seen.append(epoch)
        EVENTS.append((self.tag, "keras.on_epoch_end"))


class HydraStyle:
    """Hydra-style by hook signature only."""

    def __init__(self, tag: str = "h") -> None:
        self.tag = tag

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        EVENTS.append((self.tag, "hydra.on_job_end"))


class NotACallback:
    """Has no hook of any style."""

    def __init__(self, x: int = 0) -> None:
        self.x = x
