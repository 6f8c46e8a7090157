"""The bridge: one Lightning callback that maps Lightning's hooks onto the unified hooks of many callbacks.

All unified callbacks (and the adapters of foreign styles, which are unified callbacks too) run behind one
[`LightningBridge`][LightningBridge], so Lightning pays for one callback however many you register, and a hook that no
callback implements costs one dict lookup. The bridge reads the trainer only through its
`LightningContext`; the hook mapping is the table in
``docs/hooks.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
from callbridge.adapters.lightning.context import LightningContext
from callbridge.adapters.lightning.relay import EpochEndRelay
from callbridge.adapters.lightning.sharding import refuse_rank_zero_weight_writers
from callbridge.adapters.lightning.sync import agree, sync_points
from callbridge.callbacks import HOOKS, Callback, CallbackContext, CallbackList

#: Where each unified hook runs from under Lightning (printed by ``callbridge inspect``; see ``docs/hooks.md``).
UNIFIED_HOOK_MAP: dict[str, str] = {
    "on_init_end": "setup (once per trainer)",
    "on_load": "on_load_checkpoint",
    "on_stage_begin": "on_fit_start / on_validation_start / on_test_start / on_predict_start (entry point begins)",
    "on_train_begin": "on_train_start",
    "on_epoch_begin": "on_train_epoch_start",
    "on_step_begin": "on_train_batch_start",
    "on_step_end": "on_train_batch_end",
    "on_log": "on_train_batch_end (every log_every_n_steps), on_validation_end, on_train_epoch_end",
    "on_evaluate_begin": "on_validation_start / on_test_start (not during sanity checking)",
    "on_evaluate_batch_begin": "on_validation_batch_start / on_test_batch_start",
    "on_evaluate_batch_end": "on_validation_batch_end / on_test_batch_end",
    "on_evaluate": "on_validation_end / on_test_end",
    "on_epoch_end": "on_train_epoch_end (after that epoch's validation)",
    "on_save": "on_save_checkpoint",
    "on_train_end": "on_train_end",
    "on_predict_begin": "on_predict_start",
    "on_predict_batch_begin": "on_predict_batch_start",
    "on_predict_batch_end": "on_predict_batch_end",
    "on_predict_end": "on_predict_end",
    "on_stage_end": "on_fit_end / on_validation_end / on_test_end / on_predict_end (success only)",
    "on_exception": "on_exception",
}


class LightningBridge(pl.Callback):
    """One Lightning callback that runs many unified callbacks; build it with
    [`to_lightning`][callbridge.adapters.lightning.api.to_lightning].

    A bridge pickles (``strategy="ddp_spawn"`` ships it to worker processes): the trainer's context is left
    out and rebuilt at the next ``setup``.

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters import to_lightning
        >>> from callbridge.callbacks import Callback
        >>> class PrintEpochs(Callback):
        ...     def on_epoch_end(self, ctx):
        ...         print("epoch", ctx.epoch, "done")
        >>> trainer = L.Trainer(callbacks=to_lightning([PrintEpochs()]), max_epochs=1, logger=False)
    """

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self._callbacks = CallbackList(callbacks)
        # Lightning reads state_key at every hook call (to name it for its profiler): build it once.
        self._state_key = f"callbridge[{', '.join(self._callbacks.state_keys())}]"
        self._relay = EpochEndRelay(self._epoch_end, f"{self._state_key}.epoch_end")
        self._ctx: LightningContext | None = None
        self._restored = False
        self._last_logged_step = -1
        self._epoch_end_pending = False
        self._sync_at: dict[str, bool] = {}
        self._wants: dict[str, bool] = {}
        self._configure(is_global_zero=True)

    # -- bookkeeping -----------------------------------------------------------------------------
    @property
    def callbacks(self) -> list[Callback]:
        """The unified callbacks, in dispatch order."""
        return self._callbacks.callbacks

    @property
    def context(self) -> CallbackContext | None:
        """The context of the trainer this bridge last ran under."""
        return self._ctx

    @property
    def state_key(self) -> str:
        return self._state_key

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ctx"] = None  # holds the trainer; a new one is built at the next setup
        return state

    def _configure(self, *, is_global_zero: bool) -> None:
        self._callbacks.is_global_zero = is_global_zero  # re-filters the rank-zero-only callbacks
        listeners = self._callbacks.listeners
        self._wants = {hook: bool(listeners(hook)) for hook in HOOKS}
        self._sync_at = sync_points(lambda hook: listeners(hook, all_ranks=True))
        self._wants_step = self._wants["on_step_begin"] or self._wants["on_step_end"] or self._wants["on_log"]
        self._relays = self._wants["on_epoch_end"] or self._wants["on_log"] or self._sync_at["epoch_end"]

    def _dispatch(self, hook: str) -> None:
        if self._wants[hook]:
            self._callbacks.dispatch(hook, self._ctx)

    def _sync(self, point: str) -> None:
        agree(self._ctx, self._sync_at[point])

    # -- setup and stages ------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        new_trainer = self._ctx is None or self._ctx.trainer is not trainer  # one context per trainer
        if new_trainer:
            self._ctx = LightningContext(trainer, pl_module)
        ctx = self._ctx
        ctx.attach(pl_module, stage)
        self._configure(is_global_zero=ctx.is_global_zero)
        _install_checkpoint_io(trainer.strategy)
        if any(cb.replaces_progress_bar for cb in self._callbacks.callbacks):
            _drop_progress_bars(trainer)
        if new_trainer:
            self._dispatch("on_init_end")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._epoch_end_pending = False
        self._relay.withdraw_from(trainer)

    def _begin_stage(self) -> None:
        ctx = self._ctx
        ctx.begin_stage()
        ctx.refresh()
        self._restored = False
        self._dispatch("on_stage_begin")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        refuse_rank_zero_weight_writers(trainer, self._callbacks.callbacks)
        self._ctx.should_stop = False
        self._last_logged_step = -1
        self._begin_stage()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ctx.refresh()
        self._dispatch("on_stage_end")

    # -- training --------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ctx = self._ctx.refresh()
        ctx.enter_training()
        self._dispatch("on_train_begin")
        self._sync("train_start")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ctx.refresh()
        self._dispatch("on_train_end")
        self._sync("train_end")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ctx.evaluated = False
        if self._wants["on_epoch_begin"]:
            self._callbacks.dispatch("on_epoch_begin", self._ctx.refresh())
        self._sync("epoch_start")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning's first pass: the LightningModule's own ``on_train_epoch_end`` has not run yet, so the
        unified epoch end is left to the relay (see `callbridge.adapters.lightning.relay`)."""
        if self._relays:
            self._relay.insert_into(trainer)
            self._epoch_end_pending = True

    def _epoch_end(self, trainer: pl.Trainer) -> None:
        """Runs from the relay, after the LightningModule's own ``on_train_epoch_end``; or earlier, from
        `state_dict`, when a checkpoint is saved before the relay (see there)."""
        if not self._epoch_end_pending:
            return
        self._epoch_end_pending = False
        self._relay.withdraw_from(trainer)
        self._ctx.refresh()
        self._dispatch("on_epoch_end")
        self._dispatch("on_log")
        self._sync("epoch_end")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._wants["on_step_begin"]:
            ctx = self._ctx.refresh()
            ctx.batch, ctx.batch_idx = batch, batch_idx
            self._callbacks.dispatch("on_step_begin", ctx)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._wants_step:
            if self._sync_at["step_end"]:  # rank-zero-only callbacks act here on rank 0: take part in the sync
                self._sync("step_end")
            return
        ctx = self._ctx.refresh()
        ctx.batch, ctx.batch_idx, ctx.outputs = batch, batch_idx, outputs
        ctx.loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        self._dispatch("on_step_end")
        every = ctx.log_every_n_steps
        if self._wants["on_log"] and every > 0 and 0 < ctx.step != self._last_logged_step and ctx.step % every == 0:
            self._last_logged_step = ctx.step
            self._callbacks.dispatch("on_log", ctx)
        self._sync("step_end")

    # -- evaluation ------------------------------------------------------------------------------
    def _evaluate_begin(self) -> None:
        ctx = self._ctx
        if not ctx.fitting:
            self._begin_stage()
        ctx.refresh()
        ctx.enter_evaluation()
        self._dispatch("on_evaluate_begin")

    def _evaluate_end(self) -> None:
        ctx = self._ctx.refresh()
        self._dispatch("on_evaluate")
        self._dispatch("on_log")
        if ctx.fitting:
            ctx.evaluated = True
            ctx.leave_evaluation()
            self._sync("evaluate_end")
        else:
            self._dispatch("on_stage_end")

    def _evaluate_batch(self, hook: str, batch: Any, batch_idx: int, outputs: Any = None) -> None:
        if self._wants[hook] and not self._ctx.sanity_checking:
            ctx = self._ctx.refresh()
            ctx.batch, ctx.batch_idx, ctx.outputs = batch, batch_idx, outputs
            self._callbacks.dispatch(hook, ctx)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._ctx.sanity_checking:
            self._evaluate_begin()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._ctx.sanity_checking:
            self._evaluate_end()

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._evaluate_batch("on_evaluate_batch_begin", batch, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._evaluate_batch("on_evaluate_batch_end", batch, batch_idx, outputs)

    # a test pass runs the same unified hooks as a validation (no sanity check runs before a test)
    on_test_start = on_validation_start
    on_test_end = on_validation_end
    on_test_batch_start = on_validation_batch_start
    on_test_batch_end = on_validation_batch_end

    # -- prediction ------------------------------------------------------------------------------
    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin_stage()
        self._ctx.enter_prediction()
        self._dispatch("on_predict_begin")

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ctx.refresh()
        self._dispatch("on_predict_end")
        self._dispatch("on_stage_end")

    def on_predict_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._evaluate_batch("on_predict_batch_begin", batch, batch_idx)

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._evaluate_batch("on_predict_batch_end", batch, batch_idx, outputs)

    # -- checkpoints and failures ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # A checkpoint saved after this bridge's first-pass on_train_epoch_end but before the relay (Ray Train's
        # RayTrainReportCallback, a callback or the LightningModule calling trainer.save_checkpoint there) must
        # hold the callbacks' state after this epoch's end, as the files they write do: run the epoch end now.
        if self._epoch_end_pending and self._ctx is not None:
            self._epoch_end(self._ctx.trainer)
        return self._callbacks.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._restored:  # on_load_checkpoint already restored these from the same checkpoint
            self._callbacks.load_state_dict(state_dict)
        self._restored = False

    def _states_in(self, checkpoint: Mapping[str, Any]) -> dict[str, Any]:
        """Every callback state any bridge saved in ``checkpoint``, this bridge's own entry last (it wins):
        a run resumed with more, fewer or reordered unified callbacks still restores each one by its key."""
        saved = checkpoint.get("callbacks") or {}
        states: dict[str, Any] = {}
        for key, value in saved.items():
            if isinstance(key, str) and key.startswith("callbridge[") and key != self.state_key:
                states.update(value)
        states.update(saved.get(self.state_key) or {})
        return states

    def _with_checkpoint(self, hook: str, checkpoint: dict[str, Any]) -> None:
        ctx = self._ctx.refresh()
        ctx.checkpoint = checkpoint
        ctx.checkpoint_dir = ctx.find_checkpoint_dir()
        try:
            self._callbacks.dispatch(hook, ctx)
        finally:
            ctx.checkpoint = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._wants["on_save"]:
            self._with_checkpoint("on_save", checkpoint)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._callbacks.load_state_dict(self._states_in(checkpoint))
        self._restored = True
        if self._wants["on_load"]:
            self._with_checkpoint("on_load", checkpoint)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._epoch_end_pending = False
        self._relay.withdraw_from(trainer)
        if self._ctx is None:
            return
        self._ctx.exception = exception
        for callback in self._callbacks.listeners("on_exception"):
            try:  # every callback hears of the failure, and the original exception is the one that propagates
                callback.on_exception(self._ctx)
            except Exception as error:
                warnings.warn(
                    f"{type(callback).__qualname__}.on_exception raised {type(error).__name__}: {error}; "
                    f"the run's own {type(exception).__name__} propagates",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def __repr__(self) -> str:
        return f"LightningBridge({self._callbacks.callbacks!r})"


def _install_checkpoint_io(strategy: Any) -> None:
    """Replaces Lightning's default ``TorchCheckpointIO`` with `CallbridgeCheckpointIO` (atomic writes,
    ``.safetensors`` save and load). Runs at setup, before ``fit(ckpt_path=...)`` loads anything; a
    user-chosen or strategy-specific plugin is left alone."""
    from callbridge.adapters.checkpoint_io import CallbridgeCheckpointIO
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = CallbridgeCheckpointIO()


def _drop_progress_bars(trainer: pl.Trainer) -> None:
    """Remove Lightning's progress bars: a unified callback with ``replaces_progress_bar`` draws the bar.

    ``setup`` is the first hook Lightning calls, before any bar renders. Lightning is iterating over
    ``trainer.callbacks`` while it calls ``setup``, so the list is replaced rather than edited in place.
    """
    from lightning.pytorch.callbacks.progress import ProgressBar

    if any(isinstance(cb, ProgressBar) for cb in trainer.callbacks):
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, ProgressBar)]
