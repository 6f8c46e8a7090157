"""The unified callback that runs WarpRec-style (and Ray Tune) callbacks under the Lightning bridge."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from callbridge.adapters.styles import describe
from callbridge.adapters.warprec.hooks import RAY_HOOKS, WARPREC_HOOKS, overrides, signature_problem
from callbridge.adapters.warprec.run import TuneRun
from callbridge.callbacks import Callback, CallbackContext


def inside_ray_trial() -> bool:
    """True inside a Ray Tune trial, where Ray itself fires the Ray Tune hooks (on the driver)."""
    if "ray" not in sys.modules:
        return False
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # pragma: no cover - a Ray without the v1 session
        return False
    return get_session() is not None


def check_signatures(callback: Any) -> None:
    """Raises ``TypeError`` naming the first WarpRec hook of ``callback`` that WarpRec could not call."""
    for hook in WARPREC_HOOKS:
        if overrides(callback, hook) and (problem := signature_problem(callback, hook)):
            raise TypeError(f"WarpRec callback {describe(callback)}: {problem}")


def adapt(
    objs: Sequence[Any], *, ray_hooks: bool | None = None, run_config: Any = None, training_complete: bool = True
) -> list[Callback]:
    """One [`WarpRecAdapter`][WarpRecAdapter] per object, in registration order, sharing one [`TuneRun`][TuneRun].

    ``training_complete=False`` leaves ``on_training_complete`` to someone else (``tune_sweep`` fires it on the
    driver after the sweep).

    Examples:
        >>> class Filter:
        ...     def on_data_reading(self, data):
        ...         return data
        >>> [type(adapter).__name__ for adapter in adapt([Filter(), Filter()])]
        ['WarpRecAdapter', 'WarpRecAdapter']
    """
    for obj in objs:
        check_signatures(obj)
    ray_hooks = (not inside_ray_trial()) if ray_hooks is None else bool(ray_hooks)
    run = TuneRun(objs, ray_hooks=ray_hooks, run_config=run_config, training_complete=training_complete)
    return [WarpRecAdapter(obj, run=run) for obj in objs]


class WarpRecAdapter(Callback):
    """Runs one WarpRec-style (or Ray Tune) callback under the Lightning bridge.

    ``to_lightning`` builds it for you. WarpRec's hooks fire with keyword arguments at the matching points
    of the run; with ``ray_hooks`` on, Ray Tune's hooks fire as for a one-trial experiment per ``fit``,
    with a real ``ray.tune.experiment.Trial`` shared by every WarpRec-style callback given to the same
    ``to_lightning`` call (see ``docs/warprec.md``). The callbacks run on global rank zero only; they
    cannot stop or steer the run, so no rank waits on them.

    Args:
        callback: the WarpRec-style object.
        ray_hooks: fire the Ray Tune lifecycle hooks. Default: yes, except inside a Ray Tune trial,
            where Ray fires them on the driver.
        run_config: a ``ray.tune.RunConfig``: ``storage_path`` and ``name`` place the trial's directory.
        run: the [`TuneRun`][TuneRun] shared with the other callbacks of the same ``to_lightning`` call
            (``ray_hooks`` and ``run_config`` are then the run's).

    Raises:
        TypeError: a WarpRec hook has a signature WarpRec could not call.

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters import to_lightning
        >>> class FilterShort:
        ...     def on_data_reading(self, data):
        ...         return [row for row in data if len(row) > 1]
        >>> trainer = L.Trainer(callbacks=to_lightning([FilterShort()]), logger=False, max_epochs=1)
        >>> type(trainer.callbacks[0].callbacks[0]).__name__
        'WarpRecAdapter'
    """

    rank_zero_only = True
    observes_only = True

    def __init__(
        self, callback: Any, *, ray_hooks: bool | None = None, run_config: Any = None, run: TuneRun | None = None
    ) -> None:
        check_signatures(callback)
        self.callback = callback
        if run is None:
            ray_hooks = (not inside_ray_trial()) if ray_hooks is None else bool(ray_hooks)
            run = TuneRun([callback], ray_hooks=ray_hooks, run_config=run_config)
        self.run = run
        self.ray_hooks = run.ray_hooks
        self.hooks = frozenset(hook for hook in (*WARPREC_HOOKS, *RAY_HOOKS) if overrides(callback, hook))
        # The first callback's adapter calls every hook of the run on every callback, in order, as Ray's and
        # WarpRec's callback lists do; the others only keep their callback's state.
        self.leads = bool(run.members) and run.members[0][0] is callback

    @property
    def state_key(self) -> str:
        return f"WarpRec[{type(self.callback).__qualname__}]"

    @property
    def reads_data(self) -> bool:
        """The callback defines ``on_data_reading`` ([`announce_data`][announce_data] calls it)."""
        return "on_data_reading" in self.hooks

    def implemented_hooks(self) -> frozenset[str]:
        if not self.leads:
            return frozenset()
        run, hooks = self.run, set()
        if run.defines("on_dataset_creation") or run.tracks_trial:
            hooks.add("on_stage_begin")
        if run.defines("on_training_complete") or run.defines("on_evaluation_complete") or run.tracks_trial:
            hooks.add("on_stage_end")
        if run.tracks_trial:
            hooks |= {"on_train_begin", "on_epoch_begin", "on_evaluate", "on_epoch_end", "on_save", "on_train_end"}
            hooks |= {"on_exception"}
            hooks |= {hook for hook in ("on_step_begin", "on_step_end", "on_load") if self._wants(hook)}
        return frozenset(hooks)

    def _wants(self, hook: str) -> bool:
        return self.run.defines("on_trial_restore") if hook == "on_load" else self.run.defines(hook)

    def _running(self) -> bool:
        return self.run.trial is not None and self.run.trial.status == "RUNNING"

    # -- the run's stages ------------------------------------------------------------------------
    def on_stage_begin(self, ctx: CallbackContext) -> None:
        if ctx.stage != "fit":
            self.run.forget_resume()
            return
        if self.run.defines("on_dataset_creation"):
            from callbridge.adapters.warprec.data import data_source

            source = data_source(ctx)
            if source is not None:
                self.run.dataset_created(*source)
        if self.run.tracks_trial:
            self.run.begin(ctx)

    def on_train_begin(self, ctx: CallbackContext) -> None:
        if self.run.trial_open:
            self.run.start(ctx)

    def on_stage_end(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit":
            if self._running():  # on_train_end did not run (a strategy that skips it)
                self.run.complete(ctx)
            elif self.run.trial_open:  # the training loop never started
                self.run.trial.set_status("TERMINATED")
            self.run.end_experiment()
            self.run.training_complete(ctx.model)
        elif ctx.stage in ("validate", "test"):
            self.run.evaluation_complete(ctx.model, dict(ctx.hparams), dict(ctx.metrics))

    # -- Ray Tune's trial hooks --------------------------------------------------------------------
    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        if self._running():
            self.run.deliver(ctx)

    def on_step_begin(self, ctx: CallbackContext) -> None:
        self.run.step("on_step_begin", ctx)

    def on_step_end(self, ctx: CallbackContext) -> None:
        self.run.step("on_step_end", ctx)

    def on_evaluate(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit" and self._running():
            self.run.report(ctx)

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        if self._running() and not ctx.evaluates:  # a run without validation reports once per epoch
            self.run.report(ctx)

    def on_save(self, ctx: CallbackContext) -> None:
        if self._running() and ctx.checkpoint is not None:
            self.run.saved(ctx)

    def on_load(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit":
            self.run.resumed(ctx)

    def on_train_end(self, ctx: CallbackContext) -> None:
        if self._running():
            self.run.complete(ctx)

    def on_exception(self, ctx: CallbackContext) -> None:
        if self.run.trial_open:
            self.run.fail(ctx, ctx.exception)

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = self.run.state_dict() if self.leads else {}
        if "get_state" in self.hooks:
            state["ray_state"] = self.callback.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.leads:
            self.run.load_state_dict({k: v for k, v in state_dict.items() if k != "ray_state"})
        ray_state = state_dict.get("ray_state")
        if ray_state is not None and "set_state" in self.hooks:
            self.callback.set_state(ray_state)

    def __repr__(self) -> str:
        return f"WarpRecAdapter({describe(self.callback)})"
