"""ProgressCallback: one tqdm bar per training epoch, with the loss, the learning rate and the monitored metric."""

from __future__ import annotations

import math
from typing import IO, Any, ClassVar

from callbridge.callbacks.base import Callback
from callbridge.callbacks.context import CallbackContext


class ProgressCallback(Callback):
    """A tqdm bar per training epoch showing the loss, the learning rate and the monitored metric.

    The bar advances every ``refresh_rate`` batches (``0`` hides it) and shows the last batch's loss
    and the first param group's learning rate; at the end of the epoch it adds ``monitor`` (or, when
    no monitor is given, the first logged metric whose name starts with ``val``). It draws on global
    rank zero only. Under Lightning (through
    [`callbridge.adapters.to_lightning`][callbridge.adapters.lightning.to_lightning]) it replaces Lightning's own bar,
    whatever ``enable_progress_bar`` says: one bar renders, never two.

    Args:
        refresh_rate: update the bar every this many training batches; 0 disables the bar.
        monitor: metric shown at the end of each epoch (for example ``"val_loss"``).
        file: where the bar is drawn (default: ``sys.stderr``, as tqdm does).

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters import to_lightning
        >>> from callbridge.callbacks import ProgressCallback
        >>> trainer = L.Trainer(callbacks=to_lightning([ProgressCallback(refresh_rate=10)]), max_epochs=3)
    """

    rank_zero_only: ClassVar[bool] = True
    observes_only: ClassVar[bool] = True
    replaces_progress_bar: ClassVar[bool] = True

    def __init__(self, refresh_rate: int = 1, monitor: str | None = None, file: IO[str] | None = None) -> None:
        if isinstance(refresh_rate, bool) or not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(
                f"ProgressCallback: refresh_rate must be an int >= 0 (0 hides the bar), got {refresh_rate!r}"
            )
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"ProgressCallback: monitor must be a metric name or None, got {monitor!r}")
        self.refresh_rate = refresh_rate
        self.monitor = monitor
        self.file = file
        self.bar: Any = None
        self.bars_drawn = 0
        self._batches = 0

    # -- hooks -------------------------------------------------------------------------------------
    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        self._close()
        if self.refresh_rate == 0 or not ctx.is_global_zero:
            return
        from tqdm.auto import tqdm

        max_epochs = getattr(ctx.trainer, "max_epochs", None)
        desc = f"Epoch {ctx.epoch + 1}/{max_epochs}" if max_epochs and max_epochs > 0 else f"Epoch {ctx.epoch + 1}"
        self.bar = tqdm(total=_batches_per_epoch(ctx), desc=desc, file=self.file, dynamic_ncols=True, leave=True)
        self.bars_drawn += 1
        self._batches = 0

    def on_step_end(self, ctx: CallbackContext) -> None:
        bar = self.bar
        if bar is None:
            return
        self._batches += 1
        if self._batches % self.refresh_rate == 0:
            bar.set_postfix(self._postfix(ctx), refresh=False)
            bar.update(self._batches - bar.n)

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        bar = self.bar
        if bar is None:
            return
        postfix = self._postfix(ctx)
        key = self.monitor or next((k for k in ctx.metrics if k.startswith("val")), None)
        value = ctx.metrics.get(key) if key else None
        if value is not None:
            postfix[key] = f"{value:.4g}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(self._batches - bar.n)
        self._close()

    def on_train_end(self, ctx: CallbackContext) -> None:
        self._close()

    def on_exception(self, ctx: CallbackContext) -> None:
        self._close()

    # -- helpers -----------------------------------------------------------------------------------
    def _postfix(self, ctx: CallbackContext) -> dict[str, str]:
        postfix = {}
        loss = ctx.loss
        if loss is not None:
            postfix["loss"] = f"{loss:.4g}"
        lr = ctx.learning_rate
        if lr is not None:
            postfix["lr"] = f"{lr:.3g}"
        return postfix

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __repr__(self) -> str:
        return f"ProgressCallback(refresh_rate={self.refresh_rate}, monitor={self.monitor!r})"


def _batches_per_epoch(ctx: CallbackContext) -> int | None:
    """Training batches per epoch when the engine knows them (Lightning's ``num_training_batches``)."""
    total = getattr(ctx.trainer, "num_training_batches", None)
    if isinstance(total, (int, float)) and math.isfinite(total) and total > 0:
        return int(total)
    return None
