"""The logging built-in: :class:`LoggingCallback` (callback.py), its background writer (writer.py) and the
stores it writes to (sinks.py). Named ``metric_logging`` so that it never shadows the standard ``logging``."""

from callbridge.callbacks.metric_logging.callback import LoggingBackend, LoggingCallback

__all__ = ["LoggingBackend", "LoggingCallback"]
