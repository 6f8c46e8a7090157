"""Which callback style an object is written in: real base classes first, then hook signatures.

Each foreign style is one adapter module that exposes:

* ``STYLE``: the style's name, as shown in messages (``"keras"``);
* ``is_instance(obj) -> bool``: the object derives from the style's real base class (checked
  without importing the style's library);
* ``looks_like(obj) -> bool``: the object follows the style's hook names and signatures;
* ``adapt(objs, **options) -> list[Callback]``: unified callbacks that run those objects (all
  objects of the style, in registration order, so an adapter can share state between them);
* ``HOOK_MAP``: each hook of the style and the Lightning hook it runs from (``callbridge inspect``);
  optionally ``inspect_problems(cls) -> list[str]``: what will not work under Lightning.

A new style costs one module and one line in :data:`FOREIGN_STYLES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from callbridge.callbacks import Callback

#: Modules of the foreign styles, in detection order.
FOREIGN_STYLES: tuple[str, ...] = (
    "callbridge.adapters.keras",
    "callbridge.adapters.hydra",
    "callbridge.adapters.warprec",
)

NATIVE_STYLES = ("callbridge", "lightning")


def style_modules() -> list[ModuleType]:
    """The adapter module of each foreign style."""
    return [importlib.import_module(name) for name in FOREIGN_STYLES]


def supported_styles() -> list[str]:
    return [*NATIVE_STYLES, *(module.STYLE for module in style_modules())]


def describe(obj: Any) -> str:
    """``module.Class`` of an object, for messages."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_lightning_callback(obj: Any) -> bool:
    return any(
        c.__module__.startswith(("lightning.", "pytorch_lightning.")) and c.__name__ == "Callback"
        for c in type(obj).__mro__
    )


def _base_class_checks() -> list[tuple[str, Callable[[Any], bool]]]:
    checks: list[tuple[str, Callable[[Any], bool]]] = [(m.STYLE, m.is_instance) for m in style_modules()]
    checks.append(("lightning", _is_lightning_callback))
    checks.append(("callbridge", lambda obj: isinstance(obj, Callback)))
    return checks


def detect_style(obj: Any) -> str:
    """The style ``obj`` is written in, or a ``TypeError`` that names the candidates.

    Real base classes decide first; an object that derives from none is matched by its hook
    signatures. Matching two styles, or none, is an error.
    """
    if isinstance(obj, type):
        raise TypeError(f"got the class {describe(obj)}, not an instance: pass {obj.__qualname__}(...) instead")
    by_base = [name for name, check in _base_class_checks() if check(obj)]
    if len(by_base) == 1:
        return by_base[0]
    if len(by_base) > 1:
        raise TypeError(
            f"{describe(obj)} derives from the base classes of several callback styles "
            f"({', '.join(by_base)}); callbridge cannot tell which hooks it means. Derive from one only."
        )
    by_signature = [module.STYLE for module in style_modules() if module.looks_like(obj)]
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
