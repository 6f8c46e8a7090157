"""Which callback style an object is written in: real base classes first, then hook signatures.

The styles are the records of `callbridge.adapters.registry`; this module only decides.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from callbridge.adapters.registry import Style, style_names, styles
from callbridge.callbacks import Callback


def supported_styles() -> list[str]:
    """The names of every style ``to_lightning`` accepts."""
    return style_names()


def foreign_styles() -> list[Style]:
    """The registered foreign styles, in detection order."""
    return styles()


def describe(obj: Any) -> str:
    """``module.Class`` of an object (or class), for messages; ``path/file.py:Class`` for a class that
    [`load_class_from_file`][callbridge.adapters.loading.load_class_from_file] loaded from a file."""
    cls = obj if isinstance(obj, type) else type(obj)
    source = getattr(sys.modules.get(cls.__module__), "__callbridge_source__", None)
    if source is not None:
        return f"{source}:{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_lightning_callback(obj: Any) -> bool:
    return any(
        c.__module__.startswith(("lightning.", "pytorch_lightning.")) and c.__name__ == "Callback"
        for c in type(obj).__mro__
    )


def _base_class_checks() -> list[tuple[str, Callable[[Any], bool]]]:
    checks: list[tuple[str, Callable[[Any], bool]]] = [(style.name, style.is_instance) for style in styles()]
    checks.append(("lightning", _is_lightning_callback))
    checks.append(("callbridge", lambda obj: isinstance(obj, Callback)))
    return checks


def detect_style(obj: Any) -> str:
    """The style ``obj`` is written in, or a ``TypeError`` that names the candidates.

    Real base classes decide first; an object that derives from none is matched by its hook
    signatures. Matching two styles, or none, is an error. A class is accepted only by a style whose
    home framework takes classes (``Style.accepts_classes``); any other class is an error.
    """
    if isinstance(obj, type):
        by_class = [style.name for style in styles() if style.accepts_classes and style.is_instance(obj)]
        if len(by_class) == 1:  # a style whose home framework takes classes (HF's Trainer): adapt instantiates it
            return by_class[0]
        raise TypeError(f"got the class {describe(obj)}, not an instance: pass {obj.__qualname__}(...) instead")
    by_base = [name for name, check in _base_class_checks() if check(obj)]
    if len(by_base) == 1:
        return by_base[0]
    if len(by_base) > 1:
        raise TypeError(
            f"{describe(obj)} derives from the base classes of several callback styles "
            f"({', '.join(by_base)}); callbridge cannot tell which hooks it means. Derive from one only."
        )
    by_signature = [style.name for style in styles() if style.looks_like(obj)]
    if len(by_signature) == 1:
        return by_signature[0]
    if len(by_signature) > 1:
        raise TypeError(
            f"{describe(obj)} has hooks of several callback styles ({', '.join(by_signature)}); "
            "derive it from one style's base class to say which it is"
        )
    raise TypeError(
        f"{describe(obj)} is not a callback of any supported style "
        f"(supported: {', '.join(supported_styles())}). A unified callback derives from "
        "callbridge.callbacks.Callback; a Lightning one from lightning.pytorch.Callback."
    )
