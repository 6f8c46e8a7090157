"""The differential conformance harness: one Keras callback, run by ``keras.Model.fit`` (torch backend) and by
callbridge under a real Lightning Trainer on the same scripted run, compared check by check.

It backs ``callbridge verify`` and ``tests/test_keras_conformance.py``.

Examples:
    >>> import tempfile, keras
    >>> from pathlib import Path
    >>> from callbridge.adapters.keras.conformance import Script, verify
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     checks = verify(lambda d: keras.callbacks.EarlyStopping(patience=1), Path(tmp), Script(epochs=3))
    >>> all(c.equal for c in checks)  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import Check, Report, close
from callbridge.adapters.keras.conformance.report import CHECKS, as_report, compare, to_text
from callbridge.adapters.keras.conformance.runner import Factory, Probe, run_bridge, run_home
from callbridge.adapters.keras.conformance.scripted import Script


def verify(
    make: Factory,
    workdir: Path,
    script: Script | None = None,
    probe: Probe | None = None,
    skip: dict[str, str] | None = None,
) -> list[Check]:
    """Runs ``make(dir)``'s callback at home (``workdir/keras``) and under callbridge (``workdir/callbridge``)
    and compares them; ``skip`` names checks not compared, each with its documented reason."""
    script = script or Script()
    home = run_home(make, script, Path(workdir) / "keras", probe)
    bridge = run_bridge(make, script, Path(workdir) / "callbridge", probe)
    return compare(home, bridge, skip)


def observe(make: Factory, workdir: Path, script: Script | None = None, probe: Probe | None = None) -> Any:
    """Both sides' raw observations ``(home, bridge)``, for tests that look closer than `verify`."""
    script = script or Script()
    return run_home(make, script, Path(workdir) / "keras", probe), run_bridge(
        make, script, Path(workdir) / "callbridge", probe
    )


__all__ = [
    "CHECKS",
    "Check",
    "Report",
    "Script",
    "as_report",
    "close",
    "compare",
    "observe",
    "to_text",
    "verify",
]
