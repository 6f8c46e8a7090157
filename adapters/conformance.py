"""The report every style's differential harness returns to ``callbridge verify``: checks compared side by side.

A style's ``extras["verify"]`` runs one callback at home (``keras.Model.fit``, a ``@hydra.main`` app, a one-trial
``ray.tune.Tuner``, ``transformers.Trainer``) and under callbridge, and returns a [`Report`][Report]: one
[`Check`][Check] per thing compared, each with the first difference it found.

Examples:
    >>> from callbridge.adapters.conformance import Report, compare_sequences, not_compared
    >>> report = Report(
    ...     "MyCallback()",
    ...     home="keras.Model.fit",
    ...     checks=[compare_sequences("hooks", ["on_epoch_end"], ["on_epoch_end"]), not_compared("files", "none")],
    ...     described={"hooks": "the hooks called", "files": "the files written"},
    ... )
    >>> report.equal
    True
    >>> compare_sequences("logs", [{"loss": 1.0}], [{"loss": 1.5}]).bridge
    {'at': 0, 'value': {'loss': 1.5}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: ``make(workdir) -> callback``: builds a fresh callback (called once per side, inside that side's directory).
Factory = Callable[[Path], Any]


@dataclass
class Check:
    """One comparison: its name, whether both sides agree, and the first difference (``home``/``bridge``);
    ``note`` says why a check was not compared."""

    name: str
    equal: bool
    home: Any = None
    bridge: Any = None
    note: str = ""


def close(a: Any, b: Any, rel: float = 1e-5, abs_tol: float = 1e-6) -> bool:
    """Structural equality with a float tolerance (float32 on one side, float64 on the other); NaN equals NaN."""
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


def first_difference(home: Sequence[Any], bridge: Sequence[Any], **tolerance: float) -> tuple[Any, Any]:
    """``({"at": i, "value": home[i]}, {"at": i, "value": bridge[i]})`` at the first entry that differs
    (``"<missing>"`` past the end of the shorter side), or ``(None, None)``."""
    for index in range(max(len(home), len(bridge))):
        h = home[index] if index < len(home) else "<missing>"
        b = bridge[index] if index < len(bridge) else "<missing>"
        if not close(h, b, **tolerance):
            return {"at": index, "value": h}, {"at": index, "value": b}
    return None, None


def compare_sequences(name: str, home: Sequence[Any], bridge: Sequence[Any], **tolerance: float) -> Check:
    """A `Check` of two sequences entry by entry (see `close`), keeping the first difference."""
    first_home, first_bridge = first_difference(list(home), list(bridge), **tolerance)
    return Check(name, first_home is None, first_home, first_bridge)


def not_compared(name: str, reason: str) -> Check:
    """A check left out, with its documented reason (counts as equal; printed as ``-``)."""
    return Check(name, True, note=f"not compared: {reason}")


@dataclass
class Report:
    """What ``callbridge verify`` prints: the callback, the home side's name, the checks and what each compares."""

    label: str
    home: str
    checks: list[Check]
    described: dict[str, str] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        """True when no check differs."""
        return all(check.equal for check in self.checks)

    def to_data(self) -> dict[str, Any]:
        """``{"callback", "home", "equal", "checks": [{"name", "equal", "home", "bridge", "note"}]}``."""
        return {
            "callback": self.label,
            "home": self.home,
            "equal": self.equal,
            "checks": [asdict(check) for check in self.checks],
        }

    def to_json(self) -> str:
        """`to_data` as JSON text."""
        return json.dumps(self.to_data(), indent=2, default=repr)

    def to_text(self, width: int = 56) -> str:
        """A table of the checks, and for each difference the first differing entry side by side."""
        name_width = max([12, *(len(check.name) for check in self.checks)])
        lines = [f"callbridge verify: {self.label}", "", f"  {'check':<{name_width}} {'result':<10} what"]
        for check in self.checks:
            result = "-" if check.note else "equal" if check.equal else "DIFFERENT"
            what = check.note or self.described.get(check.name, "")
            lines.append(f"  {check.name:<{name_width}} {result:<10} {what}")
        for check in self.checks:
            if check.equal:
                continue
            lines += ["", f"-- {check.name}: first difference", f"  {self.home:<{width}} | callbridge + Lightning"]
            left, right = _wrapped(check.home, width), _wrapped(check.bridge, width)
            for index in range(max(len(left), len(right))):
                a = left[index] if index < len(left) else ""
                b = right[index] if index < len(right) else ""
                lines.append(f"  {a:<{width}} | {b}")
        compared = sum(not check.note for check in self.checks)
        differ = sum(not check.equal for check in self.checks)
        verdict = "equal" if self.equal else "DIFFERENT"
        lines += ["", f"result: {verdict} ({differ} of {compared} checks differ)"]
        return "\n".join(lines)


#: The Lightning Trainer settings of every scripted run: one CPU process, nothing printed or written but what the
#: callbacks under test print and write.
SCRIPTED_TRAINER: dict[str, Any] = {
    "accelerator": "cpu",
    "devices": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}


def scripted_trainer(callbacks: Sequence[Any], **options: Any) -> Any:
    """A ``lightning.Trainer`` with `SCRIPTED_TRAINER`'s settings, ``options`` overriding them: the callbridge
    side of a style's harness."""
    import lightning as L

    return L.Trainer(callbacks=list(callbacks), **{**SCRIPTED_TRAINER, **options})


def _wrapped(value: Any, width: int) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, default=repr, ensure_ascii=False)
    return [text[i : i + width] for i in range(0, max(len(text), 1), width)][:6]
