"""``callbridge verify TARGET``: run one callback at home and under Lightning on a scripted run, and diff them.

The style of the callback decides what "at home" means: its registered [`Style`][callbridge.adapters.registry.Style]
provides ``verify``: ``keras.Model.fit`` (`callbridge.adapters.keras.conformance`), ``transformers.Trainer``
(`callbridge.adapters.hf.conformance`), a ``@hydra.main`` app (`callbridge.adapters.hydra.conformance`), a
one-trial ``ray.tune.Tuner`` (`callbridge.adapters.warprec.conformance`). The process is restored after the runs
([`process_preserved`][callbridge.adapters.conformance.process_preserved]). Exit codes: 0 equal, 1 differences
or a failed run, 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

_EPILOG = """\
examples:
  callbridge verify keras.callbacks:EarlyStopping --init '{"patience": 2}'
  callbridge verify my_callbacks.py:PrintLoss
  callbridge verify --config callbacks.yaml --entry 0
exit codes: 0 equal, 1 differences (or a run failed: its traceback is printed), 2 usage error (nothing ran)"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbridge verify",
        description="Run a callback at home (e.g. keras.Model.fit) and under a Lightning Trainer through callbridge "
        "on the same scripted run, and print a side-by-side diff of hooks, logs, output, files and decisions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", nargs="?", help="module:Class, pkg.module.Class or path/to/file.py:Class")
    parser.add_argument("--init", default="{}", help="constructor keyword arguments as a JSON object")
    parser.add_argument("--config", help="a callbacks config file (YAML/JSON) instead of TARGET")
    parser.add_argument("--entry", default="0", help="with --config: the entry's index or name (default 0)")
    parser.add_argument("--epochs", type=_positive, help="epochs of the scripted run, >= 1 (default: the style's)")
    parser.add_argument("--keep", help="keep both runs' directories in this new or empty folder (default: temporary)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of epochs >= 1, got {text!r}")
    return value


class UsageError(Exception):
    """Bad arguments: exit code 2."""


def build_factory(options: argparse.Namespace) -> tuple[str, Callable[[Path], Any]]:
    """``(label, make)``: ``make(dir)`` builds a fresh instance of the callback to verify."""
    if options.config:
        if options.target:
            raise UsageError("give either TARGET or --config, not both")
        from callbridge.adapters.config import build_objects

        def make(_: Path) -> Any:
            built = build_objects(options.config)
            labels = [label for label, _ in built]
            for index, (label, obj) in enumerate(built):
                if options.entry in (str(index), label) or label == f"entry {options.entry!r}":
                    return obj
            raise UsageError(f"--entry {options.entry!r}: the config has entries {', '.join(labels)} (or 0..)")

        make(Path())  # fail early, before any run
        return f"{options.config} entry {options.entry}", make
    if not options.target:
        raise UsageError("TARGET (module:Class or file.py:Class) or --config FILE is required")
    try:
        kwargs = json.loads(options.init)
    except json.JSONDecodeError as error:
        raise UsageError(f"--init is not valid JSON ({error}); example: --init '{{\"patience\": 2}}'") from None
    if not isinstance(kwargs, dict):
        raise UsageError(f"--init must be a JSON object of keyword arguments, got {options.init}")
    from callbridge.adapters.cli import load_target

    cls = load_target(options.target)

    def make(_: Path) -> Any:
        try:
            return cls(**kwargs)
        except TypeError as error:
            raise UsageError(f"{options.target}(**{kwargs}) failed: {error}") from None

    return f"{options.target}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})", make


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``callbridge verify``; returns the exit code."""
    parser = _parser()
    try:
        options = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    from callbridge.adapters.conformance import process_preserved

    # what building and running print beyond what each side captures goes to stderr: stdout holds the report
    with _cwd_importable(), contextlib.redirect_stdout(sys.stderr):
        try:
            label, make = build_factory(options)
            verify = _verifier(label, make)
            keep = _keep_folder(options.keep)
        except UsageError as error:
            sys.stderr.write(f"callbridge verify: error: {error}\n")
            return 2
        except (ImportError, FileNotFoundError, AttributeError, TypeError, ValueError) as error:
            sys.stderr.write(f"callbridge verify: error: {type(error).__name__}: {error}\n")
            return 2
        try:
            with process_preserved(), tempfile.TemporaryDirectory(prefix="callbridge-verify-") as tmp:
                report = verify(make, keep or Path(tmp), label=label, epochs=options.epochs)
        except Exception:  # the harness itself failed (a callback's own errors are part of the report)
            sys.stderr.write(f"callbridge verify: {label}: a run failed:\n{traceback.format_exc()}")
            return 1
    print(report.to_json() if options.json else report.to_text())
    return 0 if report.equal else 1


def _verifier(label: str, make: Any) -> Any:
    """The verify function of the style of the callback ``make`` builds (a UsageError for a style without one)."""
    from callbridge.adapters.registry import get_style
    from callbridge.adapters.styles import detect_style

    style_name = detect_style(make(Path()))
    style = get_style(style_name) if style_name not in ("callbridge", "lightning") else None
    if style is None or style.verify is None:
        raise UsageError(f"{label} is a {style_name}-style callback; verify supports: {_verifiable()}")
    return style.verify


def _keep_folder(keep: str | None) -> Path | None:
    """``--keep``: a new or empty folder (files of an earlier run would be compared as this run's)."""
    if keep is None:
        return None
    folder = Path(keep)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"--keep {keep!r} must be a new or empty folder (it holds files of another run)")
    return folder


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """The working directory on ``sys.path`` while the target loads and runs (``my_callbacks:MyCallback``),
    removed after."""
    entry = os.getcwd()
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _verifiable() -> str:
    from callbridge.adapters.registry import styles

    return ", ".join(sorted(style.name for style in styles() if style.verify is not None)) or "none"
