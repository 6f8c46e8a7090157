"""What a Keras callback class does, read from its own source (not Keras'): for ``callbridge inspect`` and to know
which hooks it may assign at run time."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

from callbridge.adapters.keras.detect import KERAS_HOOKS, LIBRARY_PACKAGES


@functools.lru_cache(maxsize=256)
def _trees(cls: type) -> tuple[ast.AST, ...]:
    trees = []
    for klass in cls.__mro__:
        if klass is object or klass.__module__.split(".")[0] in LIBRARY_PACKAGES:
            continue
        try:
            trees.append(ast.parse(textwrap.dedent(inspect.getsource(klass))))
        except (OSError, TypeError, SyntaxError):
            continue
    return tuple(trees)


def _is_self_attr(node: ast.AST, name: str | None = None) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and (name is None or node.attr == name)
    )


def model_attributes(cls: type) -> set[str]:
    """``X`` in every ``self.model.X`` of the class's own source."""
    names: set[str] = set()
    for tree in _trees(cls):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_self_attr(node.value, "model"):
                names.add(node.attr)
    return names


def assigned_hooks(cls: type) -> frozenset[str]:
    """Keras hooks the class assigns to its instances (``self.on_batch_end = ...``), in any method."""
    names = set()
    for tree in _trees(cls):
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if _is_self_attr(target) and target.attr in KERAS_HOOKS:  # type: ignore[attr-defined]
                    names.add(target.attr)  # type: ignore[attr-defined]
    return frozenset(names)


#: Hooks after which ``keras.Model.fit`` checks ``stop_training`` (or where a stop cannot matter any more).
_CHECKED_AFTER = frozenset(
    {"on_epoch_end", "on_train_batch_end", "on_batch_end", "on_train_end", "on_test_begin", "on_test_end"}
    | {"on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end"}
    | {"on_predict_batch_begin", "on_predict_batch_end"}
)


def stops_outside_epoch_end(cls: type) -> bool:
    """The class's own source sets ``stop_training`` somewhere other than a hook after which fit checks it
    (``on_train_begin``, ``on_epoch_begin``, a batch-begin hook or a helper method): such a stop must wait for
    the end of the next training batch, so the adapter listens to batch ends."""
    for tree in _trees(cls):
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or function.name in _CHECKED_AFTER:
                continue
            for node in ast.walk(function):
                targets = node.targets if isinstance(node, ast.Assign) else []
                if any(isinstance(t, ast.Attribute) and t.attr == "stop_training" for t in targets):
                    return True
    return False
