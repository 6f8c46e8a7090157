"""Runs the conformance app as ``app.py`` (one run) and ``app.py --multirun lr=0.1,0.01``, in one process.

    python driver.py OUT_DIR home|bridge

Each invocation runs in its own working dir (``OUT_DIR/run``, ``OUT_DIR/multirun``) and goes through Hydra's
real entry point (the ``@hydra.main`` function, reading ``sys.argv``). Between the two, the process-wide state a
finished Hydra app leaves (``GlobalHydra``) is cleared, as a new process would have it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import probes
from app import main
from hydra.core.global_hydra import GlobalHydra


def run(out: Path, config_name: str) -> None:
    for name, extra in (("run", []), ("multirun", ["--multirun", "lr=0.1,0.01"])):
        workdir = out / name
        workdir.mkdir(parents=True, exist_ok=True)
        os.chdir(workdir)
        installed = probes.capture_logs(str(workdir / "logs.jsonl"))
        sys.argv = ["app.py", "--config-name", config_name, *extra]
        try:
            main()
        finally:
            probes.release_logs(installed)
            GlobalHydra.instance().clear()


if __name__ == "__main__":
    run(Path(sys.argv[1]).resolve(), sys.argv[2])
