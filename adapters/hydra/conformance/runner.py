"""Runs one Hydra callback both ways, each as a single run and as a 2-job sweep, and records what it did and saw.

- home: the real ``@hydra.main`` app of [`app`][callbridge.adapters.hydra.conformance.app], once as ``app.py`` and
  once as ``app.py --multirun lr=0.1,0.01``, with the callback in ``hydra.callbacks``;
- bridge: no app; ``to_lightning(callback, config_dir=..., config_name=..., job_name=...)`` for the run and
  [`HydraMultirun`][callbridge.adapters.hydra.HydraMultirun] for the sweep, on the same task and config dir.

Each (side, mode) runs in its own working dir with a fresh callback from ``make(dir)``, its hooks instrumented
(a trace of [`summarize`][callbridge.adapters.hydra.conformance.probe.summarize]d calls), the log records it wrote
inside its hooks, stdout/stderr and warnings captured; [`preserved_process_state`][preserved_process_state]
restores what Hydra changes in the process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import Factory, error_text
from callbridge.adapters.hydra.conformance import app
from callbridge.adapters.hydra.conformance.probe import HOOKS, relative_to, summarize
from callbridge.adapters.hydra.conformance.snapshot import normalize_text, snapshot
from callbridge.adapters.hydra.conformance.task import train

MODES = ("run", "multirun")


@contextlib.contextmanager
def preserved_process_state() -> Iterator[None]:
    """Restores what a Hydra app changes in the process: the working dir, ``sys.argv``, ``GlobalHydra``,
    ``HydraConfig``, Hydra's ``JobRuntime``, and every logger's level, handlers, ``propagate`` and ``disabled``."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobRuntime

    cwd, argv = os.getcwd(), list(sys.argv)
    global_hydra, hydra_config, runtime = GlobalHydra.instance(), HydraConfig.instance(), JobRuntime.instance()
    saved_hydra, saved_cfg, saved_runtime = global_hydra.hydra, hydra_config.cfg, runtime.conf
    loggers = [
        logging.getLogger(),
        *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    saved_loggers = [(lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers]
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.argv = argv
        global_hydra.hydra = saved_hydra
        hydra_config.cfg = saved_cfg
        runtime.conf = saved_runtime
        for logger, level, handlers, propagate, disabled in saved_loggers:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled


class _HookLogs(logging.Handler):
    """Keeps the records emitted while one of the callback's hooks runs (any logger that reaches the root)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.depth = 0
        self.records: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.depth > 0:
            self.records.append((record.name, record.levelname, record.getMessage()))


def instrument(callback: Any, trace: list[dict[str, Any]], logs: _HookLogs, base: str) -> None:
    """Wraps each Hydra hook the callback has (set on the instance): records the call's summary into ``trace``
    and the log records it writes meanwhile into ``logs``."""
    rel = relative_to(base)
    for hook in HOOKS:
        original = getattr(callback, hook, None)
        if callable(original):
            setattr(callback, hook, _recorder(hook, original, trace, logs, rel))


def _recorder(
    hook: str, original: Callable[..., Any], trace: list[dict[str, Any]], logs: _HookLogs, rel: Callable[[Any], Any]
) -> Callable[..., Any]:
    def record(config: Any = None, **kwargs: Any) -> Any:
        try:
            trace.append(summarize(hook, config, kwargs, rel))
        except Exception as error:  # a summary must never change what the callback does
            trace.append({"hook": hook, "job_num": None, "summary_error": f"{type(error).__name__}: {error}"})
        logs.depth += 1
        try:
            return original(config, **kwargs)
        finally:
            logs.depth -= 1

    return record


@contextlib.contextmanager
def _captured(base: Path) -> Iterator[dict[str, Any]]:
    """Inside ``base``: stdout/stderr, warnings and the hook-time log records captured into the yielded dict."""
    base.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"logs": _HookLogs()}
    buffer = io.StringIO()
    root = logging.getLogger()
    with preserved_process_state(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.chdir(base)
        root.addHandler(out["logs"])
        root.setLevel(logging.INFO)
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                yield out
            finally:
                out["output"] = buffer.getvalue()
                out["warnings"] = [str(w.message) for w in caught]


def run_side(side: str, make: Factory, conf: Path, workdir: Path, mode: str) -> dict[str, Any]:
    """One side (``home``/``bridge``) in one mode (``run``/``multirun``) in ``workdir``: what the callback did."""
    base = (workdir / mode).resolve()
    trace: list[dict[str, Any]] = []
    error = None
    with _captured(base) as captured:
        callback = make(base)
        instrument(callback, trace, captured["logs"], str(base))
        try:
            if side == "home":
                with app.serving(callback):
                    app.run_app(conf, ["--multirun", *app.sweep_overrides()] if mode == "multirun" else [])
            else:
                _bridge(callback, conf, mode)
        except (Exception, SystemExit) as exc:
            error = error_text(exc)
    raised = [w for w in captured["warnings"] if w.startswith("Callback ") and " raised " in w]
    return {
        "trace": trace,
        "logs": [(name, level, normalize_text(message, base)) for name, level, message in captured["logs"].records],
        "output": normalize_text(captured["output"], base),
        "error": [*(normalize_text(w, base) for w in raised), error],
        **snapshot(base, probe=False),
    }


def _bridge(callback: Any, conf: Path, mode: str) -> None:
    from callbridge.adapters import to_lightning
    from callbridge.adapters.hydra import HydraMultirun
    from omegaconf import OmegaConf

    options = {"config_dir": str(conf), "config_name": app.CONFIG_NAME, "job_name": app.JOB_NAME}
    defaults = OmegaConf.load(conf / f"{app.CONFIG_NAME}.yaml")
    epochs = int(defaults.epochs)
    if mode == "run":
        train(float(defaults.lr), str(defaults.hydra.run.dir), to_lightning([callback], **options), epochs=epochs)
        return
    key, values = app.SWEEP
    with HydraMultirun([callback], overrides=app.sweep_overrides(), **options) as sweep:
        for num, value in enumerate(values):
            job = sweep.job(overrides=[f"{key}={value}"])
            train(value, f"{sweep.config.hydra.sweep.dir}/{num}", job, epochs=epochs)
