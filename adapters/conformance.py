"""The report every style's differential harness returns to ``callbridge verify``: checks compared side by side.

A style's [`Style.verify`][callbridge.adapters.registry.Style] runs one callback at home (``keras.Model.fit``, a
``@hydra.main`` app, a one-trial ``ray.tune.Tuner``, ``transformers.Trainer``) and under callbridge, and returns a
[`Report`][Report]: one [`Check`][Check] per thing compared, each with the first difference it found.

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

import contextlib
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: ``make(workdir) -> callback``: builds a fresh callback (called once per side, inside that side's directory).
Factory = Callable[[Path], Any]


@dataclass
class Check:
    """One comparison: its name, whether both sides agree, and the first difference (``home``/``bridge``);
    ``note`` says why a check was not compared.

    Examples:
        >>> Check("stop_epoch", False, home={"at": 0, "value": 3}, bridge={"at": 0, "value": 4}).equal
        False
    """

    name: str
    equal: bool
    home: Any = None
    bridge: Any = None
    note: str = ""


def plain(value: Any) -> Any:
    """A value as comparable, JSON-friendly data: numbers, strings and containers kept, other objects (tensors,
    arrays, trials) by type name.

    Examples:
        >>> plain({"loss": 0.5, "tags": ("a", 1), "model": object()})
        {'loss': 0.5, 'tags': ['a', 1], 'model': {'type': 'object'}}
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return {"type": type(value).__qualname__}


def error_text(error: BaseException) -> str:
    """How a side's exception is compared: ``"Type: message"`` (``"exit N"`` for ``SystemExit``)."""
    if isinstance(error, SystemExit):
        return f"exit {error.code}"
    return f"{type(error).__name__}: {error}"


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
    """What ``callbridge verify`` prints: the callback, the home side's name, the checks and what each compares.

    Examples:
        >>> report = Report("Cb()", "keras.Model.fit", [compare_sequences("hooks", ["a"], ["b"])], {"hooks": "hooks"})
        >>> report.equal, report.to_text().splitlines()[-1]
        (False, 'result: DIFFERENT (1 of 1 checks differ)')
    """

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


@contextlib.contextmanager
def side_runs() -> Iterator[None]:
    """Around one side of a harness: a W&B or MLflow run the side started and left open is finished after it (HF's
    ``WandbCallback`` never finishes its own), and W&B's process-wide settings are reset when no run was open
    before, so the other side gets its own run folder (W&B fixes it at its first run otherwise). A run the caller
    had open stays open. Libraries not imported are left alone.

    MLflow keeps one store per tracking URI string for the whole process (no public reset): a relative
    ``sqlite:///mlflow.db`` given to a callback resolves in the first side's folder on both sides; give verified
    callbacks absolute store paths.
    """
    mlflow_before = _mlflow_run_id()
    wandb_before = getattr(sys.modules.get("wandb"), "run", None)
    try:
        yield
    finally:
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None and _mlflow_run_id() not in (None, mlflow_before):
            mlflow.end_run()
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb_before is None:
            if getattr(wandb, "run", None) is not None:
                wandb.finish()
            wandb.teardown()


def _mlflow_run_id() -> str | None:
    mlflow = sys.modules.get("mlflow")
    run = mlflow.active_run() if mlflow is not None else None
    return None if run is None else run.info.run_id


@contextlib.contextmanager
def process_preserved() -> Iterator[None]:
    """Restores after a verify what its runs change process-wide: the working directory, ``sys.argv``, every
    environment variable, the SIGINT/SIGTERM handlers and ``sys.excepthook`` (Ray installs its own), torch's
    deterministic-algorithms flag (``Trainer(deterministic=True)``) and MLflow's tracking URI."""
    cwd, argv, environ, excepthook = os.getcwd(), list(sys.argv), dict(os.environ), sys.excepthook
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    torch = sys.modules.get("torch")
    deterministic = (
        (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        if torch is not None
        else None
    )
    mlflow = sys.modules.get("mlflow")
    tracking_uri = mlflow.get_tracking_uri() if mlflow is not None and mlflow.is_tracking_uri_set() else None
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.argv[:] = argv
        sys.excepthook = excepthook
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        torch = sys.modules.get("torch")
        if torch is not None:
            enabled, warn_only = deterministic or (False, False)
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None:
            mlflow.set_tracking_uri(tracking_uri)  # None: unset, as before
        os.environ.clear()
        os.environ.update(environ)


_WANDB_RUN = re.compile(r"^(?P<parent>(?:.*/)?wandb)/(?P<kind>offline-run|run)-\d{8}_\d{6}-[^/]+(?:/|$)")


def wandb_entry(name: str) -> str | None:
    """How a file's path (relative to a side) is compared when W&B wrote it: its run folder by name, with the date
    and run id masked (``".../wandb/offline-run-<date>-<id>/"``; the logs inside hold clock times and the history
    is binary), ``""`` for W&B's other files (debug logs, ``latest-run``: leave them out), ``None`` when W&B did
    not write it.

    Examples:
        >>> wandb_entry("wandb/offline-run-20261123_143912-zdla0s3m/logs/debug.log")
        'wandb/offline-run-<date>-<id>/'
        >>> wandb_entry("wandb/debug.log"), wandb_entry("results/progress.csv")
        ('', None)
    """
    run = _WANDB_RUN.match(name)
    if run:
        return f"{run['parent']}/{run['kind']}-<date>-<id>/"
    return "" if re.match(r"^(?:.*/)?wandb/", name) else None


def _wrapped(value: Any, width: int) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, default=repr, ensure_ascii=False)
    return [text[i : i + width] for i in range(0, max(len(text), 1), width)][:6]
