"""The durable local spool of an MLflow run: every record is on disk before it is sent, and what the store has
taken is counted, so that nothing is lost while the store is away (``callbridge sync`` sends the rest later)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

#: the spool of run ``<uid>``: ``mlflow-spool-<uid>.jsonl`` (a header line, then one record per line) and
#: ``mlflow-spool-<uid>.json`` (the MLflow run id and how many records the store has taken)
SPOOL_GLOB = "mlflow-spool-*.jsonl"
_FSYNC_EVERY_S = 1.0


def new_uid() -> str:
    """A run's spool id (also the ``callbridge.run_uid`` tag of its MLflow run)."""
    return uuid.uuid4().hex


def spool_path(directory: Path, uid: str) -> Path:
    return Path(directory) / f"mlflow-spool-{uid}.jsonl"


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    """Write ``text`` to a temporary file in the same folder and rename it over ``path`` (``fsync``-ed first
    when ``durable``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        if durable:
            os.fsync(stream.fileno())
    os.replace(tmp, path)


class Spool:
    """Every record of one MLflow run, appended to a JSON-lines file before it is sent.

    Records are dicts ``{"k": kind, "s": step, "t": wall time, "v": values}`` with kind ``"m"`` (metrics),
    ``"p"`` (hyperparameters) or ``"status"`` (``{"status": "RUNNING" | "FINISHED" | "FAILED" | "KILLED"}``).
    `append` writes them (flushed at once, ``fsync``-ed at least every second and when closed);
    `pending` hands out those the store has not taken and `ack` counts what it took, in a small
    state file next to the spool. An existing spool (a resumed run, or ``callbridge sync``) is read back and
    continued: the records it holds beyond the count are sent first. Thread-safe.
    """

    def __init__(self, path: Path, header: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.state_path = self.path.with_suffix(".json")
        self._lock = threading.Lock()
        self.state: dict[str, Any] = {"run_id": None, "experiment_id": None, "synced": 0}
        self._pending: list[dict[str, Any]] = []
        self.total = 0
        if self.path.exists():
            self.header, records = _read(self.path)
            if self.state_path.exists():
                self.state.update(json.loads(self.state_path.read_text(encoding="utf-8")))
            synced = min(int(self.state.get("synced", 0)), len(records))
            self._pending = records[synced:]
            self.total = len(records)
            self._file = self.path.open("a", encoding="utf-8")
        else:
            if header is None:
                raise FileNotFoundError(f"no spool at {self.path}")
            self.header = dict(header)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
            self._file.write(json.dumps({"k": "header", **self.header}) + "\n")
            self._sync_file()
        self._synced_at = time.monotonic()

    # -- the writer side ---------------------------------------------------------------------------
    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        text = "".join(json.dumps(record) + "\n" for record in records)
        with self._lock:
            self._file.write(text)
            self._file.flush()
            if time.monotonic() - self._synced_at >= _FSYNC_EVERY_S:
                self._sync_file()
            self._pending.extend(records)
            self.total += len(records)

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._sync_file()
                self._file.close()

    # -- the sender side ---------------------------------------------------------------------------
    @property
    def unsent(self) -> int:
        """Records the store has not taken yet."""
        with self._lock:
            return len(self._pending)

    def unsent_values(self) -> int:
        """Metric values the store has not taken yet."""
        with self._lock:
            return sum(len(r["v"]) for r in self._pending if r["k"] == "m")

    def pending(self, max_values: int = 1000) -> list[dict[str, Any]]:
        """The oldest records the store has not taken: metric records up to ``max_values`` values, or one
        hyperparameter or status record (each goes in a call of its own)."""
        with self._lock:
            batch: list[dict[str, Any]] = []
            values = 0
            for record in self._pending:
                if record["k"] != "m":
                    return batch or [record]
                if batch and values + len(record["v"]) > max_values:
                    break
                batch.append(record)
                values += len(record["v"])
            return batch

    def ack(self, count: int) -> None:
        """The store took the ``count`` oldest pending records."""
        with self._lock:
            del self._pending[:count]
            self.state["synced"] = self.total - len(self._pending)
            self._save_state()

    def set_run(self, run_id: str, experiment_id: str) -> None:
        with self._lock:
            self.state.update(run_id=run_id, experiment_id=experiment_id)
            self._save_state()

    def remove(self) -> None:
        """Delete the spool and its state (everything in it is stored)."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)

    # -- internals ---------------------------------------------------------------------------------
    def _sync_file(self) -> None:
        os.fsync(self._file.fileno())
        self._synced_at = time.monotonic()

    def _save_state(self) -> None:
        # not fsync-ed: a count lost with the machine makes the next sync send again what the store holds,
        # which it does not duplicate
        write_atomic(self.state_path, json.dumps(self.state), durable=False)


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the records of a spool file. A last line cut short by a crash is cut off the file."""
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    good = 0
    with path.open("rb") as stream:
        for line in stream:
            try:
                item = json.loads(line)
            except ValueError:
                break  # written half when the process died: nothing after it was written
            if not line.endswith(b"\n"):
                break
            good += len(line)
            if item.get("k") == "header":
                header = {k: v for k, v in item.items() if k != "k"}
            else:
                records.append(item)
    if header is None:
        raise ValueError(f"{path} is not a callbridge MLflow spool (no header line)")
    if good < path.stat().st_size:
        with path.open("r+b") as stream:
            stream.truncate(good)
    return header, records
