"""Runs one Keras callback on the scripted run twice: by ``keras.Model.fit/evaluate/predict`` (home) and by a
Lightning Trainer through callbridge (bridge), and records what it did and saw on each side."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from callbridge.adapters.conformance import Factory, error_text, scripted_trainer
from callbridge.adapters.keras.conformance.scripted import Script, keras_model, lightning_module
from callbridge.adapters.keras.detect import KERAS_HOOKS, overrides
from callbridge.callbacks import Callback, CallbackContext

#: ``probe(workdir) -> data``: collects side effects the files alone do not show (an MLflow store's runs).
Probe = Callable[[Path], Any]

_TIMES = re.compile(
    r"\d+(\.\d+)?\s?(ms|us|µs|s)(/step|/it|/batch|/epoch)?\b|[\d.?]+\s?(it|batch|epoch)/s"
    r"|(?:(?<=[\[<])|(?<=ETA: ))\d+:\d\d(:\d\d)?"  # clock times only where tqdm and Keras print them
)


_REDRAW = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x08+")
_PADDED = re.compile(r" {2,}<t>")  # tqdm pads a rate to a fixed width: the padding follows the rate's digits
_BAR = re.compile(r"\|[#\d ]+\|")  # a text progress bar's body: its width follows the timing text's length


def normalize_output(text: str) -> str:
    """Printed text without what depends on the clock (durations, rates), terminal colours and backspaces,
    with ``\\r`` redraws as lines. A clock time is masked only where a progress bar prints one.

    Examples:
        >>> normalize_output("epoch 1:10 done [00:01<00:02, 3.52it/s]\\r2/2 - 0s 12ms/step - loss: 0.5")
        'epoch 1:10 done [<t><<t>, <t>]\\n2/2 - <t> <t> - loss: 0.5'
    """
    text = _REDRAW.sub("", text)
    lines = [
        _BAR.sub("|<bar>|", _PADDED.sub(" <t>", _TIMES.sub("<t>", line))).rstrip()
        for line in text.replace("\r", "\n").split("\n")
    ]
    return "\n".join(line for line in lines if line)


def plain(value: Any) -> Any:
    """A logs value as JSON-friendly data: floats stay floats, arrays become ``{"ndarray": shape}``."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
        return {"ndarray": list(value.shape), "sum": round(float(np.asarray(value, dtype="float64").sum()), 5)}
    try:
        return {"type": type(value).__name__, "value": float(value)}
    except (TypeError, ValueError):
        return {"type": type(value).__name__}


def instrument(callback: Any, trace: list[Any]) -> None:
    """Records every hook the callback overrides (set on the instance, as a callback may do itself): the hook,
    its index and a copy of the ``logs`` it received. ``set_model``/``set_params`` are recorded too."""
    for hook in ("set_model", "set_params", *KERAS_HOOKS):
        if hook in ("set_model", "set_params"):
            if not callable(getattr(callback, hook, None)):
                continue
        elif not overrides(callback, hook):
            continue
        original = getattr(callback, hook)
        setattr(callback, hook, _recorder(hook, original, trace))


def _recorder(hook: str, original: Callable[..., Any], trace: list[Any]) -> Callable[..., Any]:
    def record(*args: Any, **kwargs: Any) -> Any:
        if hook == "set_model":
            trace.append([hook, None, None])
        elif hook == "set_params":
            trace.append([hook, None, {k: plain(v) for k, v in sorted((args[0] or {}).items())}])
        else:
            logs = kwargs.get("logs", args[-1] if args and isinstance(args[-1], dict) else None)
            index = args[0] if args and not isinstance(args[0], dict) else None
            trace.append([hook, index, None if logs is None else {k: plain(v) for k, v in sorted(logs.items())}])
        return original(*args, **kwargs)

    return record


