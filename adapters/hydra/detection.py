"""Which objects are Hydra callbacks, and the keyword arguments Hydra passes to each hook.

Nothing here imports hydra: a callback is recognised by its real base class (checked by name on its
MRO) or by hook signatures that accept Hydra's keyword call.
"""

from __future__ import annotations

import inspect
from typing import Any

#: Hydra's hooks, with the keyword arguments Hydra passes to each.
HOOK_KWARGS: dict[str, tuple[str, ...]] = {
    "on_run_start": ("config", "config_name"),
    "on_run_end": ("config", "config_name", "job_return"),
    "on_multirun_start": ("config", "config_name"),
    "on_multirun_end": ("config", "config_name"),
    "on_job_start": ("config", "task_function"),
    "on_job_end": ("config", "job_return"),
}

#: Hooks that Hydra calls in reverse registration order.
END_HOOKS = frozenset({"on_run_end", "on_multirun_end", "on_job_end"})


def is_instance(obj: Any) -> bool:
    """``obj`` derives from ``hydra.experimental.callback.Callback`` (checked without importing hydra).

    Examples:
        >>> is_instance(object())
        False
    """
    return any(c.__module__ == "hydra.experimental.callback" and c.__name__ == "Callback" for c in type(obj).__mro__)


def looks_like(obj: Any) -> bool:
    """``obj`` has at least one Hydra hook, and every Hydra hook it has accepts Hydra's keyword call.

    Examples:
        >>> class Upload:
        ...     def on_job_end(self, config, **kwargs): ...
        >>> class Wrong:
        ...     def on_job_end(self, cfg): ...
        >>> looks_like(Upload()), looks_like(Wrong())
        (True, False)
    """
    found = False
    for hook, kwargs in HOOK_KWARGS.items():
        method = getattr(obj, hook, None)
        if method is None:
            continue
        if not callable(method):
            return False
        try:
            inspect.signature(method).bind(**dict.fromkeys(kwargs))
        except (TypeError, ValueError):
            return False
        found = True
    return found
