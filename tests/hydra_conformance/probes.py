"""What the Hydra conformance runs share: a log capture and the training task (the probe callback is
``callbridge.adapters.hydra.conformance.probe.EventProbe``, re-exported here).

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

from callbridge.adapters.hydra.conformance.probe import EventProbe

__all__ = ["CALLBACK_LOGGERS", "EventProbe", "JsonLines", "capture_logs", "release_logs", "train"]

#: The loggers the callbacks under test write to.
CALLBACK_LOGGERS = ("hydra.callbacks", "hydra.experimental.callbacks")


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
    from callbridge.adapters.conformance import scripted_trainer
    from toy import ToyRegression

    L.seed_everything(0, verbose=False)
    trainer = scripted_trainer(callbacks, default_root_dir=output_dir, max_epochs=2)
    model = ToyRegression(lr=lr)
    trainer.fit(model)
    metrics = {key: round(float(value), 6) for key, value in trainer.callback_metrics.items()}
    if test:
        trainer.test(model, verbose=False)
    os.makedirs(output_dir, exist_ok=True)
    Path(output_dir, "results.json").write_text(json.dumps({"lr": lr, **metrics}))
    return metrics
