"""Stop training when a monitored metric stops improving; optionally put the best weights back."""

from __future__ import annotations

import math
import warnings
from typing import Any

from callbridge.callbacks.base import Callback
from callbridge.callbacks.context import CallbackContext
from callbridge.callbacks.monitor import MonitorError, find_monitor, missing_monitor_message

_MODES = ("min", "max")
_CHECK_ON = ("auto", "evaluate", "epoch_end")


class EarlyStoppingCallback(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` checks.

    One check per validation pass inside fit (or per epoch). With ``check_on="auto"`` the check
    happens where the monitored value is produced: at the end of the validation pass inside fit
    (``on_evaluate``) when the key is there, otherwise at ``on_epoch_end`` (a training metric such
    as ``train_loss_epoch``, or a loop without evaluation). The choice is made once, at the first
    epoch, and kept for the run.

    The monitor name matches the exact logged key; if that key is absent, ``eval_X`` also matches a
    logged ``val_X`` and vice versa, so the seed's ``monitor="eval_loss"`` works with Lightning's
    ``val_loss``. A monitor that is never logged raises a `MonitorError` (a
    ``KeyError``) listing the keys that were (``strict=False``: a warning, and the callback does nothing).

    ``restore_best=True`` keeps a snapshot of the best weights and loads it into the model at train end
    (on every process; all processes take the same decisions because under several processes the
    monitored value of global rank zero is used). The snapshot is a copy of the model's ``state_dict``
    on the model's own device (no device-to-host copy): it costs one extra model's worth of device
    memory, allocated at the first improvement and overwritten in place at later ones.

    Counters, the best value and (with ``snapshot_in_checkpoint``) the snapshot are saved in
    checkpoints, so an interrupted and resumed run stops at the same epoch and restores the same
    weights as an uninterrupted one.

    Examples:
        In a plain loop (under Lightning: ``L.Trainer(callbacks=to_lightning([early_stop]))``):
        >>> from callbridge.callbacks import CallbackContext, CallbackList, EarlyStoppingCallback
        >>> early_stop = EarlyStoppingCallback(
        ...     monitor="eval_loss", patience=3, min_delta=0.001, mode="min", restore_best=True
        ... )
        >>> callbacks, ctx = CallbackList([early_stop]), CallbackContext()
        >>> for epoch, loss in enumerate([1.0, 0.8, 0.8, 0.9, 0.85, 0.7]):
        ...     ctx.epoch, ctx.metrics = epoch, {"eval_loss": loss}
        ...     callbacks.on_evaluate(ctx)
        ...     if ctx.should_stop:
        ...         break
        >>> early_stop.best, early_stop.stopped_epoch
        (0.8, 4)

    Args:
        monitor: metric key to watch (see the matching rule above).
        patience: checks without improvement before stopping (0: stop at the first one).
        min_delta: an improvement must exceed this (``>= 0``).
        mode: ``"min"`` (lower is better) or ``"max"``.
        restore_best: load the best weights back into the model at train end.
        strict: raise (True) or warn once (False) when the monitor is never logged (callbridge's one meaning
            of ``strict``: a problem that can be tolerated is an error, not a warning).
        check_on: ``"auto"``, ``"evaluate"`` (validation end inside fit) or ``"epoch_end"``.
        check_finite: stop as soon as the monitored value is NaN or infinite.
        snapshot_in_checkpoint: also save the best-weights snapshot in checkpoints (doubles the
            model's share of the checkpoint); without it a resumed run restores only improvements
            made after the resume. Sharded snapshots (FSDP and the like) are never written into checkpoints.
        offload_snapshot: keep the best-weights snapshot in host memory instead of on the model's device
            (saves device memory for large models; each snapshot then costs a device-to-host copy).
        verbose: print a line when training is stopped.
    """

    def __init__(
        self,
        monitor: str = "eval_loss",
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best: bool = True,
        strict: bool = True,
        *,
        check_on: str = "auto",
        check_finite: bool = True,
        snapshot_in_checkpoint: bool = True,
        offload_snapshot: bool = False,
        verbose: bool = False,
    ) -> None:
        name = type(self).__name__
        if not isinstance(monitor, str):
            raise TypeError(f"{name}: monitor must be a metric name (str), got {type(monitor).__name__}")
        if not monitor:
            raise ValueError(f"{name}: monitor must be a non-empty metric name, got {monitor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int):
            raise TypeError(f"{name}: patience must be an int >= 0, got {type(patience).__name__}")
        if patience < 0:
            raise ValueError(f"{name}: patience must be an int >= 0, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)):
            raise TypeError(f"{name}: min_delta must be a finite number >= 0, got {type(min_delta).__name__}")
        if not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"{name}: min_delta must be a finite number >= 0, got {min_delta!r}")
        if mode not in _MODES:
            raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}")
        if check_on not in _CHECK_ON:
            raise ValueError(f"{name}: check_on must be one of {_CHECK_ON}, got {check_on!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = mode
        self.restore_best = restore_best
        self.strict = strict
        self.check_on = check_on
        self.check_finite = check_finite
        self.snapshot_in_checkpoint = snapshot_in_checkpoint
        self.offload_snapshot = bool(offload_snapshot)
        self.writes_weights = bool(restore_best)
        self._sharded_snapshot = False
        self.verbose = verbose
        self._restored = False
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.checked_on: str | None = None if self.check_on == "auto" else self.check_on
        self._last_checked_epoch: int | None = None
        self._evaluated_epoch: int | None = None
        self._missing_warned = False
        self._saw_epoch_end = False
        self.best_weights: dict[str, Any] | None = None

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_begin(self, ctx: CallbackContext) -> None:
        # A fresh fit starts from scratch; a resumed one keeps what the checkpoint restored.
        if not self._restored:
            self._reset()
        self._restored = False

    def on_evaluate(self, ctx: CallbackContext) -> None:
        if ctx.stage != "fit" or self.checked_on == "epoch_end":
            return
        self._evaluated_epoch = ctx.epoch
        found = find_monitor(self.monitor, ctx.metrics)
        if found is None:
            if self.checked_on == "evaluate":
                self._missing(ctx)
            return  # "auto": maybe a training metric, look again at epoch end
        self.checked_on = "evaluate"
        self._check(ctx, found[1])

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self._saw_epoch_end = True
        if self.checked_on == "evaluate" or self._last_checked_epoch == ctx.epoch:
            return
        found = find_monitor(self.monitor, ctx.metrics)
        if found is None:
            # "auto" before any evaluation pass: a later epoch may validate (check_val_every_n_epoch).
            if self.checked_on == "epoch_end" or self._evaluated_epoch is not None:
                self._missing(ctx)
            return
        self.checked_on = "epoch_end"
        self._check(ctx, found[1])

    def on_train_end(self, ctx: CallbackContext) -> None:
        if self._saw_epoch_end and self._last_checked_epoch is None:
            self._missing(ctx)  # epochs ran, no check ever found the monitor
        if self.restore_best and self.best_weights is not None and ctx.model is not None:
            ctx.load_model_state(self.best_weights)

    # -- the decision --------------------------------------------------------------------------
    def _improved(self, current: float) -> bool:
        if math.isnan(current):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def _check(self, ctx: CallbackContext, current: float) -> None:
        if ctx.world_size > 1:
            current = ctx.broadcast(float(current))  # every rank decides on rank zero's value
        self._last_checked_epoch = ctx.epoch
        if self.check_finite and not math.isfinite(current):
            self._stop(ctx, f"{self.monitor} = {current} is not finite")
            return
        if self._improved(current):
            self.best, self.best_epoch, self.wait = float(current), ctx.epoch, 0
            if self.restore_best and ctx.model is not None:
                self.best_weights = ctx.model_state(offload=self.offload_snapshot, into=self.best_weights)
                self._sharded_snapshot = ctx.weights_sharded
            return
        self.wait += 1
        if self.wait >= self.patience:
            self._stop(ctx, f"{self.monitor} did not improve by more than {self.min_delta} for {self.wait} checks")

    def _stop(self, ctx: CallbackContext, why: str) -> None:
        self.stopped_epoch = ctx.epoch
        ctx.should_stop = True
        if self.verbose and ctx.is_global_zero:
            print(f"{type(self).__name__}: stopping at epoch {ctx.epoch}: {why} (best {self.best})")

    def _missing(self, ctx: CallbackContext) -> None:
        if self.strict:
            raise MonitorError(
                type(self).__name__, self.monitor, ctx.metrics, "; pass one of those as monitor, or strict=False"
            )
        message = missing_monitor_message(type(self).__name__, self.monitor, ctx.metrics)
        if not self._missing_warned:
            self._missing_warned = True
            warnings.warn(message, RuntimeWarning, stacklevel=2)

    # -- resumable state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "checked_on": self.checked_on,
            "last_checked_epoch": self._last_checked_epoch,
            "evaluated_epoch": self._evaluated_epoch,
        }
        # A sharded snapshot holds this process's shard only: it is not written into checkpoints.
        keep_snapshot = self.snapshot_in_checkpoint and self.restore_best and not self._sharded_snapshot
        if keep_snapshot and self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_epoch = state_dict.get("best_epoch")
        self.wait = int(state_dict.get("wait", 0))
        self.stopped_epoch = state_dict.get("stopped_epoch")
        self.checked_on = state_dict.get("checked_on", self.checked_on)
        self._last_checked_epoch = state_dict.get("last_checked_epoch")
        self._evaluated_epoch = state_dict.get("evaluated_epoch")
        if "best_weights" in state_dict:
            self.best_weights = dict(state_dict["best_weights"])
        self._restored = True

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(monitor={self.monitor!r}, patience={self.patience}, "
            f"min_delta={self.min_delta}, mode={self.mode!r}, restore_best={self.restore_best})"
        )
