"""Compares what a Hydra callback did at home (a ``@hydra.main`` app) and under callbridge, check by check."""

from __future__ import annotations

import copy
from typing import Any

from callbridge.adapters.conformance import Check, Report, compare_sequences, not_compared
from callbridge.adapters.hydra.conformance.snapshot import HYDRA_OWN

HOME = "@hydra.main app (app.py, --multirun)"
_TASK_FUNCTION = "<task function>"

#: What each check compares, per mode (paths, git sha, pids, times, sampled values and floats are normalized); the
#: differences documented in docs/hydra.md that are normalized away say so here.
_PER_MODE: dict[str, str] = {
    "hooks": "the hooks called, with hydra.job.num, in order",
    "args": "each call's arguments (Hydra keys and task values of the config, HydraConfig, cwd, JobReturn); "
    "task_function compared as present only: home passes the @hydra.main function, callbridge a LightningTask "
    "(no task function exists outside an app)",
    "logs": "the log records written inside its hooks",
    "output": "what it printed (stdout, stderr)",
    "files": "the files written; Hydra's own .hydra/*.yaml, job log, multirun.yaml left out (written by Hydra's "
    "run_job and launcher, not by a callback)",
    "links": "the links made and their targets",
    "contents": "the content of CSV, JSON, YAML, text files and Hydra pickles written",
    "error": "exceptions its hooks raised (Hydra warns) and the run's error",
}
#: Checks printed as not compared when both sides have nothing to compare, and what the line then says.
_EMPTY = {
    "logs": "no log records on either side",
    "output": "nothing printed on either side",
    "links": "no links on either side",
    "contents": "no readable files on either side",
}
CHECKS: dict[str, str] = {f"{mode}.{name}": what for mode in ("run", "multirun") for name, what in _PER_MODE.items()}


def _args(trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    calls = copy.deepcopy(trace)
    for call in calls:
        if "task_function" in call:  # documented: the @hydra.main function at home, a LightningTask outside
            call["task_function"] = _TASK_FUNCTION
    return calls


def _files(files: list[str]) -> list[str]:
    return [f for f in files if not HYDRA_OWN.search(f)]


def compare(home: dict[str, Any], bridge: dict[str, Any]) -> list[Check]:
    """One `Check` per entry of `CHECKS`; ``home``/``bridge`` map each mode to what `run_side` recorded."""
    checks = []
    for name in CHECKS:
        mode, what = name.split(".")
        h, b = home[mode], bridge[mode]
        if what == "hooks":
            left, right = (
                [(c["hook"], c["job_num"]) for c in h["trace"]],
                [(c["hook"], c["job_num"]) for c in b["trace"]],
            )
        elif what == "args":
            left, right = _args(h["trace"]), _args(b["trace"])
        elif what == "output":
            left, right = h["output"].splitlines(), b["output"].splitlines()
        elif what == "files":
            left, right = _files(h["files"]), _files(b["files"])
        elif what in ("links", "contents"):
            left, right = sorted(h[what].items()), sorted(b[what].items())
        else:
            left, right = h[what], b[what]
        if what in _EMPTY and not left and not right:  # so that "equal" always means: compared something
            checks.append(not_compared(name, _EMPTY[what]))
            continue
        checks.append(compare_sequences(name, left, right))
    return checks


def as_report(label: str, checks: list[Check]) -> Report:
    """The [`Report`][callbridge.adapters.conformance.Report] ``callbridge verify`` prints for a Hydra callback."""
    return Report(label, HOME, checks, CHECKS)
