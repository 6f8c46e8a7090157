"""Where callback classes come from: a dotted path (``pkg.mod.Class``) or a Python file (WarpRec's
``callback_path``/``callback_name``, ``callbridge verify file.py:Class``).

Examples:
    >>> resolve_target("EarlyStopping").__module__
    'lightning.pytorch.callbacks.early_stopping'
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

#: Where a bare class name (``EarlyStopping``) is looked up, in order.
SHORT_NAME_MODULES = ("lightning.pytorch.callbacks", "callbridge.callbacks")


def resolve_target(path: str, key: str = "target") -> Any:
    """The object a dotted path names (``pkg.mod.Class``; a bare ``Class`` is looked up in
    ``lightning.pytorch.callbacks`` and ``callbridge.callbacks``).

    Raises:
        ImportError: nothing of that name can be imported; the message names ``key`` and every cause.
    """
    module_name, _, attr = path.rpartition(".")
    candidates = [module_name] if module_name else list(SHORT_NAME_MODULES)
    errors = []
    for candidate in candidates:
        try:
            module = importlib.import_module(candidate)
        except ImportError as error:
            errors.append(f"{type(error).__name__}: {error}")
            continue
        if hasattr(module, attr):
            return getattr(module, attr)
        errors.append(f"module {candidate!r} has no attribute {attr!r}")
    raise ImportError(f"unknown class: {key} {path!r} cannot be imported ({'; '.join(errors)})")


def load_class_from_file(path: str | os.PathLike[str], name: str) -> type:
    """The class ``name`` defined in the Python file ``path`` (WarpRec's ``callback_path``/``callback_name``).

    The file is imported as a module of its own (named after its path), once per process.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the path is not a ``.py`` file.
        ImportError: the file fails to import (the original error is chained).
        AttributeError: the file defines no class ``name`` (the message lists the classes it defines).

    Examples:
        >>> import pathlib, tempfile
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "my_callbacks.py"
        >>> _ = file.write_text("class Plot:\\n    def on_training_complete(self, model, **kw): pass\\n")
        >>> load_class_from_file(file, "Plot").__name__
        'Plot'
    """
    file = Path(path).expanduser().resolve()
    if not file.exists():
        raise FileNotFoundError(f"callback file {str(path)!r} does not exist (resolved to {file})")
    if file.suffix != ".py" or not file.is_file():
        raise ValueError(f"callback file {str(path)!r} is not a .py file")
    module = _import_file(file)
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        classes = sorted(n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__)
        what = "is not a class" if cls is not None else "is not defined"
        raise AttributeError(f"{name!r} {what} in {file.name}; classes defined there: {', '.join(classes) or 'none'}")
    return cls


_FILE_MODULE_PREFIX = "callbridge_file_"


def _import_file(file: Path) -> ModuleType:
    module_name = _FILE_MODULE_PREFIX + "".join(c if c.isalnum() else "_" for c in str(file))
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    module.__callbridge_source__ = str(file)  # messages name the file, not this module name (styles.describe)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise ImportError(f"importing {file} failed: {type(error).__name__}: {error}") from error
    if "ray.cloudpickle" in sys.modules:  # Ray in use: its workers cannot import this file, ship it by value
        sys.modules["ray.cloudpickle"].register_pickle_by_value(module)
    return module


def is_loaded_from_file(module_name: str) -> bool:
    """Whether ``module_name`` is a module that [`load_class_from_file`][load_class_from_file] imported from a file."""
    return module_name.startswith(_FILE_MODULE_PREFIX)
