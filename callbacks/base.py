"""The unified callback interface: one object, one context, hooks that say when they fire."""

from __future__ import annotations

import difflib
import inspect
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from callbridge.callbacks.context import CallbackContext

#: Every hook of the unified API, in the order a ``fit`` run first reaches them.
HOOKS: tuple[str, ...] = (
    "on_init_end",
    "on_load",
    "on_stage_begin",
    "on_train_begin",
    "on_epoch_begin",
    "on_step_begin",
    "on_step_end",
    "on_log",
    "on_evaluate_begin",
    "on_evaluate_batch_begin",
    "on_evaluate_batch_end",
    "on_evaluate",
    "on_epoch_end",
    "on_save",
    "on_train_end",
    "on_predict_begin",
    "on_predict_batch_begin",
    "on_predict_batch_end",
    "on_predict_end",
    "on_stage_end",
    "on_exception",
)


class Callback:
    """Base class of every unified callback.

    Override the hooks you need; each receives the one [`CallbackContext`][CallbackContext] of the run, which
    reads the training state (``ctx.loss``, ``ctx.metrics``, ``ctx.epoch`` ...) and takes writes
    (``ctx.should_stop``, ``ctx.learning_rate``). A hook you do not override costs nothing: the
    dispatcher never calls it.

    Examples:
        >>> from callbridge.callbacks import Callback, CallbackContext
        >>> class HaltOnNan(Callback):
        ...     def on_step_end(self, ctx: CallbackContext):
        ...         if ctx.loss != ctx.loss:  # NaN check
        ...             print(f"NaN overflow detected at step {ctx.step}!")
        ...             ctx.should_stop = True
        >>> sorted(HaltOnNan().implemented_hooks())
        ['on_step_end']

    Attributes:
        priority: callbacks with a lower priority run first; ties keep registration order.
        rank_zero_only: when True the callback runs on global rank zero only, and the bridge
            broadcasts what it changes (stop, learning rate, weights) to the other ranks.
        replaces_progress_bar: when True the callback draws its own progress bar, and an engine
            with a default bar of its own (Lightning's ``TQDMProgressBar``/``RichProgressBar``)
            drops that bar, so that one bar renders.
        observes_only: True promises the callback never changes the run (no ``should_stop``,
            ``learning_rate`` or weight writes). A multi-device engine then needs no agreement between
            ranks after its hooks: loggers and progress bars add no collective per step under DDP.
        writes_weights: True says the callback may replace the model's weights (restore a snapshot). Under a
            strategy that shards the weights (FSDP, DeepSpeed, model parallel) such a callback must run on
            every rank and go through ``ctx.model_state()``/``ctx.load_model_state()``; an engine refuses a
            rank-zero-only one before training starts.
    """

    priority: ClassVar[int] = 100
    rank_zero_only: ClassVar[bool] = False
    replaces_progress_bar: ClassVar[bool] = False
    observes_only: ClassVar[bool] = False
    writes_weights: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_hook_definitions(cls)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_init_end(self, ctx: CallbackContext) -> None:
        """Once per engine, after it is set up and before anything else fires."""

    def on_stage_begin(self, ctx: CallbackContext) -> None:
        """At the start of an entry point; ``ctx.stage`` is ``fit``, ``validate``, ``test`` or ``predict``."""

    def on_stage_end(self, ctx: CallbackContext) -> None:
        """After an entry point finished without an exception (see [`on_exception`][on_exception])."""

    # -- training ----------------------------------------------------------------------------
    def on_train_begin(self, ctx: CallbackContext) -> None:
        """Before the training loop starts."""

    def on_train_end(self, ctx: CallbackContext) -> None:
        """After the training loop ends (also after an early stop)."""

    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        """At the start of each training epoch."""

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        """At the end of each training epoch, after that epoch's validation: ``ctx.metrics`` holds both."""

    def on_step_begin(self, ctx: CallbackContext) -> None:
        """Before each training batch (forward, backward and optimizer step)."""

    def on_step_end(self, ctx: CallbackContext) -> None:
        """After each training batch; ``ctx.loss`` is that batch's loss."""

    def on_log(self, ctx: CallbackContext) -> None:
        """When new metrics are in ``ctx.metrics``: at the engine's logging cadence, after each
        evaluation pass and after each training epoch."""

    # -- evaluation --------------------------------------------------------------------------
    def on_evaluate_begin(self, ctx: CallbackContext) -> None:
        """Before an evaluation pass: validation inside fit, ``validate`` or ``test``."""

    def on_evaluate_batch_begin(self, ctx: CallbackContext) -> None:
        """Before each evaluation batch."""

    def on_evaluate_batch_end(self, ctx: CallbackContext) -> None:
        """After each evaluation batch."""

    def on_evaluate(self, ctx: CallbackContext) -> None:
        """After each evaluation pass; ``ctx.metrics`` holds its results."""

    # -- prediction --------------------------------------------------------------------------
    def on_predict_begin(self, ctx: CallbackContext) -> None:
        """Before a prediction pass."""

    def on_predict_batch_begin(self, ctx: CallbackContext) -> None:
        """Before each prediction batch."""

    def on_predict_batch_end(self, ctx: CallbackContext) -> None:
        """After each prediction batch; ``ctx.outputs`` holds its predictions."""

    def on_predict_end(self, ctx: CallbackContext) -> None:
        """After a prediction pass."""

    # -- checkpoints and failures ------------------------------------------------------------
    def on_save(self, ctx: CallbackContext) -> None:
        """Before a checkpoint is written; ``ctx.checkpoint`` is the dict being saved and may be edited."""

    def on_load(self, ctx: CallbackContext) -> None:
        """After a checkpoint is loaded (callback state already restored); ``ctx.checkpoint`` is what was read."""

    def on_exception(self, ctx: CallbackContext) -> None:
        """When the run raises; ``ctx.exception`` is the exception, which still propagates."""

    # -- resumable state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """State to keep in checkpoints (counters, best values). Default: nothing."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what [`state_dict`][state_dict] returned."""

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint; duplicates get ``[1]``, ``[2]`` appended."""
        return type(self).__qualname__

    # -- misuse guard ------------------------------------------------------------------------
    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Not a unified hook: ``setup`` is the first hook Lightning calls on its callbacks, so a unified callback
        passed straight to ``Trainer(callbacks=[...])`` fails here, before anything runs, with a clear message."""
        name = type(self).__qualname__
        # Lightning then reports the failure to every callback with on_exception(trainer, module, error): let that
        # call through quietly, so that this error is the one the user sees (a unified on_exception takes ctx only).
        self.on_exception = _ExceptionGuard(self)
        raise TypeError(
            f"{name} is a callbridge unified callback, not a Lightning callback: wrap it with "
            f"callbridge.adapters.to_lightning, e.g. Trainer(callbacks=to_lightning([{name}(...)]))"
        )

    # -- dispatch ----------------------------------------------------------------------------
    def implemented_hooks(self) -> frozenset[str]:
        """The hooks this callback overrides; only these are ever called.

        Adapters override this to listen to exactly what their wrapped callbacks need.
        """
        return _overridden_hooks(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}()"


