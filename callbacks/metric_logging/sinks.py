"""The stores, each written with its own library in the layout Lightning's logger for it writes: TensorBoard
(``SummaryWriter``, hyperparameters as ``TensorBoardLogger`` records them), CSV (``CSVLogger``'s one column per
metric), MLflow (``MlflowClient``, out of a durable spool) and W&B (``wandb``, as ``WandbLogger`` steps it)."""

from __future__ import annotations

import csv
import enum
import os
import time
from pathlib import Path
from typing import Any

from callbridge.callbacks.metric_logging.mlflow_store import MlflowSender, flatten
from callbridge.callbacks.metric_logging.spool import Spool, write_atomic
from callbridge.callbacks.metric_logging.writer import Sink, record, report


class LoggingBackend(str, enum.Enum):
    """Where [LoggingCallback][callbridge.callbacks.LoggingCallback] writes. Strings work too, in any case.

    Examples:
        >>> from callbridge.callbacks import LoggingBackend
        >>> LoggingBackend.parse("MLflow")
        <LoggingBackend.MLFLOW: 'mlflow'>
    """

    CONSOLE = "console"
    TENSORBOARD = "tensorboard"
    MLFLOW = "mlflow"
    WANDB = "wandb"
    CSV = "csv"

    @classmethod
    def parse(cls, value: Any) -> LoggingBackend:
        """``value`` (a member or its name, any case) as a member; ``ValueError`` listing the valid ones."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        valid = ", ".join(repr(b.value) for b in cls)
        raise ValueError(f"LoggingCallback: unknown backend {value!r}; valid backends: {valid} (or LoggingBackend.*)")


#: the file TensorBoardLogger and CSVLogger keep the hyperparameters in, next to their logs
HPARAMS_FILE = "hparams.yaml"
METRICS_FILE = "metrics.csv"


def write_hparams_yaml(run_dir: Path, params: dict[str, Any]) -> None:
    import yaml

    write_atomic(run_dir / HPARAMS_FILE, yaml.safe_dump(params, sort_keys=False))


def tensorboard_value(value: Any) -> Any:
    """A hyperparameter as TensorBoard's hparams plugin takes it (``TensorBoardLogger``'s rule: else ``str``)."""
    return value if type(value) in (bool, int, float, str) else str(value)


class TensorBoardSink(Sink):
    """Event files in the run directory: one scalar per metric at its step; hyperparameters as TensorBoard's
    hparams summary with ``hp_metric = -1``, as ``TensorBoardLogger(default_hp_metric=True)`` writes them."""

    name = "tensorboard"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.run_dir))

    def write(self, records: list[dict[str, Any]]) -> None:
        for item in records:
            if item["k"] == "m":
                for key, value in item["v"].items():
                    self.writer.add_scalar(key, value, global_step=item["s"], walltime=item["t"])
            elif item["k"] == "p":
                from torch.utils.tensorboard.summary import hparams

                params = {key: tensorboard_value(value) for key, value in flatten(item["v"]).items()}
                self.writer.add_scalar("hp_metric", -1, global_step=None, walltime=item["t"])
                for summary in hparams(params, {"hp_metric": -1}):
                    self.writer.file_writer.add_summary(summary, None, item["t"])
                write_hparams_yaml(self.run_dir, item["v"])

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str, deadline: float) -> None:
        self.writer.close()


class CsvSink(Sink):
    """``metrics.csv`` in ``CSVLogger``'s layout: a ``step`` column and one column per metric (sorted), one row
    per log call; a new metric rewrites the file with the wider header (atomically). On resume, the rows logged
    after the checkpoint (beyond ``keep_rows``) are cut off."""

    name = "csv"

    def __init__(self, run_dir: Path, keep_rows: int | None) -> None:
        self.run_dir = run_dir
        self.path = run_dir / METRICS_FILE
        self.keep_rows = keep_rows
        self.keys: list[str] = []

    def open(self) -> None:
        rows: list[dict[str, str]] = []
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open(newline="") as stream:
                reader = csv.DictReader(stream)
                self.keys = list(reader.fieldnames or [])
                rows = list(reader)
            if self.keep_rows is not None and len(rows) > self.keep_rows:
                self._rewrite(rows[: self.keep_rows])
        self.file = self.path.open("a", newline="")

    def write(self, records: list[dict[str, Any]]) -> None:
        rows = [{**item["v"], "step": item["s"]} for item in records if item["k"] == "m"]
        for item in records:
            if item["k"] == "p":
                write_hparams_yaml(self.run_dir, item["v"])
        if not rows:
            return
        new = {key for row in rows for key in row} - set(self.keys)
        if new:
            self.file.close()
            old: list[dict[str, str]] = []
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open(newline="") as stream:
                    old = list(csv.DictReader(stream))
            self.keys = sorted({*self.keys, *new})
            self._rewrite(old)
            self.file = self.path.open("a", newline="")
        csv.DictWriter(self.file, fieldnames=self.keys).writerows(rows)
        self.file.flush()

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=self.keys)
            writer.writeheader()
            writer.writerows(rows)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, self.path)

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self, status: str, deadline: float) -> None:
        self.flush()
        self.file.close()


class WandbSink(Sink):
    """A W&B run (offline unless ``WANDB_MODE`` says otherwise), stepped by ``trainer/global_step`` as
    ``WandbLogger`` does; hyperparameters go to the run's config."""

    name = "wandb"

    def __init__(self, project: str, run_name: str | None, save_dir: Path) -> None:
        self.project, self.run_name, self.save_dir = project, run_name, save_dir

    def open(self) -> None:
        import wandb

        self.run = wandb.init(
            project=self.project,
            name=self.run_name,
            dir=str(self.save_dir),
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new",
        )
        self.run.define_metric("trainer/global_step")
        self.run.define_metric("*", step_metric="trainer/global_step", step_sync=True)

    def write(self, records: list[dict[str, Any]]) -> None:
        for item in records:
            if item["k"] == "m":
                self.run.log({**item["v"], "trainer/global_step": item["s"]})
            elif item["k"] == "p":
                self.run.config.update(item["v"], allow_val_change=True)

    def close(self, status: str, deadline: float) -> None:
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)


