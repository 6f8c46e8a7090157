"""One Lightning ``fit`` as a one-trial Ray Tune experiment, with Ray's own ``Trial``, results and checkpoints.

[`TuneRun`][TuneRun] holds the WarpRec-style / Ray Tune callbacks of one bridge and calls their hooks the way
Ray Tune's and WarpRec's callback lists do: each hook on every callback, in registration order, before the
next hook. During a ``fit`` it drives one real ``ray.tune.experiment.Trial``, built as Tune's search
algorithm builds it and shared by every callback, through the states Tune gives it (``PENDING`` in
``on_trial_start``, ``RUNNING`` until ``on_trial_complete`` has run, then ``TERMINATED``; ``ERROR`` in
``on_trial_error``). Results carry the keys Tune's function trainable fills in, checkpoints are
``ray.tune.Checkpoint`` objects. Ray is imported only when a callback uses a trial hook.
"""

from __future__ import annotations

import os
import platform
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callbridge.adapters.styles import describe
from callbridge.adapters.warprec.hooks import RAY_HOOKS, TRIAL_HOOKS, WARPREC_HOOKS, dataset_creation_call, overrides
from callbridge.callbacks import CallbackContext

#: What ``setup`` receives: the public part of a one-trial experiment's spec, as Tune passes it.
SETUP_KWARGS: dict[str, Any] = {"stop": {}, "time_budget_s": None, "num_samples": 1, "total_num_samples": 1}


@dataclass
class _Report:
    """One ``tune.report`` worth of values, kept until the checkpoint that may follow it is on disk."""

    metrics: dict[str, float] | None
    timestamp: int = 0
    date: str = ""
    time_this_iter_s: float = 0.0
    time_total_s: float = 0.0
    time_since_restore: float = 0.0
    iterations_since_restore: int = 0
    training_iteration: int = 0
    saved: bool = False