class _ExceptionGuard:
    """Stands in for ``on_exception`` on a callback that was handed to Lightning unwrapped: Lightning's own
    three-argument call does nothing, a unified call (``on_exception(ctx)``) reaches the callback's method."""

    def __init__(self, callback: Callback) -> None:
        self._callback = callback

    def __call__(self, *args: Any) -> None:
        if len(args) == 1:
            type(self._callback).on_exception(self._callback, *args)


_OVERRIDES: dict[type, frozenset[str]] = {}

#: Hook names of other frameworks that people write on a unified callback, and the unified hook meant.
_FOREIGN_HOOK_NAMES: dict[str, str] = {
    "on_batch_begin": "on_step_begin",
    "on_batch_end": "on_step_end",
    "on_train_batch_begin": "on_step_begin",
    "on_train_batch_start": "on_step_begin",
    "on_train_batch_end": "on_step_end",
    "on_train_epoch_start": "on_epoch_begin",
    "on_train_epoch_end": "on_epoch_end",
    "on_epoch_start": "on_epoch_begin",
    "on_train_start": "on_train_begin",
    "on_fit_start": "on_stage_begin",
    "on_fit_end": "on_stage_end",
    "on_validation_start": "on_evaluate_begin",
    "on_validation_end": "on_evaluate",
    "on_validation_epoch_end": "on_evaluate",
    "on_test_begin": "on_evaluate_begin",
    "on_test_end": "on_evaluate",
    "on_validation_batch_end": "on_evaluate_batch_end",
    "on_test_batch_end": "on_evaluate_batch_end",
    "on_predict_start": "on_predict_begin",
    "on_save_checkpoint": "on_save",
    "on_load_checkpoint": "on_load",
}

