"""The bridge: the one place that reads Lightning's trainer state and drives unified callbacks.

[`to_lightning`][to_lightning] turns callbacks of any supported style into Lightning callbacks. All unified
callbacks (and the adapters of foreign styles, which are unified callbacks too) run behind one
[`LightningBridge`][LightningBridge], so Lightning pays for one callback however many you register, and a hook
that no callback implements costs one attribute test.

The hook mapping is the table in ``docs/hooks.md``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from callbridge.adapters.registry import Style, get_style
from callbridge.adapters.styles import describe, detect_style
from callbridge.callbacks import HOOKS, Callback, CallbackContext, CallbackList
from lightning.pytorch.callbacks import EarlyStopping

# Hooks whose effects (stop, learning rate, weights) are reconciled across ranks at each sync point.
_SYNC_GROUPS: dict[str, tuple[str, ...]] = {
    "train_start": ("on_init_end", "on_load", "on_stage_begin", "on_train_begin"),
    "epoch_start": ("on_epoch_begin",),
    "step_end": ("on_step_begin", "on_step_end", "on_log"),
    "evaluate_end": ("on_evaluate_begin", "on_evaluate_batch_begin", "on_evaluate_batch_end", "on_evaluate", "on_log"),
    "epoch_end": ("on_epoch_end", "on_log", "on_save"),
    "train_end": ("on_train_end",),
}


class LightningContext(CallbackContext):
    """A [`CallbackContext`][CallbackContext] whose metrics and stop flag come from a ``lightning.Trainer``."""

    def __init__(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().__init__(
            model=pl_module,
            trainer=trainer,
            world_size=trainer.world_size,
            is_global_zero=trainer.is_global_zero,
        )

    def _pull_metrics(self) -> None:
        self._raw_metrics.update(self.trainer.callback_metrics)

    @property
    def should_stop(self) -> bool:
        return self._should_stop or bool(self.trainer.should_stop)

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self._should_stop = bool(value)

    def broadcast(self, value: Any, src: int = 0) -> Any:
        if self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.broadcast(value, src=src)

    def save_checkpoint(self, path: Any) -> None:
        """Lightning's whole checkpoint (model, optimizers, schedulers, loops, callback states) through
        ``trainer.save_checkpoint``: call it on every rank; the strategy writes on global rank zero and
        ``on_save`` fires through the bridge's ``on_save_checkpoint``."""
        self.trainer.save_checkpoint(path, weights_only=False)

    def load_checkpoint(self, path: Any) -> dict[str, Any]:
        raise NotImplementedError(
            "under Lightning, resume with trainer.fit(model, ckpt_path=...) (it restores the model, optimizers, "
            "loops and every callback's state, and fires on_load)"
        )


