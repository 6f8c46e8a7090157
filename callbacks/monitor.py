"""Finding a monitored metric, and the one error for a monitor that is never logged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Prefix aliases tried when the exact monitor key was not logged: the seed says ``eval_loss``,
# Lightning users log ``val_loss``.
_ALIASES = (("eval_", "val_"), ("val_", "eval_"))


class MonitorError(KeyError):
    """A callback's ``monitor`` names a metric that was never logged; the message lists the keys that were.

    A ``KeyError`` (the key is missing), raised by every built-in that monitors a metric
    ([`EarlyStoppingCallback`][callbridge.callbacks.early_stopping.EarlyStoppingCallback],
    [`CheckpointCallback`][callbridge.callbacks.checkpoint.CheckpointCallback]).

    Attributes:
        owner: the callback's class name.
        monitor: the monitored name.
        logged: the keys that were logged, sorted.

    Examples:
        >>> error = MonitorError("EarlyStoppingCallback", "val_acc", {"val_loss": 0.5})
        >>> print(error)  # doctest: +ELLIPSIS
        EarlyStoppingCallback: monitor 'val_acc' was never logged (looked for 'val_acc' or 'eval_acc'); keys...
        >>> isinstance(error, KeyError)
        True
    """

    def __init__(self, owner: str, monitor: str, logged: Iterable[str], hint: str = "") -> None:
        self.owner = owner
        self.monitor = monitor
        self.logged = sorted(logged)
        super().__init__(missing_monitor_message(owner, monitor, self.logged) + hint)

    def __str__(self) -> str:  # KeyError's str() quotes its argument; this one is a sentence
        return str(self.args[0])


def monitor_candidates(monitor: str) -> tuple[str, ...]:
    """The keys that satisfy ``monitor``: the exact key first, then its ``eval_`` <-> ``val_`` alias."""
    for prefix, other in _ALIASES:
        if monitor.startswith(prefix):
            return (monitor, other + monitor[len(prefix) :])
    return (monitor,)


def find_monitor(monitor: str, metrics: Mapping[str, float]) -> tuple[str, float] | None:
    """``(key, value)`` of the first candidate key of ``monitor`` present in ``metrics``, else None."""
    for key in monitor_candidates(monitor):
        if key in metrics:
            return key, metrics[key]
    return None


def missing_monitor_message(owner: str, monitor: str, logged: Iterable[str]) -> str:
    """The sentence `MonitorError` carries (also used for warnings)."""
    tried = " or ".join(repr(k) for k in monitor_candidates(monitor))
    keys = ", ".join(sorted(logged)) or "none"
    return f"{owner}: monitor {monitor!r} was never logged (looked for {tried}); keys logged: {keys}"
