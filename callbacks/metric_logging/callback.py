"""LoggingCallback: the run's metrics, learning rates, throughput, GPU stats and hyperparameters to the console,
TensorBoard, MLflow, W&B and CSV, in Lightning's conventions, without ever blocking or stopping training."""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from callbridge.callbacks.base import Callback
from callbridge.callbacks.context import CallbackContext
from callbridge.callbacks.metric_logging import conventions as conv
from callbridge.callbacks.metric_logging.mlflow_store import check_tracking_uri, probe_server, writable_problem
from callbridge.callbacks.metric_logging.sinks import CsvSink, LoggingBackend, MlflowSink, TensorBoardSink, WandbSink
from callbridge.callbacks.metric_logging.spool import new_uid, spool_path
from callbridge.callbacks.metric_logging.writer import Sink, Writer, record, report


class LoggingCallback(Callback):
    """Logs a run to the console, TensorBoard, MLflow, W&B and CSV, in Lightning's conventions, off the loop.

    What is logged, named and stepped as Lightning's own loggers record the same run (see
    ``callbridge.callbacks.metric_logging.conventions``): every ``log_steps`` optimizer steps the values
    logged for that step (``train_loss_step``), the learning rates (``lr-SGD``, as ``LearningRateMonitor`` names
    them), ``train/batches_per_sec`` and ``train/samples_per_sec`` (all ranks' samples, evaluation time left
    out) and, when CUDA is in use, ``gpu<i>/memory_allocated_mb`` ...; after each evaluation its results
    (``val_loss``); at each epoch end the epoch values (``train_loss_epoch``); ``epoch`` with each. At the
    start, the hyperparameters (``ctx.hparams`` plus the callbacks' settings). A run that logs nothing for a
    step gets the loss as ``loss``.

    Stores: TensorBoard event files, ``hparams.yaml`` and ``metrics.csv`` (``CSVLogger``'s layout) in
    ``<save_dir>/<experiment_name>/<run_name or version_<n>>`` (`run_dir`); MLflow at ``tracking_uri``,
    else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<save_dir>/mlflow.db``; W&B offline unless ``WANDB_MODE``
    says otherwise. Runs on global rank zero only.

    Training never waits for a store and never stops because of one: the training thread reads the values and
    queues them; a background thread writes them. MLflow values go to a spool file in `run_dir` first and
    a thread of their own sends them; a store that fails or takes longer than ``store_timeout`` seconds is
    reported at once (a ``StoreWarning``), retried every ``retry_seconds``, and reported again when it answers.
    At the end the run's status is recorded (``FINISHED``, ``FAILED``, or ``KILLED`` after a
    ``KeyboardInterrupt``) and the stores get ``close_timeout`` seconds to take the rest; what they did not take
    stays in the spool (the warning says where) for ``callbridge sync RUN_DIR``. The run directory, the CSV row
    count and the MLflow run are kept in checkpoints: a resumed run continues them.

    Args:
        backends: [LoggingBackend][callbridge.callbacks.LoggingBackend] members or their names, any case.
        log_steps: log every this many optimizer steps; None: the engine's cadence (Lightning's
            ``log_every_n_steps``), else 50.
        save_dir: root of the local stores.
        tracking_uri: MLflow tracking URI (``http://host:5000``, ``sqlite:///...``, ``file:...``).
        experiment_name: MLflow experiment, W&B project, and the folder of the run directories.
        run_name: MLflow/W&B run name and run directory name; None picks one.
        log_hparams: log the hyperparameters at the start of training.
        store_timeout: seconds a store call may take before the store is reported unreachable.
        retry_seconds: seconds between two attempts to reach a store that is away.
        close_timeout: seconds the end of the run waits, at most, for the stores to take what is left.

    Raises:
        ValueError: an unknown backend, a ``save_dir`` that cannot be written, a tracking URI MLflow cannot use.
        TypeError: a wrong type for ``log_steps`` or a timeout.

    Examples:
        >>> from callbridge.callbacks import LoggingCallback
        >>> logging_cb = LoggingCallback(backends=["console", "tensorboard", "mlflow"], save_dir="runs")
        >>> logging_cb
        LoggingCallback(backends=['console', 'tensorboard', 'mlflow'], log_steps=None, save_dir='runs')

        Under Lightning: ``L.Trainer(callbacks=to_lightning([logging_cb]))``.
    """

    rank_zero_only: ClassVar[bool] = True
    observes_only: ClassVar[bool] = True
    priority: ClassVar[int] = 200  # after callbacks that change the learning rate or stop the run

    def __init__(
        self,
        backends: LoggingBackend | str | Sequence[LoggingBackend | str] = (LoggingBackend.CONSOLE,),
        log_steps: int | None = None,
        save_dir: str | os.PathLike[str] = "runs",
        tracking_uri: str | None = None,
        experiment_name: str = "callbridge",
        run_name: str | None = None,
        log_hparams: bool = True,
        store_timeout: float = 10.0,
        retry_seconds: float = 2.0,
        close_timeout: float = 30.0,
    ) -> None:
        if isinstance(backends, (str, LoggingBackend)):
            backends = [backends]
        parsed: list[LoggingBackend] = []
        for backend in backends:
            b = LoggingBackend.parse(backend)
            if b not in parsed:
                parsed.append(b)
        if log_steps is not None and (isinstance(log_steps, bool) or not isinstance(log_steps, int)):
            raise TypeError(f"LoggingCallback: log_steps must be an int >= 1 or None, got {log_steps!r}")
        if log_steps is not None and log_steps < 1:
            raise ValueError(f"LoggingCallback: log_steps must be an int >= 1 or None, got {log_steps!r}")
        for name, value in (
            ("store_timeout", store_timeout),
            ("retry_seconds", retry_seconds),
            ("close_timeout", close_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"LoggingCallback: {name} must be a number of seconds, got {value!r}")
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"LoggingCallback: {name} must be a finite number of seconds > 0, got {value!r}")
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
        self.log_hparams = log_hparams
        self._uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None  # read once, when built
        self.store_timeout = float(store_timeout)
        self.retry_seconds = float(retry_seconds)
        self.close_timeout = float(close_timeout)
        problem = writable_problem(self.save_dir)
        if problem:
            raise ValueError(f"LoggingCallback: save_dir {str(save_dir)!r} cannot be used: {problem}")
        if LoggingBackend.MLFLOW in self.backends:
            check_tracking_uri(self.resolved_tracking_uri())
        #: seconds the training thread spent inside this callback's hooks (final waits included)
        self.blocked_seconds = 0.0
        #: the part of `blocked_seconds` spent waiting for the stores at the end or on error
        self.flush_seconds = 0.0
        #: number of values logged per key (every backend receives all of them)
        self.logged: dict[str, int] = {}
        #: where the run's files go (set when the run starts)
        self.run_dir: Path | None = None
        #: what a store could not take by the end (a message per store, naming the spool), else empty
        self.unsent: list[str] = []
        self._uid: str | None = None
        self._mlflow_run_id: str | None = None
        self._mlflow: MlflowSink | None = None
        self._writer: Writer | None = None
        self._resume: dict[str, Any] | None = None
        self._csv_rows = 0
        self._hparams_logged = False
        self._wall = 0.0
        self._streams = conv.MetricStreams()
        self._gpu = conv.GpuStats()
        self._rates: dict[str, float] | None = None
        self._every = 50
        self._reset_window()

    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI in use: ``tracking_uri``, else ``MLFLOW_TRACKING_URI`` as it was when the callback
        was built, else the sqlite store ``<save_dir>/mlflow.db``."""
        return self._uri or f"sqlite:///{(self.save_dir / 'mlflow.db').absolute()}"

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow run's id, once the store has answered (None before, or without the MLflow backend)."""
        if self._mlflow is not None and self._mlflow.run_id:
            self._mlflow_run_id = self._mlflow.run_id
        return self._mlflow_run_id

    @property
    def spool_path(self) -> Path | None:
        """The MLflow spool file of this run (it is removed once the store holds all of it)."""
        if self.run_dir is None or self._uid is None or LoggingBackend.MLFLOW not in self.backends:
            return None
        return spool_path(self.run_dir, self._uid)

    # -- hooks -------------------------------------------------------------------------------------
    def on_stage_begin(self, ctx: CallbackContext) -> None:
        with self._timed():
            self._open(ctx)

    def on_train_begin(self, ctx: CallbackContext) -> None:
        with self._timed():
            self._open(ctx)
            self._reset_window()
            self._last_step = ctx.step
            if self._writer is not None and self.log_hparams and not self._hparams_logged:
                self._hparams_logged = True
                params = conv.run_hparams(ctx)
                callbacks = getattr(ctx.callbacks, "callbacks", None) or []
                settings = conv.callback_settings(callbacks)
                if settings:
                    params["callbacks" if "callbacks" not in params else "callbridge_callbacks"] = settings
                self._writer.submit(record("p", conv.log_step(ctx), params))

    def on_step_begin(self, ctx: CallbackContext) -> None:
        if self._writer is not None and (ctx.step + 1) % self._every == 0:
            # LearningRateMonitor reads the rates before the step (a step scheduler changes them after it)
            self._rates = conv.learning_rates(ctx)

    def on_step_end(self, ctx: CallbackContext) -> None:
        if self._writer is None:
            return
        start = time.perf_counter()
        self._samples += conv.batch_size(ctx.batch)
        step = ctx.step
        if step != self._last_step and step % self._every == 0:
            values = self._streams.select(ctx.metrics, conv.STEP)
            if not values and ctx.loss is not None:
                values["loss"] = ctx.loss
            rates, self._rates = self._rates, None
            values.update(rates if rates is not None else conv.learning_rates(ctx))
            now = time.perf_counter()
            elapsed = now - self._window_start - self._paused
            if elapsed > 0 and step > self._window_step:
                values["train/batches_per_sec"] = (step - self._window_step) / elapsed
                values["train/samples_per_sec"] = self._samples * max(ctx.world_size, 1) / elapsed
            values.update(self._gpu.read())
            values["epoch"] = ctx.epoch
            self._window_start, self._window_step, self._samples, self._paused = now, step, 0, 0.0
            self._last_step = step
            self._emit(conv.log_step(ctx), ctx.epoch, values)
        self.blocked_seconds += time.perf_counter() - start

    def on_evaluate_begin(self, ctx: CallbackContext) -> None:
        start = self._paused_at = time.perf_counter()
        if self._writer is not None and ctx.stage == "fit":
            self._streams.observe(ctx.metrics, conv.STEP)  # what training logged since the last logging step
        self.blocked_seconds += time.perf_counter() - start

    def on_evaluate(self, ctx: CallbackContext) -> None:
        start = time.perf_counter()
        if self._paused_at is not None:
            self._paused += start - self._paused_at
            self._paused_at = None
        if self._writer is not None:
            values = self._streams.select(ctx.metrics, conv.EVALUATE)
            if values:
                self._emit(conv.log_step(ctx), ctx.epoch, {**values, "epoch": ctx.epoch})
        self.blocked_seconds += time.perf_counter() - start

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        if self._writer is None:
            return
        with self._timed():
            values = self._streams.select(ctx.metrics, conv.EPOCH)
            if values:
                self._emit(conv.log_step(ctx), ctx.epoch, {**values, "epoch": ctx.epoch})

    def on_train_end(self, ctx: CallbackContext) -> None:
        self.close()

    def on_stage_end(self, ctx: CallbackContext) -> None:
        self.close()

    def on_exception(self, ctx: CallbackContext) -> None:
        self.close(status="KILLED" if isinstance(ctx.exception, KeyboardInterrupt) else "FAILED")

    # -- public ------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the local stores and the MLflow spool; False on timeout."""
        if self._writer is None:
            return True
        with self._timed(flush=True):
            return self._writer.flush(timeout)

    def close(self, *, status: str = "FINISHED") -> None:
        """Write what is queued, record the run's ``status``, give the stores ``close_timeout`` seconds to take
        the rest, and stop the background threads. What a store did not take is reported with its spool."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with self._timed(flush=True):
            writer.close(status, self.close_timeout)
        self.unsent = [message for sink in writer.sinks if (message := sink.unsent())]
        for message in self.unsent:
            report(f"LoggingCallback: {message}")
        self._mlflow_run_id = self.mlflow_run_id

    def state_dict(self) -> dict[str, Any]:
        return {
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "csv_rows": self._csv_rows,
            "mlflow_run_id": self.mlflow_run_id,
            "uid": self._uid,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict)

    # -- internals ---------------------------------------------------------------------------------
    def _open(self, ctx: CallbackContext) -> None:
        if self._writer is not None or not ctx.is_global_zero:
            return
        self._every = self.log_steps or ctx.log_every_n_steps or 50
        resume, self._resume = self._resume, None
        continuing = bool(resume and resume.get("run_dir")) or self.run_dir is not None
        if resume and resume.get("run_dir"):
            self.run_dir = Path(resume["run_dir"])
            self._uid = resume.get("uid") or self._uid
            self._mlflow_run_id = resume.get("mlflow_run_id")
            self._csv_rows = int(resume.get("csv_rows", 0))
        elif self.run_dir is None:
            experiment_dir = self.save_dir / self.experiment_name
            self.run_dir = experiment_dir / (self.run_name or _next_version(experiment_dir))
            self._hparams_logged = False
        self._uid = self._uid or new_uid()
        if continuing:
            self._hparams_logged = True
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"LoggingCallback: cannot create the run directory {self.run_dir}: {error}") from error
        sinks: list[Sink] = []
        for backend in self.backends:
            if backend is LoggingBackend.TENSORBOARD:
                sinks.append(TensorBoardSink(self.run_dir))
            elif backend is LoggingBackend.CSV:
                sinks.append(CsvSink(self.run_dir, self._csv_rows if continuing else None))
            elif backend is LoggingBackend.MLFLOW:
                sinks.append(self._mlflow_sink())
            elif backend is LoggingBackend.WANDB:
                sinks.append(WandbSink(self.experiment_name, self.run_name, self.save_dir))
        self._console = LoggingBackend.CONSOLE in self.backends
        self._writer = Writer(sinks)
        self._writer.start()
        if continuing and self._mlflow is not None:
            self._writer.submit(record("status", 0, {"status": "RUNNING"}))

    def _mlflow_sink(self) -> MlflowSink:
        uri = self.resolved_tracking_uri()
        check_tracking_uri(uri)
        away = probe_server(uri, timeout=min(self.store_timeout, 2.0))
        if away is not None:
            report(
                f"LoggingCallback: MLflow at {uri} is not reachable ({away}); training goes on, values are "
                f"spooled at {spool_path(self.run_dir, self._uid)} and sent when it answers"
            )
        header = {"uri": uri, "experiment": self.experiment_name, "run_name": self.run_name, "uid": self._uid}
        path = spool_path(self.run_dir, self._uid)
        self._mlflow = MlflowSink(
            path, header, self._mlflow_run_id, self.store_timeout, self.retry_seconds, away=away is not None
        )
        return self._mlflow

    def _emit(self, step: int, epoch: int, values: Mapping[str, float]) -> None:
        for key in values:
            self.logged[key] = self.logged.get(key, 0) + 1
        if LoggingBackend.CSV in self.backends:
            self._csv_rows += 1
        # one millisecond apart at least: MLflow keeps one of two values equal in key, step, value and time
        self._wall = max(time.time(), self._wall + 0.001)
        self._writer.submit(record("m", step, dict(values), self._wall))
        if self._console:
            from tqdm import tqdm

            shown = " | ".join(f"{k} {_fmt(v)}" for k, v in values.items())
            tqdm.write(f"[step {step} epoch {epoch}] {shown}", file=sys.stdout)

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


def _next_version(experiment_dir: Path) -> str:
    taken = [int(m.group(1)) for p in experiment_dir.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return f"version_{max(taken, default=-1) + 1}"


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)
