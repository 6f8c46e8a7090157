"""WarpRec-style callbacks (with their Ray Tune lifecycle) under a Lightning Trainer and in a Ray Tune sweep.

WarpRec's ``WarpRecCallback`` derives from ``ray.tune.Callback`` and adds four pipeline hooks:
``on_data_reading(data) -> data``, ``on_dataset_creation(main_dataset=, val_dataset=, validation_folds=)``,
``on_training_complete(model=)`` and ``on_evaluation_complete(model=, params=, results=)``. Under one
Lightning run the adapter fires them at the matching points and plays the Ray Tune hooks as if the run
were a one-trial experiment (see ``docs/warprec.md`` for the table).

Public helpers:

* [`announce_data`][announce_data]: the one line a ``LightningDataModule`` calls on the raw data it read, to pass it
  through every WarpRec-style callback's ``on_data_reading`` (the return value replaces the data);
* [`load_callback`][load_callback]: WarpRec's config entry ``{callback_path, callback_name, args, kwargs}``;
* [`tune_sweep`][tune_sweep] / [`lightning_trainable`][lightning_trainable]: the same callback object in a real Ray Tune
  sweep (Ray's hooks on the driver, the WarpRec data and training hooks in the trials).

Detection: an object whose class derives from ``warprec.utils.callback.WarpRecCallback`` or from
``ray.tune.Callback`` (checked by class name and module, without importing either library), or one that
defines a WarpRec hook with WarpRec's signature.
"""

from __future__ import annotations

import inspect
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from callbridge.adapters.registry import Style, register
from callbridge.adapters.styles import describe
from callbridge.callbacks import Callback, CallbackContext
from callbridge.callbacks.context import as_float

STYLE = "warprec"

#: Each hook of this style and the Lightning hook it runs from (``callbridge inspect`` prints it).
#: A value starting with "-" means: no Lightning counterpart (the text says when, if ever, it runs).
HOOK_MAP: dict[str, str] = {
    "on_data_reading": "your LightningDataModule's prepare_data/setup, through announce_data(self, data)",
    "on_dataset_creation": "after the LightningDataModule's setup('fit')",
    "on_training_complete": "on_fit_end (successful fit)",
    "on_evaluation_complete": "on_validation_end / on_test_end (validate and test)",
    "setup": "on_fit_start (the run seen as a one-trial Ray Tune experiment)",
    "on_trial_start": "on_train_start",
    "on_trial_restore": "on_load_checkpoint",
    "on_step_begin": "on_train_batch_start (each training batch)",
    "on_step_end": "on_train_batch_end (each training batch)",
    "on_trial_result": "on_validation_end (each validation result)",
    "on_checkpoint": "on_save_checkpoint",
    "on_trial_save": "on_save_checkpoint",
    "on_trial_complete": "on_fit_end",
    "on_trial_error": "on_exception",
    "on_trial_recover": "- none: Lightning does not retry a failed run",
    "on_experiment_end": "on_fit_end (after on_trial_complete)",
    "get_state": "state saved in the Lightning checkpoint",
    "set_state": "state restored from the Lightning checkpoint",
}
OPTIONS = ("ray_hooks",)

#: WarpRec's own hooks, and the keyword arguments WarpRec passes them.
WARPREC_HOOKS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "on_data_reading": ((None,), {}),
    "on_dataset_creation": ((), {"main_dataset": None, "val_dataset": None, "validation_folds": []}),
    "on_training_complete": ((), {"model": None}),
    "on_evaluation_complete": ((), {"model": None, "params": {}, "results": {}}),
}

#: Ray Tune's ``Callback`` hooks (all called with keyword arguments, as Tune does).
RAY_HOOKS: tuple[str, ...] = (
    "setup",
    "on_step_begin",
    "on_step_end",
    "on_trial_start",
    "on_trial_restore",
    "on_trial_save",
    "on_trial_result",
    "on_trial_complete",
    "on_trial_recover",
    "on_trial_error",
    "on_checkpoint",
    "on_experiment_end",
    "get_state",
    "set_state",
)


