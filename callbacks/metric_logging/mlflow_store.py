"""MLflow through its own client (``MlflowClient``), as Lightning's ``MLFlowLogger`` writes it, but sent from a
thread of its own out of a durable spool: a store that is slow or away never blocks or stops training."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from callbridge.callbacks.metric_logging.spool import Spool

#: the tag that names a run's spool on its MLflow run: a run is found again, never created twice
RUN_UID_TAG = "callbridge.run_uid"
_METRICS_PER_CALL = 1000  # MLflow's log_batch limits
_PARAMS_PER_CALL = 100
_PARAM_CHARS = 250  # as MLFlowLogger truncates
_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc")
#: the loggers of the lines callbridge's own use of MLflow causes: the sqlite store creating its tables (INFO),
#: urllib3 retrying a server that is away (WARNING, once per retry; LoggingCallback says it once instead)
_QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration", "urllib3.connectionpool")
_CONNECT_TIMEOUT_S = 120.0  # creating a new sqlite store migrates its schema: slow, but local


def check_tracking_uri(uri: str) -> None:
    """Raises ``ValueError`` naming ``uri`` when MLflow cannot use it as a tracking store (checked before anything
    runs: an unknown scheme, a server URI without a host, a local store whose folder cannot be written)."""
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"LoggingCallback: tracking_uri must be a non-empty string, got {uri!r}")
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+", 1)[0].lower()
    if len(scheme) == 1:  # a Windows drive letter: a local path
        scheme = ""
    plugins = {entry.name for entry in metadata.entry_points(group="mlflow.tracking_store")}
    valid = sorted(set(_SCHEMES) | plugins)
    if scheme not in valid:
        shown = ", ".join(repr(s) for s in valid if s)
        raise ValueError(
            f"LoggingCallback: tracking_uri {uri!r} has the scheme {scheme!r}, which MLflow does not know; "
            f"valid schemes: {shown} (or a local path)"
        )
    if scheme in ("http", "https") and not parsed.netloc:
        raise ValueError(f"LoggingCallback: tracking_uri {uri!r} names no host (expected e.g. http://127.0.0.1:5000)")
    local = None
    if scheme == "sqlite":
        path = uri.split("://", 1)[1][1:] if "://" in uri else ""
        if path and path != ":memory:":
            local = Path(path).parent
    elif scheme in ("", "file"):
        local = Path(parsed.path if scheme == "file" else uri)
    if local is not None:
        problem = writable_problem(local)
        if problem:
            raise ValueError(f"LoggingCallback: tracking_uri {uri!r}: {problem}")


def writable_problem(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (or in the folders that would be made for it), else None."""
    folder = Path(folder).absolute()
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return f"{folder} cannot be created"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, so {folder} cannot be a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def probe_server(uri: str, timeout: float) -> str | None:
    """For an ``http(s)`` tracking URI: None when the server answers ``/health``, else why not. Other URIs: None."""
    if urlparse(uri).scheme not in ("http", "https"):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except Exception as error:  # refused, timed out, DNS ...
        return f"{type(error).__name__}: {getattr(error, 'reason', error)}"


