"""HF callbacks under callbridge compared with the same callbacks run by ``transformers.Trainer``.

The scripted run is `callbridge.adapters.hf.conformance.scripted`, the harness behind ``callbridge verify``.

Each module fixture runs one scenario twice, at home and under a real ``lightning.Trainer``; the tests compare
what the callbacks saw and did. The one known difference of order (``on_prediction_step`` of an epoch-end
validation comes before ``on_epoch_end`` under Lightning, which validates before the epoch ends) is checked
explicitly, everything else must be equal.
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from callbridge.adapters.hf.conformance import scripted as H  # noqa: E402
from transformers import EarlyStoppingCallback, PrinterCallback, TrainerCallback  # noqa: E402

EVENTS = (
    "on_init_end",
    "on_train_begin",
    "on_epoch_begin",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_log",
    "on_evaluate",
    "on_prediction_step",
    "on_epoch_end",
    "on_save",
    "on_train_end",
)


class Recorder(TrainerCallback):
    """Records (event, global_step, epoch, the keys of logs/metrics) for every event."""

    def __init__(self) -> None:
        self.trace: list[tuple] = []
        self.kwargs: dict[str, list[str]] = {}


def _recording(event: str):
    def method(self, args, state, control, **kwargs):
        keys = tuple(kwargs.get("logs") or kwargs.get("metrics") or ())
        self.trace.append((event, state.global_step, round(float(state.epoch or 0), 4), keys))
        self.kwargs.setdefault(event, sorted(kwargs))

    return method


for _event in EVENTS:
    setattr(Recorder, _event, _recording(_event))


class LogExtras(TrainerCallback):
    """A user callback adding values to ``on_log``'s logs from ``state.log_history`` (later callbacks see them)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        if "loss" in logs:
            logs["logs_so_far"] = len(state.log_history)
            logs["best_loss_so_far"] = min(losses)


class NanStop(TrainerCallback):
    """A user callback that stops training through ``control`` when the logged loss is NaN."""

    def __init__(self) -> None:
        self.stopped_at: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if math.isnan(logs.get("loss", 0.0)):
            control.should_training_stop = True
            self.stopped_at = state.global_step


def _run(side: str, callbacks: list[Any], args: Any, root: Path, **options: Any) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if side == "home":
            trainer = H.run_home(callbacks, args, **options)
            state, weights = trainer.state, trainer.model.layer.weight
            live = trainer.callback_handler.callbacks  # HF swaps in new instances when it restores their state
        else:
            trainer, adapter = H.run_bridge(callbacks, args, root=root, **options)
            state, weights = adapter.state, trainer.lightning_module.net.layer.weight
            live = adapter.callbacks
    return {"state": state, "printed": out.getvalue(), "weights": weights.detach().clone(), "live": live}


def _live(result: dict[str, Any], cls: type) -> Any:
    return next(cb for cb in result["live"] if isinstance(cb, cls))


def _without_prediction_steps(trace: list[tuple]) -> list[tuple]:
    return [entry for entry in trace if entry[0] != "on_prediction_step"]


