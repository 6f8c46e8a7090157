"""Running inside a live Hydra app: the job's config, the callbacks Hydra calls itself, the active relay.

A "live" job is a Hydra job running in this process (``@hydra.main``, Hydra's basic launcher): ``HydraConfig``
holds its config, and that config was not set by callbridge. The
[`HydraRelay`][callbridge.adapters.hydra.relay.HydraRelay] listed in ``hydra.callbacks`` registers itself here for the
duration of Hydra's run or sweep, so that adapters inside the task function hand it their callbacks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Protocol

from callbridge.adapters.hydra.compose import HydraConfigScope
from omegaconf import DictConfig, OmegaConf


class Relay(Protocol):
    """What an adapter needs from the active relay ([`HydraRelay`][callbridge.adapters.hydra.relay.HydraRelay])."""

    job_config: DictConfig | None
    instances: dict[str, Any]

    def attach(self, adapter: Any, callbacks: Sequence[Any]) -> None: ...


_active: list[Relay] = []


def activate(relay: Relay) -> None:
    """Called by the relay when Hydra starts a run or sweep."""
    if relay not in _active:
        _active.append(relay)


def deactivate(relay: Relay) -> None:
    """Called by the relay when Hydra's run or sweep ends."""
    if relay in _active:
        _active.remove(relay)


def live_config() -> DictConfig | None:
    """The full config (task + ``hydra`` node) of the live Hydra job running in this process, if any."""
    if "hydra" not in sys.modules:
        return None
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return None
    if not HydraConfig.initialized() or HydraConfigScope.owns_current():
        return None
    node = HydraConfig.get()
    parent = OmegaConf.select(node, "..")  # HydraConfig keeps the hydra node parented to the job's full config
    if isinstance(parent, DictConfig) and "hydra" in parent:
        return parent
    return OmegaConf.create({"hydra": node})


def relay_for(config: DictConfig) -> Relay | None:
    """The active relay whose current job is ``config`` (the live job), or None."""
    for relay in reversed(_active):
        if relay.job_config is config:
            return relay
    return None


def current_relay() -> Relay | None:
    """The active relay of the live Hydra job running in this process, or None."""
    config = live_config()
    return relay_for(config) if config is not None else None


def called_by_hydra(callbacks: Sequence[Any], live: DictConfig) -> set[int]:
    """ids of ``callbacks`` that match an entry of the live ``hydra.callbacks``, which Hydra calls itself.

    A callback matches an entry when its class is the entry's ``_target_`` and every argument of the
    entry that the object keeps under the same attribute name has the same value.
    """
    entries = OmegaConf.select(live, "hydra.callbacks") or {}
    matchers: list[tuple[type, dict[str, Any]]] = []
    for entry in entries.values():
        if not isinstance(entry, DictConfig) or not entry.get("_target_"):
            continue
        try:
            from hydra.utils import get_class

            cls = get_class(entry["_target_"])
        except Exception:
            continue
        args = OmegaConf.to_container(entry, resolve=True)
        matchers.append((cls, {k: v for k, v in args.items() if not k.startswith("_")}))
    return {id(cb) for cb in callbacks if any(_matches(cb, cls, args) for cls, args in matchers)}


def _matches(obj: Any, cls: type, args: dict[str, Any]) -> bool:
    if type(obj) is not cls:
        return False
    for key, value in args.items():
        if hasattr(obj, key):
            kept = getattr(obj, key)
            if kept != value and str(kept) != str(value):
                return False
    return True


def live_entries() -> list[Any]:
    """The live app's ``hydra.callbacks`` entries as plain containers (unresolved), or ``[]``."""
    live = live_config()
    if live is None:
        return []
    node = OmegaConf.select(live, "hydra.callbacks") or {}
    return [OmegaConf.to_container(entry, resolve=False) for entry in node.values()]
