"""DDP scenarios for the Keras adapter: Keras callbacks run on rank zero, their effects reach every rank."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import keras
from callbridge.adapters import to_lightning
from toy import ToyRegression

from ddp_scenarios import ddp_trainer, scenario

VAL_SEQUENCE = [1.0, 0.9, 0.95, 0.97, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96]


@scenario
def keras_early_stop_lr_csv(workdir: Path) -> dict[str, Any]:
    """EarlyStopping + ReduceLROnPlateau + CSVLogger on a scripted val_loss; only rank 0 runs them."""
    import keras

    class Script(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = VAL_SEQUENCE[epoch]

    class Ranks(keras.callbacks.Callback):
        calls = 0

        def on_epoch_end(self, epoch, logs=None):
            Ranks.calls += 1

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "log.csv"
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    rlr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5)
    callbacks = [Script(), es, rlr, keras.callbacks.CSVLogger(str(path)), Ranks()]
    model = ToyRegression(n=32, batch_size=8, lr=0.1)
    trainer = ddp_trainer(to_lightning(callbacks), max_epochs=12, limit_val_batches=1, limit_train_batches=1)
    trainer.fit(model)
    trainer.strategy.barrier()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        "lr": trainer.optimizers[0].param_groups[0]["lr"],
        "stopped_epoch": es.stopped_epoch,
        "callback_calls": Ranks.calls,
        "csv_epochs": [row["epoch"] for row in rows],
        "csv_files": sorted(p.name for p in workdir.iterdir()),
        "weights": [p.detach().flatten().tolist() for p in model.parameters()],
    }


@scenario
def keras_proxy_variables_and_stop(workdir: Path) -> dict[str, Any]:
    """The Keras-shaped proxy under DDP: a learning rate assigned through the Keras variable, model.history,
    optimizer.iterations and a stop asked for in on_epoch_begin (taken after one batch, as fit does) reach every
    rank the same way; the bridge pickles before and after the run."""
    import pickle

    seen = _SEEN
    workdir.mkdir(parents=True, exist_ok=True)
    bridge = to_lightning([_Warmup()])[0]
    bridge = pickle.loads(pickle.dumps(bridge))
    model = ToyRegression(n=32, batch_size=8, lr=0.1)
    trainer = ddp_trainer([bridge], max_epochs=6, limit_val_batches=1, limit_train_batches=4)
    trainer.fit(model)
    pickle.dumps(bridge.callbacks[0].callbacks)  # the Keras callbacks themselves after the run
    return {
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        "lr": trainer.optimizers[0].param_groups[0]["lr"],
        "iterations": seen["iterations"],
        "history": seen["history"],
        "weights": [p.detach().flatten().tolist() for p in model.parameters()],
    }


_SEEN: dict[str, Any] = {"iterations": [], "history": []}


class _Warmup(keras.callbacks.Callback):
    """Module level, so that the bridge holding it pickles."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(0.0125 * (epoch + 1))
        _SEEN["iterations"].append(int(self.model.optimizer.iterations.numpy()))
        _SEEN["history"].append(list(self.model.history.epoch))
        if epoch == 2:
            self.model.stop_training = True
