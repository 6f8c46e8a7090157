"""Hydra-style callbacks (``hydra.experimental.callback.Callback``) under a Lightning Trainer.

Each Lightning entry point (``fit``, ``validate``, ``test``, ``predict``) is one Hydra RUN with one
JOB::

    on_run_start(config, config_name=...)
    on_job_start(config, task_function=...)
    <the stage>
    on_job_end(config, job_return=...)
    on_run_end(config, config_name=..., job_return=...)

Start events run in registration order, end events in reverse order, and a callback that raises
becomes a warning (as Hydra does) unless the adapter is ``strict``. ``job_return`` is Hydra's own
``JobReturn`` when hydra-core is installed. [`HydraMultirun`][HydraMultirun] turns a loop of fits into one
MULTIRUN; [`from_hydra_config`][from_hydra_config] builds callbacks from ``_target_`` entries. See ``docs/hydra.md``.

Importing this module does not import hydra; hydra-core is needed only for ``from_hydra_config``
and for Hydra's own ``JobReturn`` type.
"""

from __future__ import annotations

import enum
import inspect
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbridge.adapters.registry import Style, register
from callbridge.adapters.styles import describe
from callbridge.callbacks import Callback, CallbackContext
from omegaconf import DictConfig, ListConfig, OmegaConf

STYLE = "hydra"

#: Each hook of this style and the Lightning hook it runs from (``callbridge inspect`` prints it).
#: A value starting with "-" means: no Lightning counterpart (the text says when, if ever, it runs).
HOOK_MAP: dict[str, str] = {
    "on_run_start": "on_fit_start / on_validation_start / on_test_start / on_predict_start (one run each)",
    "on_job_start": "on_fit_start / on_validation_start / on_test_start / on_predict_start (one job per run)",
    "on_job_end": "on_fit_end / ... end of the entry point, or on_exception (status FAILED)",
    "on_run_end": "on_fit_end / ... end of the entry point, or on_exception",
    "on_multirun_start": "- none in a single run: fires only inside callbridge.adapters.hydra.HydraMultirun",
    "on_multirun_end": "- none in a single run: fires only inside callbridge.adapters.hydra.HydraMultirun",
}
OPTIONS = ("strict", "config", "config_name", "job_name")

log = logging.getLogger(__name__)

#: Hydra's hooks, with the keyword arguments Hydra passes to each.
HOOK_KWARGS: dict[str, tuple[str, ...]] = {
    "on_run_start": ("config", "config_name"),
    "on_run_end": ("config", "config_name", "job_return"),
    "on_multirun_start": ("config", "config_name"),
    "on_multirun_end": ("config", "config_name"),
    "on_job_start": ("config", "task_function"),
    "on_job_end": ("config", "job_return"),
}
_END_HOOKS = frozenset({"on_run_end", "on_multirun_end", "on_job_end"})


# -- style detection ---------------------------------------------------------------------------------
def is_instance(obj: Any) -> bool:
    """``obj`` derives from ``hydra.experimental.callback.Callback`` (checked without importing hydra)."""
    return any(c.__module__ == "hydra.experimental.callback" and c.__name__ == "Callback" for c in type(obj).__mro__)


def looks_like(obj: Any) -> bool:
    """``obj`` has at least one Hydra hook, and every Hydra hook it has accepts Hydra's keyword call."""
    found = False
    for hook, kwargs in HOOK_KWARGS.items():
        method = getattr(obj, hook, None)
        if method is None:
            continue
        if not callable(method):
            return False
        try:
            inspect.signature(method).bind(**dict.fromkeys(kwargs))
        except (TypeError, ValueError):
            return False
        found = True
    return found


def adapt(objs: Sequence[Any], **options: Any) -> list[Callback]:
    """One [`HydraAdapter`][HydraAdapter] running all Hydra-style ``objs`` (the style-module protocol)."""
    return [HydraAdapter(objs, **options)]


# -- JobReturn -----------------------------------------------------------------------------------------
class _JobStatus(enum.Enum):
    UNKNOWN = 0
    COMPLETED = 1
    FAILED = 2


