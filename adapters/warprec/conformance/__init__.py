"""The differential conformance harness behind ``callbridge verify`` for Ray Tune and WarpRec callbacks: one
callback run by a real one-trial ``ray.tune.Tuner`` (home, ``workdir/home``) and by callbridge under a plain
Lightning fit (``workdir/callbridge``) on the same scripted run, compared check by check (`CHECKS`).

The modules: ``scripted`` (the tiny Lightning module and the home trainable), ``runner`` (both runs, and the
instrumentation of the callback's hooks), ``normalize`` (what is masked), ``report`` (the checks).

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from ray.tune.logger import CSVLoggerCallback
    >>> from callbridge.adapters.warprec.conformance import verify
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     report = verify(lambda d: CSVLoggerCallback(), Path(tmp))
    >>> report.equal  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path

from callbridge.adapters.conformance import Report
from callbridge.adapters.warprec.conformance.normalize import VOLATILE, normalize_result, normalize_text
from callbridge.adapters.warprec.conformance.report import CHECKS, HOME, as_report, compare
from callbridge.adapters.warprec.conformance.runner import Factory, Recorder, run_bridge, run_home


def verify(make: Factory, workdir: Path, label: str = "", epochs: int | None = None) -> Report:
    """Runs ``make(dir)``'s callback at home and under callbridge and compares them.

    Starts a local Ray (2 CPUs, no dashboard) when none is running, and shuts it down after.

    Raises:
        ValueError: ``epochs`` is not in 1..8.
    """
    import ray
    from callbridge.adapters.warprec.conformance.scripted import config

    epochs = config(epochs)["epochs"]
    workdir = Path(workdir).resolve()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        home = run_home(make, workdir / "home", epochs)
        bridge = run_bridge(make, workdir / "callbridge", epochs)
    finally:
        if started:
            ray.shutdown()
    return as_report(label or "callback", compare(home, bridge, workdir=workdir))


__all__ = [
    "CHECKS",
    "HOME",
    "VOLATILE",
    "Recorder",
    "as_report",
    "compare",
    "normalize_result",
    "normalize_text",
    "run_bridge",
    "run_home",
    "verify",
]
