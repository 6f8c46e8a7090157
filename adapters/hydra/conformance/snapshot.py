"""What one Hydra run left behind, normalized so that runs in different directories compare equal.

``snapshot(base)`` reads the working dir of one run (a single run or a sweep): every file and link written, and
the contents of text and pickle files (CSV, JSON, YAML, text, Hydra's ``config.pickle``/``job_return.pickle``),
plus the ``events.jsonl``/``logs.jsonl`` a probe wrote there, if any. Paths become relative to ``base``; values that
differ by nature (git sha, pids, timestamps, durations, sampled resource values) become placeholders; floats are
rounded to 4 significant digits.

Examples:
    >>> from pathlib import Path
    >>> normalize_text("/runs/a/outputs/run at 0.123456, sha " + "ab" * 20, Path("/runs/a"))
    '<base>/outputs/run at 0.1235, sha <sha>'
    >>> bool(HYDRA_OWN.search("outputs/run/.hydra/config.yaml")), bool(HYDRA_OWN.search("multirun/x/multirun.yaml"))
    (True, True)
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
#: log file (job ``app``) and the sweep's multirun.yaml.
HYDRA_OWN = re.compile(r"(^|/)\.hydra/(config|hydra|overrides)\.yaml$|(^|/)app\.log$|(^|/)multirun\.yaml$")
#: Files a probe writes into the run's dir (read as ``events`` and ``logs``, not as files).
PROBE_FILES = ("events.jsonl", "logs.jsonl")
#: ResourceMonitor's columns of sampled values (compared for presence only).
SAMPLED_COLUMNS = ("", "time", "cpus", "rss_GiB", "vms_GiB")
_MONITOR_TRACE = re.compile(r"\.(?P<name>[^/,]+),(?P<id>[^_/]+)_p\d+_t[\d.]+_f(?P<f>[\d.]+)$")
_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_FLOAT = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")
_TEXT = (".txt", ".log", ".md", ".out")
_YAML = (".yaml", ".yml")


def _round(text: str) -> str:
    return _FLOAT.sub(lambda m: f"{float(m.group()):.4g}", text)


def normalize_text(text: str, base: Path) -> str:
    """``text`` with ``base`` as ``<base>``, git shas as ``<sha>``, RuntimePerformance's time as ``<t>`` and
    floats rounded to 4 significant digits."""
    text = text.replace(str(base), "<base>")
    text = _SHA.sub("<sha>", text)
    text = re.sub(r"Total runtime: [\d.]+ seconds", "Total runtime: <t> seconds", text)
    return _round(text)


def plain(value: Any, base: Path) -> Any:
    """``value`` (dicts, lists, scalars) with its strings normalized (`normalize_text`) and floats rounded."""
    if isinstance(value, dict):
        return {k: plain(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, base) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, str):
        return normalize_text(value, base)
    return value


def _config(cfg: DictConfig, base: Path) -> Any:
    plain_cfg = OmegaConf.to_container(cfg, resolve=False)
    hydra = plain_cfg.get("hydra")
    if isinstance(hydra, dict):
        hydra.pop("callbacks", None)  # the apps' configs may differ here by design (home lists them, bridge a relay)
        hydra.get("job", {}).pop("config_name", None)
    return plain(plain_cfg, base)


def _csv(path: Path, base: Path, sampled: tuple[str, ...] = ()) -> dict[str, Any]:
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    kept = [i for i, column in enumerate(header) if column not in sampled]
    return {
        "columns": header,
        "rows": [[plain(_maybe_float(row[i]), base) for i in kept if i < len(row)] for row in body]
        if not sampled
        else None,
        "count": len(body) if not sampled else len(body) > 0,
        "labels": sorted({tuple(row[i] for i in kept if i < len(row)) for row in body}) if sampled else None,
    }


def _maybe_float(text: str) -> Any:
    try:
        return float(text) if "." in text else text
    except ValueError:
        return text


def _pickle(path: Path, base: Path) -> Any:
    try:
        obj = pickle.loads(path.read_bytes())
    except Exception as error:  # a pickle of a class this process cannot import
        return f"<unreadable pickle: {type(error).__name__}>"
    if isinstance(obj, DictConfig):
        return _config(obj, base)
    if hasattr(obj, "status") and hasattr(obj, "hydra_cfg"):  # Hydra's JobReturn
        completed = obj.status.name == "COMPLETED"
        return {
            "status": obj.status.name,
            "return_value": plain(obj.return_value, base) if completed else None,
            "overrides": obj.overrides,
            "task_name": obj.task_name,
            "working_dir": normalize_text(obj.working_dir, base),
            "cfg": _config(obj.cfg, base),
            "hydra_cfg": _config(obj.hydra_cfg, base),
        }
    return {"type": type(obj).__name__}


def contents_of(path: Path, base: Path) -> Any:
    """The normalized content of one file, or None for a file whose content is not compared (binary)."""
    name = path.name
    suffix = path.suffix.lower()
    try:
        if name == "resource_monitoring.csv":
            return _csv(path, base, sampled=SAMPLED_COLUMNS)
        if suffix == ".csv":
            return _csv(path, base)
        if suffix in (".pickle", ".pkl"):
            return _pickle(path, base)
        if suffix == ".json":
            return plain(json.loads(path.read_text()), base)
        if suffix in _YAML:
            return plain(OmegaConf.to_container(OmegaConf.load(path), resolve=False), base)
        if suffix in _TEXT:
            return [normalize_text(line, base) for line in path.read_text().splitlines()]
    except (UnicodeDecodeError, ValueError) as error:
        return f"<unreadable: {type(error).__name__}>"
    return None


def snapshot(base: Path, *, probe: bool = True) -> dict[str, Any]:
    """Everything a run in ``base`` left behind, normalized (see the module): ``files`` (sorted relative paths),
    ``links`` (path: normalized target), ``contents`` (path: normalized content; Hydra's own files left out, see
    `HYDRA_OWN`), and, with ``probe``, the test probe's ``events`` and ``logs`` (`PROBE_FILES`) read apart from
    the files. Without ``probe`` (``callbridge verify``) files of those names are the callback's, like any other."""
    base = Path(base)
    files, links, contents = [], {}, {}
    for root, dirs, names in os.walk(base):
        for name in sorted([*dirs, *names]):
            path = Path(root, name)
            rel = path.relative_to(base).as_posix()
            if path.is_symlink():
                links[rel] = normalize_text(os.readlink(path), base)
                continue
            if path.is_dir() or (probe and rel in PROBE_FILES):
                continue
            match = _MONITOR_TRACE.search(rel)
            files.append(_MONITOR_TRACE.sub(r".\g<name>,\g<id>_p<pid>_t<time>_f\g<f>", rel) if match else rel)
            if match or HYDRA_OWN.search(rel):
                continue
            content = contents_of(path, base)
            if content is not None:
                contents[rel] = content
    snap: dict[str, Any] = {"files": sorted(files), "links": dict(sorted(links.items())), "contents": contents}
    if probe and (base / "events.jsonl").exists():
        events = [json.loads(line) for line in (base / "events.jsonl").read_text().splitlines()]
        for event in events:  # the app's config name differs by design (home / bridge)
            if event.get("config_name") is not None:
                event["config_name"] = "<config_name>"
        snap["events"] = [plain(e, base) for e in events]
    if probe and (base / "logs.jsonl").exists():
        logs = [json.loads(line) for line in (base / "logs.jsonl").read_text().splitlines()]
        snap["logs"] = [(r["logger"], r["level"], normalize_text(r["message"], base)) for r in logs]
    return snap


def without_hydra_own(snap: dict[str, Any]) -> dict[str, Any]:
    """``snap`` without the files Hydra itself writes (see `HYDRA_OWN`)."""
    return {**snap, "files": [f for f in snap["files"] if not HYDRA_OWN.search(f)]}