# -- detection -----------------------------------------------------------------------------------
def _is_warprec_base(cls: type) -> bool:
    return cls.__name__ == "WarpRecCallback" and cls.__module__.startswith("warprec.")


def _is_ray_base(cls: type) -> bool:
    return cls.__name__ == "Callback" and cls.__module__.startswith("ray.tune")


def _is_base(cls: type) -> bool:
    return _is_warprec_base(cls) or _is_ray_base(cls) or cls is object


def is_instance(obj: Any) -> bool:
    """``obj`` derives from WarpRec's ``WarpRecCallback`` or from Ray Tune's ``Callback``."""
    return any(_is_warprec_base(c) or _is_ray_base(c) for c in type(obj).__mro__)


def overrides(obj: Any, hook: str) -> bool:
    """``obj`` defines ``hook`` itself (not only through WarpRec's or Ray's no-op base class)."""
    if hook in getattr(obj, "__dict__", {}):
        return callable(obj.__dict__[hook])
    for cls in type(obj).__mro__:
        if hook in vars(cls):
            return not _is_base(cls) and callable(vars(cls)[hook])
    return False


def _signature_problem(obj: Any, hook: str) -> str | None:
    args, kwargs = WARPREC_HOOKS[hook]
    try:
        signature = inspect.signature(getattr(obj, hook))
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        wanted = ", ".join([*(["data"] if args else []), *kwargs])
        return f"{hook}{signature} cannot be called as WarpRec calls it ({hook}({wanted})): {error}"
    return None


def looks_like(obj: Any) -> bool:
    """``obj`` defines at least one WarpRec hook, each with a signature WarpRec can call."""
    hooks = [hook for hook in WARPREC_HOOKS if overrides(obj, hook)]
    return bool(hooks) and all(_signature_problem(obj, hook) is None for hook in hooks)


def adapt(objs: Sequence[Any], **options: Any) -> list[Callback]:
    """One [`WarpRecAdapter`][WarpRecAdapter] per object, in registration order."""
    return [WarpRecAdapter(obj, **options) for obj in objs]


def _inside_ray_trial() -> bool:
    """True inside a Ray Tune trial, where Ray itself fires the Ray Tune hooks (on the driver)."""
    if "ray" not in sys.modules:
        return False
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # pragma: no cover - a Ray without the v1 session
        return False
    return get_session() is not None


# -- what Ray Tune hooks receive ----------------------------------------------------------------
class LightningTrial:
    """The one trial a Lightning run is, as Ray Tune hooks see it.

    Attributes:
        trial_id: a short random hex id (or the one given to the adapter).
        config: the LightningModule's hyperparameters (``model.hparams``) as a plain dict.
        last_result: the latest result reported to ``on_trial_result`` (``{}`` before the first).
        status: ``PENDING``, ``RUNNING``, ``TERMINATED`` or ``ERROR``, as in Ray.
        local_path: the trainer's log directory (or its ``default_root_dir``).
        checkpoint: the latest `LightningCheckpoint`, or None.
        error: the exception that ended the trial, or None.
    """

    def __init__(self, trial_id: str, config: dict[str, Any], local_path: str | None) -> None:
        self.trial_id = trial_id
        self.config = config
        self.local_path = local_path
        self.last_result: dict[str, Any] = {}
        self.status = "PENDING"
        self.checkpoint: LightningCheckpoint | None = None
        self.error: BaseException | None = None
        self.trainable_name = "lightning"
        self.experiment_tag = trial_id

    @property
    def path(self) -> str | None:
        return self.local_path

    def __str__(self) -> str:
        return self.trial_id

    def __repr__(self) -> str:
        return f"LightningTrial({self.trial_id!r}, status={self.status!r})"


class LightningCheckpoint:
    """What ``on_checkpoint`` receives under Lightning: the checkpoint dict being saved (``data``, editable
    as in ``on_save_checkpoint``) and ``path``, the directory Lightning's ``ModelCheckpoint`` writes to
    (None when the run has none)."""

    def __init__(self, data: dict[str, Any], path: str | None) -> None:
        self.data = data
        self.path = path

    def __repr__(self) -> str:
        return f"LightningCheckpoint(path={self.path!r})"


