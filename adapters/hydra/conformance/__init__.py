"""The differential conformance harness for Hydra callbacks: one callback, run by a real ``@hydra.main`` app and
by callbridge outside any app on the same task, each as a single run and as a 2-job sweep, compared check by check.

It backs ``callbridge verify`` for Hydra-style callbacks; its probe and normalization back
``tests/test_hydra_conformance.py``. Modules: ``app`` (the home app and its config), ``task`` (the tiny Lightning
fit both sides run), ``runner`` (both sides, instrumented), ``probe`` (what a hook call carried), ``snapshot``
(what a run left on disk, normalized), ``report`` (the checks).

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from hydra.experimental.callbacks import LogJobReturnCallback
    >>> from callbridge.adapters.hydra.conformance import verify
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     report = verify(lambda d: LogJobReturnCallback(), Path(tmp), label="LogJobReturn", epochs=1)
    >>> report.equal, [c.name for c in report.checks][:3]
    (True, ['run.hooks', 'run.args', 'run.logs'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import Report
from callbridge.adapters.hydra.conformance.report import CHECKS, HOME, as_report, compare
from callbridge.adapters.hydra.conformance.runner import MODES, Factory, run_side

__all__ = ["CHECKS", "HOME", "as_report", "compare", "observe", "verify"]


def observe(make: Factory, workdir: Path, epochs: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides' raw observations ``(home, bridge)``, each ``{mode: ...}``: home in ``workdir/hydra``,
    callbridge in ``workdir/callbridge``, the app's config dir in ``workdir/conf``."""
    from callbridge.adapters.hydra.conformance.app import write_config

    workdir = Path(workdir).resolve()
    conf = write_config(workdir, epochs=2 if epochs is None else epochs)
    home = {mode: run_side("home", make, conf, workdir / "hydra", mode) for mode in MODES}
    bridge = {mode: run_side("bridge", make, conf, workdir / "callbridge", mode) for mode in MODES}
    return home, bridge


def verify(make: Factory, workdir: Path, label: str = "", epochs: int | None = None) -> Report:
    """Runs ``make(dir)``'s callback at home and under callbridge (see the module) and compares them."""
    home, bridge = observe(make, workdir, epochs)
    return as_report(label, compare(home, bridge))
