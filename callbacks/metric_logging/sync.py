"""``callbridge sync RUN_DIR``: store in MLflow what a run's spool kept while the store was away.

Every ``mlflow-spool-<uid>.jsonl`` under ``RUN_DIR`` (a run directory, or any folder above it) is sent to the
tracking URI its header names (or ``--tracking-uri``), oldest record first, into the run it belongs to (found by
its ``callbridge.run_uid`` tag, created when the store never saw it); the run's final status is set when the
spool holds it. A spool the store took completely is removed. Sending again what the store already holds
does not duplicate it (MLflow's SQL stores keep one row per metric, timestamp, step and value).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callbridge.callbacks.metric_logging.mlflow_store import MlflowRun, check_tracking_uri
from callbridge.callbacks.metric_logging.spool import SPOOL_GLOB, Spool


@dataclass
class SyncResult:
    """What `sync_spool` did with one spool."""

    spool: Path
    run_id: str | None
    values: int = 0
    records: int = 0
    status: str | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"{self.spool}: FAILED after {self.values} values ({self.error}); the spool is kept"
        status = f", status {self.status}" if self.status else " (no final status in the spool: left as is)"
        return f"{self.spool}: {self.values} values in {self.records} records stored in run {self.run_id}{status}"


def find_spools(path: str | Path) -> list[Path]:
    """The spools under ``path`` (a spool file, a run directory, or a folder above run directories)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"callbridge sync: {path} is neither a run directory nor a spool file")
    return sorted(path.rglob(SPOOL_GLOB))


def sync_spool(path: Path, tracking_uri: str | None = None) -> SyncResult:
    """Send what ``path`` holds beyond what the store took, through MLflow's client (with its own retries)."""
    spool = Spool(path)
    if tracking_uri:
        check_tracking_uri(tracking_uri)
        spool.header["uri"] = tracking_uri
    run = MlflowRun(spool)
    result = SyncResult(path, spool.state.get("run_id"))
    try:
        run.connect()
        while spool.unsent:
            batch = spool.pending()
            run.send(batch)
            spool.ack(len(batch))
            result.records += len(batch)
            for item in batch:
                if item["k"] == "m":
                    result.values += len(item["v"])
                elif item["k"] == "status" and item["v"]["status"] != "RUNNING":
                    result.status = item["v"]["status"]
        result.run_id = run.run_id
    except Exception as error:
        result.run_id = run.run_id
        result.error = f"{type(error).__name__}: {error}"
        spool.close()
        return result
    spool.remove()
    return result


def main(argv: Sequence[str]) -> int:
    """``callbridge sync RUN_DIR [--tracking-uri URI]``; exit code 0 when every spool was stored, else 1."""
    parser = argparse.ArgumentParser(
        prog="callbridge sync",
        description="Store in MLflow what LoggingCallback spooled while the tracking server was away.",
    )
    parser.add_argument("run_dir", help="a run directory (or a folder above run directories, or a spool file)")
    parser.add_argument("--tracking-uri", default=None, help="send to this store instead of the one the spool names")
    args = parser.parse_args(list(argv))
    try:
        spools = find_spools(args.run_dir)
    except FileNotFoundError as error:
        sys.stderr.write(f"{error}\n")
        return 2
    if not spools:
        print(f"callbridge sync: nothing to send under {args.run_dir} (no {SPOOL_GLOB})")
        return 0
    failed = 0
    for path in spools:
        result = sync_spool(path, args.tracking_uri)
        failed += result.error is not None
        print(f"callbridge sync: {result.describe()}")
    return 1 if failed else 0
