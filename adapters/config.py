"""Callbacks declared in configuration: Hydra, LightningCLI and WarpRec entries in one list.

[`from_config`][from_config] reads a list (or a mapping of names to entries) in which every entry is one of

* a Hydra entry: ``{_target_: pkg.mod.Class, **kwargs}`` (built with ``hydra.utils.instantiate``);
* a LightningCLI entry: ``{class_path: pkg.mod.Class, init_args: {...}}`` (typed by jsonargparse, as
  LightningCLI does);
* a WarpRec entry: ``{callback_path: file.py, callback_name: Class, args: [...], kwargs: {...}}``
  (the class is loaded from the file with
  [`load_class_from_file`][callbridge.adapters.loading.load_class_from_file]);
* an object that is already built: a native Lightning callback or a callback of any supported style.

Each entry is built, its style detected, and the whole list handed to
[`to_lightning`][callbridge.adapters.lightning.to_lightning] in the declared order. Every entry is checked before
anything trains: one [`ConfigError`][ConfigError] lists each bad entry by index or key, with the cause.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from callbridge.adapters.loading import resolve_target
from callbridge.adapters.registry import styles
from callbridge.adapters.styles import describe, detect_style

#: The keys that say which general format an entry is written in; styles with a config format of their own
#: (WarpRec's ``callback_path``) add theirs through the registry (``Style.config_keys``).
FORMATS: dict[str, tuple[str, ...]] = {
    "hydra": ("_target_",),
    "lightning": ("class_path",),
}
_ALLOWED = {
    "lightning": {"class_path", "init_args", "dict_kwargs"},
}


def _formats_table() -> tuple[dict[str, tuple[str, ...]], dict[str, set[str]]]:
    """The general formats plus every registered style's own config format: (keys, allowed keys)."""
    formats, allowed = dict(FORMATS), {name: set(keys) for name, keys in _ALLOWED.items()}
    for style in styles():
        if style.config_keys:
            formats[style.name] = style.config_keys
            allowed[style.name] = set(style.config_allowed_keys or style.config_keys)
    return formats, allowed


def _expected() -> str:
    """The entry formats a config accepts, for messages (the styles' own formats come from the registry)."""
    own = [
        f"{' + '.join(f'`{key}`' for key in style.config_keys)} ({style.name})"
        for style in styles()
        if style.config_keys
    ]
    return ", ".join(["one of `_target_` (Hydra)", "`class_path` + `init_args` (LightningCLI)", *own]) + (
        ", or an already-built callback object"
    )


