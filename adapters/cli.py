"""The ``callbridge`` command: LightningCLI with callbacks of every style, and ``callbridge inspect``.

``callbridge fit|validate|test|predict --config FILE`` is Lightning's own ``LightningCLI`` (jsonargparse),
so every LightningCLI option, override and ``--print_config`` works. Callbacks of other styles go in
``trainer.callbacks`` through [`Callbacks`][Callbacks], one entry that holds a list in any format
[`from_config`][callbridge.adapters.config.from_config] reads::

    trainer:
      callbacks:
        - class_path: lightning.pytorch.callbacks.LearningRateMonitor   # native: as usual
        - class_path: callbridge.adapters.cli.Callbacks                  # every other style
          init_args:
            callbacks:
              - {class_path: keras.callbacks.TerminateOnNaN}
              - {_target_: my_hydra_callbacks.LogJob, out: job.log}
              - {callback_path: warprec_cbs.py, callback_name: Plot}

``callbridge inspect TARGET`` (a dotted class path or ``file.py:Class``) prints the detected style, each
hook the class overrides with the Lightning hook it runs from, and what will not work under Lightning.

Exit codes: 0 success, 1 failure (the run raised, the class cannot be used), 2 usage error (bad
arguments or configuration, found before anything runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from callbridge.adapters.config import ConfigError, build_objects
from callbridge.adapters.lightning import UNIFIED_HOOK_MAP, LightningBridge, to_lightning
from callbridge.adapters.loading import load_class_from_file, resolve_target
from callbridge.adapters.registry import get_style, styles
from callbridge.adapters.styles import describe, detect_style

SUBCOMMANDS = ("fit", "validate", "test", "predict")

_USAGE = """\
usage: callbridge {fit,validate,test,predict} --config FILE [--section.key VALUE ...]
       callbridge inspect TARGET [--json] [--strict]
       callbridge verify TARGET [--init JSON] [--json]   (or --config FILE --entry N)
       callbridge sync RUN_DIR [--tracking-uri URI]
       callbridge --version

Run a LightningModule under a Lightning Trainer with callbacks of every style, or check a callback class.

commands:
  fit, validate, test, predict   LightningCLI's entry points (callbridge fit --help for every option)
  inspect                        the style, hooks and Lightning counterparts of a callback class
  verify                         run a callback at home and under Lightning, and diff them
  sync                           store in MLflow what LoggingCallback spooled while the server was away

Foreign-style callbacks go in trainer.callbacks as
  - class_path: callbridge.adapters.cli.Callbacks
    init_args: {callbacks: [<Hydra, LightningCLI or WarpRec entries>]}

