"""Unified ``on_epoch_end`` after the LightningModule's own ``on_train_epoch_end``, without a disguise.

Lightning calls ``on_train_epoch_end`` in three passes: the ordinary callbacks, then the LightningModule,
then the "monitoring" callbacks (``isinstance(cb, (EarlyStopping, Checkpoint))``, so that they see what the
module logs in its own hook). Unified ``on_epoch_end`` promises every value of the epoch, so it must run in
the third pass, and before any ``ModelCheckpoint`` saves there (the checkpoint then holds the callbacks'
state for the epoch).

The bridge, an ordinary callback, runs in the first pass: there it puts an `EpochEndRelay` (a
``Checkpoint`` that saves nothing) into ``trainer.callbacks`` just before the first monitoring callback; in the
third pass the relay takes itself out again and runs the bridge's epoch end. Outside that window,
``trainer.callbacks``, ``trainer.checkpoint_callback(s)``, ``trainer.early_stopping_callback(s)`` and
``ckpt_path="best"`` are exactly what they are without callbridge. The Lightning internals this relies on are
listed in ``docs/hooks.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping


class EpochEndRelay(Checkpoint):
    """Runs ``epoch_end(trainer)`` from Lightning's monitoring pass of ``on_train_epoch_end``; present in
    ``trainer.callbacks`` only between the bridge's ``on_train_epoch_end`` and its own.

    Examples:
        >>> relay = EpochEndRelay(lambda trainer: print("epoch end"), state_key="callbridge[X].epoch_end")
        >>> relay.state_key, relay.state_dict()
        ('callbridge[X].epoch_end', {})
    """

    def __init__(self, epoch_end: Callable[[pl.Trainer], None], state_key: str) -> None:
        self._epoch_end = epoch_end
        self._state_key = state_key  # read by Lightning at every hook call

    @property
    def state_key(self) -> str:
        return self._state_key

    def insert_into(self, trainer: pl.Trainer) -> None:
        """Puts the relay just before the first monitoring callback of ``trainer.callbacks`` (at the end when
        there is none). Lightning is iterating over a filtered copy of the list: the list is replaced."""
        callbacks = [cb for cb in trainer.callbacks if cb is not self]
        position = next(
            (i for i, cb in enumerate(callbacks) if isinstance(cb, (EarlyStopping, Checkpoint))), len(callbacks)
        )
        trainer.callbacks = [*callbacks[:position], self, *callbacks[position:]]

    def withdraw_from(self, trainer: pl.Trainer) -> None:
        """Takes the relay out of ``trainer.callbacks`` (a no-op when it is not there)."""
        if any(cb is self for cb in trainer.callbacks):
            trainer.callbacks = [cb for cb in trainer.callbacks if cb is not self]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.withdraw_from(trainer)
        self._epoch_end(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._state_key!r})"
