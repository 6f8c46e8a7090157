"""A toy callback style in one file, as a new style's package would be: nothing else in callbridge changes.

Its "home framework" is this module: ``Ticker`` objects have a ``tick(epoch)`` hook. Config entries have a
format of their own, ``{toy_tick: module.Class, toy_args: {...}}``. ``STYLE`` is the registry record;
the tests register it, use it everywhere, and unregister it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from callbridge.adapters.registry import Style
from callbridge.callbacks import Callback, CallbackContext


class Ticker:
    """The toy framework's base class; its hook does nothing."""

    def tick(self, epoch: int) -> None:
        pass


class TickerAdapter(Callback):
    """Runs every Ticker of one ``to_lightning`` call at each epoch end, with ``epoch + offset``."""

    rank_zero_only = True

    def __init__(self, tickers: Sequence[Any], offset: int = 0) -> None:
        self.tickers = list(tickers)
        self.offset = offset

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        for ticker in self.tickers:
            ticker.tick(ctx.epoch + self.offset)


def _is_instance(obj: Any) -> bool:
    return isinstance(obj, Ticker)


def _looks_like(obj: Any) -> bool:
    return callable(getattr(obj, "tick", None)) and not isinstance(obj, Callback)


def _adapt(objs: Sequence[Any], *, tick_offset: int = 0) -> list[Callback]:
    if not isinstance(tick_offset, int):
        raise TypeError(f"tick_offset must be an int, got {type(tick_offset).__name__}")
    return [TickerAdapter(objs, tick_offset)]


def _build_from_config(entry: Mapping[str, Any], base_dir: Path) -> Any:
    module_name, _, name = str(entry["toy_tick"]).rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    return cls(**dict(entry.get("toy_args") or {}))


def _inspect_problems(cls: type) -> list[str]:
    return ["toy tickers never see validation"] if "validate" in vars(cls) else []


STYLE = Style(
    name="toy",
    summary="objects with a tick(epoch) hook",
    is_instance=_is_instance,
    looks_like=_looks_like,
    adapt=_adapt,
    hook_map={"tick": "on_train_epoch_end (after that epoch's validation)", "validate": "- none: toys never validate"},
    options=("tick_offset",),
    config_keys=("toy_tick",),
    config_allowed_keys=("toy_tick", "toy_args"),
    build_from_config=_build_from_config,
    library_packages=("toy_style",),
    base_classes=("Ticker",),
    inspect_problems=_inspect_problems,
    docs_page=None,
)


class EpochTicks(Ticker):
    """A user's Ticker: records the epochs it saw."""

    def __init__(self, label: str = "ticks") -> None:
        self.label = label
        self.seen: list[int] = []

    def tick(self, epoch: int) -> None:
        self.seen.append(epoch)


class DuckTicks:
    """A duck-typed Ticker (no base class)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def tick(self, epoch: int) -> None:
        self.seen.append(epoch)

    def validate(self) -> None:
        pass
