"""What the Hydra conformance runs share: a probe callback, a log capture and the training task.

The same code runs at home (a ``@hydra.main`` app whose ``hydra.callbacks`` Hydra calls), inside that app under
callbridge, and outside any app under callbridge; each run writes ``events.jsonl`` (every hook the probe saw, with
what the config and ``HydraConfig`` held) and ``logs.jsonl`` (the callbacks' log records) into its working dir.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

#: The loggers the callbacks under test write to.
CALLBACK_LOGGERS = ("hydra.callbacks", "hydra.experimental.callbacks")


def _value(config: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(config, key, throw_on_missing=True)
    except (MissingMandatoryValue, InterpolationResolutionError):
        return "???"
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


class EventProbe(Callback):
    """Writes one JSON line per hook: the hook, its keyword arguments, the config's Hydra keys, HydraConfig."""

    def __init__(self, path: str) -> None:
        self.path = Path(os.path.abspath(path))  # MultiRunGatherer changes the working dir before the last hook
        self.base = os.getcwd()

    def _rel(self, path: Any) -> Any:
        if isinstance(path, str) and os.path.isabs(path):
            return os.path.relpath(path, self.base)
        return path

    def _record(self, hook: str, config: DictConfig, **kwargs: Any) -> None:
        mode = _value_raw(config, "hydra.mode")
        line: dict[str, Any] = {
            "hook": hook,
            "kwargs": sorted(kwargs),
            "config_name": kwargs.get("config_name"),
            "mode": f"{type(mode).__name__}:{getattr(mode, 'name', mode)}",
            "run_dir": _value(config, "hydra.run.dir"),
            "sweep_dir": _value(config, "hydra.sweep.dir"),
            "sweep_subdir": _value(config, "hydra.sweep.subdir"),
            "job_name": _value(config, "hydra.job.name"),
            "job_num": _value(config, "hydra.job.num"),
            "job_id": _value(config, "hydra.job.id"),
            "output_dir": self._rel(_value(config, "hydra.runtime.output_dir")),
            "overrides": list(_value_raw(config, "hydra.overrides.task") or []),
            "lr": _value(config, "lr"),
            "git": "git" in config,
            "hydra_config": self._rel(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None,
            "cwd": self._rel(os.getcwd()),
        }
        if "task_function" in kwargs:
            line["task_function"] = type(kwargs["task_function"]).__name__
        job_return = kwargs.get("job_return")
        if job_return is not None:
            value = job_return.return_value if job_return.status.name == "COMPLETED" else None
            line["job_return"] = {
                "type": f"{type(job_return).__module__}.{type(job_return).__name__}",
                "status": job_return.status.name,
                "return_value": sorted(value) if isinstance(value, dict) else type(value).__name__,
                "overrides": list(job_return.overrides or []),
                "task_name": job_return.task_name,
                "working_dir": self._rel(job_return.working_dir),
                "cfg": sorted(job_return.cfg),
                "hydra_cfg": sorted(job_return.hydra_cfg),
            }
        with self.path.open("a") as file:
            file.write(json.dumps(line) + "\n")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_multirun_start", config, **kwargs)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_multirun_end", config, **kwargs)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_run_start", config, **kwargs)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_run_end", config, **kwargs)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_job_start", config, **kwargs)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_job_end", config, **kwargs)


def _value_raw(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, throw_on_missing=True)
    except (MissingMandatoryValue, InterpolationResolutionError):
        return "???"


class JsonLines(logging.Handler):
    """Appends ``{logger, level, message}`` per record to a file (absolute path: callbacks change the cwd)."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.INFO)
        self.path = os.path.abspath(path)

    def emit(self, record: logging.LogRecord) -> None:
        line = {"logger": record.name, "level": record.levelname, "message": record.getMessage()}
        with open(self.path, "a") as file:
            file.write(json.dumps(line) + "\n")


def capture_logs(path: str = "logs.jsonl") -> list[tuple[logging.Logger, logging.Handler, int]]:
    """Adds a `JsonLines` handler to the callbacks' loggers; returns what `release_logs` undoes."""
    installed = []
    for name in CALLBACK_LOGGERS:
        logger = logging.getLogger(name)
        handler = JsonLines(path)
        installed.append((logger, handler, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return installed


def release_logs(installed: list[tuple[logging.Logger, logging.Handler, int]]) -> None:
    for logger, handler, level in installed:
        logger.removeHandler(handler)
        logger.setLevel(level)


def train(lr: float, output_dir: str, callbacks: list[Any], *, test: bool) -> dict[str, float]:
    """The task: fit (then test) a tiny regression; returns the fit's final metrics; writes results.json."""
    import lightning as L
    from toy import ToyRegression

    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        callbacks=callbacks,
        default_root_dir=output_dir,
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    model = ToyRegression(lr=lr)
    trainer.fit(model)
    metrics = {key: round(float(value), 6) for key, value in trainer.callback_metrics.items()}
    if test:
        trainer.test(model, verbose=False)
    os.makedirs(output_dir, exist_ok=True)
    Path(output_dir, "results.json").write_text(json.dumps({"lr": lr, **metrics}))
    return metrics
