"""Keras' ``model.summary``, ``model.predict`` and ``model.evaluate`` on the LightningModule, for callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from callbridge.adapters.keras.keys import Keys, RunningMeans, to_numpy
from callbridge.adapters.keras.keys import batch_size as samples_in

if TYPE_CHECKING:
    from callbridge.adapters.keras.model import KerasModelProxy


def _bytes(count: int) -> str:
    size = float(count * 4)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"  # pragma: no cover


def summary(module: Any, name: str, print_fn: Any = None, line_length: int | None = None) -> None:
    """Keras' summary layout for a torch module: a row per top-level child (no output shapes: torch modules
    have none before a forward pass), then total, trainable and non-trainable parameter counts."""
    rows = [
        (f"{child_name} ({type(child).__name__})", "?", sum(p.numel() for p in child.parameters()))
        for child_name, child in module.named_children()
    ]
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    width = line_length or 80
    lines = [f'Model: "{name}"']
    first = max(30, width - 40)
    lines.append(f"{'Layer (type)':<{first}}{'Output Shape':<25}{'Param #':>15}")
    lines.append("=" * (first + 40))
    lines += [f"{label:<{first}}{shape:<25}{count:>15,}" for label, shape, count in rows]
    lines.append("=" * (first + 40))
    lines.append(f" Total params: {total:,} ({_bytes(total)})")
    lines.append(f" Trainable params: {trainable:,} ({_bytes(trainable)})")
    lines.append(f" Non-trainable params: {total - trainable:,} ({_bytes(total - trainable)})")
    text = "\n".join(lines)
    (print_fn or print)(text)


@contextlib.contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    import torch

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _as_tensor(value: Any, module: Any) -> Any:
    import torch

    tensor = torch.as_tensor(value)
    device = next((p.device for p in module.parameters()), tensor.device)
    if tensor.is_floating_point():
        dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
        return tensor.to(device=device, dtype=dtype)
    return tensor.to(device)


def _batches(arrays: tuple[Any, ...], size: int) -> Iterator[tuple[Any, ...]]:
    count = len(arrays[0])
    for start in range(0, count, size):
        yield tuple(a[start : start + size] for a in arrays)


def _callback_list(model: KerasModelProxy, callbacks: Any, verbose: Any, steps: int) -> Any:
    """Keras' own ``CallbackList`` (a progress bar unless ``verbose=0``), as ``predict``/``evaluate`` build it."""
    from callbridge.adapters.keras.backend import keras_or_none

    keras = keras_or_none()
    if keras is None:
        return _PlainList(list(callbacks or []), model, {"verbose": verbose, "epochs": 1, "steps": steps})
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    return keras.callbacks.CallbackList(
        callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1, steps=steps, model=model
    )


class _PlainList:
    """Calls hooks on duck-typed callbacks when Keras is not installed."""

    def __init__(self, callbacks: list[Any], model: Any, params: dict[str, Any]) -> None:
        self.callbacks = callbacks
        for callback in callbacks:
            callback.model, callback.params = model, params

    def __getattr__(self, hook: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            for callback in self.callbacks:
                method = getattr(callback, hook, None)
                if method is not None:
                    method(*args, **kwargs)

        return call


def predict(model: KerasModelProxy, x: Any, batch_size: int | None, verbose: Any, callbacks: Any) -> Any:
    """``keras.Model.predict`` over the module's ``forward``."""
    import numpy as np

    module = model.context().model
    size = int(batch_size or 32)
    steps = -(-len(x) // size)
    hooks = _callback_list(model, callbacks, verbose, steps)
    outputs = []
    with _eval_mode(module):
        hooks.on_predict_begin()
        for step, (chunk,) in enumerate(_batches((x,), size)):
            hooks.on_predict_batch_begin(step)
            out = to_numpy(module(_as_tensor(chunk, module)))
            outputs.append(out)
            hooks.on_predict_batch_end(step, {"outputs": out})
        hooks.on_predict_end()
    return np.concatenate(outputs) if outputs else np.zeros((0,))


class _Logged:
    """Collects what ``validation_step`` logs through ``self.log`` / ``self.log_dict`` (nothing reaches Lightning)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        self.values[name] = value

    def log_dict(self, dictionary: Any, *args: Any, **kwargs: Any) -> None:
        self.values.update(dictionary)


@contextlib.contextmanager
def _capture_logs(module: Any) -> Iterator[_Logged]:
    """Shadows the module's ``log``/``log_dict`` with instance attributes for the duration, removed after."""
    logged = _Logged()
    module.log, module.log_dict = logged.log, logged.log_dict
    try:
        yield logged
    finally:
        del module.log
        del module.log_dict


def evaluate(
    model: KerasModelProxy, x: Any, y: Any, batch_size: int | None, verbose: Any, callbacks: Any, return_dict: bool
) -> Any:
    """``keras.Model.evaluate`` over the module's ``validation_step``: the loss and metrics it logs (or returns),
    each averaged over samples, with the ``val_`` prefix removed."""
    from callbridge.callbacks.context import as_float

    module = model.context().model
    size = int(batch_size or 32)
    arrays = (x,) if y is None else (x, y)
    steps = -(-len(x) // size)
    hooks = _callback_list(model, callbacks, verbose, steps)
    keys, means, logs = Keys(None), RunningMeans(), {}
    step_fn = getattr(module, "validation_step", None) or module.test_step
    with _eval_mode(module), _capture_logs(module) as logged:
        hooks.on_test_begin()
        for step, chunk in enumerate(_batches(arrays, size)):
            hooks.on_test_batch_begin(step)
            logged.values.clear()
            batch = tuple(_as_tensor(a, module) for a in chunk)
            returned = step_fn(batch if len(batch) > 1 else batch[0], step)
            values = {}
            for name, value in logged.values.items():
                info = keys.classify(name)
                number = as_float(value)
                if info is not None and number is not None:
                    values[info[1][4:] if info[0] == "val" else info[1]] = number
            if not values and returned is not None:
                number = as_float(returned)
                if number is not None:
                    values["loss"] = number
            logs = means.update(values, samples_in(batch))
            hooks.on_test_batch_end(step, dict(logs))
        hooks.on_test_end(dict(logs))
    if return_dict:
        return dict(logs)
    ordered = [logs[k] for k in sorted(logs, key=lambda k: (k != "loss", k))]
    return ordered[0] if len(ordered) == 1 else ordered