# -- the adapter ---------------------------------------------------------------------------------
class WarpRecAdapter(Callback):
    """Runs one WarpRec-style (or Ray Tune) callback under the Lightning bridge.

    ``to_lightning`` builds it for you; use it directly only for options. WarpRec's hooks fire with
    keyword arguments at the matching points of the run; with ``ray_hooks`` on, the Ray Tune hooks fire
    as for a one-trial experiment per ``fit``. The callback runs on global rank zero only.

    Args:
        callback: the WarpRec-style object.
        ray_hooks: fire the Ray Tune lifecycle hooks. Default: yes, except inside a Ray Tune trial,
            where Ray fires them on the driver.
        trial_id: the id of the trial the run is seen as (default: random).

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

    def __init__(self, callback: Any, *, ray_hooks: bool | None = None, trial_id: str | None = None) -> None:
        self.callback = callback
        self.ray_hooks = (not _inside_ray_trial()) if ray_hooks is None else bool(ray_hooks)
        self._overrides = {hook for hook in (*WARPREC_HOOKS, *RAY_HOOKS) if overrides(callback, hook)}
        for hook in WARPREC_HOOKS:
            if hook in self._overrides and (problem := _signature_problem(callback, hook)):
                raise TypeError(f"WarpRec callback {describe(callback)}: {problem}")
        self._trial_id = trial_id
        self._tracks_trial = self.ray_hooks and bool(self._overrides & set(RAY_HOOKS) - {"get_state", "set_state"})
        self.trial: LightningTrial | None = None
        self._training_iteration = 0
        self._restored: tuple[int, dict[str, Any]] | None = None  # (training_iteration, last_result)
        self._resumed = False
        self._reported_this_epoch = False
        self._start_time = self._last_time = 0.0

    @property
    def state_key(self) -> str:
        return f"WarpRec[{type(self.callback).__qualname__}]"

    def implemented_hooks(self) -> frozenset[str]:
        hooks: set[str] = set()
        if "on_dataset_creation" in self._overrides:
            hooks.add("on_stage_begin")
        if self._overrides & {"on_training_complete", "on_evaluation_complete"}:
            hooks.add("on_stage_end")
        if self._tracks_trial:
            hooks |= {"on_stage_begin", "on_stage_end", "on_exception", "on_evaluate", "on_epoch_end", "on_save"}
            if "on_trial_restore" in self._overrides:
                hooks.add("on_load")
            hooks |= self._overrides & {"on_step_begin", "on_step_end"}
        return frozenset(hooks)

    def _call(self, hook: str, **kwargs: Any) -> Any:
        if hook in self._overrides:
            return getattr(self.callback, hook)(**kwargs)
        return None

    # -- Ray Tune lifecycle ----------------------------------------------------------------------
    def _trial_open(self) -> bool:
        return self.trial is not None and self.trial.status == "RUNNING"

    def _start_trial(self, ctx: CallbackContext) -> None:
        self.trial = LightningTrial(self._trial_id or uuid.uuid4().hex[:8], _hparams(ctx.model), _log_dir(ctx.trainer))
        # a new fit starts a new trial, unless it resumes from a checkpoint
        self._training_iteration, self.trial.last_result = self._restored or (0, {})
        self._restored = None
        self._start_time = self._last_time = time.time()
        self._call("setup", stop=None, num_samples=1, total_num_samples=1)
        self.trial.status = "RUNNING"
        trials = [self.trial]
        self._call("on_trial_start", iteration=ctx.step, trials=trials, trial=self.trial)
        if self._resumed:
            self._resumed = False
            self._call("on_trial_restore", iteration=ctx.step, trials=trials, trial=self.trial)

    def _end_trial(self, ctx: CallbackContext, error: BaseException | None) -> None:
        trial = self.trial
        trials = [trial]
        if error is None:
            trial.status = "TERMINATED"
            trial.last_result = {**trial.last_result, "done": True} if trial.last_result else trial.last_result
            self._call("on_trial_complete", iteration=ctx.step, trials=trials, trial=trial)
        else:
            trial.status = "ERROR"
            trial.error = error
            self._call("on_trial_error", iteration=ctx.step, trials=trials, trial=trial)
        self._call("on_experiment_end", trials=trials)

    def _report(self, ctx: CallbackContext) -> None:
        self._training_iteration += 1
        self._reported_this_epoch = True
        now = time.time()
        result: dict[str, Any] = dict(ctx.metrics)
        result.update(
            training_iteration=self._training_iteration,
            epoch=ctx.epoch,
            global_step=ctx.step,
            trial_id=self.trial.trial_id,
            timestamp=int(now),
            time_this_iter_s=now - self._last_time,
            time_total_s=now - self._start_time,
            done=False,
            config=self.trial.config,
        )
        self._last_time = now
        self.trial.last_result = result
        self._call("on_trial_result", iteration=ctx.step, trials=[self.trial], trial=self.trial, result=result)

    def on_step_begin(self, ctx: CallbackContext) -> None:
        if self._trial_open():
            self._call("on_step_begin", iteration=ctx.step, trials=[self.trial])

    def on_step_end(self, ctx: CallbackContext) -> None:
        if self._trial_open():
            self._call("on_step_end", iteration=ctx.step, trials=[self.trial])

    def on_evaluate(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit" and self._trial_open():
            self._report(ctx)

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        # A run without validation reports one result per training epoch instead.
        if self._trial_open() and not self._reported_this_epoch and not _validates(ctx.trainer):
            self._report(ctx)
        self._reported_this_epoch = False

    def on_save(self, ctx: CallbackContext) -> None:
        if not self._trial_open() or ctx.checkpoint is None:
            return
        checkpoint = LightningCheckpoint(ctx.checkpoint, _checkpoint_dir(ctx.trainer))
        self.trial.checkpoint = checkpoint
        trials = [self.trial]
        self._call("on_checkpoint", iteration=ctx.step, trials=trials, trial=self.trial, checkpoint=checkpoint)
        self._call("on_trial_save", iteration=ctx.step, trials=trials, trial=self.trial)

    def on_load(self, ctx: CallbackContext) -> None:
        if self._trial_open():  # strategies that restore after setup: the trial has already started
            self._call("on_trial_restore", iteration=ctx.step, trials=[self.trial], trial=self.trial)
        else:
            self._resumed = True

    def on_exception(self, ctx: CallbackContext) -> None:
        if self._trial_open():
            self._end_trial(ctx, ctx.exception)

    # -- WarpRec pipeline hooks ------------------------------------------------------------------
    def on_stage_begin(self, ctx: CallbackContext) -> None:
        if ctx.stage != "fit":
            self._resumed, self._restored = False, None  # a checkpoint loaded for validate/test resumes no trial
            return
        if "on_dataset_creation" in self._overrides:
            source = _data_source(ctx)
            if source is not None:
                self._call("on_dataset_creation", **source)
        if self._tracks_trial:
            self._start_trial(ctx)

    def on_stage_end(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit":
            if self._trial_open():
                self._end_trial(ctx, None)
            self._call("on_training_complete", model=ctx.model)
        elif ctx.stage in ("validate", "test"):
            self._call("on_evaluation_complete", model=ctx.model, params=_hparams(ctx.model), results=_results(ctx))

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"training_iteration": self._training_iteration}
        if self.trial is not None:
            state["last_result"] = dict(self.trial.last_result)
        if "get_state" in self._overrides:
            state["ray_state"] = self.callback.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        restored = (int(state_dict.get("training_iteration", 0)), dict(state_dict.get("last_result") or {}))
        if self._trial_open():  # strategies that restore after the trial started
            self._training_iteration, self.trial.last_result = restored
        else:
            self._restored = restored
        ray_state = state_dict.get("ray_state")
        if ray_state is not None and "set_state" in self._overrides:
            self.callback.set_state(ray_state)

    def __repr__(self) -> str:
        return f"WarpRecAdapter({describe(self.callback)})"


def _validates(trainer: Any) -> bool:
    if trainer is None:
        return False
    try:
        return bool(trainer.enable_validation) and sum(trainer.num_val_batches or [0]) > 0
    except (AttributeError, TypeError):
        return False


def _log_dir(trainer: Any) -> str | None:
    """``trainer.log_dir`` without its broadcast (this runs on rank zero only: a collective would hang)."""
    if trainer is None:
        return None
    logger = getattr(trainer, "logger", None)
    path = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None) if logger is not None else None
    return str(path or trainer.default_root_dir)


def _checkpoint_dir(trainer: Any) -> str | None:
    callback = getattr(trainer, "checkpoint_callback", None)
    path = getattr(callback, "dirpath", None)
    return None if path is None else str(path)


def _hparams(model: Any) -> dict[str, Any]:
    hparams = getattr(model, "hparams", None)
    return dict(hparams) if isinstance(hparams, Mapping) else {}


def _results(ctx: CallbackContext) -> dict[str, float]:
    trainer = ctx.trainer
    raw = getattr(trainer, "callback_metrics", None) if trainer is not None else None
    if raw is None:
        return dict(ctx.metrics)
    return {key: number for key, value in raw.items() if (number := as_float(value)) is not None}


def _data_source(ctx: CallbackContext) -> dict[str, Any] | None:
    """``main_dataset`` / ``val_dataset`` / ``validation_folds`` from the datamodule (or the LightningModule)."""
    trainer = ctx.trainer
    owners = [getattr(trainer, "datamodule", None), ctx.model]
    for owner in owners:
        if owner is None:
            continue
        main = getattr(owner, "main_dataset", None)
        if main is None:
            main = getattr(owner, "train_dataset", None)
        if main is not None:
            folds = getattr(owner, "validation_folds", None)
            return {
                "main_dataset": main,
                "val_dataset": getattr(owner, "val_dataset", None),
                "validation_folds": list(folds) if folds is not None else [],
            }
    return None


# -- on_data_reading: the DataModule side ---------------------------------------------------------
def _trainer_of(owner: Any) -> Any:
    trainer = owner.__dict__.get("_trainer") if hasattr(owner, "__dict__") else None
    if trainer is None:
        try:
            trainer = getattr(owner, "trainer", None)
        except RuntimeError:  # a LightningModule not attached to a Trainer
            trainer = None
    return trainer


def _adapters_of(trainer: Any) -> list[WarpRecAdapter]:
    from callbridge.adapters.lightning import LightningBridge

    bridges = [callback for callback in getattr(trainer, "callbacks", ()) if isinstance(callback, LightningBridge)]
    return [
        unified
        for bridge in bridges
        for unified in bridge.callbacks
        if isinstance(unified, WarpRecAdapter) and "on_data_reading" in unified._overrides
    ]


def _in_prepare_data() -> bool:
    """Called (indirectly) from Lightning's ``prepare_data``, which runs on local rank zero only."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "prepare_data" and frame.f_globals.get("__name__", "").startswith(
            ("lightning.pytorch.trainer", "pytorch_lightning.trainer")
        ):
            return True
        frame = frame.f_back
    return False


