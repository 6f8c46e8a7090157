"""What may differ between two runs of the same trial without anything being wrong (the clock, the process, the
random part of the trial id, where each side keeps its files), masked so that the rest compares exactly.

Examples:
    >>> normalize_result({"val_loss": 0.5, "pid": 123, "config": {"lr": 0.1}, "time_this_iter_s": 0.2})
    {'val_loss': 0.5, 'pid': '<masked>', 'config': {'lr': 0.1}, 'time_this_iter_s': '<masked>'}
    >>> normalize_text("ScriptedModule_1a2b3_00000_0_2026-01-02_03-04-05 took 0.31s")
    'ScriptedModule_<id>_00000_0_<date> took <t>'
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import plain

#: Result keys whose values depend on the process, the clock or where the checkpoint lives (docs/warprec.md).
VOLATILE: frozenset[str] = frozenset(
    {"timestamp", "date", "pid", "hostname", "node_ip", "trial_id", "checkpoint_dir_name"}
)
MASK = "<masked>"

_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{5}_(\d{5})")
_DATE = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d|\d{8}_\d{6}")
_TIMES = re.compile(r"\d+(\.\d+)?\s?(ms|us|µs|s)\b|\d+:\d\d:\d\d|\b1\d{9}(\.\d+)?\b")
_EVENTS = re.compile(r"(events\.out\.tfevents)\.[^/]*")


def volatile(key: str) -> bool:
    """A result key whose value is masked: `VOLATILE` and every ``time_*`` key."""
    return key in VOLATILE or key.startswith("time_")


def normalize_result(result: Any) -> Any:
    """A result dict in its key order, volatile values masked (nested dicts too)."""
    if not isinstance(result, dict):
        return plain(result)
    return {str(k): MASK if volatile(str(k)) else normalize_result(v) for k, v in result.items()}


def normalize_text(text: str, *sides: Path) -> str:
    """Text with each side's directory as ``<side>``, trial ids' random part as ``<id>``, dates as ``<date>`` and
    durations or epoch timestamps as ``<t>``."""
    for side in sides:
        text = text.replace(str(side), "<side>")
    text = _ID.sub(r"<id>_\1", text)
    return _TIMES.sub("<t>", _DATE.sub("<date>", text))


def normalize_name(name: str) -> str:
    """A file's path relative to its side, with trial ids, dates and TensorBoard event-file suffixes masked."""
    return _EVENTS.sub(r"\1.*", normalize_text(name))


def summarize_trial(trial: Any, side: Path) -> dict[str, Any]:
    """What a hook sees of the trial: its type, status, name and id (random part masked), the last result's
    ``training_iteration`` and ``done``, and whether it has a checkpoint."""
    last = getattr(trial, "last_result", None) or {}
    return {
        "type": type(trial).__qualname__,
        "status": getattr(trial, "status", None),
        "name": normalize_text(str(trial), side),
        "id": normalize_text(str(getattr(trial, "trial_id", "")), side),
        "last_iteration": last.get("training_iteration"),
        "done": last.get("done"),
        "checkpoint": getattr(trial, "checkpoint", None) is not None,
    }


def file_content(path: Path, side: Path) -> Any:
    """A file's content for comparison: JSON (one document or JSON lines) and CSV parsed with volatile values
    masked, pickles loaded, other text normalized, binary files as ``"<binary>"``."""
    data = path.read_bytes()
    if path.suffix == ".pkl":
        try:
            return normalize_result(pickle.loads(data))  # a file this run just wrote
        except Exception:
            return "<binary>"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "<binary>"
    if "\x00" in text:
        return "<binary>"
    if path.suffix == ".json":
        try:
            return normalize_result(json.loads(text))
        except json.JSONDecodeError:
            try:
                return [normalize_result(json.loads(line)) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError:
                pass
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if rows:
            masked = [i for i, key in enumerate(rows[0]) if volatile(key)]
            return [rows[0], *([MASK if i in masked else v for i, v in enumerate(row)] for row in rows[1:])]
    return normalize_text(text, side).splitlines()
