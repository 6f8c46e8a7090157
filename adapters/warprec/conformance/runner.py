"""Runs one Ray Tune (or WarpRec) callback on the scripted run twice: as a callback of a one-trial
``ray.tune.Tuner`` (home) and through ``to_lightning`` in a plain ``trainer.fit`` (callbridge), recording every hook
it overrides: its name, the trial's state and a normalized summary of the arguments, plus what it printed."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import Factory, plain, process_preserved, side_runs
from callbridge.adapters.warprec.conformance.normalize import normalize_result, summarize_trial
from callbridge.adapters.warprec.hooks import RAY_HOOKS, WARPREC_HOOKS, overrides

#: Ray Tune hooks recorded (``get_state``/``set_state`` are not: Tune calls them when it saves its experiment
#: state, callbridge when Lightning saves a checkpoint).
RECORDED_HOOKS: tuple[str, ...] = tuple(hook for hook in RAY_HOOKS if hook not in ("get_state", "set_state"))
#: Where each side's Ray Tune experiment goes, under the side's directory (``RunConfig(storage_path, name)``).
STORAGE, EXPERIMENT = "ray", "exp"
#: The bridge side's Lightning checkpoint folder, under the side's directory.
CHECKPOINTS = "checkpoints"


class Recorder:
    """What one side's callback did: ``trace`` (one entry per hook call), ``trials`` (the trial objects seen, by
    ``id``; ``trial_ids``: their ids),
    ``printed`` (its stdout), ``warprec`` (WarpRec hook calls) and ``warprec_files`` (files they wrote).

    Examples:
        >>> from ray.tune import Callback
        >>> class Hello(Callback):
        ...     def on_experiment_end(self, trials, **info):
        ...         print("bye", len(trials))
        >>> recorder, callback = Recorder(Path(".")), Hello()
        >>> recorder.instrument(callback)
        >>> callback.on_experiment_end(trials=[])
        >>> recorder.trace, recorder.printed.getvalue()
        ([['on_experiment_end', {'trials': []}]], 'bye 0\\n')
    """

    def __init__(self, side: Path) -> None:
        self.side = side
        self.trace: list[list[Any]] = []
        self.trials: list[Any] = []
        self.trial_ids: list[str] = []
        self.printed = io.StringIO()
        self.warprec: list[str] = []
        self.warprec_files: list[str] = []
        self.defined: list[str] = []

    def instrument(self, callback: Any) -> None:
        """Wraps, on the instance, every Ray Tune and WarpRec hook the callback overrides."""
        for hook in (*RECORDED_HOOKS, *WARPREC_HOOKS):
            if overrides(callback, hook):
                self.defined.append(hook)
                setattr(callback, hook, self._wrap(hook, getattr(callback, hook)))

    def _wrap(self, hook: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            if hook in WARPREC_HOOKS:
                return self._warprec(hook, original, args, kwargs)
            self.trace.append([hook, self._summary(hook, kwargs)])
            with contextlib.redirect_stdout(self.printed):
                return original(*args, **kwargs)

        return record

    def _warprec(self, hook: str, original: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """A WarpRec hook runs (it has no home here): its output and the files it writes are kept apart."""
        self.warprec.append(hook)
        before = _files(self.side)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return original(*args, **kwargs)
        finally:
            self.warprec_files += sorted(_files(self.side) - before)

    def _summary(self, hook: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for name, value in sorted(kwargs.items()):
            if name == "iteration":
                summary[name] = type(value).__name__  # Tune's event-loop counter; the global step here (documented)
            elif name == "trial":
                self.trials.append(value)  # the object itself: an id could be reused once a trial is freed
                self.trial_ids.append(str(getattr(value, "trial_id", "")))
                summary[name] = summarize_trial(value, self.side)
            elif name == "trials":
                summary[name] = [getattr(trial, "status", repr(trial)) for trial in value]
            elif name == "result":
                summary[name] = normalize_result(value)
            elif name == "checkpoint":
                summary[name] = _checkpoint(value)
            else:
                summary[name] = plain(value)
        return summary


def _checkpoint(checkpoint: Any) -> dict[str, Any]:
    import ray.train

    path = getattr(checkpoint, "path", None)
    return {
        "type": f"{type(checkpoint).__module__}.{type(checkpoint).__qualname__}",
        "ray.train.Checkpoint": isinstance(checkpoint, ray.train.Checkpoint),
        "on_disk": bool(path and os.path.isdir(path) and os.listdir(path)),
    }


def _files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
_RAY_LOGGERS = ("ray", "ray.tune", "ray.train")


@contextlib.contextmanager
def contained(side: Path, **env: str) -> Iterator[io.StringIO]:
    """Inside ``side`` with ``env`` set, other output captured (kept for errors), warnings recorded, Lightning's
    info lines quiet, runs the side left open finished (`side_runs`); the process restored after
    (`process_preserved`: the working dir, environment, signal handlers Ray installs, torch's determinism)."""
    side.mkdir(parents=True, exist_ok=True)
    noise = io.StringIO()
    quiet = [logging.getLogger(name) for name in (*_LIGHTNING_LOGGERS, *_RAY_LOGGERS)]
    levels = [logger.level for logger in quiet]
    with process_preserved(), side_runs():
        os.chdir(side)
        os.environ.update(env)
        try:
            for logger in quiet:
                logger.setLevel(logging.ERROR if logger.name in _RAY_LOGGERS else logging.WARNING)
            redirect_out, redirect_err = contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise)
            with warnings.catch_warnings(record=True), redirect_out, redirect_err:
                yield noise
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)


