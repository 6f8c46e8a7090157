"""The data side of WarpRec's hooks: ``on_data_reading`` through [`announce_data`][announce_data], and where
``on_dataset_creation`` finds its datasets."""

from __future__ import annotations

from typing import Any

from callbridge.adapters.styles import describe
from callbridge.callbacks import CallbackContext


def data_source(ctx: CallbackContext) -> tuple[Any, Any, list[Any]] | None:
    """``(main_dataset, val_dataset, validation_folds)`` from the datamodule, else the LightningModule.

    ``main_dataset`` is the owner's ``main_dataset`` (else its ``train_dataset``); ``val_dataset`` and
    ``validation_folds`` default to None and ``[]``. None when neither exposes a main dataset.
    """
    for owner in (ctx.datamodule, ctx.model):
        if owner is None:
            continue
        main = getattr(owner, "main_dataset", None)
        if main is None:
            main = getattr(owner, "train_dataset", None)
        if main is not None:
            folds = getattr(owner, "validation_folds", None)
            return main, getattr(owner, "val_dataset", None), list(folds) if folds is not None else []
    return None


def _trainer_of(owner: Any) -> Any:
    """The trainer ``owner`` (a LightningDataModule or LightningModule) is attached to, or None."""
    try:
        return getattr(owner, "trainer", None)
    except RuntimeError:  # a LightningModule not attached to a Trainer says so by raising
        return None


def _readers(trainer: Any) -> list[Any]:
    """The adapters, given to ``to_lightning`` for ``trainer``, whose callback defines ``on_data_reading``."""
    from callbridge.adapters.lightning import LightningBridge
    from callbridge.adapters.warprec.adapter import WarpRecAdapter

    return [
        unified
        for bridge in getattr(trainer, "callbacks", ())
        if isinstance(bridge, LightningBridge)
        for unified in bridge.callbacks
        if isinstance(unified, WarpRecAdapter) and unified.reads_data
    ]


def announce_data(owner: Any, data: Any, *, broadcast: bool | None = None) -> Any:
    """Pass raw data through every WarpRec-style callback's ``on_data_reading``; return the replacement.

    Call it from a ``LightningDataModule`` (or ``LightningModule``) right after reading the raw data, in
    ``setup`` (recommended) or ``prepare_data``: ``data = announce_data(self, data)``. The callbacks are
    the WarpRec-style ones given to ``to_lightning`` for the trainer the owner is attached to; each one's
    return value is the next one's input, in registration order.

    Multi-process runs: the hooks run on global rank zero only, and the caller says where it is, since
    Lightning runs ``setup`` on every process but ``prepare_data`` on local rank zero only:

    * ``broadcast=True`` (from ``setup``): rank zero's result is sent to every rank, so that all train on
      the same data (it must be picklable; every rank must call ``announce_data`` the same number of times);
    * ``broadcast=False`` (from ``prepare_data``): nothing is sent (the other ranks are not there to
      receive); the other processes get ``data`` unchanged: write the result to disk there.

    A single process needs neither.

    Raises:
        TypeError: a callback's ``on_data_reading`` returned None (WarpRec replaces the data with the
            return value, so returning nothing is a bug).
        ValueError: a multi-process run, and ``broadcast`` not given.

    Examples:
        >>> import lightning as L
        >>> class Ratings(L.LightningDataModule):
        ...     def setup(self, stage):
        ...         rows = [(0, 1, 5.0), (1, 2, 1.0)]
        ...         self.rows = announce_data(self, rows, broadcast=True)
        >>> dm = Ratings()
        >>> dm.setup("fit")  # not attached to a trainer: unchanged
        >>> dm.rows
        [(0, 1, 5.0), (1, 2, 1.0)]
    """
    trainer = _trainer_of(owner)
    if trainer is None:
        return data
    readers = _readers(trainer)
    if not readers:
        return data
    from callbridge.adapters.lightning import LightningContext

    # The bridge's own context for the ranks and the broadcast: its setup (and context) comes after this call.
    ctx = LightningContext(trainer, None)
    world_size = ctx.world_size
    if world_size > 1 and broadcast is None:
        raise ValueError(
            f"announce_data({describe(owner)}, ...) in a {world_size}-process run: say whether every process "
            "calls it: broadcast=True from setup (rank zero's result goes to every rank), broadcast=False "
            "from prepare_data (local rank zero only, nothing is sent)"
        )
    if ctx.is_global_zero:
        for adapter in readers:
            replaced = adapter.callback.on_data_reading(data)
            if replaced is None:
                raise TypeError(
                    f"{describe(adapter.callback)}.on_data_reading returned None; it must return the data "
                    "(WarpRec replaces the data with the return value)"
                )
            data = replaced
    if world_size > 1 and broadcast:
        data = ctx.broadcast(data, src=0)
    return data
