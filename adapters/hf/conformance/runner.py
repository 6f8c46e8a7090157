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

from callbridge.adapters.conformance import Factory
from callbridge.adapters.hf import EVENTS
from callbridge.adapters.hf.conformance import scripted

#: The flags of ``TrainerControl`` recorded after each hook.
CONTROL_FLAGS = ("should_training_stop", "should_epoch_stop", "should_save", "should_evaluate", "should_log")
_TIMED = re.compile(r"'(\w+_(?:runtime|per_second))': '?[-+\d.e]+'?")


def _plain(value: Any) -> Any:
    """A logged value as comparable data (numbers stay numbers, tensors and others become their repr type)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return {"type": type(value).__name__}


def without_timings(logs: dict[str, Any]) -> dict[str, Any]:
    """A log entry without the values that measure time (`scripted.without_timings`), as comparable data."""
    return {key: _plain(value) for key, value in scripted.without_timings(logs).items()}


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
    """Runs in ``folder``, with MLflow's, TensorBoard's and W&B's default locations in it; restores everything
    after."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR", "WANDB_DIR")
    previous_env = {key: os.environ.get(key) for key in keys}
    cwd = os.getcwd()
    mlflow = _imported("mlflow")
    previous_uri = mlflow.get_tracking_uri() if mlflow is not None else None
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    scripted.set_env(MLFLOW_TRACKING_URI=uri, MLFLOW_RUN_ID=None, MLFLOW_EXPERIMENT_NAME=None)
    scripted.set_env(TENSORBOARD_LOGGING_DIR=None, WANDB_DIR=str(folder))  # W&B keeps its first run's dir otherwise
    if mlflow is not None:
        mlflow.set_tracking_uri(uri)  # an earlier set_tracking_uri in this process wins over the variable
    os.chdir(folder)
    try:
        yield
    finally:
        _finish_open_runs()  # a run a side left open (HF's WandbCallback never finishes its own) stays its own
        os.chdir(cwd)
        scripted.set_env(**previous_env)
        if mlflow is not None:
            with contextlib.suppress(Exception):
                mlflow.flush_async_logging()
            mlflow.set_tracking_uri(previous_uri)


def _finish_open_runs() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        if getattr(wandb, "run", None) is not None:
            wandb.finish()
        wandb.teardown()  # W&B's process-wide settings (its run dir) are read again at the next run
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.end_run()


def _imported(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


def run_side(side: str, make: Factory, folder: Path, epochs: int) -> dict[str, Any]:
    """Runs the callback ``make(folder)`` builds on one side (``"home"`` or ``"bridge"``) in ``folder`` and
    returns what was observed: trace, output, state, weights, files, error."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    callback = make(folder)
    callback = callback() if isinstance(callback, type) else callback
    trace: list[dict[str, Any]] = []
    instrument(callback, trace)
    args = scripted.training_args(
        folder / "output", num_train_epochs=epochs, metric_for_best_model="loss", greater_is_better=False
    )
    printed = io.StringIO()
    error = None
    state = net = None
    with contextlib.redirect_stdout(printed), _side_environment(folder):
        net = scripted.TinyNet()
        try:
            if side == "home":
                state = scripted.run_home([callback], args, net=net).state
            else:
                _, adapter = scripted.run_bridge([callback], args, root=folder, net=net)
                state = adapter.state
        except Exception as exc:  # the callback raised: compared as the error check
            error = f"{type(exc).__name__}: {exc}"
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
_WANDB_RUN = re.compile(r"(offline-run|run)-\d{8}_\d{6}-[0-9a-z]+")
_LIGHTNING_OWN = re.compile(r"(^|/)(lightning_logs|checkpoints)(/|$)")


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
        wandb_run = _WANDB_RUN.search(rel)
        if rel.startswith("wandb/") and wandb_run:  # its logs hold clock times, its history is binary
            found[f"wandb/{wandb_run.group(1)}-<date>-<id>/"] = "<wandb run>"
        elif rel.startswith("wandb/"):
            found[rel] = "<wandb>"
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
