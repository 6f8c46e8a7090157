"""Many callbacks behind one object, for engines and hand-written loops."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from callbridge.callbacks.base import HOOKS, Callback
from callbridge.callbacks.context import CallbackContext


class CallbackList:
    """Dispatches each hook to every callback that implements it, in priority order.

    Lower ``priority`` runs first; ties keep the order given. Every callback receives every event,
    also after an earlier one set ``ctx.should_stop``. Callbacks marked ``rank_zero_only`` are left
    out when ``is_global_zero`` is False.

    Examples:
        A plain PyTorch loop:
        >>> import torch
        >>> from callbridge.callbacks import Callback, CallbackContext, CallbackList
        >>> class StopAfterTwo(Callback):
        ...     def on_epoch_end(self, ctx):
        ...         ctx.should_stop = ctx.epoch >= 1
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> callbacks = CallbackList([StopAfterTwo()])
        >>> ctx = CallbackContext(model=model, optimizer=opt)
        >>> callbacks.on_train_begin(ctx)
        >>> for epoch in range(10):
        ...     ctx.epoch = epoch
        ...     callbacks.on_epoch_begin(ctx)
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     opt.zero_grad(); loss.backward(); opt.step()
        ...     ctx.loss, ctx.step = loss.detach(), ctx.step + 1
        ...     callbacks.on_step_end(ctx)
        ...     callbacks.on_epoch_end(ctx)
        ...     if ctx.should_stop:
        ...         break
        >>> callbacks.on_train_end(ctx)
        >>> ctx.epoch
        1
    """

    def __init__(self, callbacks: Iterable[Callback] = (), *, is_global_zero: bool = True) -> None:
        self._is_global_zero = is_global_zero
        self._callbacks: list[Callback] = []
        self.extend(callbacks)

    @property
    def is_global_zero(self) -> bool:
        """Whether this process is global rank zero; False leaves out ``rank_zero_only`` callbacks."""
        return self._is_global_zero

    @is_global_zero.setter
    def is_global_zero(self, value: bool) -> None:
        self._is_global_zero = bool(value)
        self._rebuild()

    def append(self, callback: Callback) -> None:
        self.extend([callback])

    def extend(self, callbacks: Iterable[Callback]) -> None:
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"CallbackList takes callbridge.callbacks.Callback instances, got "
                    f"{type(callback).__module__}.{type(callback).__qualname__}; wrap other styles "
                    "with callbridge.adapters.to_lightning or their adapter"
                )
            self._callbacks.append(callback)
        # sorted() is stable: equal priorities keep registration order.
        self._callbacks.sort(key=lambda cb: cb.priority)
        self._rebuild()

    def _rebuild(self) -> None:
        self._all_listeners: dict[str, tuple[Callback, ...]] = {
            hook: tuple(cb for cb in self._callbacks if hook in cb.implemented_hooks()) for hook in HOOKS
        }
        self._listeners: dict[str, tuple[Callback, ...]] = {
            hook: tuple(cb for cb in cbs if self.is_global_zero or not cb.rank_zero_only)
            for hook, cbs in self._all_listeners.items()
        }

    @property
    def callbacks(self) -> list[Callback]:
        """The callbacks in dispatch order."""
        return list(self._callbacks)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self._callbacks)

    def __len__(self) -> int:
        return len(self._callbacks)

    def listeners(self, hook: str, *, all_ranks: bool = False) -> tuple[Callback, ...]:
        """The callbacks that run at ``hook`` here (or on any rank, with ``all_ranks``)."""
        return (self._all_listeners if all_ranks else self._listeners)[hook]

    def dispatch(self, hook: str, ctx: CallbackContext) -> None:
        """Call ``hook`` on every callback that implements it."""
        if ctx.callbacks is None:
            ctx.callbacks = self
        for callback in self._listeners[hook]:
            getattr(callback, hook)(ctx)

    def state_dict(self) -> dict[str, Any]:
        """Every callback's [`Callback.state_dict`][Callback.state_dict], under its unique
        [`Callback.state_key`][Callback.state_key]."""
        return {key: cb.state_dict() for key, cb in zip(self.state_keys(), self._callbacks, strict=True)}

    def load_state_dict(self, states: Mapping[str, Any]) -> None:
        """Gives each callback its entry of a [`state_dict`][state_dict] result (callbacks without one are left
        alone)."""
        for key, callback in zip(self.state_keys(), self._callbacks, strict=True):
            if key in states:
                callback.load_state_dict(states[key])

    def state_keys(self) -> list[str]:
        """Each callback's key in [`state_dict`][state_dict]: its ``state_key``, with ``[1]``, ``[2]`` for repeats."""
        seen: dict[str, int] = {}
        keys = []
        for callback in self._callbacks:
            key = callback.state_key
            count = seen.get(key, 0)
            seen[key] = count + 1
            keys.append(key if count == 0 else f"{key}[{count}]")
        return keys

    def __getattr__(self, name: str) -> Any:  # only reached for names the class does not define
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}; hooks are: {', '.join(HOOKS)}")

    def __repr__(self) -> str:
        return f"CallbackList({self._callbacks!r})"


def _hook_method(hook: str) -> Any:
    def call(self: CallbackList, ctx: CallbackContext) -> None:
        self.dispatch(hook, ctx)

    call.__name__ = call.__qualname__ = hook
    call.__doc__ = f"``dispatch({hook!r}, ctx)``: call ``{hook}`` on every callback that implements it."
    return call


# The named hooks, so that a loop reads like the Keras and seed examples: ``callbacks.on_epoch_end(ctx)``.
for _hook in HOOKS:
    setattr(CallbackList, _hook, _hook_method(_hook))
del _hook
