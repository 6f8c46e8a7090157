"""WarpRec's configuration entry for a callback: ``{callback_path, callback_name, args, kwargs}``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CONFIG_KEYS: tuple[str, ...] = ("callback_path", "callback_name", "args", "kwargs")


def _unwrap(spec: Any) -> tuple[str, Any]:
    """The entry itself and its label, from the entry, ``{callback: ...}`` or ``{general: {callback: ...}}``."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(spec):
            spec = OmegaConf.to_container(spec, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        pass
    label = "WarpRec callback entry"
    if isinstance(spec, Mapping) and isinstance(spec.get("general"), Mapping):
        spec, label = spec["general"], "general"
    if isinstance(spec, Mapping) and isinstance(spec.get("callback"), Mapping):
        spec, label = spec["callback"], ("general.callback" if label == "general" else "callback")
    return label, spec


def _problems_of(entry: Any, base_dir: Path | None) -> tuple[list[str], Path | None]:
    """Every problem of the entry's shape (keys, path, argument types), and the resolved file."""
    if not isinstance(entry, Mapping):
        return [f"must be a mapping of {', '.join(CONFIG_KEYS)}, got {type(entry).__name__}"], None
    problems = []
    unknown = sorted(set(map(str, entry)) - set(CONFIG_KEYS))
    if unknown:
        problems.append(f"unknown key(s) {unknown}; valid keys: {', '.join(CONFIG_KEYS)}")
    for key in ("callback_path", "callback_name"):
        if not entry.get(key):
            problems.append(f"{key} is missing (got keys {sorted(map(str, entry))})")
    file = None
    if entry.get("callback_path"):
        file = Path(str(entry["callback_path"])).expanduser()
        if not file.is_absolute() and base_dir is not None:
            file = Path(base_dir) / file
        if file.suffix != ".py":
            problems.append(f"callback_path {str(file)!r} is not a .py file")
        elif not file.is_file():
            problems.append(f"callback_path {str(file.resolve())!r} does not exist")
    args = [] if entry.get("args") is None else entry["args"]
    kwargs = {} if entry.get("kwargs") is None else entry["kwargs"]
    if not isinstance(args, Sequence) or isinstance(args, (str, bytes)):
        problems.append(f"args must be a list, got {type(args).__name__}")
    if not isinstance(kwargs, Mapping):
        problems.append(f"kwargs must be a mapping, got {type(kwargs).__name__}")
    return problems, file


def _instantiate(entry: Mapping[str, Any], file: Path) -> tuple[Any, str | None]:
    """``callback_name`` from ``file``, built with ``args``/``kwargs``; or None and the reason."""
    from callbridge.adapters.loading import load_class_from_file

    name = str(entry["callback_name"])
    args, kwargs = list(entry.get("args") or []), dict(entry.get("kwargs") or {})
    try:
        cls = load_class_from_file(file, name)
    except AttributeError as error:  # the file has no such class: say so in WarpRec's terms
        return None, f"{file} has no class {name!r}: {error}"
    except (ImportError, ValueError, FileNotFoundError) as error:
        return None, f"callback_path {str(file)!r}: {error}"
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as error:
        signature = inspect.signature(cls)
        return None, f"{name}{signature} cannot take args={args!r}, kwargs={kwargs!r}: wrong arguments: {error}"
    except ValueError:  # no signature available: let the call itself say
        pass
    try:
        return cls(*args, **kwargs), None
    except Exception as error:
        return None, f"building {name} failed: {type(error).__name__}: {error}"


def _not_warprec(callback: Any, file: Path) -> str | None:
    from callbridge.adapters.warprec.hooks import WARPREC_HOOKS, is_instance, looks_like, overrides, signature_problem

    if is_instance(callback) or looks_like(callback):
        return None
    defined = [hook for hook in WARPREC_HOOKS if overrides(callback, hook)]
    problems = [problem for hook in defined if (problem := signature_problem(callback, hook))]
    detail = "; ".join(problems) or (
        f"it defines none of {', '.join(WARPREC_HOOKS)} and does not derive from WarpRecCallback"
    )
    return f"{type(callback).__name__} from {file} is not a WarpRec-style callback: {detail}"


def load_callback(spec: Any, *, base_dir: str | Path | None = None) -> Any:
    """Build a WarpRec callback from WarpRec's configuration entry; pass the result to ``to_lightning``.

    ``spec`` is ``{callback_path: file.py, callback_name: ClassName, args: [...], kwargs: {...}}`` (also
    accepted wrapped as ``{callback: {...}}`` or ``{general: {callback: {...}}}``, and as an OmegaConf
    config). A relative ``callback_path`` is resolved against ``base_dir`` (default: the working directory).

    Raises:
        ConfigError: ([`callbridge.adapters.config.ConfigError`][callbridge.adapters.config.ConfigError], a
            ``ValueError``) listing every problem of the entry: unknown or missing keys, a path that is missing or not a
            ``.py`` file, ``args``/``kwargs`` of the wrong type or that do not fit the constructor, a class the file
            lacks (with the classes it has), a class that is not WarpRec-style.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "cb.py").write_text(
        ...     "class Keep:\\n    def __init__(self, n):\\n        self.n = n\\n"
        ...     "    def on_data_reading(self, data):\\n        return data[: self.n]\\n")
        >>> cb = load_callback({"callback_path": "cb.py", "callback_name": "Keep", "args": [2]}, base_dir=folder)
        >>> cb.on_data_reading([1, 2, 3])
        [1, 2]
    """
    from callbridge.adapters.config import ConfigError

    label, entry = _unwrap(spec)
    problems, file = _problems_of(entry, Path(base_dir) if base_dir is not None else None)
    if problems:
        raise ConfigError([(label, problem) for problem in problems])
    callback, problem = _instantiate(entry, file)
    if problem is None:
        problem = _not_warprec(callback, file)
    if problem is not None:
        raise ConfigError([(label, problem)])
    return callback


def build_from_config(entry: Mapping[str, Any], base: Path) -> Any:
    """The callback a WarpRec entry of a mixed callback list declares (``from_config`` reads it through the
    style registry and reports every bad entry in one ``ConfigError``).

    Raises:
        ValueError: every problem of the entry, in one message.
    """
    problems, file = _problems_of(entry, Path(base))
    if not problems:
        callback, problem = _instantiate(entry, file)
        if problem is None:
            return callback
        problems = [problem]
    raise ValueError("; ".join(problems))