class TuneRun:
    """The Ray Tune and WarpRec side of the runs of one set of callbacks.

    Args:
        callbacks: the WarpRec-style / Ray Tune callback objects, in registration order.
        ray_hooks: fire Ray Tune's trial hooks (off inside a Ray Tune trial, where Ray fires them).
        run_config: a ``ray.tune.RunConfig`` whose ``storage_path`` and ``name`` say where the trial's files
            go (default: ``ray_results`` in the run's log directory, and ``<LightningModule class>_<date>``).
        training_complete: fire ``on_training_complete`` at the end of a successful fit.

    Raises:
        ImportError: a callback uses Ray Tune's trial hooks and Ray is not installed.
        ValueError: ``run_config`` carries callbacks (give them to ``to_lightning`` instead).

    Examples:
        >>> class Plot:
        ...     def on_training_complete(self, model, *args, **kwargs):
        ...         print("trained", model)
        >>> run = TuneRun([Plot()], ray_hooks=True)
        >>> run.tracks_trial, run.defines("on_training_complete")
        (False, True)
        >>> run.training_complete("a model")
        trained a model
    """

    def __init__(
        self, callbacks: Sequence[Any], *, ray_hooks: bool, run_config: Any = None, training_complete: bool = True
    ) -> None:
        hooks = (*WARPREC_HOOKS, *RAY_HOOKS)
        self.members: list[tuple[Any, frozenset[str]]] = [
            (callback, frozenset(hook for hook in hooks if overrides(callback, hook))) for callback in callbacks
        ]
        self.ray_hooks = ray_hooks
        self.fires_training_complete = training_complete
        self.tracks_trial = ray_hooks and any(defined & TRIAL_HOOKS for _, defined in self.members)
        if run_config is not None and getattr(run_config, "callbacks", None):
            raise ValueError(
                "to_lightning(run_config=...): the RunConfig's callbacks would not run; pass them to to_lightning"
            )
        self.run_config = run_config
        if self.tracks_trial:
            _require_ray(self.members)
        self.trial: Any = None
        self._saved: dict[str, Any] | None = None  # trial state from a checkpoint, for the next fit
        self._resumed = False
        self._pending: _Report | None = None
        self.experiment_open = False
        # a callback's Ray Tune hook raised: Tune ends the experiment, the trial is not failed
        self.callback_failed = False
        self._node_ip: str | None = None
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.training_iteration = 0
        self.time_total_s = 0.0
        self._fit_start = self._last_report = time.time()
        self._time_since_restore = 0.0
        self._iterations_since_restore = 0

    # -- calling the callbacks ------------------------------------------------------------------
    def defines(self, hook: str) -> bool:
        """Some callback of this run defines ``hook`` itself."""
        return any(hook in defined for _, defined in self.members)

    def fire(self, hook: str, **kwargs: Any) -> None:
        """``hook(**kwargs)`` on every callback that defines it, in registration order."""
        for callback, defined in self.members:
            if hook in defined:
                try:
                    getattr(callback, hook)(**kwargs)
                except BaseException:
                    self.callback_failed = self.callback_failed or hook in RAY_HOOKS
                    raise

    def _fire_trial(self, hook: str, ctx: CallbackContext, **kwargs: Any) -> None:
        self.fire(hook, iteration=ctx.step, trials=[self.trial], trial=self.trial, **kwargs)

    # -- WarpRec's pipeline hooks ---------------------------------------------------------------
    def dataset_created(self, main: Any, val: Any, folds: list[Any]) -> None:
        """``on_dataset_creation`` as the WarpRec release each callback was written for calls it."""
        for callback, defined in self.members:
            if "on_dataset_creation" in defined:
                dataset_creation_call(callback.on_dataset_creation)(main, val, folds)

    def training_complete(self, model: Any) -> None:
        if self.fires_training_complete:
            self.fire("on_training_complete", model=model)

    def evaluation_complete(self, model: Any, params: dict[str, Any], results: dict[str, float]) -> None:
        self.fire("on_evaluation_complete", model=model, params=params, results=results)

    # -- the trial ------------------------------------------------------------------------------
    @property
    def trial_open(self) -> bool:
        """A trial is live: built for the current fit and not finished."""
        return self.trial is not None and self.trial.status in ("PENDING", "RUNNING")

    def begin(self, ctx: CallbackContext) -> None:
        """Start of a fit: a new trial (the one saved in the checkpoint when resuming); ``setup`` fires."""
        self.trial = _build_trial(ctx, self.run_config, self._saved)
        self._reset_counters()
        if self._saved:
            self.training_iteration = int(self._saved.get("training_iteration", 0))
            self.time_total_s = float(self._saved.get("time_total_s", 0.0))
            self.trial.run_metadata.last_result = dict(self._saved.get("last_result") or {})
        self._saved = None
        self._pending = None
        self.experiment_open = True
        self.callback_failed = False
        self.fire("setup", **SETUP_KWARGS)

    def start(self, ctx: CallbackContext) -> None:
        """Training starts: ``on_trial_start`` (PENDING), then RUNNING, then ``on_trial_restore`` on resume."""
        self._fit_start = self._last_report = time.time()
        self._fire_trial("on_trial_start", ctx)
        self.trial.set_status("RUNNING")
        if self._resumed:
            self._resumed = False
            self._fire_trial("on_trial_restore", ctx)

    def resumed(self, ctx: CallbackContext) -> None:
        """The fit restores a checkpoint: ``on_trial_restore`` fires once the trial runs."""
        if self.trial is not None and self.trial.status == "RUNNING":
            self._fire_trial("on_trial_restore", ctx)
        else:
            self._resumed = True

    def forget_resume(self) -> None:
        """A checkpoint loaded for validate/test resumes no trial."""
        self._resumed, self._saved = False, None

    def step(self, hook: str, ctx: CallbackContext) -> None:
        if self.trial is not None and self.trial.status == "RUNNING":
            self.fire(hook, iteration=ctx.step, trials=[self.trial])

    def report(self, ctx: CallbackContext) -> None:
        """A result, as ``tune.report(metrics)`` would make one; delivered by [`deliver`][deliver]."""
        self.deliver(ctx)
        now = time.time()
        this_iter = now - self._last_report
        self._last_report = now
        self.training_iteration += 1
        self._iterations_since_restore += 1
        self.time_total_s += this_iter
        self._time_since_restore += this_iter
        moment = datetime.now()
        self._pending = _Report(
            metrics=dict(ctx.metrics),
            timestamp=int(time.mktime(moment.timetuple())),
            date=moment.strftime("%Y-%m-%d_%H-%M-%S"),
            time_this_iter_s=this_iter,
            time_total_s=self.time_total_s,
            time_since_restore=self._time_since_restore,
            iterations_since_restore=self._iterations_since_restore,
            training_iteration=self.training_iteration,
        )

    def saved(self, ctx: CallbackContext) -> None:
        """Lightning is saving a checkpoint: it belongs to the last result, unless that one already has one."""
        if self._pending is not None and not self._pending.saved:
            self._pending.saved = True
            return
        self.deliver(ctx)
        self._pending = _Report(metrics=None, saved=True)

    def deliver(self, ctx: CallbackContext) -> None:
        """Fires what is pending, once the checkpoint (if any) is on disk: ``on_trial_result``, then
        ``on_checkpoint`` and ``on_trial_save``, with the trial updated between them as Tune updates it."""
        report, self._pending = self._pending, None
        if report is None or not self.trial_open:
            return
        checkpoint = _checkpoint(ctx) if report.saved else None
        if report.metrics is not None:
            result = self._result(report, checkpoint)
            self._fire_trial("on_trial_result", ctx, result=result)
            self.trial.update_last_result(result)
        if report.saved:
            if checkpoint is not None:
                from ray.train._internal.session import _TrainingResult

                self._fire_trial("on_checkpoint", ctx, checkpoint=checkpoint)
                self.trial.on_checkpoint(_TrainingResult(checkpoint=checkpoint, metrics=dict(self.trial.last_result)))
            self._fire_trial("on_trial_save", ctx)

    def _result(self, report: _Report, checkpoint: Any) -> dict[str, Any]:
        """The keys and key order of a result from Tune's function trainable (``ray.tune.report``)."""
        if self._node_ip is None:
            from ray.util import get_node_ip_address

            self._node_ip = get_node_ip_address()
        result: dict[str, Any] = dict(report.metrics or {})
        result["timestamp"] = report.timestamp
        result["checkpoint_dir_name"] = os.path.basename(checkpoint.path) if checkpoint is not None else None
        if checkpoint is not None:
            result["should_checkpoint"] = True
        result.update(
            done=False,
            training_iteration=report.training_iteration,
            trial_id=self.trial.trial_id,
            date=report.date,
            time_this_iter_s=report.time_this_iter_s,
            time_total_s=report.time_total_s,
            pid=os.getpid(),
            hostname=platform.node(),
            node_ip=self._node_ip,
            config=self.trial.config,
            time_since_restore=report.time_since_restore,
            iterations_since_restore=report.iterations_since_restore,
        )
        return result

    def complete(self, ctx: CallbackContext) -> None:
        """Training ended normally: ``on_trial_complete`` (still RUNNING, ``last_result["done"]`` set), then
        TERMINATED."""
        self.deliver(ctx)
        self.trial.last_result.update(done=True)
        self._fire_trial("on_trial_complete", ctx)
        self.trial.set_status("TERMINATED")

    def end_experiment(self) -> None:
        """``on_experiment_end`` once per experiment (after the trial completed or failed)."""
        if self.experiment_open:
            self.experiment_open = False
            self.fire("on_experiment_end", trials=[self.trial])

    def fail(self, ctx: CallbackContext, error: BaseException) -> None:
        """The fit raised: Tune records the error in the trial directory, sets ERROR, fires
        ``on_trial_error`` and, the experiment being over, ``on_experiment_end``. When a callback's Ray Tune hook
        raised, the trial did not fail: as Tune, it is stopped (TERMINATED) and only ``on_experiment_end`` fires."""
        try:
            self.deliver(ctx)
        finally:
            if self.callback_failed:
                self.trial.set_status("TERMINATED")
            else:
                self.trial.handle_error(error)
                self.trial.set_status("ERROR")
                self._fire_trial("on_trial_error", ctx)
            self.end_experiment()

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The trial's identity, counters and last result, so that a resumed fit continues the same trial."""
        if self.trial is None:
            return {"training_iteration": self.training_iteration}
        return {
            "training_iteration": self.training_iteration,
            "time_total_s": self.time_total_s,
            "last_result": self._last_result(),
            "trial_id": self.trial.trial_id,
            "trial_dir_name": self.trial.storage.trial_dir_name,
            "experiment_dir_name": self.trial.storage.experiment_dir_name,
            "storage_path": self.trial.storage.storage_fs_path,
        }

    def _last_result(self) -> dict[str, Any]:
        """The trial's last result, counting one reported but not delivered yet (Lightning saves the checkpoint
        that follows a validation before the result is delivered)."""
        if self._pending is not None and self._pending.metrics is not None:
            return self._result(self._pending, None)
        return dict(self.trial.last_result)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.trial_open:  # strategies that restore after the trial started
            self.training_iteration = int(state.get("training_iteration", self.training_iteration))
            self.time_total_s = float(state.get("time_total_s", self.time_total_s))
        else:
            self._saved = dict(state)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["trial"] = None  # a live trial stays with its process (its storage holds a filesystem handle)
        return state


