"""``callbridge verify`` as a user runs it: a fresh process, the installed command, the report alone on stdout.

The Ray verifier starts a local Ray when none runs and shuts it down after; the in-process tests of
tests/test_warprec_ray.py share one Ray already running, so this path runs here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("ray")


def test_verify_from_a_fresh_process_starts_and_stops_ray(tmp_path):
    command = [sys.executable, "-m", "callbridge.adapters.cli", "verify", "ray.tune.logger:CSVLoggerCallback", "--json"]
    env = {**os.environ, "RAY_ADDRESS": ""}  # never join a cluster another test process started
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # stdout holds the report alone: Ray's and Lightning's lines went to stderr
    assert report["equal"] is True and report["home"] == "ray.tune.Tuner (one trial)"
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["files"]["equal"] and not checks["files"]["note"]  # progress.csv compared on both sides
    assert list(tmp_path.iterdir()) == []  # both runs wrote in a temporary folder