@dataclass
class _JobReturn:
    """Stand-in for ``hydra.core.utils.JobReturn`` when hydra-core is not installed (same fields)."""

    overrides: Sequence[str] | None = None
    cfg: DictConfig | None = None
    hydra_cfg: DictConfig | None = None
    working_dir: str | None = None
    task_name: str | None = None
    status: _JobStatus = _JobStatus.UNKNOWN
    _return_value: Any = None

    @property
    def return_value(self) -> Any:
        assert self.status != _JobStatus.UNKNOWN, "return_value not yet available"
        if self.status == _JobStatus.COMPLETED:
            return self._return_value
        sys.stderr.write(f"Error executing job with overrides: {self.overrides}{os.linesep}")
        raise self._return_value

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


def _job_return_types() -> tuple[type, type]:
    try:
        from hydra.core.utils import JobReturn, JobStatus
    except ImportError:
        return _JobReturn, _JobStatus
    return JobReturn, JobStatus


# -- running inside a real Hydra app ---------------------------------------------------------------
def _live_hydra_config() -> DictConfig | None:
    """The full config (task + ``hydra`` node) of the Hydra job running in this process, if any."""
    if "hydra" not in sys.modules:
        return None
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return None
    if not HydraConfig.initialized():
        return None
    node = HydraConfig.get()
    parent = node._get_parent()  # HydraConfig keeps the hydra node parented to the job's full config
    if isinstance(parent, DictConfig) and "hydra" in parent:
        return parent
    return OmegaConf.create({"hydra": node})


def _called_by_hydra(callbacks: Sequence[Any], live: DictConfig) -> set[int]:
    """ids of ``callbacks`` that match an entry of the live ``hydra.callbacks``, which Hydra calls itself.

    A callback matches an entry when its class is the entry's ``_target_`` and every argument of the
    entry that the object keeps under the same attribute name has the same value.
    """
    entries = OmegaConf.select(live, "hydra.callbacks") or {}
    matchers: list[tuple[type, dict[str, Any]]] = []
    for entry in entries.values():
        if not isinstance(entry, DictConfig) or not entry.get("_target_"):
            continue
        try:
            from hydra.utils import get_class

            cls = get_class(entry["_target_"])
        except Exception:
            continue
        args = OmegaConf.to_container(entry, resolve=True)
        matchers.append((cls, {k: v for k, v in args.items() if not k.startswith("_")}))
    return {id(cb) for cb in callbacks if any(_matches(cb, cls, args) for cls, args in matchers)}


def _matches(obj: Any, cls: type, args: dict[str, Any]) -> bool:
    if type(obj) is not cls:
        return False
    for key, value in args.items():
        if hasattr(obj, key):
            kept = getattr(obj, key)
            if kept != value and str(kept) != str(value):
                return False
    return True


