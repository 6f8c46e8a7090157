"""Callbacks declared the way Hydra declares them: ``hydra.callbacks.<name>: {_target_: ..., ...}``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from callbridge.adapters.config import ConfigError
from callbridge.adapters.hydra import live
from callbridge.adapters.styles import detect_style
from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger("callbridge.adapters.hydra")


def from_hydra_config(
    cfg: Mapping[str, Any] | DictConfig | ListConfig | Sequence[Any] | str | os.PathLike[str], **options: Any
) -> list[Any]:
    """Lightning callbacks built from ``_target_`` entries with ``hydra.utils.instantiate``, in one call.

    ``cfg`` is a YAML file path or a config holding ``hydra.callbacks.<name>: {_target_: ..., ...}`` (the
    shape Hydra reads), a ``callbacks`` node, a mapping ``name -> entry``, a list of entries, or one
    entry. Entries of any style are accepted (Hydra, Keras, unified, Lightning); ``options`` go to
    [`to_lightning`][callbridge.adapters.lightning.api.to_lightning]. Inside a running Hydra app, entries that Hydra
    itself already instantiated from ``hydra.callbacks`` are left out, so they do not fire twice; with
    [`HydraRelay`][callbridge.adapters.hydra.relay.HydraRelay] active, a Hydra callback is built once per Hydra run or
    sweep (later jobs get the same object), as Hydra builds ``hydra.callbacks``.

    Raises:
        ConfigError: (a ``ValueError``) listing every bad entry by name (``hydra.callbacks.my_callback``): no
            ``_target_``, an unknown class, wrong arguments.

    Examples:
        >>> from callbridge.adapters.hydra import from_hydra_config
        >>> cfg = {"hydra": {"callbacks": {"log": {"_target_": "hydra.experimental.callbacks.LogJobReturnCallback"}}}}
        >>> [type(cb).__name__ for cb in from_hydra_config(cfg)]
        ['LightningBridge']
    """
    from callbridge.adapters.lightning import to_lightning

    try:
        from hydra.utils import instantiate
    except ImportError as error:
        raise ImportError(
            "from_hydra_config needs hydra-core: pip install 'callbridge[hydra]' (or hydra-core>=1.3)"
        ) from error

    live_entries = live.live_entries()
    relay = live.current_relay()
    objects: list[Any] = []
    problems: list[tuple[str, str]] = []
    for name, entry in _entries(cfg):
        if entry is None:  # a disabled entry of a callbacks group
            continue
        if not isinstance(entry, (Mapping, DictConfig)) or "_target_" not in entry:
            shown = list(entry.keys()) if isinstance(entry, (Mapping, DictConfig)) else type(entry).__name__
            problems.append(
                (name, f"has no _target_ (got {shown}); an entry looks like {{_target_: package.module.Class, arg: 1}}")
            )
            continue
        plain = OmegaConf.to_container(entry, resolve=False) if isinstance(entry, DictConfig) else dict(entry)
        if plain in live_entries:
            log.info("callback entry %r is in hydra.callbacks: Hydra calls it already, callbridge does not", name)
            continue
        key = json.dumps(plain, sort_keys=True, default=str)
        if relay is not None and key in relay.instances:  # built earlier in this Hydra run or sweep
            objects.append(relay.instances[key])
            continue
        try:
            obj = instantiate(entry)
        except Exception as error:
            problems.append((name, f"_target_ {entry['_target_']!r}: {' '.join(str(error).split())}"))
            continue
        if relay is not None and _is_hydra_style(obj):
            relay.instances[key] = obj
        objects.append(obj)
    if problems:
        raise ConfigError(problems)
    return to_lightning(objects, **options) if objects else []


def _is_hydra_style(obj: Any) -> bool:
    try:
        return detect_style(obj) == "hydra"
    except TypeError:
        return False


def _entries(cfg: Any) -> list[tuple[str, Any]]:
    if isinstance(cfg, (str, os.PathLike)):
        path = Path(cfg)
        if not path.is_file():
            raise FileNotFoundError(f"from_hydra_config: no config file {str(path)!r}")
        cfg = OmegaConf.load(path)
    if isinstance(cfg, (Mapping, DictConfig)):
        if "_target_" in cfg:
            return [("<entry>", cfg)]
        hydra_node = cfg.get("hydra")
        if isinstance(hydra_node, (Mapping, DictConfig)) and "callbacks" in hydra_node:
            return _named("hydra.callbacks", hydra_node["callbacks"])
        if "callbacks" in cfg:
            return _named("callbacks", cfg["callbacks"])
        return _named("", cfg)
    if isinstance(cfg, (Sequence, ListConfig)):
        return _named("", cfg)
    raise TypeError(f"from_hydra_config: expected a config, a mapping, a list or a YAML path, got {type(cfg).__name__}")


def _named(prefix: str, node: Any) -> list[tuple[str, Any]]:
    if node is None:
        return []
    if isinstance(node, (Mapping, DictConfig)):
        return [(f"{prefix}.{key}" if prefix else str(key), value) for key, value in node.items()]
    if isinstance(node, (Sequence, ListConfig)) and not isinstance(node, str):
        return [(f"{prefix}[{i}]", value) for i, value in enumerate(node)]
    raise TypeError(f"from_hydra_config: {prefix or 'the config'} must be a mapping or a list of _target_ entries")