def announce_data(owner: Any, data: Any) -> Any:
    """Pass raw data through every WarpRec-style callback's ``on_data_reading``; return the replacement.

    Call it from a ``LightningDataModule`` (or ``LightningModule``) right after reading the raw data,
    in ``setup`` (recommended) or ``prepare_data``: ``data = announce_data(self, data)``. The callbacks
    are the WarpRec-style ones given to ``to_lightning`` for the trainer the owner is attached to; each
    one's return value is the next one's input, in registration order.

    Multi-process runs: the hooks run on global rank zero only and, when called from ``setup`` (which
    every rank runs), the result is broadcast so that every rank trains on the same data (it must be
    picklable; every rank must call ``announce_data`` the same number of times). ``prepare_data`` runs
    on local rank zero only, so nothing can be broadcast there: the hooks run on global rank zero and
    the other processes get ``data`` unchanged; write the result to disk there, or announce in ``setup``.

    Without a trainer, or without WarpRec-style callbacks, ``data`` comes back unchanged.

    Raises:
        TypeError: a callback's ``on_data_reading`` returned None (WarpRec replaces the data with the
            return value, so returning nothing is a bug).

    Examples:
        >>> import lightning as L
        >>> class Ratings(L.LightningDataModule):
        ...     def setup(self, stage):
        ...         rows = [(0, 1, 5.0), (1, 2, 1.0)]
        ...         self.rows = announce_data(self, rows)
        >>> dm = Ratings()
        >>> dm.setup("fit")  # not attached to a trainer: unchanged
        >>> dm.rows
        [(0, 1, 5.0), (1, 2, 1.0)]
    """
    trainer = _trainer_of(owner)
    if trainer is None:
        return data
    adapters = _adapters_of(trainer)
    if not adapters:
        return data
    if trainer.is_global_zero:
        for adapter in adapters:
            replaced = adapter.callback.on_data_reading(data)
            if replaced is None:
                raise TypeError(
                    f"{describe(adapter.callback)}.on_data_reading returned None; it must return the data "
                    "(WarpRec replaces the data with the return value)"
                )
            data = replaced
    if trainer.world_size > 1 and not _in_prepare_data():
        data = trainer.strategy.broadcast(data, src=0)
    return data


