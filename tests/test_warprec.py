"""WarpRec-style callbacks under a real Lightning Trainer: data, dataset, training, evaluation and Ray Tune hooks."""

from __future__ import annotations

import pickle
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from callbridge.adapters import ConfigError, WarpRecAdapter, detect_style, to_lightning
from callbridge.adapters.warprec import announce_data, load_callback
from lightning.pytorch.callbacks import ModelCheckpoint
from ray.train import Checkpoint
from ray.tune.experiment import Trial
from recsys_toy import Interactions, MatrixFactorization
from toy import ToyRegression, make_trainer
from warprec_callbacks import (
    ComputeMetricOverIterations,
    EarlierWarpRecCallback,
    FilterLowRatings,
    Recorder,
    WarpRecCallback,
)

pytest.importorskip("matplotlib")

#: The keys Ray Tune's function trainable adds to every reported result (ray.tune.report + a checkpoint).
RAY_RESULT_KEYS = [
    "timestamp",
    "checkpoint_dir_name",
    "should_checkpoint",
    "done",
    "training_iteration",
    "trial_id",
    "date",
    "time_this_iter_s",
    "time_total_s",
    "pid",
    "hostname",
    "node_ip",
    "config",
    "time_since_restore",
    "iterations_since_restore",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One fit (2 epochs, a checkpoint per epoch), then validate and test, with three WarpRec callbacks."""
    tmp = tmp_path_factory.mktemp("warprec")
    data_filter, recorder = FilterLowRatings(min_rating=3), Recorder()
    guide = ComputeMetricOverIterations(save_path=str(tmp / "plot.png"), metric="val_rmse")
    checkpoints = ModelCheckpoint(dirpath=tmp / "ckpt", save_top_k=-1, every_n_epochs=1)
    trainer = make_trainer(
        [*to_lightning([data_filter, recorder, guide]), checkpoints], enable_checkpointing=True, default_root_dir=tmp
    )
    model, datamodule = MatrixFactorization(), Interactions()
    trainer.fit(model, datamodule=datamodule)
    fit_calls = len(recorder.calls)
    trainer.validate(model, datamodule=datamodule, verbose=False)
    trainer.test(model, datamodule=datamodule, verbose=False)
    return {
        "tmp": tmp,
        "filter": data_filter,
        "recorder": recorder,
        "guide": guide,
        "model": model,
        "datamodule": datamodule,
        "fit_calls": fit_calls,
        "ckpt_dir": checkpoints.dirpath,
    }


def test_detection_by_base_class_and_signature():
    class PlainRay(WarpRecCallback.__mro__[1]):  # ray.tune.Callback itself
        def on_trial_result(self, iteration, trials, trial, result, **info):
            pass

    class DuckTyped:
        def on_data_reading(self, data):
            return data

    class WrongSignature:
        def on_dataset_creation(self, dataset):
            pass

    assert detect_style(Recorder()) == "warprec"
    assert detect_style(PlainRay()) == "warprec"
    assert detect_style(DuckTyped()) == "warprec"
    with pytest.raises(TypeError, match="not a callback of any supported style"):
        detect_style(WrongSignature())

    class BadSubclass(WarpRecCallback):
        def on_training_complete(self):
            pass

    with pytest.raises(TypeError, match=r"BadSubclass.*on_training_complete.*model"):
        to_lightning([BadSubclass()])


def test_adapter_listens_only_where_needed():
    (bridge,) = to_lightning([FilterLowRatings()])
    (adapter,) = bridge.callbacks
    assert isinstance(adapter, WarpRecAdapter) and adapter.rank_zero_only
    assert adapter.implemented_hooks() == frozenset()  # data reading goes through announce_data
    (bridge,) = to_lightning([Recorder()])
    assert {"on_stage_begin", "on_stage_end", "on_evaluate", "on_save", "on_exception"} <= (
        bridge.callbacks[0].implemented_hooks()
    )
    assert "on_step_end" not in bridge.callbacks[0].implemented_hooks()


def test_data_reading_filter_changes_what_the_model_trains_on(run):
    datamodule, model = run["datamodule"], run["model"]
    kept = int((datamodule.data["rating"] >= 3).sum())
    assert datamodule.raw_rows == 200
    assert len(datamodule.data) == kept < 200
    train_rows = int(kept * 0.8)
    assert len(datamodule.main_dataset) == train_rows
    assert model.rows_seen == 2 * train_rows  # 2 epochs over the filtered training split
    # fit, validate and test each call datamodule.setup: the chain ran three times, in order
    assert run["filter"].seen_rows == [200, 200, 200]
    assert [kw["rows"] for name, kw in run["recorder"].calls if name == "on_data_reading"] == [kept] * 3


def test_hook_order_of_a_fit_then_validate_and_test(run):
    names = run["recorder"].names()
    fit = names[: run["fit_calls"]]
    assert fit == [
        "on_data_reading",
        "on_dataset_creation",
        "setup",
        "on_trial_start",
        "on_trial_result",
        "on_checkpoint",
        "on_trial_save",
        "on_trial_result",
        "on_checkpoint",
        "on_trial_save",
        "on_trial_complete",
        "on_experiment_end",
        "on_training_complete",
    ]
    assert names[run["fit_calls"] :] == [
        "on_data_reading",
        "on_evaluation_complete",
        "on_data_reading",
        "on_evaluation_complete",
    ]


def test_hook_arguments(run):
    calls = dict(reversed(run["recorder"].calls))  # first call of each hook
    created = calls["on_dataset_creation"]
    datamodule = run["datamodule"]
    # WarpRec's current release passes main_dataset= and validation_folds= only
    assert created["main"] == len(datamodule.main_dataset) and created["folds"] == []
    assert created["extra"] == ((), {})
    assert calls["setup"] == {"stop": {}, "time_budget_s": None, "num_samples": 1, "total_num_samples": 1}
    trial = calls["on_trial_start"]["trial"]
    assert isinstance(trial, Trial) and calls["on_trial_start"]["status"] == "PENDING"
    assert trial.status == "TERMINATED" and trial.config == dict(run["model"].hparams)
    assert calls["on_trial_complete"] == {"status": "RUNNING", "done": True}
    assert calls["on_experiment_end"]["status"] == "TERMINATED"
    # Tune's trial id, name and directory: <5 hex>_00000, <trainable>_<id>, <experiment>/<name>_<tag>_<date>
    assert re.fullmatch(r"[0-9a-f]{5}_00000", trial.trial_id) and str(trial) == f"MatrixFactorization_{trial.trial_id}"
    assert trial.local_path == trial.path and trial.evaluated_params == {} and trial.experiment_tag == "0"
    trial_dir = Path(trial.local_path)
    assert trial_dir.name.startswith(f"{trial}_0_") and trial_dir.parent.name == trial.experiment_dir_name
    assert trial_dir.parent.parent == run["tmp"] / "ray_results"
    results = [kw for name, kw in run["recorder"].calls if name == "on_trial_result"]
    columns = ["train_loss", "train_loss_step", "val_rmse"]
    assert [list(r["result"]) for r in results] == [
        [*columns, *RAY_RESULT_KEYS],
        [*columns, "train_loss_epoch", *RAY_RESULT_KEYS],
    ]
    first, second = (r["result"] for r in results)
    assert [first["training_iteration"], second["training_iteration"]] == [1, 2]
    assert [first["iterations_since_restore"], second["done"], second["should_checkpoint"]] == [1, False, True]
    assert isinstance(first["val_rmse"], float) and first["trial_id"] == trial.trial_id and results[1]["iteration"] > 0
    assert second["time_total_s"] == pytest.approx(first["time_total_s"] + second["time_this_iter_s"])
    assert first["config"] == trial.config and first["checkpoint_dir_name"] == Path(run["ckpt_dir"]).name
    # in on_trial_result the trial still holds the previous result, as in Tune
    assert [r["previous"] for r in results] == [None, 1]
    saves = [kw for name, kw in run["recorder"].calls if name == "on_trial_save"]
    assert [s["last_result"]["training_iteration"] for s in saves] == [1, 2]
    checkpoints = [kw for name, kw in run["recorder"].calls if name == "on_checkpoint"]
    assert all(isinstance(c["checkpoint"], Checkpoint) for c in checkpoints)
    assert checkpoints[0]["checkpoint"].path == run["ckpt_dir"] and saves[1]["checkpoint"].path == run["ckpt_dir"]
    # the checkpoint that triggered the hook is on disk when it fires
    assert [len(c["files"]) for c in checkpoints] == [1, 2] and all(c["status"] == "RUNNING" for c in checkpoints)
    assert calls["on_training_complete"]["model"] is run["model"]
    evaluations = [kw for name, kw in run["recorder"].calls if name == "on_evaluation_complete"]
    assert evaluations[0]["params"] == {"n_users": 20, "n_items": 15, "dim": 4, "lr": 0.05}
    assert set(evaluations[0]["results"]) == {"val_rmse"} and set(evaluations[1]["results"]) == {"test_rmse"}
    assert all(isinstance(v, float) for v in evaluations[1]["results"].values())


def test_one_trial_shared_by_every_callback_and_both_dataset_signatures(tmp_path):
    class Earlier(EarlierWarpRecCallback):
        def __init__(self):
            self.seen = []

        def on_dataset_creation(self, main_dataset, val_dataset, validation_folds, *args, **kwargs):
            self.seen.append((len(main_dataset), len(val_dataset), len(validation_folds)))

        def on_trial_start(self, iteration, trials, trial, **info):
            self.seen.append(trial)

    first, earlier = Recorder(), Earlier()
    trainer = make_trainer(to_lightning([first, earlier]), max_epochs=1, default_root_dir=tmp_path)
    datamodule = Interactions(folds=2)
    trainer.fit(MatrixFactorization(), datamodule=datamodule)
    sizes, trial = earlier.seen
    assert sizes == (len(datamodule.main_dataset), len(datamodule.val_dataset), 2)  # the earlier call
    assert dict(first.calls)["on_dataset_creation"]["extra"] == ((), {})  # the current call
    assert dict(first.calls)["on_trial_start"]["trial"] is trial  # one trial for the run
    assert [name for name, _ in first.calls[:4]] == [
        "on_data_reading",
        "on_dataset_creation",
        "setup",
        "on_trial_start",
    ]
    with pytest.raises(TypeError, match=r"on_dataset_creation.*main_dataset, validation_folds"):

        class NeitherRelease(WarpRecCallback):
            def on_dataset_creation(self, dataset, train_set):
                pass

        to_lightning([NeitherRelease()])


def test_bridges_with_warprec_callbacks_pickle(tmp_path):
    recorder = Recorder()
    (bridge,) = to_lightning([recorder, FilterLowRatings()])
    make_trainer([bridge], max_epochs=1, default_root_dir=tmp_path).fit(
        MatrixFactorization(), datamodule=Interactions()
    )
    copy = pickle.loads(pickle.dumps(bridge))
    assert [type(a).__name__ for a in copy.callbacks] == ["WarpRecAdapter", "WarpRecAdapter"]
    assert copy.callbacks[0].run is copy.callbacks[1].run and copy.callbacks[0].run.trial is None


def test_guide_callback_writes_its_plot(run):
    assert len(run["guide"]._scores) == 2 and all(isinstance(s, float) for s in run["guide"]._scores)
    plot = run["tmp"] / "plot.png"
    assert plot.exists() and plot.stat().st_size > 1000


def test_folds_convention_and_no_validation(tmp_path):
    recorder = Recorder()
    trainer = make_trainer(to_lightning([recorder]), max_epochs=2, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(MatrixFactorization(), datamodule=Interactions(folds=3))
    created = dict(recorder.calls)["on_dataset_creation"]
    assert len(created["folds"]) == 3
    # without validation, one result per training epoch
    results = [kw["result"] for name, kw in recorder.calls if name == "on_trial_result"]
    assert [r["training_iteration"] for r in results] == [1, 2] and "train_loss_epoch" in results[0]


def test_state_round_trips_through_the_checkpoint(tmp_path):
    first = Recorder()
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = make_trainer(
        [*to_lightning([first]), checkpoints], max_epochs=1, enable_checkpointing=True, default_root_dir=tmp_path
    )
    trainer.fit(MatrixFactorization(), datamodule=Interactions())
    states = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["callbacks"]
    (bridge_state,) = (state for key, state in states.items() if key.startswith("callbridge["))
    saved = bridge_state["WarpRec[Recorder]"]
    # saved with the epoch's checkpoint: the result it follows is counted (delivered right after the save)
    assert saved["training_iteration"] == 1 and saved["last_result"]["training_iteration"] == 1
    assert saved["ray_state"]["hooks_so_far"] == 4

    resumed = Recorder()
    trainer = make_trainer(to_lightning([resumed]), max_epochs=2, default_root_dir=tmp_path / "elsewhere")
    trainer.fit(MatrixFactorization(), datamodule=Interactions(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert resumed.restored_state == saved["ray_state"]
    names = resumed.names()
    assert names.index("on_trial_start") < names.index("on_trial_restore") < names.index("on_trial_result")
    assert dict(resumed.calls)["on_trial_restore"]["status"] == "RUNNING"
    # the same trial goes on: its id, its directory, the numbering of its results
    trial = dict(resumed.calls)["on_trial_start"]["trial"]
    assert trial.trial_id == saved["trial_id"] and Path(trial.local_path).name == saved["trial_dir_name"]
    assert Path(trial.local_path).parent.parent == tmp_path / "ray_results"
    results = [kw["result"] for name, kw in resumed.calls if name == "on_trial_result"]
    assert [(r["training_iteration"], r["iterations_since_restore"]) for r in results] == [(2, 1)]
    assert results[0]["time_total_s"] > results[0]["time_since_restore"]


def test_a_callback_raising_in_a_ray_hook_ends_the_experiment_as_tune_does(tmp_path):
    """At home (found by ``callbridge verify``) a callback's exception stops the trial (TERMINATED) and ends the
    experiment: no ``on_trial_error``, no ``error.txt``; the exception reaches the caller."""

    class Raises(Recorder):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            super().on_trial_result(iteration, trials, trial, result, **info)
            raise RuntimeError("a callback bug")

    recorder = Raises()
    trainer = make_trainer(to_lightning([recorder]), default_root_dir=tmp_path)
    with pytest.raises(RuntimeError, match="a callback bug"):
        trainer.fit(ToyRegression())
    assert recorder.names()[-2:] == ["on_trial_result", "on_experiment_end"]
    assert dict(recorder.calls)["on_experiment_end"]["status"] == "TERMINATED"
    trial = dict(recorder.calls)["on_trial_start"]["trial"]
    assert not Path(trial.local_path, "error.txt").exists()


def test_failing_fit_fires_trial_error_and_no_training_complete(tmp_path):
    recorder = Recorder()
    trainer = make_trainer(to_lightning([recorder]), default_root_dir=tmp_path)
    with pytest.raises(RuntimeError, match="training failed"):
        trainer.fit(ToyRegression(fail_at_step=2))
    names = recorder.names()
    assert names[-2:] == ["on_trial_error", "on_experiment_end"]
    assert "on_training_complete" not in names and "on_trial_complete" not in names
    assert dict(recorder.calls)["on_trial_error"]["status"] == "ERROR"
    trial = dict(recorder.calls)["on_trial_start"]["trial"]
    assert "training failed" in Path(trial.error_file).read_text()  # Tune's error.txt in the trial directory
    assert "on_dataset_creation" not in names  # ToyRegression exposes no dataset


def test_each_fit_is_a_new_experiment(tmp_path):
    recorder = Recorder()
    for _ in range(2):
        make_trainer(to_lightning([recorder]), max_epochs=1, default_root_dir=tmp_path).fit(ToyRegression())
    names = recorder.names()
    assert names.count("setup") == names.count("on_experiment_end") == 2
    results = [kw for name, kw in recorder.calls if name == "on_trial_result"]
    assert [r["result"]["training_iteration"] for r in results] == [1, 1]
    trials = [kw["trial"] for name, kw in recorder.calls if name == "on_trial_start"]
    assert trials[0].trial_id != trials[1].trial_id


def test_step_hooks_fire_per_training_batch_with_the_global_step(tmp_path):
    class Steps(WarpRecCallback):
        def __init__(self):
            self.calls = []

        def on_step_begin(self, iteration, trials, **info):
            self.calls.append(("begin", iteration, trials[0].status))

        def on_step_end(self, iteration, trials, **info):
            self.calls.append(("end", iteration, trials[0].status))

    steps = Steps()
    make_trainer(to_lightning([steps]), max_epochs=1, default_root_dir=tmp_path).fit(ToyRegression(n=32, batch_size=16))
    assert steps.calls == [
        ("begin", 0, "RUNNING"),
        ("end", 1, "RUNNING"),
        ("begin", 1, "RUNNING"),
        ("end", 2, "RUNNING"),
    ]


def test_ray_hooks_can_be_turned_off(tmp_path):
    recorder = Recorder()
    trainer = make_trainer(to_lightning([recorder], ray_hooks=False), max_epochs=1, default_root_dir=tmp_path)
    trainer.fit(MatrixFactorization(), datamodule=Interactions())
    assert recorder.names() == ["on_data_reading", "on_dataset_creation", "on_training_complete"]
    assert not (tmp_path / "ray_results").exists()


def test_announce_data_errors_and_passthrough():
    class ReturnsNothing(WarpRecCallback):
        def on_data_reading(self, data):
            data.drop(columns=["rating"])

    trainer = make_trainer(to_lightning([ReturnsNothing()]), max_epochs=1)
    with pytest.raises(TypeError, match=r"ReturnsNothing\.on_data_reading returned None"):
        trainer.fit(MatrixFactorization(), datamodule=Interactions())
    assert announce_data(Interactions(), [1, 2]) == [1, 2]  # no trainer: unchanged
    model = ToyRegression()
    assert announce_data(model, torch.ones(2)).tolist() == [1.0, 1.0]


# -- registration from WarpRec's config format ---------------------------------------------------
CALLBACK_FILE = textwrap.dedent(
    """
    from ray.tune import Callback

    class KeepTop:
        def __init__(self, n, column="rating"):
            self.n, self.column = n, column

        def on_data_reading(self, data):
            return data.nlargest(self.n, self.column)

    class NotWarpRec:
        def on_epoch_end(self, epoch, logs=None):
            pass
    """
)


@pytest.fixture()
def callback_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_callbacks.py"
    path.write_text(CALLBACK_FILE)
    return path


def test_load_callback_from_warprec_config(callback_file):
    from omegaconf import OmegaConf

    config = OmegaConf.create(
        {"general": {"callback": {"callback_path": callback_file.name, "callback_name": "KeepTop", "args": [50]}}}
    )
    callback = load_callback(config, base_dir=callback_file.parent)
    assert detect_style(callback) == "warprec" and callback.n == 50
    datamodule = Interactions()
    make_trainer(to_lightning([callback]), max_epochs=1).fit(MatrixFactorization(), datamodule=datamodule)
    assert len(datamodule.data) == 50
    again = load_callback({"callback_path": str(callback_file), "callback_name": "KeepTop", "kwargs": {"n": 3}})
    assert type(again) is type(callback)  # the file is loaded once


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"callback_path": "missing.py", "callback_name": "X"}, "missing.py.*does not exist"),
        ({"callback_path": "cb.yaml", "callback_name": "X"}, "not a .py file"),
        ({"callback_name": "X"}, "callback_path is missing"),
        ({"callback_path": "F", "callback_name": "X", "kwarg": {}}, r"unknown key\(s\) \['kwarg'\]"),
        ({"callback_path": "F", "callback_name": "Missing"}, r"no class 'Missing'.*KeepTop.*NotWarpRec"),
        ({"callback_path": "F", "callback_name": "NotWarpRec"}, "NotWarpRec .* is not a WarpRec-style"),
        ({"callback_path": "F", "callback_name": "KeepTop"}, r"KeepTop\(n, column='rating'\).*args=\[\]"),
        ({"callback_path": "F", "callback_name": "KeepTop", "args": 5}, "args must be a list"),
        ({"callback_path": "F", "callback_name": "KeepTop", "kwargs": {"m": 1}}, "kwargs=\\{'m': 1\\}"),
    ],
)
def test_load_callback_errors_name_the_problem(callback_file, entry, message):
    entry = {key: (str(callback_file) if value == "F" else value) for key, value in entry.items()}
    with pytest.raises(ConfigError, match=message) as raised:
        load_callback({"general": {"callback": entry}}, base_dir=callback_file.parent)
    assert raised.value.problems[0][0] == "general.callback"


def test_load_callback_lists_every_problem_of_the_entry(tmp_path):
    entry = {"callback_path": "cb.yaml", "kwarg": 1, "args": "x", "kwargs": []}
    with pytest.raises(ConfigError) as raised:
        load_callback(entry, base_dir=tmp_path)
    causes = [cause for _, cause in raised.value.problems]
    assert len(causes) == 5 and str(raised.value).startswith("5 invalid callback config entries")
    for expected in (
        "unknown key(s) ['kwarg']",
        "callback_name is missing",
        "not a .py file",
        "args must",
        "kwargs must",
    ):
        assert any(expected in cause for cause in causes), (expected, causes)


@pytest.mark.ddp
def test_ddp_warprec_hooks_fire_once_on_rank_zero(ddp_results):
    rank0, rank1 = ddp_results("warprec_hooks_once_on_rank_zero")
    assert rank1["names"] == [] and rank1["filter_calls"] == []
    fit_and_test = ["on_data_reading", "on_data_reading", "on_dataset_creation", "setup", "on_trial_start"]
    assert rank0["names"][:5] == fit_and_test  # prepare_data and setup each announce once
    assert rank0["names"].count("on_trial_result") == 2 and rank0["names"].count("on_training_complete") == 1
    assert rank0["names"][-1] == "on_evaluation_complete" and rank0["names"].count("on_evaluation_complete") == 1
    # rank 0 filtered; the setup result was broadcast, so both ranks train on the same filtered data
    assert rank0["rows"] == rank1["rows"] == rank0["kept"] == rank1["kept"] < rank0["raw_rows"]
    assert rank0["rows_seen"] == rank1["rows_seen"] == 2 * int(rank0["rows"] * 0.8) // 2
    # prepare_data runs on local rank zero only: no broadcast there (no hang), rank 1 never ran it
    assert rank0["prepared_rows"] == rank0["kept"] and rank1["prepared_rows"] is None
    # one trial directory, written by rank zero (rank 1 sees the same shared folder, written once)
    assert len(rank0["trial_dirs"]) == 1 and rank0["trial_dirs"][0].startswith("MatrixFactorization_")


def test_recommender_example_runs(tmp_path):
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / "warprec_recommender.py"
    spec = importlib.util.spec_from_file_location("warprec_recommender_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    plot = example.main(tmp_path)
    assert plot.exists() and plot.stat().st_size > 1000


def test_trial_hooks_without_ray_and_a_sweep_without_a_best_trial_are_clear_errors(monkeypatch):
    from callbridge.adapters import tune_sweep
    from ray import tune

    plot = ComputeMetricOverIterations()
    with pytest.raises(ValueError, match=r"on_training_complete gets the best trial's model.*metric=None"):
        tune_sweep(lambda config, callbacks: None, {}, [plot])  # before anything starts
    with pytest.raises(ValueError, match="save_checkpoints=False"):
        tune_sweep(
            lambda c, cb: None, {}, [plot], tune_config=tune.TuneConfig(metric="m", mode="min"), save_checkpoints=False
        )
    monkeypatch.setitem(sys.modules, "ray.tune", None)  # as without Ray installed
    with pytest.raises(ImportError, match=r"need Ray .*Recorder \(on_checkpoint, .*ray_hooks=False"):
        to_lightning([Recorder()])
    assert len(to_lightning([Recorder()], ray_hooks=False)) == 1  # the WarpRec hooks alone need no Ray
