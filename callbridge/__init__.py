"""callbridge: run Keras, Hydra, WarpRec/Ray and unified callbacks unchanged under one Lightning Trainer.

The public names load lazily: ``import callbridge`` imports neither Lightning nor any optional extra
(Keras, Hydra, Ray) until a name that needs one is used.

Examples:
    >>> import callbridge
    >>> callbridge.__version__ == __import__("importlib.metadata").metadata.version("callbridge")
    True
    >>> class Halt(callbridge.Callback):
    ...     def on_epoch_end(self, ctx: callbridge.CallbackContext) -> None:
    ...         ctx.should_stop = ctx.epoch >= 1
    >>> ctx = callbridge.CallbackContext()
    >>> callbacks = callbridge.CallbackList([Halt()])
    >>> callbacks.on_epoch_end(ctx)
    >>> ctx.should_stop
    False
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__: str = version("callbridge")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS: dict[str, str] = {
    "Callback": "callbridge.callbacks",
    "CallbackContext": "callbridge.callbacks",
    "CallbackList": "callbridge.callbacks",
    "CheckpointCallback": "callbridge.callbacks",
    "EarlyStoppingCallback": "callbridge.callbacks",
    "LoggingCallback": "callbridge.callbacks",
    "ProgressCallback": "callbridge.callbacks",
    "ConfigError": "callbridge.adapters.config",
    "from_config": "callbridge.adapters.config",
    "to_lightning": "callbridge.adapters.lightning",
}

__all__ = [
    "Callback",
    "CallbackContext",
    "CallbackList",
    "CheckpointCallback",
    "ConfigError",
    "EarlyStoppingCallback",
    "LoggingCallback",
    "ProgressCallback",
    "__version__",
    "from_config",
    "to_lightning",
]

if TYPE_CHECKING:  # static analysers and IDEs see the real objects
    from callbridge.adapters.config import ConfigError, from_config
    from callbridge.adapters.lightning import to_lightning
    from callbridge.callbacks import (
        Callback,
        CallbackContext,
        CallbackList,
        CheckpointCallback,
        EarlyStoppingCallback,
        LoggingCallback,
        ProgressCallback,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'callbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
