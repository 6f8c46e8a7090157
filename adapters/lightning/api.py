"""``to_lightning``: Lightning callbacks that run callbacks of every registered style."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from callbridge.adapters.lightning.bridge import LightningBridge
from callbridge.adapters.registry import Style, get_style
from callbridge.adapters.styles import describe, detect_style
from callbridge.callbacks import Callback, CallbackList


def to_lightning(callbacks: Any, **options: Any) -> list[pl.Callback]:
    """Lightning callbacks that run ``callbacks``, whatever style each is written in.

    Accepts one object or a list mixing unified callbacks, native Lightning callbacks (passed
    through unchanged) and callbacks of every installed foreign style. All unified and adapted
    callbacks share one [`LightningBridge`][LightningBridge], placed where the first of them was.

    Args:
        callbacks: a callback, a ``CallbackList``, or a list of them.
        **options: passed to the foreign styles' adapters (for example ``key_map`` for Keras).

    Raises:
        TypeError: an object of no supported style (the message lists the supported styles), a
            class instead of an instance, or an object matching several styles.
        ValueError: the same object registered twice.

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters import to_lightning
        >>> from callbridge.callbacks import Callback
        >>> class HaltOnNan(Callback):
        ...     def on_step_end(self, ctx):
        ...         if ctx.loss != ctx.loss:
        ...             ctx.should_stop = True
        >>> lightning_callbacks = to_lightning([HaltOnNan(), L.pytorch.callbacks.LearningRateMonitor()])
        >>> [type(cb).__name__ for cb in lightning_callbacks]
        ['LightningBridge', 'LearningRateMonitor']
    """
    objects = _flatten(callbacks)
    seen: set[int] = set()
    for index, obj in enumerate(objects):
        if id(obj) in seen:
            raise ValueError(f"callback #{index} ({describe(obj)}) is registered twice; pass each instance once")
        seen.add(id(obj))

    styles = []
    for index, obj in enumerate(objects):
        try:
            styles.append(detect_style(obj))
        except TypeError as error:
            raise TypeError(f"to_lightning: callback #{index}: {error}") from None

    unified: list[Callback] = []
    result: list[Any] = []
    bridge_at: int | None = None
    by_style: dict[str, list[Any]] = {}
    for obj, style in zip(objects, styles, strict=True):
        if style == "lightning":
            result.append(obj)
            continue
        if bridge_at is None:
            bridge_at = len(result)
        if style == "callbridge":
            unified.append(obj)
        elif style not in by_style:
            by_style[style] = [obj]
            unified.append(style)  # placeholder: the style's adapters go where its first callback was
        else:
            by_style[style].append(obj)
    if bridge_at is None:
        if options:
            raise TypeError(f"to_lightning: options {sorted(options)} given, but no callback of a foreign style")
        return result

    expanded: list[Callback] = []
    for item in unified:
        if isinstance(item, str):
            style = get_style(item)
            expanded.extend(style.adapt(by_style[item], **_options_for(style, options)))
        else:
            expanded.append(item)
    _check_options_used(options, [get_style(s) for s in by_style])
    result.insert(bridge_at, LightningBridge(expanded))
    return result


def _flatten(callbacks: Any) -> list[Any]:
    if isinstance(callbacks, CallbackList):
        return callbacks.callbacks
    if isinstance(callbacks, (list, tuple)):
        out: list[Any] = []
        for item in callbacks:
            out.extend(item.callbacks if isinstance(item, CallbackList) else [item])
        return out
    return [callbacks]


def _options_for(style: Style, options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key in style.options}


def _check_options_used(options: Mapping[str, Any], styles: list[Style]) -> None:
    accepted = {key for style in styles for key in style.options}
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none for the styles given"
        raise TypeError(f"to_lightning: unknown option(s) {unknown}; valid here: {valid}")