# -- registration from WarpRec's config format ----------------------------------------------------
_CONFIG_KEYS = ("callback_path", "callback_name", "args", "kwargs")


def load_callback(spec: Mapping[str, Any], *, base_dir: str | Path | None = None) -> Any:
    """Build a WarpRec callback from WarpRec's configuration entry; pass the result to ``to_lightning``.

    ``spec`` is ``{callback_path: file.py, callback_name: ClassName, args: [...], kwargs: {...}}``
    (also accepted wrapped as ``{callback: {...}}`` or ``{general: {callback: {...}}}``, and as an
    OmegaConf config). A relative ``callback_path`` is resolved against ``base_dir`` (default: the
    working directory).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a missing or unknown key, a path that is not a ``.py`` file, a class the file lacks.
        TypeError: the class is not WarpRec-style, or ``args``/``kwargs`` do not fit its constructor.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "cb.py").write_text(
        ...     "class Keep:\\n    def __init__(self, n):\\n        self.n = n\\n"
        ...     "    def on_data_reading(self, data):\\n        return data[: self.n]\\n")
        >>> cb = load_callback({"callback_path": "cb.py", "callback_name": "Keep", "args": [2]}, base_dir=folder)
        >>> cb.on_data_reading([1, 2, 3])
        [1, 2]
    """
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(spec):
            spec = OmegaConf.to_container(spec, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        pass
    if not isinstance(spec, Mapping):
        raise TypeError(f"WarpRec callback config must be a mapping, got {type(spec).__name__}")
    if "general" in spec and isinstance(spec["general"], Mapping):
        spec = spec["general"]
    if "callback" in spec and isinstance(spec["callback"], Mapping):
        spec = spec["callback"]
    unknown = sorted(set(spec) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"WarpRec callback config: unknown key(s) {unknown}; valid keys: {', '.join(_CONFIG_KEYS)}")
    for key in ("callback_path", "callback_name"):
        if not spec.get(key):
            raise ValueError(f"WarpRec callback config: {key!r} is missing (got keys {sorted(spec)})")
    path = Path(spec["callback_path"]).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.suffix != ".py":
        raise ValueError(f"WarpRec callback config: callback_path {str(path)!r} is not a .py file")
    if not path.is_file():
        raise FileNotFoundError(f"WarpRec callback config: callback_path {str(path.resolve())!r} does not exist")
    name = spec["callback_name"]
    args, kwargs = spec.get("args") or [], spec.get("kwargs") or {}
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, Mapping):
        raise TypeError(
            f"WarpRec callback config for {name!r}: 'args' must be a list and 'kwargs' a mapping, "
            f"got {type(args).__name__} and {type(kwargs).__name__}"
        )
    from callbridge.adapters.config import load_class_from_file

    try:
        cls = load_class_from_file(path, name)
    except AttributeError as error:  # the file has no such class: say so in WarpRec's terms
        raise ValueError(f"WarpRec callback config: {path} has no class {name!r}: {error}") from None
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(
            f"WarpRec callback config: {name}{inspect.signature(cls)} cannot take args={list(args)!r}, "
            f"kwargs={dict(kwargs)!r}: {error}"
        ) from None
    except ValueError:  # no signature available: let the call itself say
        pass
    callback = cls(*args, **kwargs)
    if not (is_instance(callback) or looks_like(callback)):
        defined = [hook for hook in WARPREC_HOOKS if overrides(callback, hook)]
        problems = [problem for hook in defined if (problem := _signature_problem(callback, hook))]
        detail = "; ".join(problems) or (
            f"it defines none of {', '.join(WARPREC_HOOKS)} and does not derive from WarpRecCallback"
        )
        raise TypeError(f"WarpRec callback config: {name} from {path} is not a WarpRec-style callback: {detail}")
    return callback


