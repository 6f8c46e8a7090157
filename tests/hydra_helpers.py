"""Shared by the Hydra tests: a duck-typed recording callback, a raising one, a log capture."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig


class Recorder:
    """Duck-typed Hydra callback (no base class) recording (name, hook, kwargs)."""

    def __init__(self, name: str, events: list) -> None:
        self.name = name
        self.events = events

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_run_start", config, kwargs))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_run_end", config, kwargs))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_multirun_start", config, kwargs))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_multirun_end", config, kwargs))

    def on_job_start(self, config: DictConfig, *, task_function: Any, **kwargs: Any) -> None:
        self.events.append((self.name, "on_job_start", config, {"task_function": task_function, **kwargs}))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self.events.append((self.name, "on_job_end", config, {"job_return": job_return, **kwargs}))


class Broken(HydraCallback):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        raise ValueError("no bucket")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def capture(name: str = "hydra.experimental.callbacks") -> Capture:
    handler = Capture()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def hooks(events: list) -> list[tuple[str, str]]:
    return [(name, hook) for name, hook, *_ in events]
