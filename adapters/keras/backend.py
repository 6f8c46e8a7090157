"""Keras' backend: callbridge runs Keras callbacks with Keras 3's torch backend.

Importing `callbridge.adapters.keras` sets ``KERAS_BACKEND=torch`` when Keras has not been imported
yet and the variable is unset (a documented default, like Keras' own). `require_torch_backend` raises a
clear error where Keras was imported with another backend.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def default_to_torch() -> None:
    """``KERAS_BACKEND=torch`` unless it is set or Keras is imported already."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")


def keras_or_none() -> Any:
    """The ``keras`` module with its torch backend, or None when Keras is not imported yet (duck-typed Keras-style
    callbacks never import it: they get plain stand-ins for Keras' objects).

    Raises:
        RuntimeError: Keras runs with another backend.
    """
    if "keras" not in sys.modules:
        return None
    try:
        import keras
    except ImportError:
        return None
    require_torch_backend(keras)
    return keras


def require_torch_backend(keras: Any) -> None:
    """Raises a ``RuntimeError`` that says what to do when ``keras`` was imported with a non-torch backend."""
    name = keras.backend.backend()
    if name != "torch":
        raise RuntimeError(
            f"Keras was imported with the {name!r} backend; callbridge runs Keras callbacks under Lightning with "
            "Keras' torch backend. Set KERAS_BACKEND=torch in the environment before Python starts (or import "
            "callbridge.adapters.keras before keras, which sets it), and check that ~/.keras/keras.json does not "
            "force another backend."
        )
