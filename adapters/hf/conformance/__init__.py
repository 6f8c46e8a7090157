"""The differential harness for HF callbacks: one ``TrainerCallback`` run by ``transformers.Trainer`` itself and by
callbridge under a real Lightning Trainer, on the same scripted run (`scripted`), compared check by check.

It backs ``callbridge verify`` for the HF style and ``tests/test_hf_conformance.py``.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from transformers import PrinterCallback
    >>> from callbridge.adapters.hf.conformance import verify
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     report = verify(lambda folder: PrinterCallback(), Path(tmp), label="PrinterCallback()")
    >>> report.equal  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import Check, Factory, Report, compare_sequences, not_compared

#: The checks, in report order, with what each compares.
CHECKS: dict[str, str] = {
    "hooks": "the events called on the callback with global_step and epoch, in order (on_prediction_step apart)",
    "prediction_steps": "the on_prediction_step events (Lightning validates before on_epoch_end: order not compared)",
    "arguments": "the keyword argument names each event received",
    "logs": "the logs of on_log and the metrics of on_evaluate (timings left out)",
    "control": "the TrainerControl flags set after each event",
    "state": "TrainerState after training: global_step, epoch, best_metric/step/checkpoint, log_history",
    "output": "what was printed to stdout (timings masked; progress bars and warnings go to stderr)",
    "files": "the files written: names, text content, TensorBoard tags and steps (checkpoint folders by name)",
    "weights": "the model's final weights",
    "error": "the exception training raised, if any",
}
HOME = "transformers.Trainer"


def observe(make: Factory, workdir: Path, epochs: int = 5) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides' raw observations ``(home, bridge)``, in ``workdir/transformers`` and ``workdir/callbridge``."""
    from callbridge.adapters.hf.conformance.runner import run_side

    workdir = Path(workdir)
    return run_side("home", make, workdir / "transformers", epochs), run_side(
        "bridge", make, workdir / "callbridge", epochs
    )


def compare(home: dict[str, Any], bridge: dict[str, Any]) -> list[Check]:
    """One `Check` per entry of `CHECKS`."""

    def events(side: dict[str, Any], prediction: bool) -> list[dict[str, Any]]:
        return [e for e in side["trace"] if (e["event"] == "on_prediction_step") == prediction]

    def key(entry: dict[str, Any]) -> tuple[Any, ...]:
        return entry["global_step"], entry["epoch"]

    h_events, b_events = events(home, False), events(bridge, False)
    h_steps, b_steps = events(home, True), events(bridge, True)
    pairs = {
        "hooks": ([(e["event"], *key(e)) for e in h_events], [(e["event"], *key(e)) for e in b_events]),
        "prediction_steps": (sorted(key(e) for e in h_steps), sorted(key(e) for e in b_steps)),
        "arguments": (_kwargs_by_event(home["trace"]), _kwargs_by_event(bridge["trace"])),
        "logs": (_values(h_events), _values(b_events)),
        "control": ([(e["event"], e["control"]) for e in h_events], [(e["event"], e["control"]) for e in b_events]),
        "state": ([home["state"]], [bridge["state"]]),
        "output": (home["output"].split("\n"), bridge["output"].split("\n")),
        "files": (sorted(home["files"].items()), sorted(bridge["files"].items())),
        "weights": ([home["weights"]], [bridge["weights"]]),
        "error": ([home["error"]], [bridge["error"]]),
    }
    checks = [compare_sequences(name, *pairs[name], rel=1e-4, abs_tol=1e-6) for name in CHECKS]
    if not home["output"] and not bridge["output"]:  # "equal" would claim a comparison that did not happen
        checks[list(CHECKS).index("output")] = not_compared("output", "nothing printed to stdout on either side")
    return checks


def _kwargs_by_event(trace: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    seen: dict[str, list[str]] = {}
    for entry in trace:
        seen.setdefault(entry["event"], entry["kwargs"])
    return sorted(seen.items())


def _values(trace: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["event"], e["values"]) for e in trace if e["values"] is not None]


def verify(make: Factory, workdir: Path, label: str = "", epochs: int | None = None) -> Report:
    """Runs ``make(dir)``'s callback at home and under callbridge (``epochs`` of the scripted run, default 5) and
    returns the [`Report`][callbridge.adapters.conformance.Report] ``callbridge verify`` prints."""
    home, bridge = observe(make, workdir, epochs or 5)
    return Report(label, HOME, compare(home, bridge), CHECKS)


__all__ = ["CHECKS", "HOME", "compare", "observe", "verify"]
