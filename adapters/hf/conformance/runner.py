"""Runs one HF callback on the scripted run twice, by ``transformers.Trainer`` (home) and by a Lightning Trainer
through callbridge (bridge), and records what it saw and did on each side."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import Factory, error_text, plain, process_preserved, side_runs, wandb_entry
from callbridge.adapters.hf import EVENTS
from callbridge.adapters.hf.conformance import scripted

#: The flags of ``TrainerControl`` recorded after each hook.
CONTROL_FLAGS = ("should_training_stop", "should_epoch_stop", "should_save", "should_evaluate", "should_log")
_TIMED = re.compile(r"'(\w+_(?:runtime|per_second))': '?[-+\d.e]+'?")


def without_timings(logs: dict[str, Any]) -> dict[str, Any]:
    """A log entry without the values that measure time (`scripted.without_timings`), as comparable data."""
    return {key: plain(value) for key, value in scripted.without_timings(logs).items()}


def instrument(callback: Any, trace: list[dict[str, Any]]) -> None:
    """Records each HF event the callback overrides: the event, ``global_step``, ``epoch``, the keyword argument
    names, the ``logs``/``metrics`` it got (timings left out) and the ``control`` flags set after it returned."""
    from transformers import TrainerCallback

    for event in EVENTS:
        method = getattr(type(callback), event, None)
        if method is not None and method is not getattr(TrainerCallback, event, None):
            setattr(callback, event, _recorder(event, getattr(callback, event), trace))


def _recorder(event: str, original: Callable[..., Any], trace: list[dict[str, Any]]) -> Callable[..., Any]:
    def record(args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        result = original(args, state, control, **kwargs)
        values = kwargs.get("logs") if event == "on_log" else kwargs.get("metrics")
        flags = result if result is not None else control
        trace.append(
            {
                "event": event,
                "global_step": state.global_step,
                "epoch": round(float(state.epoch or 0), 4),
                "kwargs": sorted(kwargs),
                "values": None if values is None else without_timings(values),
                "control": [flag for flag in CONTROL_FLAGS if getattr(flags, flag, False)],
            }
        )
        return result

    return record


def normalize_output(text: str) -> str:
    """Printed text without timings (``'train_runtime': 0.12`` -> ``'train_runtime': <t>``) and the clock parts
    a progress bar prints."""
    from callbridge.adapters.keras.conformance.runner import normalize_output as without_clock

    return without_clock(_TIMED.sub(r"'\1': <t>", text))


@contextlib.contextmanager
def _side_environment(folder: Path) -> Iterator[None]:
    """Runs in ``folder``, with MLflow's, TensorBoard's and W&B's default locations in it (see `side_runs`);
    restores the process after (`process_preserved`)."""
    with process_preserved(), side_runs():
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        scripted.set_env(MLFLOW_TRACKING_URI=uri, MLFLOW_RUN_ID=None, MLFLOW_EXPERIMENT_NAME=None)
        scripted.set_env(TENSORBOARD_LOGGING_DIR=None, WANDB_DIR=str(folder))  # W&B: see side_runs
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None:
            mlflow.set_tracking_uri(uri)  # an earlier set_tracking_uri in this process wins over the variable
        os.chdir(folder)
        try:
            yield
        finally:
            if mlflow is not None:
                mlflow.flush_async_logging()


def run_side(side: str, make: Factory, folder: Path, epochs: int) -> dict[str, Any]:
    """Runs the callback ``make(folder)`` builds on one side (``"home"`` or ``"bridge"``) in ``folder`` and
    returns what was observed: trace, output, state, weights, files, error."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    trace: list[dict[str, Any]] = []
    args = scripted.training_args(
        folder / "output", num_train_epochs=epochs, metric_for_best_model="loss", greater_is_better=False
    )
    printed = io.StringIO()
    error = None
    state = None
    with contextlib.redirect_stdout(printed), _side_environment(folder):
        callback = make(folder)  # built inside its side's folder, as the Factory contract says
        callback = callback() if isinstance(callback, type) else callback
        instrument(callback, trace)
        net = scripted.TinyNet()
        try:
            if side == "home":
                state = scripted.run_home([callback], args, net=net).state
            else:
                _, adapter = scripted.run_bridge([callback], args, root=folder, net=net)
                state = adapter.state
        except Exception as exc:  # the callback raised: compared as the error check
            error = error_text(exc)
    return {
        "trace": trace,
        "output": normalize_output(printed.getvalue()),
        "state": _state(state),
        "weights": [round(float(w), 5) for w in net.layer.weight.detach().flatten()],
        "files": files(folder),
        "error": error,
    }


