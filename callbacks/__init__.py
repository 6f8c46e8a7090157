"""The unified callback API: one :class:`Callback` interface, one :class:`CallbackContext`, and built-ins.

Nothing here imports Lightning: the same callbacks run under a Lightning Trainer (through
:func:`callbridge.adapters.to_lightning`) and in a hand-written PyTorch loop (through :class:`CallbackList`).
"""

from callbridge.callbacks.base import HOOKS, Callback
from callbridge.callbacks.callback_list import CallbackList
from callbridge.callbacks.checkpoint import CheckpointCallback
from callbridge.callbacks.context import CallbackContext, EngineRequests
from callbridge.callbacks.early_stopping import EarlyStoppingCallback
from callbridge.callbacks.metric_logging import LoggingBackend, LoggingCallback
from callbridge.callbacks.monitor import MonitorError
from callbridge.callbacks.progress import ProgressCallback

__all__ = [
    "HOOKS",
    "Callback",
    "CallbackContext",
    "CallbackList",
    "CheckpointCallback",
    "EarlyStoppingCallback",
    "EngineRequests",
    "LoggingBackend",
    "LoggingCallback",
    "MonitorError",
    "ProgressCallback",
]