def _error(error: BaseException) -> str:
    """``"Type: first line"``; for an error Tune wraps with the original's traceback (``TuneError``, a trial's
    ``RayTaskError``), the original's last line (``"RuntimeError: boom"``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if "Traceback (most recent call last):" in lines:
        return lines[-1]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def run_home(make: Factory, side: Path, epochs: int) -> tuple[Recorder, str | None]:
    """The callback in a real one-trial ``ray.tune.Tuner`` (Tune's default logger callbacks off, so that the
    files are the callback's own) whose trainable is the scripted fit with ``TuneReportCheckpointCallback``."""
    from callbridge.adapters.warprec.conformance.scripted import config, trainable
    from ray import tune

    recorder = Recorder(side)
    error = None
    with contained(side, TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1"):
        callback = make(side)
        try:
            run_config = tune.RunConfig(
                storage_path=str(side / STORAGE), name=EXPERIMENT, verbose=0, callbacks=[callback]
            )
            tuner = tune.Tuner(trainable, param_space=config(epochs), run_config=run_config)
            recorder.instrument(callback)  # after the Tuner pickled its state (tuner.pkl) with the callback
            results = tuner.fit()
            if results.errors:
                error = _error(results.errors[0])
        except Exception as exc:
            error = _error(exc)
    return recorder, error


def run_bridge(make: Factory, side: Path, epochs: int) -> tuple[Recorder, str | None]:
    """The callback through ``to_lightning([callback], run_config=...)`` in a plain ``trainer.fit`` of the same
    scripted module, with a ``ModelCheckpoint`` after each validation (as Ray's report callback checkpoints)."""
    import lightning as L
    from callbridge.adapters import to_lightning
    from callbridge.adapters.warprec.conformance.scripted import ScriptedModule, config, trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from ray import tune

    recorder = Recorder(side)
    error = None
    with contained(side):
        callback = make(side)
        recorder.instrument(callback)
        try:
            L.seed_everything(0, verbose=False)
            run_config = tune.RunConfig(storage_path=str(side / STORAGE), name=EXPERIMENT)
            checkpoints = ModelCheckpoint(dirpath=side / CHECKPOINTS, save_top_k=-1)
            callbacks = [*to_lightning([callback], run_config=run_config), checkpoints]
            trainer(callbacks, epochs, checkpointing=True).fit(ScriptedModule(**config(epochs)))
        except Exception as exc:
            error = _error(exc)
    return recorder, error
