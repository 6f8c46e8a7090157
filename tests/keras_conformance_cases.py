"""The callbacks the Keras conformance harness runs (tests/test_keras_conformance.py): Keras 3's built-ins that
run without TensorFlow, the callbacks of Keras' guide "Writing your own callbacks" (re-typed from the guide),
MLflow's, Optuna's, tqdm's and keras-tuner's Keras callbacks. Each case builds a fresh callback in a directory."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from callbridge.adapters.keras.conformance import Script


# -- Keras' guide "Writing your own callbacks" (Keras 3 version) -------------------------------------
class CustomCallback(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        print(f"Starting training; got log keys: {list(logs.keys())}")

    def on_train_end(self, logs=None):
        print(f"Stop training; got log keys: {list(logs.keys())}")

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Start epoch {epoch} of training; got log keys: {list(logs.keys())}")

    def on_epoch_end(self, epoch, logs=None):
        print(f"End epoch {epoch} of training; got log keys: {list(logs.keys())}")

    def on_test_begin(self, logs=None):
        print(f"Start testing; got log keys: {list(logs.keys())}")

    def on_test_end(self, logs=None):
        print(f"Stop testing; got log keys: {list(logs.keys())}")

    def on_predict_begin(self, logs=None):
        print(f"Start predicting; got log keys: {list(logs.keys())}")

    def on_predict_end(self, logs=None):
        print(f"Stop predicting; got log keys: {list(logs.keys())}")

    def on_train_batch_begin(self, batch, logs=None):
        print(f"...Training: start of batch {batch}; got log keys: {list(logs.keys())}")

    def on_train_batch_end(self, batch, logs=None):
        print(f"...Training: end of batch {batch}; got log keys: {list(logs.keys())}")

    def on_test_batch_begin(self, batch, logs=None):
        print(f"...Evaluating: start of batch {batch}; got log keys: {list(logs.keys())}")

    def on_test_batch_end(self, batch, logs=None):
        print(f"...Evaluating: end of batch {batch}; got log keys: {list(logs.keys())}")

    def on_predict_batch_begin(self, batch, logs=None):
        print(f"...Predicting: start of batch {batch}; got log keys: {list(logs.keys())}")

    def on_predict_batch_end(self, batch, logs=None):
        print(f"...Predicting: end of batch {batch}; got log keys: {list(logs.keys())}")


class LossAndErrorPrintingCallback(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(f"Up to batch {batch}, the average loss is {logs['loss']:7.2f}.")

    def on_test_batch_end(self, batch, logs=None):
        print(f"Up to batch {batch}, the average loss is {logs['loss']:7.2f}.")

    def on_epoch_end(self, epoch, logs=None):
        print(
            f"The average loss for epoch {epoch} is {logs['loss']:7.2f} "
            f"and mean absolute error is {logs['mean_absolute_error']:7.2f}."
        )


class EarlyStoppingAtMinLoss(keras.callbacks.Callback):
    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("val_loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class CustomLearningRateScheduler(keras.callbacks.Callback):
    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        lr = self.model.optimizer.learning_rate
        scheduled_lr = self.schedule(epoch, lr)
        self.model.optimizer.learning_rate = scheduled_lr
        print(f"\nEpoch {epoch}: Learning rate is {float(np.array(scheduled_lr))}.")


LR_SCHEDULE = [(1, 0.05), (3, 0.01)]


def lr_schedule(epoch, lr):
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for start, rate in LR_SCHEDULE:
        if epoch == start:
            return rate
    return lr


# -- callbacks that probe what fit's semantics decide --------------------------------------------------
class StopAtEpochBegin(keras.callbacks.Callback):
    """Asks to stop in on_epoch_begin of epoch 2: fit still runs one batch and that epoch's validation."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        print("train end logs:", logs)


