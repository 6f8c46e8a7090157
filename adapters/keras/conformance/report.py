"""Compares what a callback did at home and under callbridge, check by check, and prints the differences."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

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


@dataclass
class Check:
    """One comparison: its name, whether both sides agree, and the first difference (``home``/``bridge``)."""

    name: str
    equal: bool
    home: Any = None
    bridge: Any = None
    note: str = ""


def close(a: Any, b: Any, rel: float = 1e-5, abs_tol: float = 1e-6) -> bool:
    """Structural equality with a float tolerance (float32 on one side, float64 on the other)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol) and type(a) is type(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(close(a[k], b[k], rel, abs_tol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, rel, abs_tol) for x, y in zip(a, b, strict=True))
    return a == b


def _first_difference(home: list[Any], bridge: list[Any]) -> tuple[Any, Any]:
    for index in range(max(len(home), len(bridge))):
        h = home[index] if index < len(home) else "<missing>"
        b = bridge[index] if index < len(bridge) else "<missing>"
        if not close(h, b):
            return {"at": index, "value": h}, {"at": index, "value": b}
    return None, None


def compare(home: dict[str, Any], bridge: dict[str, Any], skip: dict[str, str] | None = None) -> list[Check]:
    """One `Check` per entry of `CHECKS`; ``skip`` maps a check to the documented reason it is
    not compared (reported as equal=None)."""
    skip = skip or {}
    checks = []
    for name in CHECKS:
        if name in skip:
            checks.append(Check(name, True, note=f"not compared: {skip[name]}"))
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
        first_h, first_b = _first_difference(list(h), list(b))
        checks.append(Check(name, first_h is None, first_h, first_b))
    return checks


def to_data(label: str, checks: list[Check]) -> dict[str, Any]:
    """The report as data: ``{"callback", "equal", "checks": [{"name", "equal", "home", "bridge", "note"}]}``."""
    return {"callback": label, "equal": all(c.equal for c in checks), "checks": [asdict(c) for c in checks]}


def to_json(label: str, checks: list[Check]) -> str:
    """`to_data` as JSON text."""
    return json.dumps(to_data(label, checks), indent=2, default=repr)


def _short(value: Any, width: int) -> list[str]:
    text = json.dumps(value, default=repr, ensure_ascii=False) if not isinstance(value, str) else value
    return [text[i : i + width] for i in range(0, max(len(text), 1), width)][:6]


def to_text(label: str, checks: list[Check], width: int = 56) -> str:
    """A table of the checks, and for each difference the first differing entry side by side."""
    lines = [f"callbridge verify: {label}", ""]
    lines.append(f"  {'check':<12} {'result':<10} what")
    for check in checks:
        result = "equal" if check.equal else "DIFFERENT"
        if check.note:
            result = "-"
        lines.append(f"  {check.name:<12} {result:<10} {check.note or CHECKS[check.name]}")
    for check in checks:
        if check.equal:
            continue
        lines += ["", f"-- {check.name}: first difference", f"  {'keras.Model.fit':<{width}} | callbridge + Lightning"]
        left, right = _short(check.home, width), _short(check.bridge, width)
        for index in range(max(len(left), len(right))):
            a = left[index] if index < len(left) else ""
            b = right[index] if index < len(right) else ""
            lines.append(f"  {a:<{width}} | {b}")
    verdict = "equal" if all(c.equal for c in checks) else "DIFFERENT"
    compared = sum(not c.note for c in checks)
    lines += ["", f"result: {verdict} ({sum(not c.equal for c in checks)} of {compared} checks differ)"]
    return "\n".join(lines)