class MlflowSink(Sink):
    """MLflow: records go to a durable spool in the run directory at once, and a sender thread of their own
    takes them to the store (see `MlflowSender`). At
    close the run's status is recorded, and the sender gets until ``deadline`` to store the rest; what it could
    not store stays in the spool for ``callbridge sync``. A spool the store took completely is removed."""

    name = "mlflow"

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        run_id: str | None,
        store_timeout: float,
        retry_seconds: float,
        away: bool = False,
    ) -> None:
        self.path, self.header, self.run_id_hint = path, header, run_id
        self.store_timeout, self.retry_seconds, self.away = store_timeout, retry_seconds, away
        self.spool: Spool | None = None
        self.sender: MlflowSender | None = None
        self.left: int | None = None

    @property
    def run_id(self) -> str | None:
        return None if self.spool is None else self.spool.state.get("run_id")

    def open(self) -> None:
        self.spool = Spool(self.path, self.header)
        if self.run_id_hint and not self.spool.state.get("run_id"):
            self.spool.state["run_id"] = self.run_id_hint
        self.sender = MlflowSender(self.spool, self.store_timeout, self.retry_seconds, report, away=self.away)
        self.sender.start()

    def write(self, records: list[dict[str, Any]]) -> None:
        self.spool.append(records)
        self.sender.notify()

    def close(self, status: str, deadline: float) -> None:
        self.spool.append([record("status", 0, {"status": status})])
        self.sender.notify()
        if self.sender.finish(deadline - time.monotonic()):
            self.spool.remove()
            self.left = 0
        else:
            self.spool.close()
            self.left = self.spool.unsent_values()

    def unsent(self) -> str | None:
        if self.spool is None or self.spool.unsent == 0:
            return None
        return (
            f"MLflow at {self.header['uri']} has not stored {self.left} values (and the run's final status); "
            f"they are spooled at {self.path}: run `callbridge sync {self.path.parent}` to store them"
        )
