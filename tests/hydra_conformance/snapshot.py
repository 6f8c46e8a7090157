"""What one conformance run left behind, normalized so that runs in different directories compare equal.

``snapshot(base)`` reads the working dir of one run (a single run or a sweep): the hooks the probe saw, the
callbacks' log records, every file and link written, and the contents that depend on the callbacks (CSV files,
pickles, the ``latest`` link). Paths become relative to ``base``; values that differ by nature (git sha, pids,
timestamps, durations, sampled resource values) become placeholders; floats are rounded.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: Files Hydra's own run_job / launcher write (not callbacks): config.yaml, hydra.yaml, overrides.yaml, the job
#: log file and the sweep's multirun.yaml.
HYDRA_OWN = re.compile(r"(^|/)\.hydra/(config|hydra|overrides)\.yaml$|(^|/)app\.log$|(^|/)multirun\.yaml$")
_MONITOR_TRACE = re.compile(r"\.(?P<name>[^/,]+),(?P<id>[^_/]+)_p\d+_t[\d.]+_f(?P<f>[\d.]+)$")
_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_FLOAT = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def _round(text: str) -> str:
    return _FLOAT.sub(lambda m: f"{float(m.group()):.4g}", text)


def normalize_text(text: str, base: Path) -> str:
    text = text.replace(str(base), "<base>")
    text = _SHA.sub("<sha>", text)
    text = re.sub(r"Total runtime: [\d.]+ seconds", "Total runtime: <t> seconds", text)
    return _round(text)


def _plain(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, base) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, str):
        return normalize_text(value, base)
    return value


def _config(cfg: DictConfig, base: Path) -> Any:
    plain = OmegaConf.to_container(cfg, resolve=False)
    hydra = plain.get("hydra")
    if isinstance(hydra, dict):
        hydra.pop("callbacks", None)  # the app's configs differ here by design (home lists them, bridge the relay)
        hydra.get("job", {}).pop("config_name", None)
    return _plain(plain, base)


def _csv(path: Path, base: Path, sampled: tuple[str, ...] = ()) -> dict[str, Any]:
    with path.open() as file:
        rows = list(csv.reader(file))
    header, body = rows[0], rows[1:]
    kept = [i for i, column in enumerate(header) if column not in sampled]
    return {
        "columns": header,
        "rows": [[_plain(_maybe_float(row[i]), base) for i in kept] for row in body] if not sampled else None,
        "count": len(body) if not sampled else len(body) > 0,
        "labels": sorted({tuple(row[i] for i in kept) for row in body}) if sampled else None,
    }


def _maybe_float(text: str) -> Any:
    try:
        return float(text) if "." in text else text
    except ValueError:
        return text


def snapshot(base: Path) -> dict[str, Any]:
    """Everything a run in ``base`` left behind, normalized (see the module)."""
    base = Path(base)
    events = [json.loads(line) for line in (base / "events.jsonl").read_text().splitlines()]
    logs = [json.loads(line) for line in (base / "logs.jsonl").read_text().splitlines()]
    files, links, contents = [], {}, {}
    for root, dirs, names in os.walk(base):
        for name in [*dirs, *names]:
            path = Path(root, name)
            rel = path.relative_to(base).as_posix()
            if path.is_symlink():
                links[rel] = normalize_text(os.readlink(path), base)
                continue
            if path.is_dir() or rel in ("events.jsonl", "logs.jsonl"):
                continue
            match = _MONITOR_TRACE.search(rel)
            files.append(_MONITOR_TRACE.sub(r".\g<name>,\g<id>_p<pid>_t<time>_f\g<f>", rel) if match else rel)
            if name == "register.csv" or name == "agg_results.csv":
                contents[rel] = _csv(path, base)
            elif name == "resource_monitoring.csv":
                contents[rel] = _csv(path, base, sampled=("", "time", "cpus", "rss_GiB", "vms_GiB"))
            elif name == "config.pickle":
                contents[rel] = _config(pickle.loads(path.read_bytes()), base)
            elif name == "job_return.pickle":
                ret = pickle.loads(path.read_bytes())
                contents[rel] = {
                    "status": ret.status.name,
                    "return_value": _plain(ret._return_value, base) if ret.status.name == "COMPLETED" else None,
                    "overrides": ret.overrides,
                    "task_name": ret.task_name,
                    "working_dir": normalize_text(ret.working_dir, base),
                    "cfg": _config(ret.cfg, base),
                    "hydra_cfg": _config(ret.hydra_cfg, base),
                }
            elif name == "results.json":
                contents[rel] = _plain(json.loads(path.read_text()), base)
    for event in events:  # the app's config name differs by design (home / bridge)
        if event.get("config_name") is not None:
            event["config_name"] = "<config_name>"
    return {
        "events": [_plain(e, base) for e in events],
        "logs": [(r["logger"], r["level"], normalize_text(r["message"], base)) for r in logs],
        "files": sorted(files),
        "links": links,
        "contents": contents,
    }


def without_hydra_own(snap: dict[str, Any]) -> dict[str, Any]:
    """``snap`` without the files Hydra itself writes (see `HYDRA_OWN`)."""
    return {**snap, "files": [f for f in snap["files"] if not HYDRA_OWN.search(f)]}
