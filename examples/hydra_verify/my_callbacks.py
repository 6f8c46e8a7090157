"""Two Hydra callbacks to try ``callbridge verify`` on (see docs/hydra.md, "Verify a callback").

    cd examples/hydra_verify
    callbridge verify my_callbacks.py:SweepSummary      # equal: exit 0
    callbridge verify my_callbacks.py:AnnounceJob       # one documented difference: exit 1

``SweepSummary`` behaves the same in a ``@hydra.main`` app and under callbridge. ``AnnounceJob`` prints the name of
Hydra's task function: in an app that is the ``@hydra.main`` function (``main``); outside an app callbridge hands a
``LightningTask`` naming the Lightning entry point (``fit``), since no Hydra task function exists there.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Logs each job's outcome and, after a sweep, writes ``summary.csv`` (job, lr, status, metrics) into the
    sweep dir."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        metrics = job_return.return_value if job_return.status.name == "COMPLETED" else {}
        row = {"job": HydraConfig.get().job.get("num", 0), "lr": config.lr, "status": job_return.status.name}
        self.rows.append({**row, **{k: round(v, 4) for k, v in sorted(metrics.items())}})
        log.info("job %s (lr=%s) %s in %s", row["job"], config.lr, row["status"], HydraConfig.get().runtime.output_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        path = Path(config.hydra.sweep.dir, "summary.csv")
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        print(f"{len(self.rows)} jobs summarized in {path}")


class AnnounceJob(Callback):
    """Prints which task function each job runs."""

    def on_job_start(self, config: DictConfig, task_function: Any, **kwargs: Any) -> None:
        print(f"job {config.hydra.job.get('num', '-')}: starting {task_function.__name__}(lr={config.lr})")
