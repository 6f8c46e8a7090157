"""The background thread that owns the stores: it opens them, writes batches of records, flushes and closes."""

from __future__ import annotations

import queue
import threading
from typing import Any

# -- the background writer -------------------------------------------------------------------------
Record = tuple[int, int, float, dict[str, float]]


class Sink:
    name = "?"

    def open(self) -> None: ...

    def write(self, records: list[Record]) -> None: ...

    def flush(self) -> None: ...

    def close(self, failed: bool) -> None: ...


class Writer(threading.Thread):
    """Owns the stores: opens them, writes batches of records as they come, flushes and closes on request."""

    def __init__(self, sinks: list[Sink]) -> None:
        super().__init__(name="callbridge-logging", daemon=True)
        self.sinks = sinks
        self.queue: queue.Queue[Any] = queue.Queue()
        self.opened = threading.Event()
        self.error: BaseException | None = None
        self.error_where = ""

    def call(self, command: str, *args: Any) -> None:
        done = threading.Event()
        self.queue.put(Command(command, args, done))
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
                if not isinstance(item, Command):
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


class Command:
    def __init__(self, name: str, args: tuple[Any, ...], done: threading.Event) -> None:
        self.name, self.args, self.done = name, args, done