exit codes: 0 success, 1 failure, 2 usage error
"""


class Callbacks(LightningBridge):
    """A Lightning callback, for ``trainer.callbacks`` in a LightningCLI config, that runs callbacks of any style.

    ``callbacks`` takes the entries [`from_config`][callbridge.adapters.config.from_config] reads (Hydra ``_target_``,
    LightningCLI ``class_path``/``init_args`` with typed arguments, WarpRec ``callback_path``/``callback_name``),
    for unified and foreign-style callbacks. Native Lightning callbacks belong directly in
    ``trainer.callbacks``. ``options`` are [`to_lightning`][callbridge.adapters.lightning.to_lightning]'s keyword
    options. A bad entry raises [`ConfigError`][callbridge.adapters.config.ConfigError] while the config is
    instantiated, before training starts.

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters.cli import Callbacks
        >>> cb = Callbacks([{"class_path": "callbridge.callbacks.Callback"}])
        >>> trainer = L.Trainer(callbacks=[cb], max_epochs=1, logger=False)
        >>> [type(c).__name__ for c in cb.callbacks]
        ['Callback']
    """

    def __init__(self, callbacks: list[dict[str, Any]] | None = None, options: dict[str, Any] | None = None) -> None:
        built = build_objects(list(callbacks or []))
        native = [(label, obj) for label, obj in built if detect_style(obj) == "lightning"]
        if native:
            raise ConfigError(
                [
                    (
                        f"{label} ({describe(obj)})",
                        "a native Lightning callback: list it directly under trainer.callbacks, "
                        "not inside callbridge.adapters.cli.Callbacks",
                    )
                    for label, obj in native
                ]
            )
        bridges = to_lightning([obj for _, obj in built], **(options or {})) if built else []
        super().__init__(bridges[0].callbacks if bridges else [])


# -- the command ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``callbridge`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 picks its backend at import; Lightning means torch
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(_USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        from callbridge import __version__

        sys.stdout.write(f"callbridge {__version__}\n")
        return 0
    command, rest = args[0], args[1:]
    if command == "inspect":
        return _inspect_main(rest)
    if command == "verify":
        from callbridge.adapters.verify import main as verify_main

        return verify_main(rest)
    if command == "sync":  # store what LoggingCallback spooled while MLflow was away
        from callbridge.callbacks.metric_logging.sync import main as sync_main

        return sync_main(rest)
    if command not in SUBCOMMANDS:
        sys.stderr.write(_USAGE + f"\ncallbridge: error: unknown command {command!r}\n")
        return 2
    return _run_lightning_cli(args, from_sys_argv=argv is None)


def _run_lightning_cli(args: list[str], from_sys_argv: bool = False) -> int:
    from lightning.pytorch.cli import LightningCLI

    with _importable(_config_dirs(args)), warnings.catch_warnings():
        # main(["fit", ...]) from Python passes args while sys.argv holds the caller's own arguments
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return _call_lightning_cli(LightningCLI, args, from_sys_argv)


def _call_lightning_cli(LightningCLI: Any, args: list[str], from_sys_argv: bool) -> int:
    from callbridge.adapters.save_config import SaveConfigNextToLogs

    try:
        LightningCLI(
            args=None if from_sys_argv else args,
            save_config_callback=SaveConfigNextToLogs,
            parser_kwargs={"prog": "callbridge"},
        )
    except SystemExit as stop:  # jsonargparse: --help (0) and argument errors (2)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    except ConfigError as error:
        sys.stderr.write(f"callbridge: error: {error}\n")
        return 2
    except Exception as error:
        config_error = _find_config_error(error)
        if config_error is not None:
            sys.stderr.write(f"callbridge: error: {config_error}\n")
            return 2
        traceback.print_exc()
        sys.stderr.write(f"callbridge: {args[0]} failed: {type(error).__name__}: {error}\n")
        return 1
    return 0


def _find_config_error(error: BaseException) -> ConfigError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _config_dirs(args: list[str]) -> list[Path]:
    """Class paths resolve against the working directory and each config file's directory."""
    dirs = [Path.cwd()]
    for index, arg in enumerate(args):
        value = None
        if arg in ("-c", "--config") and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        if value and Path(value).is_file():
            dirs.append(Path(value).resolve().parent)
    return dirs


@contextlib.contextmanager
def _importable(dirs: Sequence[Path]) -> Iterator[None]:
    """``dirs`` on ``sys.path`` for the duration of the command; afterwards ``sys.path`` is as it was (modules
    imported meanwhile stay imported)."""
    added = [str(d) for d in dict.fromkeys(dirs) if str(d) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)


# -- callbridge inspect --------------------------------------------------------------------------
#: Lightning's packages: a hook defined on their ``Callback`` is the default, not an override.
_LIGHTNING_PACKAGES = ("lightning", "pytorch_lightning")


def _library_bases() -> tuple[set[str], set[str]]:
    """Top-level packages and base-class names whose hooks are a style's defaults, not overrides."""
    packages, bases = set(_LIGHTNING_PACKAGES), {"Callback"}
    for style in styles():
        packages.update(style.library_packages)
        bases.update(style.base_classes)
    return packages, bases


