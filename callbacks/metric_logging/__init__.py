"""The logging built-in, named so that it never shadows the standard ``logging``.

[LoggingCallback][callbridge.callbacks.LoggingCallback] (callback.py) decides what is logged, in Lightning's
conventions (conventions.py); a background writer (writer.py) drives the stores (sinks.py); MLflow values go
through a durable spool (spool.py) and a sender of their own (mlflow_store.py); ``callbridge sync`` (sync.py)
stores what a spool kept.
"""

from callbridge.callbacks.metric_logging.callback import LoggingBackend, LoggingCallback
from callbridge.callbacks.metric_logging.writer import StoreWarning

__all__ = ["LoggingBackend", "LoggingCallback", "StoreWarning"]
