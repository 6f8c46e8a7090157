"""Your own Keras callbacks, checked against keras.Model.fit before you move them under Lightning.

Run from this folder (KERAS_BACKEND=torch is set by callbridge):

    callbridge verify my_callbacks.py:WarmupThenPlateau --init '{"warmup": 2}'   # exit 0: behaves as under fit
    callbridge verify my_callbacks.py:PrintsItsModel                              # exit 1: prints a difference
    callbridge verify my_callbacks.py:WarmupThenPlateau --json                    # the same report, as JSON

Each command trains a tiny scripted model twice, once with keras.Model.fit (torch backend) and once with a
Lightning Trainer through callbridge, and diffs hooks, logs, printed output, files, stop epoch, learning rates
and final weights.
"""

from __future__ import annotations

import csv

import keras


class WarmupThenPlateau(keras.callbacks.Callback):
    """Linear learning-rate warm-up over the first epochs, then halve the rate when val_loss stops improving;
    writes one CSV row per epoch and stops after ``patience`` epochs without improvement."""

    def __init__(self, warmup: int = 2, patience: int = 2, path: str = "lr.csv") -> None:
        super().__init__()
        self.warmup, self.patience, self.path = warmup, patience, path

    def on_train_begin(self, logs=None):
        self.target = float(self.model.optimizer.learning_rate)
        self.best, self.wait = float("inf"), 0
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerow(["epoch", "lr", "val_loss"])

    def on_epoch_begin(self, epoch, logs=None):
        if epoch < self.warmup:
            self.model.optimizer.learning_rate.assign(self.target * (epoch + 1) / self.warmup)

    def on_epoch_end(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([epoch, lr, logs["val_loss"]])
        if logs["val_loss"] < self.best:
            self.best, self.wait = logs["val_loss"], 0
            return
        self.wait += 1
        self.model.optimizer.learning_rate = lr / 2
        print(f"epoch {epoch}: val_loss {logs['val_loss']:.4f} did not improve, lr -> {lr / 2:.6f}")
        if self.wait >= self.patience:
            self.model.stop_training = True


class PrintsItsModel(keras.callbacks.Callback):
    """Depends on the model's Keras class name: the one difference callbridge cannot hide (the model is a
    proxy of the LightningModule), and what ``callbridge verify`` shows you."""

    def on_train_begin(self, logs=None):
        print("training", type(self.model).__name__)
