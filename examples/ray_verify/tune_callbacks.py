"""Your own Ray Tune callbacks (the base of every WarpRec callback), checked against a real one-trial
``ray.tune.Tuner`` before you move them under Lightning.

Run from this folder:

    callbridge verify tune_callbacks.py:BestSoFar --init '{"metric": "val_loss"}'   # exit 0: behaves as in Tune
    callbridge verify tune_callbacks.py:PrintsCheckpointFolder                       # exit 1: prints a difference
    callbridge verify tune_callbacks.py:BestSoFar --json                             # the same report, as JSON

Each command trains a tiny scripted Lightning module twice, once as the trainable of a one-trial Tuner (with Ray's
own ``TuneReportCheckpointCallback``) and once as a plain ``trainer.fit`` through callbridge, and diffs the hooks,
their arguments, results, trial states, the files the callback wrote and what it printed.
"""

from __future__ import annotations

import json
import os

from ray import tune


class BestSoFar(tune.Callback):
    """Prints each result's metric with the best so far; writes ``best.json`` into the trial folder at the end."""

    def __init__(self, metric: str = "val_loss") -> None:
        self.metric = metric
        self.best: float | None = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result[self.metric]
        self.best = value if self.best is None else min(self.best, value)
        print(f"iteration {result['training_iteration']}: {self.metric}={value} best={self.best}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        with open(os.path.join(trial.local_path, "best.json"), "w") as out:
            json.dump({self.metric: self.best, "iterations": trial.last_result["training_iteration"]}, out)


class PrintsCheckpointFolder(tune.Callback):
    """Prints the folder of the trial's latest checkpoint: Tune copies each checkpoint to ``checkpoint_00000N`` in
    the trial folder, under Lightning the checkpoint stays where ``ModelCheckpoint`` wrote it (docs/warprec.md)."""

    def on_trial_save(self, iteration, trials, trial, **info):
        print("checkpoint in", os.path.basename(trial.checkpoint.path))
