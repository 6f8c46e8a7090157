"""The background thread that owns the stores: the training thread only queues records; this thread opens the
stores, writes the records in batches, and closes them. A store that fails is reported, never raised."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import warnings
from typing import Any


class StoreWarning(RuntimeWarning):
    """A store of [`LoggingCallback`][callbridge.callbacks.metric_logging.callback.LoggingCallback] failed, recovered,
    or kept values unsent.

    Training goes on in every case; filter it like any warning
    (``warnings.filterwarnings("ignore", category=StoreWarning)``).
    """


def report(message: str) -> None:
    """Warn with ``message`` from any thread; a warnings filter set to "error" cannot make it raise."""
    with contextlib.suppress(Exception):  # warnings turned into errors: never abort training for a message
        warnings.warn(message, StoreWarning, stacklevel=2)


def record(kind: str, step: int, values: dict[str, Any], wall: float | None = None) -> dict[str, Any]:
    """A record: ``kind`` ``"m"`` (metrics), ``"p"`` (hyperparameters) or ``"status"``, at ``step``."""
    return {"k": kind, "s": int(step), "t": time.time() if wall is None else wall, "v": values}


class Sink:
    """One store. The writer thread calls ``open`` once, then ``write`` with batches of records, then
    ``close`` with the run's final status (``FINISHED``, ``FAILED`` or ``KILLED``) and the monotonic time by
    which it must return; ``unsent`` says what the store did not take (with where it is kept)."""

    name = "?"

    def open(self) -> None: ...

    def write(self, records: list[dict[str, Any]]) -> None: ...

    def flush(self) -> None: ...

    def close(self, status: str, deadline: float) -> None: ...

    def unsent(self) -> str | None:
        return None


class _Command:
    def __init__(self, name: str, *args: Any) -> None:
        self.name, self.args, self.done = name, args, threading.Event()


class Writer(threading.Thread):
    """Runs the sinks on one background thread. A sink that raises is reported once (a [`StoreWarning`][StoreWarning])
    and skipped from then on; the others go on. `lost` counts the values each failed sink missed."""

    def __init__(self, sinks: list[Sink]) -> None:
        super().__init__(name="callbridge-logging", daemon=True)
        self.sinks = sinks
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.failed: dict[str, str] = {}
        self.lost: dict[str, int] = {}

    def submit(self, item: dict[str, Any]) -> None:
        self.queue.put(item)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every sink wrote what was queued before; True unless ``timeout`` ran out."""
        command = _Command("flush")
        self.queue.put(command)
        return command.done.wait(timeout)

    def close(self, status: str, timeout: float) -> bool:
        """Write what is queued, close every sink (giving them ``timeout`` seconds in all) and end the thread."""
        deadline = time.monotonic() + timeout
        command = _Command("close", status, deadline)
        self.queue.put(command)
        done = command.done.wait(timeout + 5.0)
        self.join(1.0)
        return done

    def _each(self, action: str, *args: Any) -> None:
        for sink in self.sinks:
            if sink.name in self.failed:
                if action == "write":
                    self.lost[sink.name] = self.lost.get(sink.name, 0) + sum(len(r["v"]) for r in args[0])
                continue
            try:
                getattr(sink, action)(*args)
            except Exception as error:
                self.failed[sink.name] = f"{type(error).__name__}: {error}"
                report(
                    f"LoggingCallback: the {sink.name} store failed ({action}: {type(error).__name__}: {error}); "
                    "training goes on without it"
                )
                if action == "write":
                    self.lost[sink.name] = self.lost.get(sink.name, 0) + sum(len(r["v"]) for r in args[0])

    def run(self) -> None:
        self._each("open")
        while True:
            items = [self.queue.get()]
            while True:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            records: list[dict[str, Any]] = []
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