class ModelApi(keras.callbacks.Callback):
    """Uses the model the way third-party callbacks do: variables, config, summary, predict, history."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_train_begin(self, logs=None):
        lr = self.model.optimizer.learning_rate
        print("lr", float(lr), lr.numpy().dtype, float(keras.ops.convert_to_numpy(lr)))
        config = self.model.optimizer.get_config()
        print("config", sorted(config), config["learning_rate"], config["momentum"], config["nesterov"])
        lines = []
        self.model.summary(print_fn=lambda line, *a, **k: lines.append(line))
        print("summary", lines[0].splitlines()[0].startswith("Model:"))

    def on_epoch_end(self, epoch, logs=None):
        print("iterations", int(self.model.optimizer.iterations.numpy()), "history", self.model.history.epoch)
        predictions = self.model.predict(self.x, verbose=0, batch_size=2)
        print("predict", predictions.shape, predictions.dtype, round(float(predictions.sum()), 4))
        results = self.model.evaluate(self.x, self.y, verbose=0, batch_size=2)
        print("evaluate", [round(float(v), 4) for v in results])
        if epoch == 1:
            self.model.optimizer.learning_rate.assign(0.03125)


class BatchBestCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint(save_freq=1, save_best_only=True)``: Keras 3.15 sets its comparison only at the first
    epoch end and fails at the first batch (at home too), so it is set at train begin here."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._set_monitor_op()


# -- the cases -----------------------------------------------------------------------------------------
@dataclass
class Case:
    """One callback to run at home and under callbridge."""

    name: str
    make: Callable[[Path], Any]
    script: Script = field(default_factory=Script)
    probe: Callable[[Path], Any] | None = None
    skip: dict[str, str] = field(default_factory=dict)


BINARY_MODEL_FILES = "content differs by design: Keras writes HDF5/.keras archives, callbridge a safetensors state dict"


_MLFLOW: dict[str, str] = {}
MLFLOW_FILES = "MLflow's store files hold run ids and times; the probe compares the store's params, metrics, artifacts"


def _mlflow_uri() -> str:
    """One sqlite store for every MLflow case of the session (creating one costs seconds); an experiment per side."""
    if "uri" not in _MLFLOW:
        import tempfile

        _MLFLOW["uri"] = f"sqlite:///{tempfile.mkdtemp(prefix='callbridge-mlflow-')}/mlflow.db"
    return _MLFLOW["uri"]


def _mlflow_probe(directory: Path) -> Any:
    import re

    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.end_run()
    mlflow.set_tracking_uri(None)
    logging.getLogger("mlflow").setLevel(logging.NOTSET)
    client = MlflowClient(tracking_uri=_mlflow_uri())
    (run,) = client.search_runs([client.get_experiment_by_name(str(directory)).experiment_id])
    metrics = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in run.data.metrics}
    params = dict(sorted(run.data.params.items()))
    # Keras numbers optimizer names per process (sgd, sgd_1, ...): compare the name without that counter
    params["optimizer_name"] = re.sub(r"_\d+$", "", params.get("optimizer_name", ""))
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    return {"params": params, "metrics": dict(sorted(metrics.items())), "artifacts": artifacts}


def _mlflow(every_n: int | None) -> Callable[[Path], Any]:
    def make(directory: Path) -> Any:
        import mlflow
        from mlflow.keras import MlflowCallback

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # store set-up lines are not the callback's output
        mlflow.set_tracking_uri(_mlflow_uri())
        mlflow.set_experiment(str(directory))
        mlflow.start_run()
        if every_n is None:
            return MlflowCallback()
        return MlflowCallback(log_every_epoch=False, log_every_n_steps=every_n)

    return make


_TRIALS: dict[str, Any] = {}


def _optuna(directory: Path) -> Any:
    import optuna
    from optuna_integration import KerasPruningCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.92))
    trial = study.ask()
    _TRIALS[str(directory)] = trial
    return KerasPruningCallback(trial, "val_loss", interval=2)


def _optuna_probe(directory: Path) -> Any:
    trial = _TRIALS.pop(str(directory))
    return {"reported": dict(sorted(trial.study.trials[0].intermediate_values.items()))}


def _tqdm(verbose: int) -> Callable[[Path], Any]:
    def make(directory: Path) -> Any:
        from tqdm.keras import TqdmCallback
        from tqdm.std import tqdm

        # no elapsed time or rate in the bar: their width changes where tqdm cuts the postfix
        bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}"
        return TqdmCallback(
            verbose=verbose,
            tqdm_class=tqdm,
            file=sys.stderr,
            mininterval=0,
            ascii=True,
            ncols=100,
            bar_format=bar_format,
        )

    return make


def _tuner_save_best(directory: Path) -> Any:
    from keras_tuner import Objective
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    return SaveBestEpoch(Objective("val_loss", "min"), "best.weights.h5")


def _tuner_callback(directory: Path) -> Any:
    import keras_tuner
    from keras_tuner.src.engine.tuner_utils import TunerCallback

    tuner = keras_tuner.RandomSearch(
        hypermodel=lambda hp: None,
        objective="val_loss",
        max_trials=1,
        directory=str(directory / "tuner"),
        project_name="p",
        overwrite=True,
        seed=1,
    )
    return TunerCallback(tuner, tuner.oracle.create_trial("tuner0"))


def cases() -> list[Case]:
    data = Script().data()
    verbose1 = Script(verbose=1)
    return [
        Case(
            "EarlyStopping", lambda d: keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
        ),
        Case("ReduceLROnPlateau", lambda d: keras.callbacks.ReduceLROnPlateau(patience=1, factor=0.5, verbose=1)),
        Case("CSVLogger", lambda d: keras.callbacks.CSVLogger("log.csv")),
        Case(
            "ModelCheckpoint(epoch, best)",
            lambda d: keras.callbacks.ModelCheckpoint(
                "best-{epoch}.weights.h5", save_best_only=True, save_weights_only=True
            ),
        ),
        Case(
            "ModelCheckpoint(save_freq=1)",
            lambda d: BatchBestCheckpoint(
                "b-{epoch}-{batch}-{loss:.4f}.weights.h5",
                monitor="loss",
                save_freq=1,
                save_best_only=True,
                save_weights_only=True,
            ),
        ),
        Case(
            "LearningRateScheduler", lambda d: keras.callbacks.LearningRateScheduler(lambda e, lr: lr * 0.5, verbose=1)
        ),
        Case("LambdaCallback", lambda d: keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: print(e, logs))),
        Case("TerminateOnNaN", lambda d: keras.callbacks.TerminateOnNaN()),
        Case("ProgbarLogger", lambda d: keras.callbacks.ProgbarLogger(), script=verbose1),
        Case("History", lambda d: keras.callbacks.History()),
        Case("RemoteMonitor", lambda d: keras.callbacks.RemoteMonitor(root="http://127.0.0.1:9")),
        Case("guide: CustomCallback", lambda d: CustomCallback()),
        Case("guide: LossAndErrorPrintingCallback", lambda d: LossAndErrorPrintingCallback()),
        Case("guide: EarlyStoppingAtMinLoss", lambda d: EarlyStoppingAtMinLoss(patience=1)),
        Case("guide: CustomLearningRateScheduler", lambda d: CustomLearningRateScheduler(lr_schedule)),
        Case("stop in on_epoch_begin", lambda d: StopAtEpochBegin()),
        Case("model API", lambda d: ModelApi(data["x_val"], data["y_val"])),
        Case("mlflow MlflowCallback", _mlflow(None), probe=_mlflow_probe, skip={"files": MLFLOW_FILES}),
        Case("mlflow MlflowCallback(every step)", _mlflow(1), probe=_mlflow_probe, skip={"files": MLFLOW_FILES}),
        Case("optuna KerasPruningCallback", _optuna, probe=_optuna_probe),
        Case("tqdm TqdmCallback(verbose=1)", _tqdm(1)),
        Case("tqdm TqdmCallback(verbose=2)", _tqdm(2)),
        Case("keras-tuner SaveBestEpoch", _tuner_save_best),
        Case("keras-tuner TunerCallback", _tuner_callback),
    ]