#: First parameter names that give a Keras-style hook away (``on_epoch_end(self, epoch, logs=None)``).
_KERAS_ARGUMENTS = frozenset({"epoch", "batch", "logs"})


def nearest_hook(name: str) -> str | None:
    """The unified hook a misspelt or foreign hook name most likely means, or None.

    Examples:
        >>> from callbridge.callbacks.base import nearest_hook
        >>> nearest_hook("on_epoc_end"), nearest_hook("on_batch_end"), nearest_hook("on_nan")
        ('on_epoch_end', 'on_step_end', None)
    """
    if name in _FOREIGN_HOOK_NAMES:
        return _FOREIGN_HOOK_NAMES[name]
    close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.8)
    return close[0] if close else None


def _check_hook_definitions(cls: type) -> None:
    """At class definition: a misspelt hook warns (it would never be called), and a hook with a Keras-style
    signature raises ``TypeError`` (it would receive the context as ``epoch``)."""
    for name, value in vars(cls).items():
        if not name.startswith("on_") or not inspect.isfunction(value):
            continue
        if name not in HOOKS:
            meant = nearest_hook(name)
            if meant is not None:
                warnings.warn(
                    f"{cls.__qualname__}.{name} is not a hook of the unified API, so it is never called; "
                    f"did you mean {meant}? (the hooks are listed in callbridge.callbacks.HOOKS)",
                    UserWarning,
                    stacklevel=3,
                )
            continue
        try:
            params = list(inspect.signature(value).parameters.values())[1:]  # after self
        except (TypeError, ValueError):
            continue
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is p.empty]
        keras_like = bool(positional) and positional[0].name in _KERAS_ARGUMENTS
        if len(required) > 1 or keras_like or (not positional and not any(p.kind == p.VAR_POSITIONAL for p in params)):
            written = ", ".join(["self", *(p.name for p in params)])
            hint = (
                " It looks like a Keras callback: derive it from keras.callbacks.Callback (hooks such as "
                "on_epoch_end(self, epoch, logs=None) and on_train_batch_end(self, batch, logs=None)) and "
                "to_lightning runs it unchanged."
                if keras_like or len(required) > 1
                else ""
            )
            raise TypeError(
                f"{cls.__qualname__}.{name}({written}): a unified hook takes the context only, "
                f"{name}(self, ctx); read ctx.epoch, ctx.step, ctx.metrics ... from it.{hint}"
            )


def _overridden_hooks(cls: type) -> frozenset[str]:
    hooks = _OVERRIDES.get(cls)
    if hooks is None:
        hooks = frozenset(h for h in HOOKS if getattr(cls, h) is not getattr(Callback, h))
        _OVERRIDES[cls] = hooks
    return hooks
