"""A Hydra callback that appends every event it receives to a JSON-lines file (used by the example and its test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class EventRecorder(Callback):
    """Writes one line per Hydra event: who saw it, the hook, the job number and the job's status."""

    def __init__(self, path: str, source: str) -> None:
        self.path = Path(path)
        self.source = source

    def _record(self, hook: str, config: DictConfig, **kwargs: Any) -> None:
        line: dict[str, Any] = {
            "source": self.source,
            "hook": hook,
            "job_num": OmegaConf.select(config, "hydra.job.num"),
            "lr": OmegaConf.select(config, "lr"),
        }
        job_return = kwargs.get("job_return")
        if job_return is not None:
            line["status"] = job_return.status.name
            line["return_value"] = job_return.return_value if line["status"] == "COMPLETED" else None
            line["overrides"] = list(job_return.overrides or [])
        with self.path.open("a") as file:
            file.write(json.dumps(line, default=str) + "\n")

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