class ConfigError(ValueError):
    """One or more callback entries are invalid; the message names each entry and its cause.

    Attributes:
        problems: ``(entry label, cause)`` for every bad entry, in declared order.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = [f"  {label}: {cause}" for label, cause in self.problems]
        count = len(self.problems)
        super().__init__(f"{count} invalid callback config entr{'y' if count == 1 else 'ies'}:\n" + "\n".join(lines))


class _EntryError(Exception):
    """A problem with one entry; collected into a [`ConfigError`][ConfigError]."""


def from_config(cfg: Any, *, base_dir: str | os.PathLike[str] | None = None, **options: Any) -> list[Any]:
    """Lightning callbacks built from a callback configuration that may mix every entry format.

    Args:
        cfg: a list of entries, a mapping of names to entries (``null`` entries are skipped, as in a
            Hydra ``callbacks:`` group), a single entry, an OmegaConf node of any of those, or the path
            of a YAML file holding one.
        base_dir: the directory relative WarpRec ``callback_path`` values are resolved against
            (default: the YAML file's directory when ``cfg`` is a path, else the working directory).
        **options: passed on to [`to_lightning`][callbridge.adapters.lightning.to_lightning] (for example ``key_map``).

    Returns:
        Lightning callbacks, in declared order (unified and foreign-style callbacks share one bridge).

    Raises:
        ConfigError: any entry without a target, with an unknown class, wrong arguments, several
            formats at once, or of no known style; the message lists every bad entry.

    Examples:
        >>> from callbridge.adapters import from_config
        >>> callbacks = from_config([
        ...     {"class_path": "lightning.pytorch.callbacks.EarlyStopping",
        ...      "init_args": {"monitor": "val_loss", "patience": 3}},
        ...     {"class_path": "callbridge.callbacks.Callback"},
        ... ])
        >>> [type(cb).__name__ for cb in callbacks]
        ['EarlyStopping', 'LightningBridge']
    """
    from callbridge.adapters.lightning import to_lightning

    objects = build_objects(cfg, base_dir=base_dir)
    return to_lightning([obj for _, obj in objects], **options)


def build_objects(cfg: Any, *, base_dir: str | os.PathLike[str] | None = None) -> list[tuple[str, Any]]:
    """The callback objects that ``cfg`` declares, each with its entry label, style-checked.

    The building half of [`from_config`][from_config], for callers that adapt the objects themselves.
    """
    cfg, base = _load(cfg, base_dir)
    built: list[tuple[str, Any]] = []
    problems: list[tuple[str, str]] = []
    for label, entry in _entries(cfg):
        try:
            obj = _build(entry, base)
            detect_style(obj)
        except _EntryError as error:
            problems.append((label, str(error)))
        except TypeError as error:  # detect_style: no style, several styles, a class
            problems.append((f"{label} ({describe(obj)})", f"unknown style: {error}"))
        else:
            built.append((label, obj))
    if problems:
        raise ConfigError(problems)
    return built


# -- reading the configuration -------------------------------------------------------------------
def _load(cfg: Any, base_dir: str | os.PathLike[str] | None) -> tuple[Any, Path]:
    base = Path(base_dir) if base_dir is not None else None
    if isinstance(cfg, (str, os.PathLike)):
        from omegaconf import OmegaConf

        file = Path(cfg)
        if not file.is_file():
            raise FileNotFoundError(f"callback config file {str(cfg)!r} does not exist")
        _check_file_shape(file)
        cfg = OmegaConf.load(file)
        base = base or file.resolve().parent
    if type(cfg).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)
    return cfg, base or Path.cwd()


def _check_file_shape(file: Path) -> None:
    """A callback file holds a list of entries, a mapping of names to entries, or one entry: anything else
    (an empty file, a bare class name, a number) would build zero callbacks, so it is a [`ConfigError`][ConfigError]."""
    import yaml

    raw = yaml.safe_load(file.read_text())
    where = f"file {str(file)!r}"
    expected = f"expected a list of callback entries, each {_expected()}"
    if raw is None or (isinstance(raw, (list, dict)) and not raw):
        raise ConfigError([(where, f"declares no callbacks (it is empty); {expected}")])
    if isinstance(raw, dict) and all(value is None for value in raw.values()):
        if len(raw) == 1 and "." in str(next(iter(raw))):
            raise ConfigError([(where, _bare_name_message(str(next(iter(raw)))))])
        raise ConfigError([(where, f"declares no callbacks (every key {sorted(map(str, raw))} is null); {expected}")])
    if isinstance(raw, str):
        raise ConfigError([(where, _bare_name_message(raw))])
    if not isinstance(raw, (list, dict)):
        raise ConfigError([(where, f"holds a single {type(raw).__name__} ({raw!r}), not callbacks; {expected}")])


def _bare_name_message(name: str) -> str:
    return (
        f"a bare class name {name!r} is not a callback entry; write it as `- class_path: {name}` "
        f"(LightningCLI) or `- _target_: {name}` (Hydra)"
    )


def _entries(cfg: Any) -> list[tuple[str, Any]]:
    if isinstance(cfg, Mapping):
        if _formats(cfg):
            return [("entry #0", cfg)]
        return [(f"entry {key!r}", entry) for key, entry in cfg.items() if entry is not None]
    if isinstance(cfg, Sequence) and not isinstance(cfg, (str, bytes)):
        return [(f"entry #{index}", entry) for index, entry in enumerate(cfg)]
    if cfg is None:
        expected = f"expected a list of entries, each {_expected()}"
        raise ConfigError([("config", f"is None: no callbacks declared; {expected}")])
    return [("entry #0", cfg)]


def _formats(entry: Mapping[str, Any]) -> list[str]:
    return [name for name, keys in _formats_table()[0].items() if any(key in entry for key in keys)]


# -- building one entry --------------------------------------------------------------------------
def _build(entry: Any, base: Path) -> Any:
    if isinstance(entry, str):
        raise _EntryError(_bare_name_message(entry))
    if isinstance(entry, (list, tuple)):
        raise _EntryError(
            f"a list nested inside the callback list ({len(entry)} item(s)); put its entries in the outer list"
        )
    if entry is None or isinstance(entry, (bool, int, float)):
        raise _EntryError(f"a {type(entry).__name__} ({entry!r}), not a callback entry; expected {_expected()}")
    if not isinstance(entry, Mapping):
        return entry  # already built: detect_style judges it
    formats = _formats(entry)
    table, allowed = _formats_table()
    if not formats:
        raise _EntryError(f"no target: the keys {sorted(map(str, entry))} name no class; expected {_expected()}")
    if len(formats) > 1:
        keys = [key for name in formats for key in table[name] if key in entry]
        raise _EntryError(
            f"several formats in one entry ({', '.join(formats)}: keys {keys}); write each callback in one format"
        )
    (fmt,) = formats
    unknown = sorted(set(map(str, entry)) - allowed[fmt]) if fmt in allowed else []
    if unknown:
        raise _EntryError(f"unknown key(s) {unknown} in a {fmt} entry; allowed: {sorted(allowed[fmt])}")
    if fmt == "hydra":
        return _build_hydra(entry, base)
    if fmt == "lightning":
        return _build_class_path(entry, base)
    from callbridge.adapters.registry import get_style

    build = get_style(fmt).build_from_config
    try:
        return build(entry, base)
    except (ValueError, TypeError, ImportError, FileNotFoundError, AttributeError) as error:
        raise _EntryError(str(error)) from None


def _build_hydra(entry: Mapping[str, Any], base: Path) -> Any:
    target = entry["_target_"]
    try:
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate
    except ImportError as error:
        raise _EntryError(
            f"_target_ {target!r} needs hydra-core to be built, and it is not installed "
            f"(pip install 'callbridge[hydra]'): {error}"
        ) from None
    if not isinstance(target, str) or not target:
        raise _EntryError(f"_target_ must be a dotted class path, got {target!r}")
    _import_target(target, "_target_")
    try:
        return instantiate(dict(entry))
    except InstantiationException as error:
        raise _EntryError(f"_target_ {target!r}: wrong arguments: {_one_line(error)}") from None


def _build_class_path(entry: Mapping[str, Any], base: Path) -> Any:
    class_path = entry["class_path"]
    if not isinstance(class_path, str) or not class_path:
        raise _EntryError(f"class_path must be a dotted class path, got {class_path!r}")
    cls = _import_target(class_path, "class_path")
    init_args = entry.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise _EntryError(f"class_path {class_path!r}: init_args must be a mapping, got {type(init_args).__name__}")
    init_args = {**init_args, **(entry.get("dict_kwargs") or {})}
    return _typed_instance(cls, class_path, dict(init_args))


def _typed_instance(cls: type, label: str, init_args: dict[str, Any]) -> Any:
    """``cls(**init_args)`` with LightningCLI's typing (jsonargparse): ``"3"`` becomes ``3`` for an ``int``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    try:
        parser.add_argument("--callback", type=cls)
        parsed = parser.parse_object({"callback": {"class_path": _dotted(cls), "init_args": init_args}})
        build = getattr(parser, "instantiate", None) or parser.instantiate_classes
        return build(parsed).callback
    except Exception as error:
        if isinstance(error, ValueError) and "not supported" in str(error):  # a type jsonargparse cannot describe
            return _plain_instance(cls, label, [], init_args)
        raise _EntryError(f"class_path {label!r}: wrong arguments: {_one_line(error)}{_accepted(cls)}") from None


def build_plain_instance(cls: type, label: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``cls(*args, **kwargs)``, with a ``ValueError`` naming ``label`` and the accepted arguments when they
    do not fit (for styles whose config entries hold plain ``args``/``kwargs``)."""
    try:
        return _plain_instance(cls, label, args, kwargs)
    except _EntryError as error:
        raise ValueError(str(error)) from None


def _plain_instance(cls: type, label: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as error:
        raise _EntryError(f"{label!r}: wrong arguments: {error}{_accepted(cls)}") from None
    except ValueError:  # no signature available: let the call decide
        pass
    try:
        return cls(*args, **kwargs)
    except Exception as error:
        raise _EntryError(f"{label!r}: building it failed: {type(error).__name__}: {error}") from None


def _import_target(path: str, key: str) -> Any:
    try:
        return resolve_target(path, key)
    except ImportError as error:
        raise _EntryError(str(error)) from None


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _accepted(cls: type) -> str:
    try:
        params = [
            p for p in inspect.signature(cls).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return ""
    return f" (accepted: {', '.join(p.name for p in params) or 'no arguments'})"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
