"""The same WarpRec-style callback objects in a real (local, CPU) Ray Tune sweep whose trials train with Lightning."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("matplotlib")

from callbridge.adapters import to_lightning, tune_sweep  # noqa: E402
from ray import tune  # noqa: E402
from recsys_toy import Interactions, MatrixFactorization  # noqa: E402
from toy import make_trainer  # noqa: E402
from warprec_callbacks import ComputeMetricOverIterations, FilterLowRatings, Recorder  # noqa: E402

RAY_HOOKS = {
    "setup",
    "on_trial_start",
    "on_trial_result",
    "on_checkpoint",
    "on_trial_save",
    "on_trial_complete",
    "on_trial_error",
    "on_experiment_end",
}
WARPREC_HOOKS = {"on_data_reading", "on_dataset_creation", "on_training_complete", "on_evaluation_complete"}


@pytest.fixture(scope="module")
def local_ray():
    tests = str(Path(__file__).parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": tests, "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


def fit_one(config, callbacks):
    trainer = make_trainer(callbacks, max_epochs=2, num_sanity_val_steps=0)
    trainer.fit(MatrixFactorization(lr=config["lr"]), datamodule=Interactions())


def _hook_log(path: Path) -> dict[str, Counter]:
    by_side: dict[str, Counter] = {"driver": Counter(), "trials": Counter()}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        by_side["driver" if entry["pid"] == os.getpid() else "trials"][entry["hook"]] += 1
    return by_side


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    recorder = Recorder(log_path=str(tmp / "hooks.jsonl"))
    guide = ComputeMetricOverIterations(save_path=str(tmp / "plot.png"), metric="val_rmse")
    results = tune_sweep(
        fit_one,
        {"lr": tune.grid_search([0.01, 0.1])},
        [FilterLowRatings(), recorder, guide],
        tune_config=tune.TuneConfig(metric="val_rmse", mode="min"),
        run_config=tune.RunConfig(storage_path=str(tmp / "ray"), name="sweep", verbose=0),
        resources={"cpu": 1},
    )
    return {"tmp": tmp, "results": results, "recorder": recorder, "guide": guide}


def test_sweep_trains_every_trial(sweep):
    results = sweep["results"]
    assert len(results) == 2 and not results.errors
    assert all(result.metrics["training_iteration"] == 2 for result in results)
    assert results.get_best_result().metrics["val_rmse"] > 0


def test_ray_fires_its_hooks_on_the_driver_and_the_trials_fire_warprec_hooks(sweep):
    sides = _hook_log(sweep["tmp"] / "hooks.jsonl")
    driver, trials = sides["driver"], sides["trials"]
    assert set(driver) <= RAY_HOOKS | {"on_training_complete"} and set(trials) <= WARPREC_HOOKS
    assert not set(driver) & set(trials)  # no hook fired on both sides
    assert driver["setup"] == 1 and driver["on_experiment_end"] == 1
    assert driver["on_trial_start"] == driver["on_trial_complete"] == 2
    assert driver["on_trial_result"] == driver["on_trial_save"] == driver["on_checkpoint"] == 4
    # as in WarpRec: on_training_complete once, on the driver, after the sweep, with the best model
    assert driver["on_training_complete"] == 1
    assert trials == Counter({"on_data_reading": 2, "on_dataset_creation": 2})
    (completed,) = [kw["model"] for name, kw in sweep["recorder"].calls if name == "on_training_complete"]
    best = sweep["results"].get_best_result()
    assert isinstance(completed, MatrixFactorization) and completed.hparams.lr == best.config["lr"]
    # the driver's object is the one Ray called: real Ray trials, real results
    saves = [kw for name, kw in sweep["recorder"].calls if name == "on_trial_save"]
    assert all("val_rmse" in kw["last_result"] for kw in saves)


def test_guide_callback_runs_unchanged_in_the_sweep(sweep):
    scores = sweep["guide"]._scores  # collected on the driver from Ray's trial.last_result
    assert len(scores) == 4 and all(isinstance(score, float) and score > 0 for score in scores)
    reported = sorted(
        row["val_rmse"] for result in sweep["results"] for row in result.metrics_dataframe.to_dict("records")
    )
    assert sorted(scores) == pytest.approx(reported)
    # plotted on the driver by on_training_complete, from those scores
    assert sweep["guide"].plotted == scores and (sweep["tmp"] / "plot.png").stat().st_size > 1000


def test_plain_tuner_with_to_lightning_in_the_trainable(local_ray, tmp_path):
    """A hand-written trainable: ``to_lightning([cb])`` inside a trial leaves Ray's hooks to the driver."""
    recorder = Recorder(log_path=str(tmp_path / "hooks.jsonl"))

    def trainable(config):
        trainer = make_trainer(to_lightning([recorder]), max_epochs=1, num_sanity_val_steps=0)
        trainer.fit(MatrixFactorization(lr=config["lr"]), datamodule=Interactions())
        tune.report({"rows": len(trainer.datamodule.main_dataset)})

    tuner = tune.Tuner(
        trainable,
        param_space={"lr": 0.05},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), callbacks=[recorder], verbose=0),
    )
    assert not tuner.fit().errors
    sides = _hook_log(tmp_path / "hooks.jsonl")
    assert set(sides["driver"]) <= RAY_HOOKS and sides["driver"]["on_trial_result"] == 1
    assert sides["trials"] == Counter({"on_data_reading": 1, "on_dataset_creation": 1, "on_training_complete": 1})


def test_config_loaded_classes_are_shipped_to_ray_workers_by_value(tmp_path):
    """A class loaded from a file by ``load_warprec_callback`` is not importable in a Ray worker."""
    import sys

    from callbridge.adapters import load_warprec_callback
    from callbridge.adapters.warprec import lightning_trainable
    from ray import cloudpickle

    path = tmp_path / "shipped_cb.py"
    path.write_text("class Shipped:\n    def on_data_reading(self, data):\n        return data[:1]\n")
    callback = load_warprec_callback({"callback_path": str(path), "callback_name": "Shipped"})
    lightning_trainable(fit_one, [callback])  # registers the file's module for pickling by value
    payload = cloudpickle.dumps(callback)
    module = sys.modules.pop(type(callback).__module__)  # as in a worker: the module cannot be imported
    try:
        shipped = cloudpickle.loads(payload)
    finally:
        sys.modules[module.__name__] = module
    assert type(shipped).__name__ == "Shipped" and shipped.on_data_reading([1, 2]) == [1]
