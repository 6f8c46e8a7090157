"""Keras variables that mirror values held by torch: the learning rate and the optimizer's step count.

A callback sees a real ``keras.Variable`` (float32 learning rate, int64 iterations): ``assign``, ``numpy()``,
``float()``, ``keras.ops`` all work as at home. The value is read from torch when the variable is read (so a
torch LR scheduler's changes show), and an ``assign`` writes through to every torch optimizer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


@functools.lru_cache(maxsize=1)
def _synced_class() -> type:
    from callbridge.adapters.keras.backend import keras_or_none

    keras = keras_or_none()
    if keras is None:
        return _PlainVariable

    class SyncedVariable(keras.Variable):  # type: ignore[misc, name-defined]
        """A ``keras.Variable`` whose value lives in torch (read on access, written through on assign)."""

        def bind(self, read: Callable[[], Any], write: Callable[[Any], None] | None) -> None:
            self.callbridge_read = read
            self.callbridge_write = write
            self.callbridge_seen: Any = None

        @property
        def value(self) -> Any:
            read = getattr(self, "callbridge_read", None)
            if read is not None:
                current = read()
                if current is not None and current != self.callbridge_seen:
                    self.callbridge_seen = current
                    super().assign(current)
            return super().value

        def assign(self, value: Any) -> Any:
            result = super().assign(value)
            write = getattr(self, "callbridge_write", None)
            if write is not None:
                write(result.item() if hasattr(result, "item") else result)
                self.callbridge_seen = self.callbridge_read()
            return result

        def __repr__(self) -> str:
            _ = self.value
            return super().__repr__()

    return SyncedVariable


class _PlainVariable:
    """What a duck-typed callback gets when Keras is not installed: float/int conversion, ``numpy``, ``assign``."""

    def __init__(self, value: Any, dtype: str, name: str) -> None:
        self.dtype, self.name = dtype, name
        self.callbridge_read: Callable[[], Any] | None = None
        self.callbridge_write: Callable[[Any], None] | None = None
        self._value = value

    def bind(self, read: Callable[[], Any], write: Callable[[Any], None] | None) -> None:
        self.callbridge_read, self.callbridge_write = read, write

    def numpy(self) -> Any:
        import numpy as np

        value = self.callbridge_read() if self.callbridge_read is not None else self._value
        return np.array(value, dtype=self.dtype)

    def __float__(self) -> float:
        return float(self.numpy())

    def __int__(self) -> int:
        return int(self.numpy())

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        value = self.numpy()
        return value.astype(dtype) if dtype else value

    def assign(self, value: Any) -> Any:
        self._value = value
        if self.callbridge_write is not None:
            self.callbridge_write(float(value))
        return value

    def __repr__(self) -> str:
        return f"<Variable path={self.name}, shape=(), dtype={self.dtype}, value={self.numpy()}>"


def synced_variable(name: str, dtype: str, read: Callable[[], Any], write: Callable[[Any], None] | None) -> Any:
    """A scalar Keras variable named ``name`` whose value is ``read()``; ``assign`` calls ``write(value)``."""
    cls = _synced_class()
    initial = read()
    if cls is _PlainVariable:
        variable = _PlainVariable(initial, dtype, name)
    else:
        variable = cls(initial if initial is not None else 0, dtype=dtype, trainable=False, name=name)
    variable.bind(read, write)
    return variable