class _FromOurThreads(logging.Filter):
    """Drops the records that callbridge's own threads cause; everybody else's pass, unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName.startswith("callbridge-")


_QUIET = _FromOurThreads()


def quiet_mlflow() -> None:
    """Silence, on the loggers in ``_QUIET_LOGGERS``, the records callbridge's own threads cause (a filter that
    only looks at the thread's name: records of every other thread pass as before; installed once, and kept
    because an abandoned call may go on retrying on its thread after the run)."""
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


class MlflowRun:
    """One MLflow run, reached through ``MlflowClient`` and found by its spool's uid: creates the experiment and
    the run when needed (never twice), and sends spool records as ``MLFlowLogger`` would (``log_batch`` with
    metric names cleaned the same way, parameters flattened, cut to 250 characters, 100 per call)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.uri: str = spool.header["uri"]
        self.client: Any = None

    @property
    def run_id(self) -> str | None:
        return self.spool.state.get("run_id")

    def connect(self) -> None:
        if self.client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            if urlparse(self.uri).scheme not in ("http", "https"):
                client.search_experiments(max_results=1)  # a new sqlite store creates its tables here
            self.client = client

    def ensure_run(self) -> str:
        if self.run_id is not None:
            return self.run_id
        header, client = self.spool.header, self.client
        name = header["experiment"]
        experiment = client.get_experiment_by_name(name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            try:
                experiment_id = client.create_experiment(name)
            except Exception:  # created meanwhile by somebody else
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
        uid = header["uid"]
        found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_UID_TAG}` = '{uid}'", max_results=1)
        if found:
            run_id = found[0].info.run_id
        else:
            run = client.create_run(experiment_id, run_name=header.get("run_name"), tags={RUN_UID_TAG: uid})
            run_id = run.info.run_id
        self.spool.set_run(run_id, experiment_id)
        return run_id

    def send(self, records: list[dict[str, Any]]) -> None:
        """Send ``records`` (one batch from `Spool.pending`)."""
        from mlflow.entities import Metric, Param

        run_id = self.ensure_run()
        first = records[0]
        if first["k"] == "status":
            status = first["v"]["status"]
            if status == "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            else:
                self.client.set_terminated(run_id, status=status, end_time=int(first["t"] * 1000))
        elif first["k"] == "p":
            params = [Param(key, str(value)[:_PARAM_CHARS]) for key, value in flatten(first["v"]).items()]
            for start in range(0, len(params), _PARAMS_PER_CALL):
                self.client.log_batch(run_id, params=params[start : start + _PARAMS_PER_CALL])
        else:
            metrics = [
                Metric(mlflow_key(key), float(value), int(record["t"] * 1000), int(record["s"]))
                for record in records
                for key, value in record["v"].items()
            ]
            for start in range(0, len(metrics), _METRICS_PER_CALL):
                self.client.log_batch(run_id, metrics=metrics[start : start + _METRICS_PER_CALL])


def mlflow_key(key: str) -> str:
    """A metric name as ``MLFlowLogger`` sends it: characters MLflow refuses are dropped."""
    return re.sub(r"[^a-zA-Z0-9_/. -]+", "", key)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameters as ``a/b`` keys, as Lightning's loggers flatten them."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


class StoreTimeout(Exception):
    """A store call did not return in time; it was left to finish on its own thread."""


def call_with_timeout(fn: Callable[[], Any], timeout: float) -> Any:
    """``fn()`` on a helper thread; `StoreTimeout` when it takes longer than ``timeout`` (MLflow's client
    retries a dead server for minutes inside one call: that call is abandoned, not waited for)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as error:
            box["error"] = error
        finally:
            done.set()

    threading.Thread(target=target, name="callbridge-mlflow-call", daemon=True).start()
    if not done.wait(timeout):
        raise StoreTimeout(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


class MlflowSender(threading.Thread):
    """Sends a `Spool` to MLflow, oldest record first, on a thread of its own.

    A call that fails, or takes longer than ``store_timeout``, marks the store unreachable (one warning through
    ``report``); from then on the sender checks every ``retry_seconds`` (a ``/health`` request for a server) and
    resumes from the first record the store has not taken, with a second warning once it answers again.
    `finish` waits a bounded time for the rest.
    """

    def __init__(
        self,
        spool: Spool,
        store_timeout: float,
        retry_seconds: float,
        report: Callable[[str], None],
        away: bool = False,
    ) -> None:
        super().__init__(name="callbridge-logging-mlflow", daemon=True)
        self.spool = spool
        self.run_ = MlflowRun(spool)
        self.store_timeout = store_timeout
        self.retry_seconds = retry_seconds
        self.report = report
        #: since when the store has not answered (None while it does); ``away``: it did not answer at setup
        self.failing_since: float | None = time.monotonic() if away else None
        self.failures = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._deadline: float | None = None

    @property
    def uri(self) -> str:
        return self.run_.uri

    def notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def finish(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until the store holds every record; True when it does."""
        with self._wake:
            self._stopping = True
            self._deadline = time.monotonic() + max(timeout, 0.0)
            self._wake.notify()
        self.join(max(timeout, 0.0) + 1.0)
        return self.spool.unsent == 0

    def run(self) -> None:
        quiet_mlflow()
        while True:
            with self._wake:
                while not self._stopping and self.spool.unsent == 0:
                    self._wake.wait()
            if self.spool.unsent == 0 or self._past_deadline():
                return
            if not self._attempt():
                self._pause()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _pause(self) -> None:
        wait = self.retry_seconds
        if self._deadline is not None:
            wait = min(wait, max(self._deadline - time.monotonic(), 0.0))
        with self._wake:
            self._wake.wait(wait)  # a finish() wakes it early, to check the deadline

    def _attempt(self) -> bool:
        if self.failing_since is not None:
            why = probe_server(self.uri, timeout=min(self.store_timeout, 2.0))
            if why is not None:
                return False
        batch = self.spool.pending(_METRICS_PER_CALL)
        try:
            if self.run_.client is None:
                remote = urlparse(self.uri).scheme in ("http", "https")  # else: a local store, maybe migrating
                call_with_timeout(self.run_.connect, self.store_timeout if remote else _CONNECT_TIMEOUT_S)
            call_with_timeout(lambda: self.run_.send(batch), self.store_timeout)
        except Exception as error:
            self._failed(error)
            return False
        self.spool.ack(len(batch))
        if self.failing_since is not None:
            away = time.monotonic() - self.failing_since
            self.failing_since = None
            self.report(
                f"LoggingCallback: MLflow at {self.uri} answers again after {away:.1f} s; sending the "
                f"{self.spool.unsent_values()} values spooled meanwhile"
            )
        return True

    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            self.report(
                f"LoggingCallback: MLflow at {self.uri} is not answering ({type(error).__name__}: {error}); "
                f"training goes on, values are spooled at {self.spool.path} and sent when it answers"
            )