# -- Ray Tune sweep ------------------------------------------------------------------------------
def _ship_by_value(callbacks: Iterable[Any]) -> None:
    """Classes loaded from files by [`load_callback`][load_callback] are not importable in Ray workers: send them by
    value."""
    from callbridge.adapters.config import is_loaded_from_file

    wanted = {type(cb).__module__ for cb in callbacks if is_loaded_from_file(type(cb).__module__)}
    if wanted:
        from ray import cloudpickle

        for name in wanted:
            cloudpickle.register_pickle_by_value(sys.modules[name])


def _ray_callback(obj: Any) -> Any:
    """``obj`` itself when it derives from ``ray.tune.Callback``; else a Ray callback forwarding to its hooks."""
    from ray import tune

    if isinstance(obj, tune.Callback):
        return obj

    class _Forward(tune.Callback):
        def __init__(self, target: Any) -> None:
            self.target = target

        def __getattribute__(self, name: str) -> Any:
            if name in RAY_HOOKS and name not in ("get_state", "set_state"):
                target = object.__getattribute__(self, "target")
                if overrides(target, name):
                    return getattr(target, name)
            return object.__getattribute__(self, name)

    return _Forward(obj)


def lightning_trainable(
    train_fn: Callable[[dict[str, Any], list[Any]], Any],
    callbacks: Sequence[Any],
    *,
    metrics: Sequence[str] | Mapping[str, str] | None = None,
    save_checkpoints: bool = True,
) -> Callable[[dict[str, Any]], None]:
    """A Ray Tune function trainable that runs ``train_fn(config, lightning_callbacks)`` in each trial.

    ``lightning_callbacks`` is ``to_lightning(callbacks)`` (with the Ray Tune hooks off: Ray fires them
    on the driver) plus Ray's ``TuneReportCheckpointCallback``, which reports the metrics (all of
    ``trainer.callback_metrics``, or ``metrics``) and a checkpoint after each validation. ``train_fn``
    builds the model and a ``lightning.Trainer(callbacks=lightning_callbacks, ...)`` and calls ``fit``.
    Each trial works on its own copy of ``callbacks``.
    """
    callbacks = list(callbacks)
    _ship_by_value(callbacks)

    def trainable(config: dict[str, Any]) -> None:
        from callbridge.adapters.lightning import to_lightning
        from callbridge.adapters.styles import detect_style
        from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

        # Ray fires its hooks on the driver: the trial's adapters must not fire them again.
        options = {"ray_hooks": False} if any(detect_style(cb) == STYLE for cb in callbacks) else {}
        lightning_callbacks = to_lightning(callbacks, **options) if callbacks else []
        lightning_callbacks.append(
            TuneReportCheckpointCallback(
                metrics=dict(metrics) if isinstance(metrics, Mapping) else (list(metrics) if metrics else None),
                save_checkpoints=save_checkpoints,
                on="validation_end",
            )
        )
        train_fn(config, lightning_callbacks)

    trainable.__name__ = getattr(train_fn, "__name__", "lightning_trainable")
    return trainable