def _state(state: Any) -> dict[str, Any] | None:
    if state is None:
        return None
    best = state.best_model_checkpoint
    return {
        "global_step": state.global_step,
        "epoch": round(float(state.epoch or 0), 4),
        "best_metric": state.best_metric,
        "best_global_step": state.best_global_step,
        "best_model_checkpoint": None if best is None else Path(best).name,
        "log_history": [without_timings(entry) for entry in state.log_history],
    }


_CHECKPOINT = re.compile(r"(^|/)(checkpoint-\d+)/.+$")
_EVENTS_FILE = re.compile(r"events\.out\.tfevents\.[^/]+$")
_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")  # MLflow's run folders
_RUN_DIR = re.compile(r"runs/[A-Z][a-z]{2}\d\d_\d\d-\d\d-\d\d_[^/]+")  # HF's default logging dir
_LIGHTNING_OWN = re.compile(r"^lightning_logs/")  # the bridge runs without a logger: only if a callback adds one


def files(folder: Path) -> dict[str, Any]:
    """``{relative name: content}`` of what the side wrote: text files (csv, json, txt, yaml) by content,
    TensorBoard event files by ``{tag: [steps]}``, an MLflow store by its runs, checkpoint folders by name only
    (HF writes its model files there, callbridge a Lightning ``model.ckpt``), W&B's run folder and other
    binary files by name."""
    found: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        rel = _RUN_ID.sub("<id>", _RUN_DIR.sub("runs/<date>_<host>", path.relative_to(folder).as_posix()))
        if path.is_dir() or _LIGHTNING_OWN.search(rel):
            continue
        checkpoint = _CHECKPOINT.search(rel)
        wandb = wandb_entry(rel)
        if wandb is not None:
            if wandb:
                found[wandb] = "<wandb run>"
        elif checkpoint:
            found[rel[: checkpoint.end(2)] + "/"] = "<checkpoint>"
        elif _EVENTS_FILE.search(rel):
            found[_EVENTS_FILE.sub("events.out.tfevents.*", rel)] = scripted.tb_scalars(path.parent)
        elif path.name == "mlflow.db":
            found[rel] = mlflow_runs(path)
        elif path.suffix in (".csv", ".json", ".txt", ".yaml", ".yml", ".log"):
            found[rel] = _round_numbers(path.read_text(errors="replace").replace(str(folder), "<dir>"))
        else:
            found[rel] = "<binary>"
    return found


def mlflow_runs(store: Path) -> list[dict[str, Any]]:
    """What an MLflow sqlite store holds, run by run: status, metric keys with their steps, param and tag names
    (param values hold the output dir and run name, which differ by side)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = []
    for run in client.search_runs(experiments):
        metrics = {
            key: sorted({m.step for m in client.get_metric_history(run.info.run_id, key)}) for key in run.data.metrics
        }
        tags = sorted(key for key in run.data.tags if not key.startswith("mlflow."))
        runs.append({"status": run.info.status, "metrics": metrics, "params": sorted(run.data.params), "tags": tags})
    return runs


def _round_numbers(text: str) -> str:
    return re.sub(r"-?\d+\.\d+(?:e-?\d+)?", lambda m: _short(float(m.group())), text)


def _short(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.5g}"