class LightningBridge(pl.Callback):
    """One Lightning callback that runs many unified callbacks; build it with [`to_lightning`][to_lightning].

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
        self._relay = _EpochEndRelay(self)
        self._ctx: LightningContext | None = None
        self._restored = False
        self._last_logged_step = -1
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

    def _configure(self, *, is_global_zero: bool) -> None:
        self._callbacks.is_global_zero = is_global_zero  # re-filters the rank-zero-only callbacks
        listeners = self._callbacks.listeners
        self._wants = {hook: bool(listeners(hook)) for hook in HOOKS}
        self._sync_at = {
            point: any(not cb.observes_only for h in hooks for cb in listeners(h, all_ranks=True))
            for point, hooks in _SYNC_GROUPS.items()
        }
        self._wants_step = self._wants["on_step_begin"] or self._wants["on_step_end"] or self._wants["on_log"]

    def _dispatch(self, hook: str) -> None:
        if self._wants[hook]:
            self._callbacks.dispatch(hook, self._ctx)

    def _refresh(self, trainer: pl.Trainer) -> LightningContext:
        ctx = self._ctx
        ctx.epoch = trainer.current_epoch
        ctx.step = trainer.global_step
        ctx.is_training = trainer.training
        ctx._metrics = None
        return ctx

    # -- multi-device agreement ------------------------------------------------------------------
    def _sync(self, trainer: pl.Trainer, point: str) -> None:
        """Make every rank agree on stop, learning rate and weights; one collective per sync point."""
        ctx = self._ctx
        if trainer.world_size == 1:
            if ctx._should_stop:
                trainer.should_stop = True
            ctx._lr_changed = ctx._weights_changed = False
            return
        if not self._sync_at[point]:  # no callback on any rank acts here: decide at the next sync point
            return
        zero = trainer.is_global_zero
        flags = torch.tensor(
            [float(ctx._should_stop), float(zero and ctx._lr_changed), float(zero and ctx._weights_changed)],
            device=trainer.strategy.root_device,
        )
        stop, lr_changed, weights_changed = (
            value > 0 for value in trainer.strategy.reduce(flags, reduce_op="sum").tolist()
        )
        ctx._lr_changed = ctx._weights_changed = False
        if stop:
            ctx._should_stop = True
            trainer.should_stop = True
        if lr_changed:
            groups = [group for opt in trainer.optimizers for group in opt.param_groups]
            rates = trainer.strategy.broadcast([group["lr"] for group in groups], src=0)
            for group, rate in zip(groups, rates, strict=True):
                group["lr"] = rate
        if weights_changed:
            module = trainer.lightning_module
            for tensor in itertools.chain(module.parameters(), module.buffers()):
                torch.distributed.broadcast(tensor.data, src=0)

    # -- setup and stages ------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        new_trainer = self._ctx is None or self._ctx.trainer is not trainer  # one context per trainer
        if new_trainer:
            self._ctx = LightningContext(trainer, pl_module)
        self._ctx.model = pl_module
        self._ctx.stage = trainer.state.fn.value if trainer.state.fn else str(stage)
        self._configure(is_global_zero=trainer.is_global_zero)
        _install_checkpoint_io(trainer.strategy)
        if not any(cb is self._relay for cb in trainer.callbacks):
            # Lightning is iterating over trainer.callbacks while it calls setup: replace the list.
            position = next((i for i, cb in enumerate(trainer.callbacks) if cb is self), len(trainer.callbacks))
            trainer.callbacks = [*trainer.callbacks[: position + 1], self._relay, *trainer.callbacks[position + 1 :]]
        if any(cb.replaces_progress_bar for cb in self._callbacks.callbacks):
            _drop_progress_bars(trainer)
        if new_trainer:
            self._dispatch("on_init_end")

    def _begin_stage(self, trainer: pl.Trainer) -> None:
        ctx = self._refresh(trainer)
        ctx.stage = trainer.state.fn.value
        ctx.max_epochs = _count(trainer.max_epochs)
        ctx.optimizer = trainer.optimizers[0] if trainer.optimizers else None
        configs = trainer.lr_scheduler_configs
        ctx.scheduler = configs[0].scheduler if configs else None
        ctx.exception = None
        ctx._raw_metrics = {}  # metrics of this entry point only: none left over from an earlier fit/validate/test
        self._restored = False
        self._dispatch("on_stage_begin")

    def _end_stage(self, trainer: pl.Trainer) -> None:
        self._refresh(trainer)
        self._dispatch("on_stage_end")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ctx.should_stop = False
        self._last_logged_step = -1
        self._begin_stage(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end_stage(trainer)

    # -- training --------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ctx = self._refresh(trainer)
        ctx.total_steps = _total_steps(trainer)
        ctx.num_batches = _count(trainer.num_training_batches)
        self._dispatch("on_train_begin")
        self._sync(trainer, "train_start")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._refresh(trainer)
        self._dispatch("on_train_end")
        self._sync(trainer, "train_end")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ctx.evaluated = False
        if self._wants["on_epoch_begin"]:
            self._refresh(trainer)
            self._callbacks.dispatch("on_epoch_begin", self._ctx)
        self._sync(trainer, "epoch_start")

    def _epoch_end(self, trainer: pl.Trainer) -> None:
        """Runs from `_EpochEndRelay`, after the LightningModule's own ``on_train_epoch_end``."""
        self._refresh(trainer)
        self._dispatch("on_epoch_end")
        self._dispatch("on_log")
        self._sync(trainer, "epoch_end")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._wants["on_step_begin"]:
            ctx = self._refresh(trainer)
            ctx.batch, ctx.batch_idx = batch, batch_idx
            self._callbacks.dispatch("on_step_begin", ctx)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._wants_step:
            if self._sync_at["step_end"]:  # rank-zero-only callbacks act here on rank 0: take part in the sync
                self._sync(trainer, "step_end")
            return
        ctx = self._refresh(trainer)
        ctx.batch, ctx.batch_idx, ctx.outputs = batch, batch_idx, outputs
        ctx.loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        self._dispatch("on_step_end")
        every = trainer.log_every_n_steps
        if self._wants["on_log"] and every > 0 and 0 < ctx.step != self._last_logged_step and ctx.step % every == 0:
            self._last_logged_step = ctx.step
            self._callbacks.dispatch("on_log", ctx)
        self._sync(trainer, "step_end")

    # -- evaluation ------------------------------------------------------------------------------
    def _evaluate_begin(self, trainer: pl.Trainer) -> None:
        if trainer.state.fn.value != "fit":
            self._begin_stage(trainer)
        ctx = self._refresh(trainer)
        ctx.num_batches = _count(trainer.num_test_batches if trainer.testing else trainer.num_val_batches)
        self._dispatch("on_evaluate_begin")

    def _evaluate_end(self, trainer: pl.Trainer) -> None:
        self._refresh(trainer)
        self._dispatch("on_evaluate")
        self._dispatch("on_log")
        if trainer.state.fn.value == "fit":
            self._ctx.evaluated = True
            self._ctx.num_batches = _count(trainer.num_training_batches)
            self._sync(trainer, "evaluate_end")
        else:
            self._dispatch("on_stage_end")

    def _evaluate_batch(self, hook: str, trainer: pl.Trainer, batch: Any, batch_idx: int, outputs: Any = None) -> None:
        if self._wants[hook] and not trainer.sanity_checking:
            ctx = self._refresh(trainer)
            ctx.batch, ctx.batch_idx, ctx.outputs = batch, batch_idx, outputs
            self._callbacks.dispatch(hook, ctx)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._evaluate_begin(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._evaluate_end(trainer)

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._evaluate_batch("on_evaluate_batch_begin", trainer, batch, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._evaluate_batch("on_evaluate_batch_end", trainer, batch, batch_idx, outputs)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluate_begin(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluate_end(trainer)

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._evaluate_batch("on_evaluate_batch_begin", trainer, batch, batch_idx)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._evaluate_batch("on_evaluate_batch_end", trainer, batch, batch_idx, outputs)

    # -- prediction ------------------------------------------------------------------------------
    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin_stage(trainer)
        self._ctx.num_batches = _count(trainer.num_predict_batches)
        self._dispatch("on_predict_begin")

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._refresh(trainer)
        self._dispatch("on_predict_end")
        self._dispatch("on_stage_end")

    def on_predict_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._evaluate_batch("on_predict_batch_begin", trainer, batch, batch_idx)

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._evaluate_batch("on_predict_batch_end", trainer, batch, batch_idx, outputs)

    # -- checkpoints and failures ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
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

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._wants["on_save"]:
            ctx = self._refresh(trainer)
            ctx.checkpoint = checkpoint
            try:
                self._callbacks.dispatch("on_save", ctx)
            finally:
                ctx.checkpoint = None

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._callbacks.load_state_dict(self._states_in(checkpoint))
        self._restored = True
        if self._wants["on_load"]:
            ctx = self._refresh(trainer)
            ctx.checkpoint = checkpoint
            try:
                self._callbacks.dispatch("on_load", ctx)
            finally:
                ctx.checkpoint = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
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


class _EpochEndRelay(EarlyStopping):
    """Calls the bridge's epoch end where Lightning calls its monitoring callbacks' ``on_train_epoch_end``.

    Lightning runs ``on_train_epoch_end`` of ordinary callbacks *before* the LightningModule's own hook,
    and that of ``EarlyStopping``/``Checkpoint`` callbacks after it; values the module logs in its
    ``on_train_epoch_end`` (a common torchmetrics pattern) are visible only in the second pass. Unified
    ``on_epoch_end`` promises every value of the epoch, so the bridge adds this relay next to itself at
    setup. It is an ``EarlyStopping`` only by type: it monitors nothing and keeps no state.
    """

    def __init__(self, bridge: LightningBridge) -> None:
        pl.Callback.__init__(self)  # not EarlyStopping.__init__: there is no monitor
        self._bridge = bridge
        self._state_key = f"{bridge.state_key}.epoch_end"  # read by Lightning at every hook call

    @property
    def state_key(self) -> str:
        return self._state_key

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pass

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._bridge._epoch_end(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._bridge!r})"


def _install_checkpoint_io(strategy: Any) -> None:
    """Replaces Lightning's default ``TorchCheckpointIO`` with `CallbridgeCheckpointIO` (atomic writes,
    ``.safetensors`` save and load). Runs at setup, before ``fit(ckpt_path=...)`` loads anything; a
    user-chosen or strategy-specific plugin is left alone."""
    from callbridge.adapters.checkpoint_io import CallbridgeCheckpointIO
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = CallbridgeCheckpointIO()


def _count(value: Any) -> int | None:
    """A batch or epoch count as an int; None when unknown or infinite. Lists (one per dataloader) are summed."""
    if isinstance(value, (list, tuple)):
        value = sum(value)
    if value is None or value == float("inf") or value < 0:
        return None
    return int(value)


def _drop_progress_bars(trainer: pl.Trainer) -> None:
    """Remove Lightning's progress bars: a unified callback with ``replaces_progress_bar`` draws the bar.

    ``setup`` is the first hook Lightning calls, before any bar renders. Lightning is iterating over
    ``trainer.callbacks`` while it calls ``setup``, so the list is replaced rather than edited in place.
    """
    from lightning.pytorch.callbacks.progress import ProgressBar

    if any(isinstance(cb, ProgressBar) for cb in trainer.callbacks):
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, ProgressBar)]


