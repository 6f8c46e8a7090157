"""What of a Keras callback is saved in the Lightning checkpoint: its run state as plain data, never pickled."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping
from typing import Any

#: Attributes that a Keras class recomputes in ``on_train_begin`` and that must not be restored over it.
NOT_STATE = {"CSVLogger": frozenset({"append_header"})}
_NEVER = frozenset({"model", "_model", "params"})
_NDARRAY = "__ndarray__"
_SKIP = object()
_MISSING = object()


def try_setattr(obj: Any, name: str, value: Any) -> None:
    """``setattr`` that leaves read-only attributes alone."""
    with contextlib.suppress(AttributeError, TypeError):
        setattr(obj, name, value)


def _init_params(cls: type) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _instance_attributes(obj: Any) -> dict[str, Any]:
    """Attributes the object holds itself (not its class's), found through ``dir`` and static lookups."""
    cls = type(obj)
    out = {}
    for name in dir(obj):
        if name.startswith("__"):
            continue
        value = inspect.getattr_static(obj, name, _MISSING)
        if value is _MISSING or value is inspect.getattr_static(cls, name, _MISSING):
            continue
        out[name] = value
    return out


def to_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as numbers, strings, lists and dicts (numpy arrays as tensors), or ``_SKIP``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 4:
        return _SKIP
    module = type(value).__module__
    if module == "numpy":
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            return value.item()
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            import torch

            return {_NDARRAY: torch.from_numpy(value.copy())}
        return _SKIP
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, depth + 1) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            plain = to_plain(item, depth + 1)
            if not isinstance(key, str) or plain is _SKIP:
                return _SKIP
            out[key] = plain
        return out
    return _SKIP


def from_plain(value: Any) -> Any:
    """The inverse of `to_plain`."""
    if isinstance(value, dict):
        if set(value) == {_NDARRAY}:
            return value[_NDARRAY].numpy().copy()
        return {key: from_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_plain(item) for item in value]
    return value


def plain_state(obj: Any) -> dict[str, Any]:
    """The run state of one callback: attributes holding plain data, minus its constructor arguments."""
    config = _init_params(type(obj))
    state = {}
    for name, value in _instance_attributes(obj).items():
        if name in config or name in _NEVER or callable(value):
            continue
        plain = to_plain(value)
        if plain is not _SKIP:
            state[name] = plain
    return state


def apply_state(obj: Any, saved: Mapping[str, Any]) -> None:
    """Sets what `plain_state` saved back on ``obj`` (except what its class recomputes itself)."""
    skip = NOT_STATE.get(type(obj).__name__, frozenset())
    for name, value in saved.items():
        if name not in skip:
            try_setattr(obj, name, from_plain(value))
