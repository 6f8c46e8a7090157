"""LoggingCallback: loss, learning rates, throughput, epoch metrics and GPU stats to console, TensorBoard,
MLflow, W&B and CSV, written on a background thread so that the training loop never waits for a store."""

from __future__ import annotations

import csv
import enum
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from callbridge.callbacks.base import Callback
from callbridge.callbacks.context import CallbackContext

_MLFLOW_BATCH = 1000  # MLflow's log_batch accepts at most 1000 metrics per call
_CSV_HEADER = ("step", "epoch", "name", "value", "time")


class LoggingBackend(str, enum.Enum):
    """Where [`LoggingCallback`][LoggingCallback] writes. Strings work too, case-insensitive: ``"mlflow"``."""

    CONSOLE = "console"
    TENSORBOARD = "tensorboard"
    MLFLOW = "mlflow"
    WANDB = "wandb"
    CSV = "csv"

    @classmethod
    def parse(cls, value: Any) -> LoggingBackend:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        valid = ", ".join(repr(b.value) for b in cls)
        raise ValueError(f"LoggingCallback: unknown backend {value!r}; valid backends: {valid} (or LoggingBackend.*)")


class LoggingCallback(Callback):
    """Logs training to console, TensorBoard, MLflow, W&B and CSV without blocking the training loop.

    Every ``log_steps`` optimizer steps it logs ``train/loss``, the learning rate of every param group
    (``lr/group<j>``, or ``lr/opt<i>/group<j>`` with several optimizers), ``throughput/steps_per_sec`` and
    ``throughput/samples_per_sec`` (all ranks' samples: the batch size times the world size; evaluation
    time is left out), and, when CUDA is in use, ``gpu<i>/memory_allocated_mb``, ``memory_reserved_mb``,
    ``max_memory_allocated_mb`` and ``utilization_pct`` (through NVML, when ``pynvml`` is installed)
    for every visible device. At each epoch end it logs every metric the run logged (except Lightning's
    ``*_step`` copies) and ``epoch``; after ``validate``/``test`` it logs their metrics.

    Stores (all local by default, under ``save_dir``):

    - TensorBoard event files and ``metrics.csv`` in ``<save_dir>/<experiment_name>/<run>``, where
      ``<run>`` is ``run_name`` or the next free ``version_<n>`` (see `run_dir`).
    - MLflow: ``sqlite:///<save_dir>/mlflow.db`` when ``tracking_uri`` is None; any other tracking URI
      (``http://host:5000``, ``file:...``, ``databricks``) selects that store or server.
    - W&B: project ``experiment_name`` under ``<save_dir>/wandb``, offline unless ``WANDB_MODE`` says otherwise.
    - CSV: long format ``step,epoch,name,value,time``, one row per value, flushed after every write.

    Only the loss and the metrics are read on the training thread (one device sync per log step);
    everything the stores do (opening the MLflow database, writing, W&B's service) runs on one
    background thread. Everything queued is written at train end, at stage end and when the run
    raises: no value is lost. `blocked_seconds` is how long the training thread spent in
    this callback, `logged` how many values each key received. Runs on global rank zero only.
    Its state (run directory, CSV row count, MLflow run id) is saved in checkpoints, so a resumed
    run continues the same TensorBoard/CSV run directory and MLflow run, without duplicate CSV rows.

    Args:
        backends: `LoggingBackend` members or their names, case-insensitive.
        log_steps: log every this many optimizer steps.
        save_dir: root of the local stores.
        tracking_uri: MLflow tracking URI; None means the sqlite store under ``save_dir``.
        experiment_name: MLflow experiment, W&B project, and the folder of the run directories.
        run_name: MLflow/W&B run name and run directory name; None picks one.

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters import to_lightning
        >>> from callbridge.callbacks import LoggingCallback
        >>> logging_cb = LoggingCallback(backends=["console", "tensorboard", "mlflow"], log_steps=50, save_dir="runs")
        >>> trainer = L.Trainer(callbacks=to_lightning([logging_cb]), max_epochs=3)
    """

    rank_zero_only: ClassVar[bool] = True
    observes_only: ClassVar[bool] = True
    priority: ClassVar[int] = 200  # after callbacks that change the learning rate or stop the run

    def __init__(
        self,
        backends: LoggingBackend | str | Sequence[LoggingBackend | str] = (LoggingBackend.CONSOLE,),
        log_steps: int = 50,
        save_dir: str | os.PathLike[str] = "runs",
        tracking_uri: str | None = None,
        experiment_name: str = "callbridge",
        run_name: str | None = None,
    ) -> None:
        if isinstance(backends, (str, LoggingBackend)):
            backends = [backends]
        parsed: list[LoggingBackend] = []
        for backend in backends:
            b = LoggingBackend.parse(backend)
            if b not in parsed:
                parsed.append(b)
        if isinstance(log_steps, bool) or not isinstance(log_steps, int) or log_steps < 1:
            raise ValueError(f"LoggingCallback: log_steps must be an int >= 1, got {log_steps!r}")
        if not experiment_name or not isinstance(experiment_name, str):
            raise ValueError(f"LoggingCallback: experiment_name must be a non-empty string, got {experiment_name!r}")
        if run_name is not None and (not isinstance(run_name, str) or not run_name or os.sep in run_name):
            raise ValueError(f"LoggingCallback: run_name must be a non-empty name without {os.sep!r}, got {run_name!r}")
        self.backends = tuple(parsed)
        self.log_steps = log_steps
        self.save_dir = Path(save_dir)
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        #: seconds the training thread spent inside this callback's hooks (final flushes included)
        self.blocked_seconds = 0.0
        #: the part of `blocked_seconds` spent waiting for the stores at train/stage end or on error
        self.flush_seconds = 0.0
        #: number of values logged per key (every backend receives all of them)
        self.logged: dict[str, int] = {}
        self.run_dir: Path | None = None
        self.mlflow_run_id: str | None = None
        self.wandb_dir: Path | None = None
        self._writer: _Writer | None = None
        self._resume: dict[str, Any] | None = None
        self._csv_rows = 0
        self._reset_window()

    # -- hooks -------------------------------------------------------------------------------------
    def on_stage_begin(self, ctx: CallbackContext) -> None:
        with self._timed():
            self._open(ctx)

    def on_train_begin(self, ctx: CallbackContext) -> None:
        with self._timed():
            self._open(ctx)
            self._reset_window()
            self._last_step = ctx.step

    def on_step_end(self, ctx: CallbackContext) -> None:
        if self._writer is None:
            return
        start = time.perf_counter()
        self._samples += _batch_size(ctx.batch)
        step = ctx.step
        if step != self._last_step and step % self.log_steps == 0:
            values: dict[str, float] = {}
            loss = ctx.loss
            if loss is not None:
                values["train/loss"] = loss
            values.update(_learning_rates(ctx))
            now = time.perf_counter()
            elapsed = now - self._window_start - self._paused
            if elapsed > 0 and step > self._window_step:
                values["throughput/steps_per_sec"] = (step - self._window_step) / elapsed
                values["throughput/samples_per_sec"] = self._samples * max(ctx.world_size, 1) / elapsed
            values.update(_gpu_stats(self))
            self._window_start, self._window_step, self._samples, self._paused = now, step, 0, 0.0
            self._last_step = step
            self._emit(step, ctx.epoch, values)
        self.blocked_seconds += time.perf_counter() - start

    def on_evaluate_begin(self, ctx: CallbackContext) -> None:
        self._paused_at = time.perf_counter()

    def on_evaluate(self, ctx: CallbackContext) -> None:
        start = time.perf_counter()
        if self._paused_at is not None:
            self._paused += start - self._paused_at
            self._paused_at = None
        if self._writer is not None and ctx.stage != "fit":  # validate/test: log their results
            self._emit(ctx.step, ctx.epoch, dict(ctx.metrics))
        self.blocked_seconds += time.perf_counter() - start

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        if self._writer is None:
            return
        with self._timed():
            values = {
                k: v
                for k, v in ctx.metrics.items()
                if not k.endswith("_step") and (ctx.evaluated or not k.startswith(("val_", "val/")))
            }
            values["epoch"] = float(ctx.epoch)
            self._emit(ctx.step, ctx.epoch, values)

    def on_train_end(self, ctx: CallbackContext) -> None:
        self.close()

    def on_stage_end(self, ctx: CallbackContext) -> None:
        self.close()

    def on_exception(self, ctx: CallbackContext) -> None:
        self.close(failed=True)

    # -- public ------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Wait until everything logged so far is in every store."""
        if self._writer is not None:
            with self._timed(flush=True):
                self._writer.call("flush")
            self._raise_writer_error()

    def close(self, *, failed: bool = False) -> None:
        """Write everything queued, end the MLflow/W&B runs and stop the background thread."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with self._timed(flush=True):
            writer.call("close", failed)
            writer.join()
        if writer.error is not None and not failed:
            raise RuntimeError(f"LoggingCallback: {writer.error_where} failed: {writer.error}") from writer.error

    def state_dict(self) -> dict[str, Any]:
        if self._writer is not None and LoggingBackend.MLFLOW in self.backends:
            self._writer.opened.wait()
        return {
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "csv_rows": self._csv_rows,
            "mlflow_run_id": self.mlflow_run_id,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict)

    # -- internals ---------------------------------------------------------------------------------
    def _open(self, ctx: CallbackContext) -> None:
        if self._writer is not None or not ctx.is_global_zero:
            return
        resume, self._resume = self._resume or {}, None
        self.save_dir.mkdir(parents=True, exist_ok=True)
        if resume.get("run_dir"):
            self.run_dir = Path(resume["run_dir"])
        else:
            experiment_dir = self.save_dir / self.experiment_name
            self.run_dir = experiment_dir / (self.run_name or _next_version(experiment_dir))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._csv_rows = int(resume.get("csv_rows", 0))
        self.mlflow_run_id = resume.get("mlflow_run_id")
        sinks: list[_Sink] = []
        for backend in self.backends:
            if backend is LoggingBackend.TENSORBOARD:
                sinks.append(_TensorBoardSink(self.run_dir))
            elif backend is LoggingBackend.CSV:
                sinks.append(_CsvSink(self.run_dir / "metrics.csv", self._csv_rows if resume else None))
            elif backend is LoggingBackend.MLFLOW:
                uri = self.tracking_uri or f"sqlite:///{(self.save_dir / 'mlflow.db').resolve()}"
                sinks.append(_MlflowSink(self, uri))
            elif backend is LoggingBackend.WANDB:
                self.wandb_dir = self.save_dir
                sinks.append(_WandbSink(self))
        self._console = LoggingBackend.CONSOLE in self.backends
        self._writer = _Writer(sinks)
        self._writer.start()

    def _emit(self, step: int, epoch: int, values: Mapping[str, float]) -> None:
        self._raise_writer_error()
        if not values:
            return
        for key in values:
            self.logged[key] = self.logged.get(key, 0) + 1
        if LoggingBackend.CSV in self.backends:
            self._csv_rows += len(values)
        self._writer.queue.put((step, epoch, time.time(), dict(values)))
        if self._console:
            from tqdm import tqdm

            shown = " | ".join(f"{k} {_fmt(v)}" for k, v in values.items())
            tqdm.write(f"[step {step} epoch {epoch}] {shown}", file=sys.stdout)

    def _raise_writer_error(self) -> None:
        writer = self._writer
        if writer is not None and writer.error is not None:
            self.close(failed=True)  # write what the other stores can take, stop the thread
            raise RuntimeError(f"LoggingCallback: {writer.error_where} failed: {writer.error}") from writer.error

    def _reset_window(self) -> None:
        self._window_start = time.perf_counter()
        self._window_step = 0
        self._last_step = -1
        self._samples = 0
        self._paused = 0.0
        self._paused_at: float | None = None

    def _timed(self, *, flush: bool = False) -> _Timer:
        return _Timer(self, flush)

    def __repr__(self) -> str:
        names = [b.value for b in self.backends]
        return f"LoggingCallback(backends={names}, log_steps={self.log_steps}, save_dir={str(self.save_dir)!r})"


class _Timer:
    def __init__(self, owner: LoggingCallback, flush: bool) -> None:
        self.owner, self.flush = owner, flush

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        spent = time.perf_counter() - self.start
        self.owner.blocked_seconds += spent
        if self.flush:
            self.owner.flush_seconds += spent


# -- the background writer -------------------------------------------------------------------------
Record = tuple[int, int, float, dict[str, float]]


class _Sink:
    name = "?"

    def open(self) -> None: ...

    def write(self, records: list[Record]) -> None: ...

    def flush(self) -> None: ...

    def close(self, failed: bool) -> None: ...


class _Writer(threading.Thread):
    """Owns the stores: opens them, writes batches of records as they come, flushes and closes on request."""

    def __init__(self, sinks: list[_Sink]) -> None:
        super().__init__(name="callbridge-logging", daemon=True)
        self.sinks = sinks
        self.queue: queue.Queue[Any] = queue.Queue()
        self.opened = threading.Event()
        self.error: BaseException | None = None
        self.error_where = ""

    def call(self, command: str, *args: Any) -> None:
        done = threading.Event()
        self.queue.put(_Command(command, args, done))
        done.wait()

    def _each(self, action: str, *args: Any) -> None:
        for sink in list(self.sinks):
            try:
                getattr(sink, action)(*args)
            except Exception as error:  # keep the other stores going; the training thread re-raises it
                if self.error is None:
                    self.error, self.error_where = error, f"the {sink.name} backend ({action})"
                if action in ("open", "write"):
                    self.sinks.remove(sink)

    def run(self) -> None:
        self._each("open")
        self.opened.set()
        while True:
            items = [self.queue.get()]
            while True:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            records: list[Record] = []
            for item in items:
                if not isinstance(item, _Command):
                    records.append(item)
                    continue
                if records:
                    self._each("write", records)
                    records = []
                if item.name == "flush":
                    self._each("flush")
                    item.done.set()
                else:  # close
                    self._each("close", *item.args)
                    item.done.set()
                    return
            if records:
                self._each("write", records)


class _Command:
    def __init__(self, name: str, args: tuple[Any, ...], done: threading.Event) -> None:
        self.name, self.args, self.done = name, args, done


class _TensorBoardSink(_Sink):
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


class _CsvSink(_Sink):
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


class _MlflowSink(_Sink):
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


class _WandbSink(_Sink):
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


# -- what is logged --------------------------------------------------------------------------------
def _learning_rates(ctx: CallbackContext) -> dict[str, float]:
    optimizers = list(getattr(ctx.trainer, "optimizers", None) or ([ctx.optimizer] if ctx.optimizer else []))
    rates = {}
    for i, optimizer in enumerate(optimizers):
        prefix = "lr" if len(optimizers) == 1 else f"lr/opt{i}"
        for j, group in enumerate(optimizer.param_groups):
            rates[f"{prefix}/group{j}"] = float(group["lr"])
    return rates


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor (0 when there is none)."""
    shape = getattr(batch, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(batch, Mapping):
        batch = batch.values()
    if isinstance(batch, Iterable) and not isinstance(batch, (str, bytes)):
        for item in batch:
            size = _batch_size(item)
            if size:
                return size
    return 0


def _gpu_stats(owner: LoggingCallback) -> dict[str, float]:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    stats = {}
    mb = 1024.0 * 1024.0
    for i in range(torch.cuda.device_count()):
        stats[f"gpu{i}/memory_allocated_mb"] = torch.cuda.memory_allocated(i) / mb
        stats[f"gpu{i}/memory_reserved_mb"] = torch.cuda.memory_reserved(i) / mb
        stats[f"gpu{i}/max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(i) / mb
        if getattr(owner, "_nvml", True):
            try:
                stats[f"gpu{i}/utilization_pct"] = float(torch.cuda.utilization(i))
            except Exception:  # no pynvml / NVML: memory stats only
                owner._nvml = False
    return stats


def _next_version(experiment_dir: Path) -> str:
    taken = [int(m.group(1)) for p in experiment_dir.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return f"version_{max(taken, default=-1) + 1}"


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)
