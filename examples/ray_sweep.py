"""The WarpRec-style callbacks of ``warprec_recommender.py`` in a real Ray Tune sweep, trials trained by Lightning.

``tune_sweep`` hands the same callback objects to Ray (``RunConfig(callbacks=...)``: Ray fires
``on_trial_result`` / ``on_trial_save`` ... on the driver) and to each trial's Lightning Trainer
(``on_data_reading`` and ``on_dataset_creation`` fire in the trials). As in WarpRec, ``on_training_complete``
fires on the driver after the sweep, with the best trial's model: the guide's callback plots there the scores
it collected on the driver in ``on_trial_save``. No hook fires on both sides.

Run: ``python examples/ray_sweep.py [OUT_DIR]`` (needs ``pip install "callbridge[ray]"``; CPU, about a minute).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import lightning as L
import ray
import warprec_recommender as rec  # next to this script, which Python puts first on sys.path
from callbridge.adapters import tune_sweep
from ray import cloudpickle, tune

cloudpickle.register_pickle_by_value(rec)  # the trials cannot import this examples/ module: ship it by value


class PrintResults(tune.Callback):
    """A plain Ray Tune callback: runs on the driver only."""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        print(f"trial {trial.trial_id} iteration {result['training_iteration']}: val_rmse={result['val_rmse']:.3f}")


def fit_one(config: dict, callbacks: list) -> None:
    """One trial: ``callbacks`` is ``to_lightning(our callbacks)`` plus Ray's report-and-checkpoint callback."""
    trainer = L.Trainer(
        callbacks=callbacks,
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(rec.MatrixFactorization(dim=config["dim"], lr=config["lr"]), datamodule=rec.Interactions())


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        plot = rec.ComputeRMSEOverIterations(save_path=str(out_dir / "val_rmse.png"))
        results = tune_sweep(
            fit_one,
            param_space={"lr": tune.grid_search([0.01, 0.05]), "dim": 8},
            callbacks=[rec.DropColdUsers(min_interactions=25), plot, PrintResults()],
            tune_config=tune.TuneConfig(metric="val_rmse", mode="min"),
            run_config=tune.RunConfig(storage_path=str(out_dir / "ray_results"), name="mf_sweep", verbose=0),
            resources={"cpu": 1},
        )
    finally:
        ray.shutdown()
    best = results.get_best_result()
    print(f"best config {best.config}: val_rmse={best.metrics['val_rmse']:.3f}")
    print(f"scores collected on the driver by on_trial_save: {[round(s, 3) for s in plot._scores]}")
    points = out_dir / "val_rmse.csv"  # written with the plot: the points it was drawn from
    if points.exists():
        print(f"plot of {len(points.read_text().splitlines()) - 1} points written by on_training_complete: {out_dir}")
    else:
        print("no plot: on_training_complete had no scores to draw")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ray-sweep-")))