# -- the adapter -------------------------------------------------------------------------------------
class HydraAdapter(Callback):
    """Runs Hydra-style callbacks: each Lightning entry point is one Hydra run with one job.

    ``to_lightning`` builds one adapter for all Hydra-style callbacks it is given; build one yourself
    to pass options. Runs on global rank zero only.

    Args:
        callbacks: Hydra callbacks (``hydra.experimental.callback.Callback`` subclasses or objects with
            Hydra's hook signatures), in registration order.
        strict: re-raise a callback's exception instead of turning it into a warning.
        config: the task config handed to the callbacks (a mapping or DictConfig); default: the
            LightningModule's and the datamodule's hyperparameters, merged.
        config_name: passed as ``config_name=`` to run/multirun hooks and kept in ``hydra.job.config_name``.
        job_name: ``hydra.job.name`` and ``JobReturn.task_name``; default: the script's file stem.

    Examples:
        >>> import lightning as L
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
        job_name: str | None = None,
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
        self.strict = strict
        self.config = config
        self.config_name = config_name
        self.job_name = job_name or _script_name()
        self._sweep: HydraMultirun | None = None
        self._job: _Job | None = None

    def implemented_hooks(self) -> frozenset[str]:
        return frozenset({"on_stage_begin", "on_stage_end", "on_exception"})

    # -- dispatch --------------------------------------------------------------------------------
    def _notify(self, callbacks: Sequence[Any], hook: str, **kwargs: Any) -> None:
        """Call ``hook`` on every callback that has it: start hooks in order, end hooks reversed."""
        ordered = reversed(callbacks) if hook in _END_HOOKS else callbacks
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
        live = _live_hydra_config()
        callbacks = self.callbacks
        if live is not None:
            skip = _called_by_hydra(callbacks, live)
            for cb in callbacks:
                if id(cb) in skip:
                    log.info("%s is in hydra.callbacks: Hydra calls it already, callbridge does not", describe(cb))
            callbacks = [cb for cb in callbacks if id(cb) not in skip]
            config = live
            mode = OmegaConf.select(live, "hydra.mode")
            multirun = getattr(mode, "name", str(mode)) == "MULTIRUN"
            config_name = OmegaConf.select(live, "hydra.job.config_name")
        else:
            sweep = self._sweep
            config = self._standalone_config(ctx, sweep)
            multirun = sweep is not None
            config_name = self.config_name
        job = _Job(config=config, callbacks=callbacks, multirun=multirun, config_name=config_name, stage=ctx.stage)
        self._job = job
        try:
            if not multirun:
                self._notify(callbacks, "on_run_start", config=config, config_name=config_name)
            self._notify(callbacks, "on_job_start", config=config, task_function=getattr(ctx.trainer, ctx.stage, None))
        except Exception:
            self._job = None  # strict: the failing callback aborted this run
            raise

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

    # -- helpers ---------------------------------------------------------------------------------
    def _finish(self, ctx: CallbackContext, failed: BaseException | None) -> None:
        job, self._job = self._job, None
        job_return = _make_job_return(job, ctx, failed)
        try:
            self._notify(job.callbacks, "on_job_end", config=job.config, job_return=job_return)
            if not job.multirun:
                self._notify(
                    job.callbacks, "on_run_end", config=job.config, config_name=job.config_name, job_return=job_return
                )
        finally:
            if self._sweep is not None:
                self._sweep._job_done()

    def _standalone_config(self, ctx: CallbackContext, sweep: HydraMultirun | None) -> DictConfig:
        task = sweep._next_config if sweep is not None and sweep._next_config is not None else self.config
        if task is None:
            task = _hyperparameters(ctx)
        num = sweep.job_num if sweep is not None else 0
        overrides = list(sweep._next_overrides) if sweep is not None else []
        if sweep is not None and sweep.sweep_dir is not None:
            output_dir = os.path.join(sweep.sweep_dir, str(num))
        else:
            output_dir = _trainer_dir(ctx.trainer)
        return build_config(
            task,
            output_dir=output_dir,
            job_name=self.job_name,
            job_num=num,
            config_name=self.config_name,
            overrides=overrides,
            multirun=sweep is not None,
            sweep_dir=sweep.sweep_dir if sweep is not None else None,
        )

    def __repr__(self) -> str:
        return f"HydraAdapter({self.callbacks!r}, strict={self.strict})"


@dataclass
class _Job:
    config: DictConfig
    callbacks: list[Any]
    multirun: bool
    config_name: str | None
    stage: str


def _make_job_return(job: _Job, ctx: CallbackContext, failed: BaseException | None) -> Any:
    job_return_cls, status_cls = _job_return_types()
    config = job.config
    task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    hydra_cfg = OmegaConf.masked_copy(config, "hydra")
    overrides = OmegaConf.select(config, "hydra.overrides.task")
    ret = job_return_cls()
    ret.overrides = list(overrides) if overrides is not None else []
    ret.cfg = task_cfg
    ret.hydra_cfg = hydra_cfg
    ret.working_dir = os.getcwd()
    ret.task_name = OmegaConf.select(config, "hydra.job.name")
    if failed is None:
        ret.status = status_cls.COMPLETED
        ret.return_value = dict(ctx.metrics)
    else:
        ret.status = status_cls.FAILED
        ret.return_value = failed
    return ret


# -- the standalone config -------------------------------------------------------------------------
def build_config(
    task: Mapping[str, Any] | DictConfig,
    *,
    output_dir: str,
    job_name: str,
    job_num: int = 0,
    config_name: str | None = None,
    overrides: Sequence[str] = (),
    multirun: bool = False,
    sweep_dir: str | None = None,
) -> DictConfig:
    """The ``config`` handed to Hydra callbacks outside a Hydra app: the task config plus a ``hydra`` node.

    Examples:
        >>> cfg = build_config({"lr": 0.1}, output_dir="/tmp/run", job_name="train")
        >>> cfg.lr, cfg.hydra.runtime.output_dir, cfg.hydra.output_subdir, cfg.hydra.job.num
        (0.1, '/tmp/run', '.hydra', 0)
    """
    cfg = _to_dictconfig(task)
    if "hydra" in cfg:
        warnings.warn(
            "the task config has a 'hydra' key; callbridge replaces it with the Hydra runtime node", stacklevel=3
        )
    overrides = [str(o) for o in overrides]
    job: dict[str, Any] = {
        "name": job_name,
        "num": job_num,
        "config_name": config_name,
        "override_dirname": ",".join(overrides),
    }
    if multirun:
        job["id"] = str(job_num)
    node: dict[str, Any] = {
        "mode": "MULTIRUN" if multirun else "RUN",
        "output_subdir": ".hydra",
        "runtime": {"output_dir": os.path.abspath(output_dir), "cwd": os.getcwd()},
        "job": job,
        "overrides": {"task": overrides, "hydra": []},
    }
    if multirun:
        node["sweep"] = {"dir": os.path.abspath(sweep_dir) if sweep_dir else None, "subdir": str(job_num)}
    cfg = OmegaConf.merge(cfg, {"hydra": node}) if "hydra" not in cfg else _replace_hydra(cfg, node)
    return cfg


def _replace_hydra(cfg: DictConfig, node: dict[str, Any]) -> DictConfig:
    cfg = cfg.copy()
    cfg.hydra = node
    return cfg


def _to_dictconfig(task: Mapping[str, Any] | DictConfig) -> DictConfig:
    if isinstance(task, DictConfig):
        cfg = task.copy()
        OmegaConf.set_readonly(cfg, False)
        OmegaConf.set_struct(cfg, False)  # a composed Hydra config is in struct mode: allow the hydra node
        return cfg
    try:
        return OmegaConf.create(dict(task))
    except Exception:
        return OmegaConf.create(dict(task), flags={"allow_objects": True})


def _hyperparameters(ctx: CallbackContext) -> dict[str, Any]:
    """The LightningModule's hyperparameters, then the datamodule's (the module wins on a clash)."""
    merged: dict[str, Any] = {}
    module = ctx.model
    trainer = ctx.trainer
    datamodule = getattr(trainer, "datamodule", None)
    for owner in (module, datamodule):
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


def _trainer_dir(trainer: Any) -> str:
    """``trainer.log_dir`` without its broadcast (the adapter runs on rank zero only)."""
    if trainer is None:
        return os.getcwd()
    loggers = getattr(trainer, "loggers", None) or []
    directory = None
    if loggers:
        logger = loggers[0]
        directory = getattr(logger, "log_dir", None) if hasattr(logger, "log_dir") else None
        if directory is None:
            directory = getattr(logger, "save_dir", None)
    return str(directory or trainer.default_root_dir)


def _script_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    return Path(argv0).stem or "callbridge"


# -- multirun ------------------------------------------------------------------------------------------
class HydraMultirun:
    """A loop of fits as one Hydra MULTIRUN: ``on_multirun_start``, one job per entry point, ``on_multirun_end``.

    Enter the ``with`` block to start the sweep; call [`job`][job] for each trainer to get its Lightning
    callbacks (the job number grows by one per finished entry point). ``on_multirun_end`` fires when
    the block exits normally; as in Hydra, not when it raises.

    Examples:
        >>> import lightning as L
        >>> from hydra.experimental.callbacks import LogJobReturnCallback
        >>> from callbridge.adapters.hydra import HydraMultirun
        >>> with HydraMultirun([LogJobReturnCallback()], config={"lr": 0.1}) as sweep:
        ...     for lr in (0.1, 0.01):
        ...         trainer = L.Trainer(callbacks=sweep.job(config={"lr": lr}, overrides=[f"lr={lr}"]),
        ...                             max_epochs=1, logger=False)
        ...         # trainer.fit(model)
    """

    def __init__(
        self,
        callbacks: Iterable[Any],
        *,
        config: Mapping[str, Any] | DictConfig | None = None,
        config_name: str | None = None,
        sweep_dir: str | os.PathLike[str] | None = None,
        strict: bool = False,
        job_name: str | None = None,
    ) -> None:
        self.adapter = HydraAdapter(callbacks, strict=strict, config=config, config_name=config_name, job_name=job_name)
        self.adapter._sweep = self
        self.sweep_dir = os.fspath(sweep_dir) if sweep_dir is not None else None
        self.job_num = 0
        self._next_config: Mapping[str, Any] | DictConfig | None = None
        self._next_overrides: list[str] = []
        self._started = False

    @property
    def config(self) -> DictConfig:
        """The sweep-level config passed to ``on_multirun_start``/``on_multirun_end``."""
        return build_config(
            self.adapter.config or {},
            output_dir=self.sweep_dir or os.getcwd(),
            job_name=self.adapter.job_name,
            config_name=self.adapter.config_name,
            multirun=True,
            sweep_dir=self.sweep_dir or os.getcwd(),
        )

    def __enter__(self) -> HydraMultirun:
        if self._started:
            raise RuntimeError("HydraMultirun: this sweep already started; build a new one per sweep")
        self._started = True
        self._config = self.config
        if _is_global_zero():
            self.adapter._notify(
                self.adapter.callbacks, "on_multirun_start", config=self._config, config_name=self.adapter.config_name
            )
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and _is_global_zero():
            self.adapter._notify(
                self.adapter.callbacks, "on_multirun_end", config=self._config, config_name=self.adapter.config_name
            )

    def job(
        self,
        *,
        config: Mapping[str, Any] | DictConfig | None = None,
        overrides: Sequence[str] = (),
        callbacks: Sequence[Any] = (),
    ) -> list[Any]:
        """Lightning callbacks for the next trainer: the sweep's adapter plus ``callbacks`` (any style).

        ``config`` is that job's task config (default: the sweep's, else the model's hyperparameters);
        ``overrides`` become ``hydra.overrides.task`` and ``JobReturn.overrides``.
        """
        if not self._started:
            raise RuntimeError("HydraMultirun.job() is called inside 'with HydraMultirun(...) as sweep:'")
        from callbridge.adapters.lightning import to_lightning

        self._next_config = config
        self._next_overrides = [str(o) for o in overrides]
        return to_lightning([self.adapter, *callbacks])

    def _job_done(self) -> None:
        self.job_num += 1


def _is_global_zero() -> bool:
    """Global rank zero of a multi-process launch (torchrun, Lightning's DDP launcher, SLURM), or a lone process."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


# -- registration from config ----------------------------------------------------------------------
def from_hydra_config(
    cfg: Mapping[str, Any] | DictConfig | ListConfig | Sequence[Any] | str | os.PathLike[str], **options: Any
) -> list[Any]:
    """Lightning callbacks built from ``_target_`` entries with ``hydra.utils.instantiate``, in one call.

    ``cfg`` is a YAML file path or a config holding ``hydra.callbacks.<name>: {_target_: ..., ...}`` (the
    shape Hydra reads), a ``callbacks`` node, a mapping ``name -> entry``, a list of entries, or one
    entry. Entries of any style are accepted (Hydra, Keras, unified, Lightning); ``options`` go to
    [`to_lightning`][callbridge.adapters.lightning.to_lightning]. Inside a running Hydra app, entries that Hydra itself
    already instantiated from ``hydra.callbacks`` are left out, so they do not fire twice.

    Raises:
        ValueError: an entry without ``_target_``, with an unknown class or with wrong arguments; the
            message names the entry (``hydra.callbacks.my_callback``).

    Examples:
        >>> from callbridge.adapters.hydra import from_hydra_config
        >>> cfg = {"hydra": {"callbacks": {"log": {"_target_": "hydra.experimental.callbacks.LogJobReturnCallback"}}}}
        >>> [type(cb).__name__ for cb in from_hydra_config(cfg)]
        ['LightningBridge']
    """
    from callbridge.adapters.lightning import to_lightning

    try:
        from hydra.utils import instantiate
    except ImportError as error:
        raise ImportError(
            "from_hydra_config needs hydra-core: pip install 'callbridge[hydra]' (or hydra-core>=1.3)"
        ) from error

    entries = _entries(cfg)
    live = _live_hydra_config()
    live_entries = []
    if live is not None:
        node = OmegaConf.select(live, "hydra.callbacks") or {}
        live_entries = [OmegaConf.to_container(e, resolve=False) for e in node.values()]
    objects = []
    for name, entry in entries:
        if not isinstance(entry, (Mapping, DictConfig)) or "_target_" not in entry:
            shown = list(entry.keys()) if isinstance(entry, (Mapping, DictConfig)) else type(entry).__name__
            raise ValueError(
                f"callback entry {name!r} has no _target_ (got {shown}); an entry looks like "
                "{_target_: package.module.Class, arg: value}"
            )
        plain = OmegaConf.to_container(entry, resolve=False) if isinstance(entry, DictConfig) else dict(entry)
        if plain in live_entries:
            log.info("callback entry %r is in hydra.callbacks: Hydra calls it already, callbridge does not", name)
            continue
        try:
            objects.append(instantiate(entry))
        except Exception as error:
            raise ValueError(f"callback entry {name!r} (_target_: {entry['_target_']}): {error}") from error
    return to_lightning(objects, **options) if objects else []


def _entries(cfg: Any) -> list[tuple[str, Any]]:
    if isinstance(cfg, (str, os.PathLike)):
        path = Path(cfg)
        if not path.is_file():
            raise FileNotFoundError(f"from_hydra_config: no config file {str(path)!r}")
        cfg = OmegaConf.load(path)
    if isinstance(cfg, (Mapping, DictConfig)):
        if "_target_" in cfg:
            return [("<entry>", cfg)]
        hydra_node = cfg.get("hydra")
        if isinstance(hydra_node, (Mapping, DictConfig)) and "callbacks" in hydra_node:
            return _named("hydra.callbacks", hydra_node["callbacks"])
        if "callbacks" in cfg:
            return _named("callbacks", cfg["callbacks"])
        return _named("", cfg)
    if isinstance(cfg, (Sequence, ListConfig)):
        return _named("", cfg)
    raise TypeError(f"from_hydra_config: expected a config, a mapping, a list or a YAML path, got {type(cfg).__name__}")


def _named(prefix: str, node: Any) -> list[tuple[str, Any]]:
    if node is None:
        return []
    if isinstance(node, (Mapping, DictConfig)):
        return [(f"{prefix}.{key}" if prefix else str(key), value) for key, value in node.items()]
    if isinstance(node, (Sequence, ListConfig)) and not isinstance(node, str):
        return [(f"{prefix}[{i}]", value) for i, value in enumerate(node)]
    raise TypeError(f"from_hydra_config: {prefix or 'the config'} must be a mapping or a list of _target_ entries")


register(
    Style(
        name=STYLE,
        summary="Hydra callbacks (hydra.experimental.callback.Callback)",
        is_instance=is_instance,
        looks_like=looks_like,
        adapt=adapt,
        hook_map=HOOK_MAP,
        options=OPTIONS,
        library_packages=("hydra",),
        inspect_problems=None,
        extra="hydra",
        docs_page="hydra.md",
    )
)