@contextlib.contextmanager
def side_effects_contained(workdir: Path) -> Iterator[io.StringIO]:
    """Inside ``workdir``, printed output captured, warnings recorded, Lightning's info lines quiet; all restored."""
    workdir.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    buffer = io.StringIO()
    quiet = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [logger.level for logger in quiet]
    os.chdir(workdir)
    try:
        for logger in quiet:
            logger.setLevel(logging.WARNING)
        redirect_out, redirect_err = contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer)
        with warnings.catch_warnings(record=True), redirect_out, redirect_err:
            yield buffer
    finally:
        os.chdir(previous)
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def files_in(workdir: Path) -> dict[str, str]:
    """Every file a side wrote: text files with their content, others as ``<binary N bytes>``."""
    out = {}
    for path in sorted(workdir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
            out[str(path.relative_to(workdir))] = text if "\x00" not in text else "<binary>"
        except UnicodeDecodeError:
            out[str(path.relative_to(workdir))] = "<binary>"
    return out


def run_home(make: Factory, script: Script, workdir: Path, probe: Probe | None = None) -> dict[str, Any]:
    """The callback under ``keras.Model.fit`` (validation each epoch), then ``evaluate`` and ``predict``."""
    import keras

    data = script.data()
    model = keras_model(script)
    trace: list[Any] = []
    observed: dict[str, Any] = {"lr": [], "epochs": 0}

    class Observer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            observed["epochs"] += 1
            observed["lr"].append(float(self.model.optimizer.learning_rate))

    error = None
    history: Any = None
    with side_effects_contained(workdir) as printed:
        callback = make(workdir)
        instrument(callback, trace)
        try:
            fitted = model.fit(
                data["x"],
                data["y"],
                batch_size=script.batch_size,
                epochs=script.epochs,
                verbose=script.verbose,
                validation_data=(data["x_val"], data["y_val"]),
                shuffle=False,
                callbacks=[callback, Observer()],
            )
            history = fitted.history
            x_val, y_val, size = data["x_val"], data["y_val"], script.batch_size
            model.evaluate(x_val, y_val, batch_size=size, verbose=script.verbose, callbacks=[callback])
            model.predict(x_val, batch_size=size, verbose=script.verbose, callbacks=[callback])
        except Exception as exc:
            error = error_text(exc)
    return {
        "trace": trace,
        "output": normalize_output(printed.getvalue()),
        "files": files_in(workdir),
        "epochs": observed["epochs"],
        "steps": int(model.optimizer.iterations),
        "lr": observed["lr"],
        "final_lr": float(model.optimizer.learning_rate),
        "weights": [w.tolist() for w in model.get_weights()],
        "history": history,
        "error": error,
        "probe": probe(workdir) if probe is not None else None,
    }


class _Observer(Callback):
    """Counts epochs and reads the learning rate at each epoch's start, after the Keras callbacks."""

    priority = 1000

    def __init__(self) -> None:
        self.lr: list[float] = []
        self.epochs = 0
        self.steps = 0
        self.final_lr = 0.0

    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        self.epochs += 1
        self.lr.append(float(np.float32(ctx.learning_rate)))

    def on_train_end(self, ctx: CallbackContext) -> None:
        self.steps = ctx.step
        self.final_lr = float(np.float32(ctx.learning_rate))


def run_bridge(make: Factory, script: Script, workdir: Path, probe: Probe | None = None) -> dict[str, Any]:
    """The callback under a Lightning Trainer through ``to_lightning``: ``fit`` (validation each epoch),
    then ``test`` and ``predict`` on the validation data."""
    from callbridge.adapters import to_lightning
    from callbridge.adapters.keras.adapter import KerasAdapter

    module = lightning_module(script)
    trace: list[Any] = []
    observer = _Observer()
    error = None
    history: Any = None
    trainer = None
    with side_effects_contained(workdir) as printed:
        callback = make(workdir)
        instrument(callback, trace)
        try:
            callbacks = to_lightning([callback, observer], verbose=script.verbose)
            trainer = scripted_trainer(callbacks, max_epochs=script.epochs, default_root_dir=str(workdir))
            adapter = next(cb for cb in callbacks[0].callbacks if isinstance(cb, KerasAdapter))
            trainer.fit(module)
            history = adapter.model.history.history
            trainer.test(module, verbose=False)
            trainer.predict(module)
        except Exception as exc:
            error = error_text(exc)
    weight, bias = (p.detach().cpu().numpy() for p in module.layer.parameters())
    if trainer is not None:  # read after the run: an exception may have skipped the observer's on_train_end
        observer.steps = trainer.global_step
        observer.final_lr = (
            float(np.float32(trainer.optimizers[0].param_groups[0]["lr"])) if trainer.optimizers else 0.0
        )
    return {
        "trace": trace,
        "output": normalize_output(printed.getvalue()),
        "files": files_in(workdir),
        "epochs": observer.epochs,
        "steps": observer.steps,
        "lr": observer.lr,
        "final_lr": observer.final_lr,
        "weights": [weight.T.tolist(), bias.tolist()],
        "history": history,
        "error": error,
        "probe": probe(workdir) if probe is not None else None,
    }
