"""The unified callback that runs Hydra callbacks: one Hydra run with one job per Lightning entry point.

Outside a Hydra app each entry point (``fit``, ``validate``, ``test``, ``predict``) runs as Hydra's ``run``
and ``run_job`` would run it::

    compose the config (Hydra's compose API; hydra.run.dir = the run's log dir)
    on_run_start(config, config_name=...)
    HydraConfig set; hydra.runtime.output_dir set; the output dir created
    on_job_start(config, task_function=LightningTask(stage))
    <the stage>
    on_job_end(config, job_return=JobReturn(...))
    HydraConfig restored
    on_run_end(config, config_name=..., job_return=...)

Inside a live Hydra job with [`HydraRelay`][callbridge.adapters.hydra.relay.HydraRelay] in ``hydra.callbacks`` the relay
delivers the hooks once per Hydra job, with Hydra's own config, task function and ``JobReturn``; without
the relay each entry point is one job of the live config.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callbridge.adapters.hydra import live
from callbridge.adapters.hydra.compose import HydraConfigScope, compose, script_name, set_job_dir, set_values
from callbridge.adapters.hydra.detection import END_HOOKS, is_instance, looks_like
from callbridge.adapters.hydra.job_return import LightningTask, finish_job_return, start_job_return
from callbridge.adapters.styles import describe
from callbridge.callbacks import Callback, CallbackContext
from omegaconf import DictConfig

if TYPE_CHECKING:
    from callbridge.adapters.hydra.multirun import SweepJob

log = logging.getLogger("callbridge.adapters.hydra")


@dataclass
class _Job:
    config: DictConfig
    callbacks: list[Any]
    run_hooks: bool  # on_run_start/on_run_end (not inside a sweep)
    config_name: str | None
    job_return: Any = None
    scope: HydraConfigScope | None = None


class HydraAdapter(Callback):
    """Runs Hydra-style callbacks: each Lightning entry point is one Hydra run with one job.

    ``to_lightning`` builds one adapter for all Hydra-style callbacks it is given; build one yourself
    to pass options. Runs on global rank zero only.

    Args:
        callbacks: Hydra callbacks (``hydra.experimental.callback.Callback`` subclasses or objects with
            Hydra's hook signatures), in registration order.
        strict: re-raise a callback's exception instead of turning it into a warning.
        config: the task config handed to the callbacks (a mapping or DictConfig); default: the run's
            hyperparameters (``ctx.hparams``).
        config_name: passed as ``config_name=`` to run/multirun hooks and kept in ``hydra.job.config_name``.
        config_dir: a directory of Hydra config files: the task config is composed by Hydra from
            ``config_name`` there (as ``@hydra.main(config_path=config_dir)`` would); excludes ``config``.
        job_name: ``hydra.job.name`` and ``JobReturn.task_name``; default: the script's file stem.
        sweep_job: set by [`HydraMultirun.job`][callbridge.adapters.hydra.multirun.HydraMultirun.job]: the job of
            a sweep this adapter runs.

    Examples:
        >>> from hydra.experimental.callbacks import LogJobReturnCallback
        >>> from callbridge.adapters import to_lightning
        >>> callbacks = to_lightning([LogJobReturnCallback()], strict=True)
        >>> type(callbacks[0].callbacks[0]).__name__
        'HydraAdapter'
    """

    rank_zero_only = True
    observes_only = True  # Hydra callbacks cannot stop a run or change its learning rate or weights

    def __init__(
        self,
        callbacks: Iterable[Any],
        *,
        strict: bool = False,
        config: Mapping[str, Any] | DictConfig | None = None,
        config_name: str | None = None,
        config_dir: str | os.PathLike[str] | None = None,
        job_name: str | None = None,
        sweep_job: SweepJob | None = None,
    ) -> None:
        self.callbacks = list(callbacks)
        for index, cb in enumerate(self.callbacks):
            if isinstance(cb, type):
                raise TypeError(f"HydraAdapter: callback #{index} is the class {describe(cb)}, not an instance")
            if not (is_instance(cb) or looks_like(cb)):
                raise TypeError(
                    f"HydraAdapter: callback #{index} ({describe(cb)}) is not a Hydra callback: derive it from "
                    "hydra.experimental.callback.Callback or define hooks such as "
                    "on_job_end(self, config, job_return, **kwargs)"
                )
        if config is not None and not isinstance(config, (Mapping, DictConfig)):
            raise TypeError(f"HydraAdapter: config must be a mapping or DictConfig, got {type(config).__name__}")
        if config is not None and config_dir is not None:
            raise ValueError("HydraAdapter: give config or config_dir (with config_name), not both")
        if config_dir is not None and config_name is None:
            raise ValueError("HydraAdapter: config_dir needs config_name, the primary config to compose")
        self.strict = strict
        self.config = config
        self.config_name = config_name
        self.config_dir = os.fspath(config_dir) if config_dir is not None else None
        self.job_name = job_name or script_name()
        self.sweep_job = sweep_job
        self._job: _Job | None = None
        self._warned_no_relay = False

    def implemented_hooks(self) -> frozenset[str]:
        return frozenset({"on_stage_begin", "on_stage_end", "on_exception"})

    # -- dispatch --------------------------------------------------------------------------------
    def notify(self, callbacks: Sequence[Any], hook: str, **kwargs: Any) -> None:
        """Calls ``hook`` on every callback that has it, as Hydra's ``Callbacks`` does: start hooks in
        order, end hooks reversed, an exception turned into a warning (re-raised when ``strict``)."""
        ordered = reversed(callbacks) if hook in END_HOOKS else callbacks
        for cb in ordered:
            method = getattr(cb, hook, None)
            if method is None:
                continue
            try:
                method(**kwargs)
            except Exception as error:
                if self.strict:
                    raise
                # Hydra's own wording (hydra/_internal/callbacks.py)
                warnings.warn(
                    f"Callback {type(cb).__name__}.{hook} raised {type(error).__name__}: {error}", stacklevel=2
                )

    # -- unified hooks ---------------------------------------------------------------------------
    def on_stage_begin(self, ctx: CallbackContext) -> None:
        self._job = None
        config = live.live_config()
        if config is not None:
            self._begin_live(ctx, config)
        else:
            self._begin_standalone(ctx)

    def on_stage_end(self, ctx: CallbackContext) -> None:
        if self._job is not None:
            self._finish(ctx, failed=None)

    def on_exception(self, ctx: CallbackContext) -> None:
        if self._job is None:
            # The entry point failed before its stage began (setup, configure_optimizers ...):
            # under Hydra the task function would have failed, so the job still runs and fails.
            try:
                self.on_stage_begin(ctx)
            except Exception:  # strict and a start hook raised: report the original failure only
                self._job = None
                return
        if ctx.exception is not None and self._job is not None:
            self._finish(ctx, failed=ctx.exception)

    # -- inside a live Hydra app -------------------------------------------------------------------
    def _begin_live(self, ctx: CallbackContext, config: DictConfig) -> None:
        skip = live.called_by_hydra(self.callbacks, config)
        for cb in self.callbacks:
            if id(cb) in skip:
                log.info("%s is in hydra.callbacks: Hydra calls it already, callbridge does not", describe(cb))
        callbacks = [cb for cb in self.callbacks if id(cb) not in skip]
        relay = live.relay_for(config)
        if relay is not None:
            relay.attach(self, callbacks)  # the relay fires the hooks, once per Hydra job
            return
        if not self._warned_no_relay:
            self._warned_no_relay = True
            warnings.warn(
                "callbridge runs Hydra callbacks inside a Hydra job without callbridge.adapters.hydra.HydraRelay in "
                "hydra.callbacks: each Lightning entry point is one job and multirun hooks do not reach them. Add "
                "`hydra.callbacks.callbridge: {_target_: callbridge.adapters.hydra.HydraRelay}` to the app's config "
                "for one job per Hydra job, as Hydra fires them (docs/hydra.md)",
                stacklevel=2,
            )
        multirun = getattr(config.hydra.mode, "name", str(config.hydra.mode)) == "MULTIRUN"
        job = _Job(config, callbacks, not multirun, config.hydra.job.config_name)
        if job.run_hooks:
            self.notify(callbacks, "on_run_start", config=config, config_name=job.config_name)
        job.job_return = start_job_return(config, None)
        self._start(job, LightningTask(ctx.stage, _model_name(ctx)))

    # -- outside Hydra -------------------------------------------------------------------------------
    def _begin_standalone(self, ctx: CallbackContext) -> None:
        sweep_job = self.sweep_job
        if sweep_job is not None:
            config = sweep_job.compose(self._task(ctx))
        else:
            config = compose(
                self._task(ctx),
                multirun=False,
                job_name=self.job_name,
                config_name=self.config_name,
                config_dir=self.config_dir,
            )
            set_values(config, {"hydra.run.dir": _run_dir(ctx)})
        job = _Job(config, list(self.callbacks), sweep_job is None, self.config_name)
        if job.run_hooks:
            self.notify(job.callbacks, "on_run_start", config=config, config_name=self.config_name)
        # Hydra's run_job: HydraConfig for the job, its output dir, the JobReturn's fields, then on_job_start
        job.scope = HydraConfigScope(config)
        try:
            keys = ("hydra.sweep.dir", "hydra.sweep.subdir") if sweep_job is not None else ("hydra.run.dir", None)
            output_dir = set_job_dir(config, job_dir_key=keys[0], job_subdir_key=keys[1])
            job.scope.update(config)
            job.job_return = start_job_return(config, job.scope.hydra_cfg)
            os.makedirs(output_dir, exist_ok=True)
            self._start(job, LightningTask(ctx.stage, _model_name(ctx)))
        except Exception:
            job.scope.close()
            raise

    def _task(self, ctx: CallbackContext) -> Mapping[str, Any] | DictConfig | None:
        if self.sweep_job is not None and self.sweep_job.config is not None:
            return self.sweep_job.config
        if self.config is not None or self.config_dir is not None:
            return self.config
        return hyperparameters(ctx)

    # -- both ----------------------------------------------------------------------------------------
    def _start(self, job: _Job, task_function: Any) -> None:
        self._job = job
        try:
            self.notify(job.callbacks, "on_job_start", config=job.config, task_function=task_function)
        except Exception:
            self._job = None  # strict: the failing callback aborted this run
            raise

    def _finish(self, ctx: CallbackContext, failed: BaseException | None) -> None:
        job, self._job = self._job, None
        job_return = finish_job_return(job.job_return, job.config, dict(ctx.metrics), failed)
        try:
            self.notify(job.callbacks, "on_job_end", config=job.config, job_return=job_return)
        finally:
            if job.scope is not None:
                job.scope.close()
        if job.run_hooks:
            self.notify(
                job.callbacks, "on_run_end", config=job.config, config_name=job.config_name, job_return=job_return
            )

    def __repr__(self) -> str:
        return f"HydraAdapter({self.callbacks!r}, strict={self.strict})"


def hyperparameters(ctx: CallbackContext) -> dict[str, Any]:
    """The run's hyperparameters: ``ctx.hparams``; engines that do not fill it give the model's and then the
    datamodule's ``hparams`` (the module wins on a clash, with a warning)."""
    if ctx.hparams:
        return dict(ctx.hparams)
    merged: dict[str, Any] = {}
    for owner in (ctx.model, ctx.datamodule):
        hparams = getattr(owner, "hparams", None) if owner is not None else None
        for key, value in dict(hparams or {}).items():
            if key in merged and merged[key] != value:
                warnings.warn(
                    f"hyperparameter {key!r} differs between the LightningModule and the datamodule; "
                    "the Hydra config keeps the module's value",
                    stacklevel=3,
                )
                continue
            merged[key] = value
    return merged


def _run_dir(ctx: CallbackContext) -> str:
    """``hydra.run.dir`` of a standalone run: the run's log dir, else its root dir, else the working dir."""
    return str(ctx.log_dir or ctx.root_dir or os.getcwd())


def _model_name(ctx: CallbackContext) -> str | None:
    return describe(ctx.model) if ctx.model is not None else None