def tune_sweep(
    train_fn: Callable[[dict[str, Any], list[Any]], Any],
    param_space: dict[str, Any],
    callbacks: Sequence[Any],
    *,
    tune_config: Any = None,
    run_config: Any = None,
    metrics: Sequence[str] | Mapping[str, str] | None = None,
    save_checkpoints: bool = True,
    resources: Mapping[str, float] | None = None,
) -> Any:
    """Run a Ray Tune sweep whose trials train with Lightning; returns Ray's ``ResultGrid``.

    The same ``callbacks`` serve both sides, with no hook fired twice: on the driver they are Ray Tune
    callbacks of ``tune.Tuner(..., run_config=RunConfig(callbacks=...))``, so Ray fires its real
    lifecycle hooks (``setup``, ``on_trial_result``, ``on_trial_save`` ...); in each trial they run
    under the Lightning Trainer (see [`lightning_trainable`][lightning_trainable]), which fires the WarpRec data and
    training hooks. Callbacks that do not derive from ``ray.tune.Callback`` get a forwarding wrapper
    on the driver.

    Args:
        train_fn: ``train_fn(config, lightning_callbacks)`` fits one trial.
        param_space: Ray Tune's search space.
        callbacks: WarpRec-style / Ray Tune callbacks.
        tune_config: ``ray.tune.TuneConfig``.
        run_config: ``ray.tune.RunConfig``; the callbacks are appended to ``run_config.callbacks``.
        metrics: what each trial reports after each validation.
        save_checkpoints: whether each trial also reports a checkpoint after each validation.
        resources: per-trial resources, e.g. ``{"cpu": 1}``.

    Example:
        ``results = tune_sweep(fit_one, {"lr": tune.grid_search([0.01, 0.1])}, [my_warprec_cb])``
        (see ``examples/ray_sweep.py``).
    """
    from ray import tune

    callbacks = list(callbacks)
    trainable: Any = lightning_trainable(train_fn, callbacks, metrics=metrics, save_checkpoints=save_checkpoints)
    if resources:
        trainable = tune.with_resources(trainable, dict(resources))
    run_config = run_config if run_config is not None else tune.RunConfig()
    run_config.callbacks = [*(run_config.callbacks or []), *(_ray_callback(cb) for cb in callbacks)]
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config if tune_config is not None else tune.TuneConfig(),
        run_config=run_config,
    )
    return tuner.fit()