def inspect_class(cls: type, *, target: str | None = None) -> dict[str, Any]:
    """What ``callbridge inspect`` reports about a callback class, as a dict.

    Keys: ``target`` (``target`` when given, else ``module.Class``, or ``path/file.py:Class`` for a class loaded
    from a file), ``style``, ``hooks`` (``[{"hook", "lightning"}]``, the hooks the
    class overrides and the Lightning hook each runs from) and ``problems`` (what will not work under Lightning).
    Each registered style provides ``hook_map`` (hook -> Lightning hook) and may provide
    ``inspect_problems(cls)`` (see `callbridge.adapters.registry`).

    Examples:
        >>> from callbridge.adapters.cli import inspect_class
        >>> from callbridge.callbacks import Callback
        >>> class HaltOnNan(Callback):
        ...     def on_step_end(self, ctx): ...
        >>> inspect_class(HaltOnNan)["hooks"]
        [{'hook': 'on_step_end', 'lightning': 'on_train_batch_end'}]
    """
    obj = _bare_instance(cls)
    style = detect_style(obj)
    problems: list[str] = []
    if style == "callbridge":
        hooks = [(hook, UNIFIED_HOOK_MAP.get(hook, "?")) for hook in _unified_hooks(obj)]
    elif style == "lightning":
        hooks = [(hook, hook) for hook in _overridden(cls, _lightning_hook_names())]
    else:
        record = get_style(style)
        hooks = [(hook, record.hook_map[hook]) for hook in _overridden(cls, record.hook_map)]
        if record.inspect_problems is not None:
            problems += list(record.inspect_problems(cls))
    for hook, where in hooks:
        if where.startswith("-"):
            problems.append(f"{hook} has no Lightning counterpart in a single run: {where.lstrip('- ')}")
    if not hooks:
        problems.append("it overrides no hook: it will never be called")
    return {
        "target": target or describe(cls),
        "style": style,
        "hooks": [{"hook": hook, "lightning": where} for hook, where in hooks],
        "problems": problems,
    }


def _bare_instance(cls: type) -> Any:
    """An instance for style detection, made without running ``__init__`` (which may need arguments)."""
    try:
        return cls.__new__(cls)
    except Exception:
        return cls()


def _unified_hooks(obj: Any) -> list[str]:
    from callbridge.callbacks import HOOKS

    try:
        hooks = set(obj.implemented_hooks())
    except Exception:  # implemented_hooks may read attributes that __init__ sets
        hooks = {hook for hook in HOOKS if _defining_class(type(obj), hook).__module__ != "callbridge.callbacks.base"}
    return [hook for hook in HOOKS if hook in hooks]


def _lightning_hook_names() -> list[str]:
    import lightning.pytorch as pl

    return [name for name, value in vars(pl.Callback).items() if callable(value) and not name.startswith("_")]


def _defining_class(cls: type, name: str) -> type:
    return next((c for c in cls.__mro__ if name in vars(c)), object)


def _overridden(cls: type, hooks: Sequence[str] | Mapping[str, str]) -> list[str]:
    found = []
    packages, bases = _library_bases()
    for hook in hooks:
        owner = _defining_class(cls, hook)
        is_library_base = owner.__name__ in bases and owner.__module__.split(".")[0] in packages
        if owner is not object and not is_library_base:
            found.append(hook)
    return found


def load_target(target: str) -> type:
    """The class named by ``target``: a dotted path (``pkg.mod.Class``) or ``path/to/file.py:Class``."""
    if ":" in target and target.split(":", 1)[0].endswith(".py"):
        path, name = target.split(":", 1)
        return load_class_from_file(path, name)
    if ":" in target:  # module:Class
        target = target.replace(":", ".")
    obj = resolve_target(target, "target")
    if not isinstance(obj, type):
        raise TypeError(f"{target!r} is a {type(obj).__name__}, not a class")
    return obj


def _inspect_main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="callbridge inspect",
        description="Print a callback class's style, the hooks it overrides, the Lightning hook each runs from, "
        "and what will not work under Lightning.",
        epilog="exit codes: 0 inspected, 1 the class cannot be loaded or is of no known style "
        "(or --strict and problems were found), 2 usage error",
    )
    parser.add_argument("target", help="a dotted class path (pkg.module.Class) or path/to/file.py:Class")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything will not work under Lightning")
    try:
        options = parser.parse_args(args)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    try:
        with _importable([Path.cwd()]):
            from_file = options.target.split(":", 1)[0].endswith(".py")
            report = inspect_class(load_target(options.target), target=options.target if from_file else None)
    except (ImportError, FileNotFoundError, ValueError, AttributeError, TypeError) as error:
        sys.stderr.write(f"callbridge inspect: error: {error}\n")
        return 1
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['target']}: {report['style']} style")
        print("hooks (overridden -> Lightning hook it runs from):")
        width = max((len(h["hook"]) for h in report["hooks"]), default=0)
        for hook in report["hooks"]:
            print(f"  {hook['hook']:<{width}}  -> {hook['lightning']}")
        if not report["hooks"]:
            print("  (none)")
        print(
            "will not work under Lightning:" if report["problems"] else "will not work under Lightning: nothing found"
        )
        for problem in report["problems"]:
            print(f"  - {problem}")
    return 1 if options.strict and report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
