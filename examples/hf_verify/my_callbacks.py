"""Your own Hugging Face ``TrainerCallback``\\ s, checked against ``transformers.Trainer`` before you move them
under Lightning.

Run from this folder:

    callbridge verify my_callbacks.py:StopOnPlateau --init '{"patience": 1}'   # exit 0: behaves as under HF
    callbridge verify my_callbacks.py:LogsItsModel                              # exit 1: shows a difference
    callbridge verify my_callbacks.py:StopOnPlateau --json                      # the same report, as JSON

Each command trains a tiny network on scripted evaluation results twice, once with ``transformers.Trainer``
(CPU, no downloads) and once with a Lightning Trainer through callbridge, and diffs the events and what they
received, ``control``, ``TrainerState`` with its ``log_history``, printed output, files and final weights.
"""

from __future__ import annotations

import csv
import math

from transformers import TrainerCallback


class StopOnPlateau(TrainerCallback):
    """Stops training through ``control`` when ``eval_loss`` has not improved for ``patience`` evaluations;
    writes one CSV row per evaluation."""

    def __init__(self, patience: int = 1, path: str = "evals.csv") -> None:
        self.patience, self.path = patience, path
        self.best, self.bad = math.inf, 0

    def on_train_begin(self, args, state, control, **kwargs):
        with open(self.path, "w", newline="") as file:
            csv.writer(file).writerow(["step", "epoch", "eval_loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        with open(self.path, "a", newline="") as file:
            csv.writer(file).writerow([state.global_step, state.epoch, metrics["eval_loss"]])
        if metrics["eval_loss"] < self.best:
            self.best, self.bad = metrics["eval_loss"], 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            print(f"no improvement for {self.bad} evaluations: stopping at step {state.global_step}")
            control.should_training_stop = True


class LogsItsModel(TrainerCallback):
    """Prints the class of the ``model`` HF hands it: under HF the network, under callbridge the LightningModule
    (a documented difference: see docs/hf.md)."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        print(f"training {type(model).__name__}")