load_warprec_callback = load_callback


def build_from_config(entry: Mapping[str, Any], base: Path) -> Any:
    """A callback from a WarpRec config entry (``callback_path``, ``callback_name``, ``args``, ``kwargs``)."""
    from callbridge.adapters.config import build_plain_instance, load_class_from_file

    path, name = entry.get("callback_path"), entry.get("callback_name")
    if not path or not name:
        missing = "callback_path" if not path else "callback_name"
        raise ValueError(f"a WarpRec entry needs both callback_path and callback_name; {missing} is missing")
    file = Path(path) if Path(path).is_absolute() else Path(base) / path
    try:
        cls = load_class_from_file(file, name)
    except (FileNotFoundError, ValueError, AttributeError, ImportError) as error:
        raise ValueError(f"callback_path {str(path)!r}, callback_name {name!r}: {error}") from None
    args, kwargs = entry.get("args") or [], entry.get("kwargs") or {}
    if not isinstance(args, Sequence) or isinstance(args, (str, bytes)) or not isinstance(kwargs, Mapping):
        raise ValueError(f"callback_name {name!r}: args must be a list and kwargs a mapping")
    return build_plain_instance(cls, name, list(args), dict(kwargs))


register(
    Style(
        name=STYLE,
        summary="WarpRec callbacks (WarpRecCallback, a ray.tune.Callback) with the Ray Tune trial hooks",
        is_instance=is_instance,
        looks_like=looks_like,
        adapt=adapt,
        hook_map=HOOK_MAP,
        options=OPTIONS,
        config_keys=("callback_path", "callback_name"),
        config_allowed_keys=_CONFIG_KEYS,
        build_from_config=build_from_config,
        library_packages=("warprec", "ray"),
        base_classes=("Callback", "WarpRecCallback"),
        extra="ray",
        docs_page="warprec.md",
    )
)
