"""WarpRec-style callbacks shared by the WarpRec tests, the Ray sweep test and the DDP scenario.

``WarpRecCallback`` stands in for ``warprec.utils.callback.WarpRecCallback`` (warprec cannot be installed
here): same name, same module, same base class (``ray.tune.Callback``), no-op hooks with the signatures of
WarpRec's current release (``on_dataset_creation(main_dataset, validation_folds, *args, **kwargs)``).
``EarlierWarpRecCallback`` has the earlier release's ``on_dataset_creation``, which also took ``val_dataset``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ray.tune import Callback as TuneCallback


class WarpRecCallback(TuneCallback):
    def on_data_reading(self, data: Any) -> Any:
        return data

    def on_dataset_creation(self, main_dataset: Any, validation_folds: Any, *args, **kwargs):
        pass

    def on_training_complete(self, model: Any, *args, **kwargs) -> None:
        pass

    def on_evaluation_complete(self, model: Any, params: dict, results: dict, *args, **kwargs) -> None:
        pass


WarpRecCallback.__module__ = "warprec.utils.callback"


class EarlierWarpRecCallback(WarpRecCallback):
    """WarpRec's base class before ``val_dataset`` was dropped from ``on_dataset_creation``."""

    def on_dataset_creation(self, main_dataset: Any, val_dataset: Any, validation_folds: Any, *args, **kwargs):
        pass


EarlierWarpRecCallback.__qualname__ = EarlierWarpRecCallback.__name__ = "WarpRecCallback"
EarlierWarpRecCallback.__module__ = "warprec.utils.callback"


class ComputeMetricOverIterations(WarpRecCallback):
    """In the style of WarpRec's callback guide: collect a metric in ``on_trial_save``, plot it at the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._save_path = kwargs.get("save_path")
        self._metric = kwargs.get("metric", "val_rmse")
        self._scores: list[float] = []
        self.plotted: list[float] | None = None

    def on_trial_save(self, iteration, trials, trial, **info):
        self._scores.append(trial.last_result.get(self._metric, 0.0))

    def on_training_complete(self, model, *args, **kwargs):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        iterations = list(range(1, len(self._scores) + 1))
        plt.figure(figsize=(6, 4))
        (line,) = plt.plot(iterations, self._scores, marker="o", label=self._metric)
        self.plotted = [float(y) for y in line.get_ydata()]  # the points the figure holds
        plt.xlabel("Iteration")
        plt.ylabel(self._metric)
        plt.legend()
        if self._save_path:
            plt.savefig(self._save_path)
        plt.close()


class FilterLowRatings(WarpRecCallback):
    """Keeps the interactions rated at least ``min_rating``."""

    def __init__(self, min_rating: float = 3.0) -> None:
        self.min_rating = min_rating
        self.seen_rows: list[int] = []

    def on_data_reading(self, data):
        self.seen_rows.append(len(data))
        return data[data["rating"] >= self.min_rating].reset_index(drop=True)


class _Calls(list):
    """A list of ``(hook, kwargs)``; with a path, also appends ``{"hook", "pid"}`` JSON lines there."""

    def __init__(self, log_path: str | None) -> None:
        super().__init__()
        self.log_path = log_path

    def append(self, item: tuple[str, dict[str, Any]]) -> None:
        super().append(item)
        if self.log_path:
            with open(self.log_path, "a") as log:
                log.write(json.dumps({"hook": item[0], "pid": os.getpid()}) + "\n")


class Recorder(WarpRecCallback):
    """Records every WarpRec and Ray Tune hook with its keyword arguments."""

    def __init__(self, log_path: str | None = None) -> None:
        self.calls = _Calls(log_path)
        self.restored_state: dict | None = None

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def on_data_reading(self, data):
        self.calls.append(("on_data_reading", {"rows": len(data)}))
        return data

    def on_dataset_creation(self, main_dataset, validation_folds, *args, **kwargs):
        self.calls.append(
            ("on_dataset_creation", {"main": len(main_dataset), "folds": validation_folds, "extra": (args, kwargs)})
        )

    def on_training_complete(self, model, *args, **kwargs):
        self.calls.append(("on_training_complete", {"model": model}))

    def on_evaluation_complete(self, model, params, results, *args, **kwargs):
        self.calls.append(("on_evaluation_complete", {"model": model, "params": params, "results": results}))

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.calls.append(
            ("setup", {"stop": stop, "num_samples": num_samples, "total_num_samples": total_num_samples, **info})
        )

    def on_trial_start(self, iteration, trials, trial, **info):
        self.calls.append(("on_trial_start", {"trial": trial, "status": trial.status}))

    def on_trial_restore(self, iteration, trials, trial, **info):
        self.calls.append(("on_trial_restore", {"trial": trial, "status": trial.status}))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        previous = trial.last_result.get("training_iteration")
        self.calls.append(("on_trial_result", {"result": dict(result), "iteration": iteration, "previous": previous}))

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        with checkpoint.as_directory() as folder:
            files = sorted(os.listdir(folder))
        self.calls.append(("on_checkpoint", {"checkpoint": checkpoint, "files": files, "status": trial.status}))

    def on_trial_save(self, iteration, trials, trial, **info):
        self.calls.append(("on_trial_save", {"last_result": dict(trial.last_result), "checkpoint": trial.checkpoint}))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.calls.append(("on_trial_complete", {"status": trial.status, "done": trial.last_result.get("done")}))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.calls.append(("on_trial_error", {"status": trial.status, "error_file": trial.error_file}))

    def on_experiment_end(self, trials, **info):
        self.calls.append(("on_experiment_end", {"n": len(trials), "status": trials[0].status}))

    def get_state(self):
        return {"hooks_so_far": len(self.calls)}

    def set_state(self, state):
        self.restored_state = state
