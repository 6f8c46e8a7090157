"""One sink per store: TensorBoard, CSV, MLflow and W&B, each driven by the background writer."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

from callbridge.callbacks.metric_logging.writer import Record, Sink

if TYPE_CHECKING:
    from callbridge.callbacks.metric_logging.callback import LoggingCallback

_MLFLOW_BATCH = 1000  # MLflow's log_batch accepts at most 1000 metrics per call
_CSV_HEADER = ("step", "epoch", "name", "value", "time")


class TensorBoardSink(Sink):
    name = "tensorboard"

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir

    def open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def write(self, records: list[Record]) -> None:
        for step, _epoch, wall, values in records:
            for key, value in values.items():
                self.writer.add_scalar(key, value, global_step=step, walltime=wall)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, failed: bool) -> None:
        self.writer.close()


class CsvSink(Sink):
    """Long-format CSV, appended and flushed per batch; on resume the rows after the checkpoint are cut off."""

    name = "csv"

    def __init__(self, path: Path, keep_rows: int | None) -> None:
        self.path, self.keep_rows = path, keep_rows

    def open(self) -> None:
        if self.keep_rows is not None and self.path.exists():
            with self.path.open(newline="") as f:
                rows = list(csv.reader(f))[: 1 + self.keep_rows]
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w", newline="") as f:
                csv.writer(f).writerows(rows)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.file = self.path.open("a", newline="")
        self.csv = csv.writer(self.file)
        if new:
            self.csv.writerow(_CSV_HEADER)
            self.file.flush()

    def write(self, records: list[Record]) -> None:
        for step, epoch, wall, values in records:
            self.csv.writerows((step, epoch, key, repr(float(value)), f"{wall:.3f}") for key, value in values.items())
        self.file.flush()

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self, failed: bool) -> None:
        self.flush()
        self.file.close()


class MlflowSink(Sink):
    name = "mlflow"

    def __init__(self, owner: LoggingCallback, uri: str) -> None:
        self.owner, self.uri = owner, uri

    def open(self) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        run_id = self.owner.mlflow_run_id
        if run_id is not None:  # resuming: continue the checkpoint's run
            self.client.update_run(run_id, status="RUNNING")
        else:
            experiment = self.client.get_experiment_by_name(self.owner.experiment_name)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self.client.create_experiment(self.owner.experiment_name)
            )
            run = self.client.create_run(experiment_id, run_name=self.owner.run_name)
            run_id = run.info.run_id
        self.run_id = self.owner.mlflow_run_id = run_id

    def write(self, records: list[Record]) -> None:
        from mlflow.entities import Metric

        metrics = [
            Metric(key, float(value), int(wall * 1000), step)
            for step, _epoch, wall, values in records
            for key, value in values.items()
        ]
        for start in range(0, len(metrics), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + _MLFLOW_BATCH])

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


class WandbSink(Sink):
    name = "wandb"

    def __init__(self, owner: LoggingCallback) -> None:
        self.owner = owner

    def open(self) -> None:
        import wandb

        self.run = wandb.init(
            project=self.owner.experiment_name,
            name=self.owner.run_name,
            dir=str(self.owner.save_dir),
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new",
        )
        self.run.define_metric("trainer/global_step")
        self.run.define_metric("*", step_metric="trainer/global_step", step_sync=True)

    def write(self, records: list[Record]) -> None:
        for step, _epoch, _wall, values in records:
            self.run.log({**values, "trainer/global_step": step})

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)