def _total_steps(trainer: pl.Trainer) -> int | None:
    try:
        steps = trainer.estimated_stepping_batches
    except Exception:  # no dataloader length, e.g. an iterable dataset
        return None
    return int(steps) if steps != float("inf") else None


def to_lightning(callbacks: Any, **options: Any) -> list[pl.Callback]:
    """Lightning callbacks that run ``callbacks``, whatever style each is written in.

    Accepts one object or a list mixing unified callbacks, native Lightning callbacks (passed
    through unchanged) and callbacks of every installed foreign style. All unified and adapted
    callbacks share one [`LightningBridge`][LightningBridge], placed where the first of them was.

    Args:
        callbacks: a callback, a ``CallbackList``, or a list of them.
        **options: passed to the foreign styles' adapters (for example ``key_map`` for Keras).

    Raises:
        TypeError: an object of no supported style (the message lists the supported styles), a
            class instead of an instance, or an object matching several styles.
        ValueError: the same object registered twice.

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters import to_lightning
        >>> from callbridge.callbacks import Callback
        >>> class HaltOnNan(Callback):
        ...     def on_step_end(self, ctx):
        ...         if ctx.loss != ctx.loss:
        ...             ctx.should_stop = True
        >>> lightning_callbacks = to_lightning([HaltOnNan(), L.pytorch.callbacks.LearningRateMonitor()])
        >>> [type(cb).__name__ for cb in lightning_callbacks]
        ['LightningBridge', 'LearningRateMonitor']
    """
    objects = _flatten(callbacks)
    seen: set[int] = set()
    for index, obj in enumerate(objects):
        if id(obj) in seen:
            raise ValueError(f"callback #{index} ({describe(obj)}) is registered twice; pass each instance once")
        seen.add(id(obj))

    styles = []
    for index, obj in enumerate(objects):
        try:
            styles.append(detect_style(obj))
        except TypeError as error:
            raise TypeError(f"to_lightning: callback #{index}: {error}") from None

    unified: list[Callback] = []
    result: list[Any] = []
    bridge_at: int | None = None
    by_style: dict[str, list[Any]] = {}
    for obj, style in zip(objects, styles, strict=True):
        if style == "lightning":
            result.append(obj)
            continue
        if bridge_at is None:
            bridge_at = len(result)
        if style == "callbridge":
            unified.append(obj)
        elif style not in by_style:
            by_style[style] = [obj]
            unified.append(style)  # placeholder: the style's adapters go where its first callback was
        else:
            by_style[style].append(obj)
    if bridge_at is None:
        if options:
            raise TypeError(f"to_lightning: options {sorted(options)} given, but no callback of a foreign style")
        return result

    expanded: list[Callback] = []
    for item in unified:
        if isinstance(item, str):
            style = get_style(item)
            expanded.extend(style.adapt(by_style[item], **_options_for(style, options)))
        else:
            expanded.append(item)
    _check_options_used(options, [get_style(s) for s in by_style])
    result.insert(bridge_at, LightningBridge(expanded))
    return result


def _flatten(callbacks: Any) -> list[Any]:
    if isinstance(callbacks, CallbackList):
        return callbacks.callbacks
    if isinstance(callbacks, (list, tuple)):
        out: list[Any] = []
        for item in callbacks:
            out.extend(item.callbacks if isinstance(item, CallbackList) else [item])
        return out
    return [callbacks]


def _options_for(style: Style, options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key in style.options}


def _check_options_used(options: Mapping[str, Any], styles: list[Style]) -> None:
    accepted = {key for style in styles for key in style.options}
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none for the styles given"
        raise TypeError(f"to_lightning: unknown option(s) {unknown}; valid here: {valid}")
