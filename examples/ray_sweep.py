"""The WarpRec-style callbacks of ``warprec_recommender.py`` in a real Ray Tune sweep, trials trained by Lightning.

``tune_sweep`` hands the same callback objects to Ray (``RunConfig(callbacks=...)``: Ray fires
``on_trial_result`` / ``on_trial_save`` ... on the driver) and to each trial's Lightning Trainer
(``to_lightning``: ``on_data_reading``, ``on_dataset_creation``, ``on_training_complete`` fire in the
trials). No hook fires on both sides.

Run: ``python examples/ray_sweep.py [OUT_DIR]`` (needs ``pip install "callbridge[ray]"``; CPU, about a minute).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import lightning as L
import ray
from ray import cloudpickle, tune

sys.path.insert(0, str(Path(__file__).parent))
import warprec_recommender as rec
from callbridge.adapters import tune_sweep

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
    print(f"plot written by on_training_complete in the trials: {out_dir / 'val_rmse.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ray-sweep-")))
