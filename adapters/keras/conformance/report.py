"""Compares what a callback did at home and under callbridge, check by check, and prints the differences."""

from __future__ import annotations

from typing import Any

from callbridge.adapters.conformance import Check, Report, close, first_difference, not_compared

#: The checks, in report order, with what each compares.
CHECKS: dict[str, str] = {
    "hooks": "the hooks called on the callback, with their epoch/batch index, in order",
    "logs": "the logs each hook received: keys, value types and values",
    "output": "what the callback printed (durations and rates masked)",
    "files": "the files it wrote: names, and the content of text files",
    "stop_epoch": "how many epochs ran",
    "steps": "how many training steps ran",
    "lr": "the learning rate of each epoch, and after training",
    "weights": "the model's final weights",
    "history": "model.history.history after fit",
    "error": "the exception fit/evaluate/predict raised, if any",
    "probe": "side effects read back by the probe (an MLflow store, ...)",
}


def compare(home: dict[str, Any], bridge: dict[str, Any], skip: dict[str, str] | None = None) -> list[Check]:
    """One `Check` per entry of `CHECKS`; ``skip`` maps a check to the documented reason it is
    not compared (it counts as equal)."""
    skip = skip or {}
    checks = []
    for name in CHECKS:
        if name in skip:
            checks.append(not_compared(name, skip[name]))
            continue
        if name == "probe" and home["probe"] is None and bridge["probe"] is None:
            checks.append(Check(name, True, note="no probe for this callback"))
            continue
        if name == "hooks":
            h = [row[:2] for row in home["trace"]]
            b = [row[:2] for row in bridge["trace"]]
        elif name == "logs":
            h, b = home["trace"], bridge["trace"]
        elif name == "output":
            h, b = home["output"].split("\n"), bridge["output"].split("\n")
        elif name == "files":
            h, b = sorted(home["files"].items()), sorted(bridge["files"].items())
        elif name == "stop_epoch":
            h, b = [home["epochs"]], [bridge["epochs"]]
        elif name == "lr":
            h, b = [*home["lr"], home["final_lr"]], [*bridge["lr"], bridge["final_lr"]]
        elif name == "history":
            h, b = [home["history"]], [bridge["history"]]
        else:
            h, b = [home[name]], [bridge[name]]
        if name == "weights":
            equal = close(h, b, rel=1e-4, abs_tol=1e-5)
            checks.append(Check(name, equal, None if equal else h, None if equal else b))
            continue
        first_h, first_b = first_difference(list(h), list(b))
        checks.append(Check(name, first_h is None, first_h, first_b))
    return checks


def as_report(label: str, checks: list[Check]) -> Report:
    """The [`Report`][callbridge.adapters.conformance.Report] ``callbridge verify`` prints for a Keras callback."""
    return Report(label, "keras.Model.fit", checks, CHECKS)


def to_text(label: str, checks: list[Check]) -> str:
    """`as_report`'s table and first differences, as text."""
    return as_report(label, checks).to_text()
