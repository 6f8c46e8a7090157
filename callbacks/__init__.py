"""The unified callback API: one [`Callback`][Callback] interface, one [`CallbackContext`][CallbackContext], and
built-ins.

Nothing here imports Lightning: the same callbacks run under a Lightning Trainer (through
[`callbridge.adapters.to_lightning`][callbridge.adapters.lightning.to_lightning]) and in a hand-written PyTorch loop
(through [`CallbackList`][CallbackList]).
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