def _entries(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [H.without_timings(entry) for entry in history]


def _same_numbers(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6, abs=1e-12)
    return a == b


def assert_same_history(home: list[dict[str, Any]], bridge: list[dict[str, Any]]) -> None:
    """Same entries, keys and values (a history read back from trainer_state.json has its keys sorted)."""
    home, bridge = _entries(home), _entries(bridge)
    assert [sorted(entry) for entry in bridge] == [sorted(entry) for entry in home]
    for h, b in zip(home, bridge, strict=True):
        assert all(_same_numbers(h[key], b[key]) for key in h), (h, b)


def _printed(text: str) -> list[dict[str, Any]]:
    return [H.without_timings(ast.literal_eval(line)) for line in text.splitlines() if line.startswith("{")]


# -- EarlyStopping on eval_loss (lower is better), PrinterCallback, a user on_log, resume -------------------
def _loss_callbacks() -> list[Any]:
    return [Recorder(), EarlyStoppingCallback(early_stopping_patience=2), LogExtras(), PrinterCallback()]


@pytest.fixture(scope="module")
def es_loss(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hf_es_loss")
    results: dict[str, Any] = {}
    for side in ("home", "bridge"):
        kw = {"metric_for_best_model": "loss", "greater_is_better": False}
        kw.update(save_strategy="epoch", load_best_model_at_end=True)
        callbacks = _loss_callbacks()
        args = H.training_args(root / side, **kw)
        results[side] = _run(side, callbacks, args, root / side)
        results[side]["callbacks"] = callbacks
        # resumed from the checkpoint written after epoch 2, in a fresh trainer with fresh callbacks
        resumed = _loss_callbacks()
        checkpoint = root / side / "checkpoint-8"
        where = str(checkpoint) if side == "home" else str(checkpoint / "model.ckpt")
        args = H.training_args(root / f"{side}_resumed", **kw)
        results[f"{side}_resumed"] = _run(side, resumed, args, root / f"{side}_resumed", resume=where)
        results[f"{side}_resumed"]["callbacks"] = resumed
    results["root"] = root
    return results


def test_early_stopping_on_loss_stops_where_hf_stops(es_loss) -> None:
    home, bridge = es_loss["home"]["state"], es_loss["bridge"]["state"]
    assert home.global_step == bridge.global_step == 16  # evals 1.0, 0.875 (best), 0.9375, 0.96875: patience 2
    assert home.best_metric == bridge.best_metric == 0.875
    assert home.best_global_step == bridge.best_global_step == 8
    assert Path(bridge.best_model_checkpoint).name == Path(home.best_model_checkpoint).name == "checkpoint-8"
    counters = [es_loss[side]["callbacks"][1].early_stopping_patience_counter for side in ("home", "bridge")]
    assert counters == [2, 2]


def test_hook_sequence_and_counts_match_hf(es_loss) -> None:
    home, bridge = es_loss["home"]["callbacks"][0], es_loss["bridge"]["callbacks"][0]
    assert _without_prediction_steps(bridge.trace) == _without_prediction_steps(home.trace)
    assert sorted(e[0] for e in bridge.trace) == sorted(e[0] for e in home.trace)  # counts, prediction steps too
    # the one difference of order: Lightning validates before the epoch ends
    first = [e[0] for e in bridge.trace].index("on_prediction_step")
    assert bridge.trace[first + 1][0] == "on_epoch_end"
    assert bridge.kwargs == home.kwargs  # HF's keyword arguments, event by event


def test_log_history_and_printed_logs_match_hf(es_loss) -> None:
    home_history, bridge_history = es_loss["home"]["state"].log_history, es_loss["bridge"]["state"].log_history
    assert_same_history(home_history, bridge_history)
    assert [list(e) for e in bridge_history] == [list(e) for e in home_history]  # key order too
    home, bridge = _printed(es_loss["home"]["printed"]), _printed(es_loss["bridge"]["printed"])
    assert bridge == home and len(home) == 13  # 8 training windows, 4 evaluations, the summary
    assert {"logs_so_far", "best_loss_so_far"} <= set(home[0])  # the user's on_log additions reach the printer
    summary = es_loss["bridge"]["state"].log_history[-1]
    assert {"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss"} <= set(summary)
    assert all(type(v) in (int, float) for entry in es_loss["bridge"]["state"].log_history for v in entry.values())


def test_load_best_model_at_end_restores_the_best_weights(es_loss) -> None:
    assert torch.equal(es_loss["bridge"]["weights"], es_loss["home"]["weights"])
    best = torch.load(es_loss["root"] / "bridge" / "checkpoint-8" / "model.ckpt", weights_only=True)
    assert torch.equal(best["state_dict"]["net.layer.weight"], es_loss["bridge"]["weights"])


def test_checkpoint_folders_hold_hf_state(es_loss) -> None:
    import json

    folder = es_loss["root"] / "bridge"
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == [f"checkpoint-{n}" for n in (12, 16, 4, 8)]
    state = json.loads((folder / "checkpoint-8" / "trainer_state.json").read_text())
    home = json.loads((es_loss["root"] / "home" / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == home["global_step"] == 8
    assert state["stateful_callbacks"]["EarlyStoppingCallback"] == home["stateful_callbacks"]["EarlyStoppingCallback"]
    assert [sorted(e) for e in _entries(state["log_history"])] == [sorted(e) for e in _entries(home["log_history"])]


def test_resumed_run_stops_where_the_uninterrupted_one_does(es_loss) -> None:
    for side in ("home", "bridge"):
        resumed, whole = es_loss[f"{side}_resumed"]["state"], es_loss[side]["state"]
        assert resumed.global_step == whole.global_step == 16, side
        assert resumed.best_metric == 0.875
        assert _live(es_loss[f"{side}_resumed"], EarlyStoppingCallback).early_stopping_patience_counter == 2
        # the restored log_history goes on; only the summary (this fit's own runtime and loss) differs
        assert [sorted(e) for e in _entries(resumed.log_history)[:-1]] == [
            sorted(e) for e in _entries(whole.log_history)[:-1]
        ]
    # callbridge restores the state into the caller's own instance (HF into a new one it builds)
    assert es_loss["bridge_resumed"]["callbacks"][1].early_stopping_patience_counter == 2
    home, bridge = es_loss["home_resumed"], es_loss["bridge_resumed"]
    assert _without_prediction_steps(bridge["callbacks"][0].trace) == _without_prediction_steps(
        home["callbacks"][0].trace
    )
    assert_same_history(home["state"].log_history, bridge["state"].log_history)
    assert _printed(bridge["printed"]) == _printed(home["printed"])


# -- EarlyStopping on eval_accuracy (higher is better), MLflowCallback, TensorBoardCallback ----------------
@pytest.fixture(scope="module")
def es_accuracy(tmp_path_factory) -> dict[str, Any]:
    import mlflow
    from transformers.integrations import MLflowCallback, TensorBoardCallback

    root = tmp_path_factory.mktemp("hf_es_acc")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = H.set_env(MLFLOW_TRACKING_URI=uri, TENSORBOARD_LOGGING_DIR=None, MLFLOW_RUN_ID=None)
    # an earlier test in this process may have set MLflow's process-wide tracking URI, which wins over the variable
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    results: dict[str, Any] = {"uri": uri, "root": root}
    try:
        for side in ("home", "bridge"):
            es = EarlyStoppingCallback(early_stopping_patience=2)
            callbacks = [Recorder(), es, MLflowCallback(), TensorBoardCallback()]
            args = H.training_args(root / side, metric_for_best_model="accuracy", greater_is_better=True, run_name=side)
            results[side] = _run(side, callbacks, args, root / side)
            results[side]["callbacks"] = callbacks
        mlflow.flush_async_logging()
    finally:
        H.set_env(**previous)
        mlflow.set_tracking_uri(previous_uri)
    return results


def test_early_stopping_on_accuracy_stops_where_hf_stops(es_accuracy) -> None:
    home, bridge = es_accuracy["home"]["state"], es_accuracy["bridge"]["state"]
    assert home.global_step == bridge.global_step == 20  # accuracy 0.5, 0.625, 0.75 (best), 0.6875, 0.71875
    assert home.best_metric == bridge.best_metric == 0.75
    assert_same_history(home.log_history, bridge.log_history)
    home_trace, bridge_trace = (es_accuracy[side]["callbacks"][0].trace for side in ("home", "bridge"))
    assert _without_prediction_steps(bridge_trace) == _without_prediction_steps(home_trace)


def test_mlflow_callback_writes_what_it_writes_at_home(es_accuracy) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=es_accuracy["uri"])
    runs = {run.data.tags["mlflow.runName"]: run for run in client.search_runs(experiment_ids=["0"])}
    assert set(runs) == {"home", "bridge"}
    home, bridge = runs["home"], runs["bridge"]
    assert home.info.status == bridge.info.status == "FINISHED"
    assert sorted(bridge.data.metrics) == sorted(home.data.metrics)
    for key in home.data.metrics:
        # the set of steps: the store keeps one row for equal (key, value, step, millisecond), e.g. two equal
        # `epoch` values logged at one step within a millisecond
        steps = [sorted({m.step for m in client.get_metric_history(run.info.run_id, key)}) for run in (home, bridge)]
        assert steps[0] == steps[1], key
    assert sorted(bridge.data.params) == sorted(home.data.params)
    differing = {k for k in home.data.params if home.data.params[k] != bridge.data.params[k]}
    assert differing <= {"output_dir", "run_name"}, differing


def test_tensorboard_callback_writes_what_it_writes_at_home(es_accuracy) -> None:
    home = H.tb_scalars(es_accuracy["root"] / "home" / "runs")
    bridge = H.tb_scalars(es_accuracy["root"] / "bridge" / "runs")
    assert home and bridge == home
    assert {"train/loss", "eval/loss", "eval/accuracy", "train/train_loss"} <= set(bridge)


# -- a user callback that stops on NaN through control, with gradient accumulation ---------------------------
@pytest.fixture(scope="module")
def nan_stop(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hf_nan")
    results: dict[str, Any] = {}
    for side in ("home", "bridge"):
        callbacks = [Recorder(), NanStop()]
        args = H.training_args(
            root / side,
            eval_strategy="no",
            logging_steps=1,
            logging_nan_inf_filter=False,
            gradient_accumulation_steps=2,
        )
        options: dict[str, Any] = {"net": H.TinyNet(nan_from=9), "evaluates": False}
        if side == "bridge":
            options["accumulate_grad_batches"] = 2
        results[side] = _run(side, callbacks, args, root / side, **options)
        results[side]["callbacks"] = callbacks
    return results


def test_nan_stop_through_control_stops_at_the_same_step(nan_stop) -> None:
    home, bridge = nan_stop["home"], nan_stop["bridge"]
    # 4 batches of 4 per epoch, 2 per optimizer step: forward 9 (the first NaN) is in step 5, mid-epoch 3
    assert home["callbacks"][1].stopped_at == bridge["callbacks"][1].stopped_at == 5
    assert home["state"].global_step == bridge["state"].global_step == 5
    assert bridge["callbacks"][0].trace == home["callbacks"][0].trace
    assert sum(e[0] == "on_substep_end" for e in bridge["callbacks"][0].trace) == 5
    assert_same_history(home["state"].log_history, bridge["state"].log_history)


@pytest.fixture(scope="module")
def nan_filtered(tmp_path_factory) -> dict[str, Any]:
    """HF's logging_nan_inf_filter (on by default): NaN losses count as the window's running mean."""
    root = tmp_path_factory.mktemp("hf_nan_filter")
    results: dict[str, Any] = {}
    for side in ("home", "bridge"):
        args = H.training_args(root / side, eval_strategy="no", logging_steps=3, num_train_epochs=2)
        options: dict[str, Any] = {"net": H.TinyNet(nan_from=5), "evaluates": False}
        results[side] = _run(side, [Recorder()], args, root / side, **options)
    return results


def test_nan_losses_are_filtered_in_the_logs_as_hf_filters_them(nan_filtered) -> None:
    home, bridge = nan_filtered["home"]["state"], nan_filtered["bridge"]["state"]
    losses = [entry["loss"] for entry in home.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)  # NaN from step 5 on, filtered
    assert_same_history(home.log_history, bridge.log_history)