def _require_ray(members: list[tuple[Any, frozenset[str]]]) -> None:
    try:
        import ray.tune  # noqa: F401
    except ImportError as error:
        users = [f"{describe(cb)} ({', '.join(sorted(defined & TRIAL_HOOKS))})" for cb, defined in members]
        raise ImportError(
            f"Ray Tune's trial hooks need Ray (pip install 'callbridge[ray]'); used by {'; '.join(users)}. "
            "Or turn them off: to_lightning([...], ray_hooks=False)"
        ) from error


def _build_trial(ctx: CallbackContext, run_config: Any, saved: dict[str, Any] | None) -> Any:
    """A ``ray.tune.experiment.Trial`` as Tune's ``BasicVariantGenerator`` builds the one trial of a
    search space without variables: id ``<5 hex>_00000``, tag ``"0"``, no evaluated parameters; its
    directory created as Tune creates it before the trial starts."""
    from callbridge.adapters.warprec.storage import LocalStorageContext
    from ray.tune import CheckpointConfig
    from ray.tune.experiment import Trial

    name = type(ctx.model).__name__ if ctx.model is not None else "lightning"
    saved = saved or {}
    storage_path = saved.get("storage_path") or getattr(run_config, "storage_path", None)
    if not storage_path:
        storage_path = os.path.join(ctx.log_dir or ctx.root_dir or os.getcwd(), "ray_results")
    experiment = saved.get("experiment_dir_name") or getattr(run_config, "name", None)
    storage = LocalStorageContext(
        storage_path=os.fspath(storage_path),
        experiment_dir_name=experiment or LocalStorageContext.get_experiment_dir_name(name),
        storage_filesystem=getattr(run_config, "storage_filesystem", None),
    )
    trial = Trial(
        name,
        config=dict(ctx.hparams),
        trial_id=saved.get("trial_id") or f"{uuid.uuid1().hex[:5]}_{0:05d}",
        storage=storage,
        evaluated_params={},
        experiment_tag="0",
        stopping_criterion={},
        checkpoint_config=CheckpointConfig(),  # Lightning's ModelCheckpoint keeps or deletes checkpoints
        export_formats=[],
        stub=True,  # no trainable to look up in Tune's registry: Lightning trains
    )
    trial.create_placement_group_factory()
    if saved.get("trial_dir_name"):  # a resumed fit continues the trial's directory
        trial.relative_logdir = trial.storage.trial_dir_name = saved["trial_dir_name"]
    trial.init_local_path()
    return trial


def _checkpoint(ctx: CallbackContext) -> Any:
    """Lightning's checkpoint directory as a ``ray.tune.Checkpoint``; None when the run names none."""
    if not ctx.checkpoint_dir or not os.path.isdir(ctx.checkpoint_dir):
        return None
    from ray.tune import Checkpoint

    return Checkpoint.from_directory(os.fspath(ctx.checkpoint_dir))
