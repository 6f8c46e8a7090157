"""What [`LoggingCallback`][LoggingCallback] logs, named and stepped the way Lightning's own loggers record the same
run.

- The run's metrics go in three streams, as Lightning hands them to its loggers: at a logging step the values
  logged for that training step (``train_loss_step``, or a plain name logged with ``on_step`` only), at the end
  of an evaluation its results (``val_loss``), at the end of a training epoch the epoch values
  (``train_loss_epoch``); each with ``epoch``. A name that Lightning forks into ``<name>_step``/``<name>_epoch``
  is never logged under its bare name as well.
- Learning rates are named as ``LearningRateMonitor`` names them: ``lr-SGD``, ``lr-Adam-1`` for a second Adam,
  ``lr-SGD/pg2`` (or the param group's ``name``) when an optimizer has several groups.
- The step is the one Lightning's loggers record: the count of optimizer steps *before* the batch, so the values
  of the batch that took the run from step 7 to step 8 are recorded at step 7.
- Hyperparameters are the run's (``ctx.hparams``: the module's, then the datamodule's) plus the settings of the
  run's callbacks under ``callbacks/<Class>/<setting>``, flattened with ``/`` as Lightning's loggers do.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import sys
from argparse import Namespace
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

from callbridge.callbacks.context import CallbackContext

#: the streams a metric belongs to (``DUPLICATE``: the bare name of a forked metric, never logged)
STEP, EVALUATE, EPOCH, DUPLICATE = "step", "evaluate", "epoch", "duplicate"


class MetricStreams:
    """Sorts the run's metric names into Lightning's three logging streams by where each first shows up.

    A name ending in ``_step`` belongs to the step stream; the bare name ``x`` of a metric forked into
    ``x_step``/``x_epoch`` is a duplicate; any other name belongs to the stream of the point where it was
    first seen: a training step (or the start of an evaluation inside ``fit``, which sees what training logged
    since the last logging step), the end of an evaluation, or the end of a training epoch.
    """

    def __init__(self) -> None:
        self.kind: dict[str, str] = {}

    def observe(self, metrics: Mapping[str, float], where: str) -> None:
        for key in metrics:
            if key in self.kind:
                continue
            if f"{key}_step" in metrics or f"{key}_epoch" in metrics:
                self.kind[key] = DUPLICATE
            elif key.endswith("_step"):
                self.kind[key] = STEP
            else:
                self.kind[key] = where

    def select(self, metrics: Mapping[str, float], where: str) -> dict[str, float]:
        self.observe(metrics, where)
        return {key: value for key, value in metrics.items() if self.kind[key] == where}


def log_step(ctx: CallbackContext) -> int:
    """The step Lightning's loggers record now: optimizer steps before the current batch while fitting (its
    ``_batches_that_stepped``), the steps taken so far in ``validate``/``test``."""
    return max(ctx.step - 1, 0) if ctx.stage == "fit" else ctx.step


def learning_rates(ctx: CallbackContext) -> dict[str, float]:
    """Every param group's learning rate under ``LearningRateMonitor``'s names: optimizers with a scheduler
    first (in the schedulers' order), then the others; ``-<n>`` for the n-th repeat of an optimizer class."""
    optimizers = list(ctx.optimizers or ([ctx.optimizer] if ctx.optimizer is not None else []))
    scheduled = [getattr(s, "optimizer", None) for s in ctx.schedulers or ([ctx.scheduler] if ctx.scheduler else [])]
    ordered = [o for o in scheduled if o is not None]
    ordered += [o for o in optimizers if all(o is not s for s in ordered)]
    seen: dict[type, int] = {}
    rates: dict[str, float] = {}
    for optimizer in ordered:
        cls = type(optimizer)
        seen[cls] = seen.get(cls, 0) + 1
        name = f"lr-{cls.__name__}" + (f"-{seen[cls] - 1}" if seen[cls] > 1 else "")
        groups = optimizer.param_groups
        for i, group in enumerate(groups):
            if len(groups) > 1:
                key = f"{name}/{group.get('name', f'pg{i + 1}')}"
            else:
                key = f"{name}/{group['name']}" if group.get("name") else name
            rates[key] = float(group["lr"])
    return rates


# -- hyperparameters -------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """``value`` as something JSON, YAML and every store can hold: numbers, strings, booleans, None, and
    lists/dicts of them; anything else as its ``str``."""
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (bool, int, float, str)):  # subclasses (an IntEnum is handled above)
        return type(value).__mro__[-2](value) if isinstance(value, (int, float, str)) else bool(value)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)  # a 0-d tensor or a numpy scalar
    if callable(item) and getattr(value, "ndim", None) == 0:
        return plain(item())
    return str(value)


def run_hparams(ctx: CallbackContext) -> dict[str, Any]:
    """The run's hyperparameters: ``ctx.hparams``; an engine that leaves it empty still gets the model's own
    ``hparams`` mapping (a ``LightningModule``'s ``save_hyperparameters``), when it has one."""
    params = ctx.hparams
    if not params:
        model_params = getattr(ctx.model, "hparams", None)
        params = model_params if isinstance(model_params, Mapping) else {}
    return plain(dict(params))


def callback_settings(callbacks: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """``{ClassName: {setting: value}}`` for the run's callbacks: the constructor arguments each keeps under the
    same public name (as scikit-learn's ``get_params`` reads them), when they are plain values. A second
    instance of a class is ``ClassName-1``, as Lightning names repeats."""
    settings: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for callback in callbacks:
        cls = type(callback)
        try:
            names = [
                p.name
                for p in inspect.signature(cls).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
        except (TypeError, ValueError):
            continue
        values = {}
        for name in names:
            value = getattr(callback, name, None) if not name.startswith("_") else None
            value = plain(value)
            items = value if isinstance(value, list) else [value]
            if all(v is None or isinstance(v, (bool, int, float, str)) for v in items):
                values[name] = value
        if not values:
            continue
        count = seen[cls.__name__] = seen.get(cls.__name__, 0) + 1
        settings[cls.__name__ if count == 1 else f"{cls.__name__}-{count - 1}"] = values
    return settings


# -- batch size and devices ------------------------------------------------------------------------------
def batch_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor (0 when there is none)."""
    shape = getattr(batch, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(batch, Mapping):
        batch = batch.values()
    if isinstance(batch, Iterable) and not isinstance(batch, (str, bytes)):
        for item in batch:
            size = batch_size(item)
            if size:
                return size
    return 0


class GpuStats:
    """Memory (and, through NVML when ``pynvml`` is installed, utilisation) of every visible CUDA device, as
    ``gpu<i>/memory_allocated_mb`` ...; nothing when CUDA is not in use."""

    def __init__(self) -> None:
        self.nvml = True

    def read(self) -> dict[str, float]:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return {}
        stats = {}
        mb = 1024.0 * 1024.0
        for i in range(torch.cuda.device_count()):
            stats[f"gpu{i}/memory_allocated_mb"] = torch.cuda.memory_allocated(i) / mb
            stats[f"gpu{i}/memory_reserved_mb"] = torch.cuda.memory_reserved(i) / mb
            stats[f"gpu{i}/max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(i) / mb
            if self.nvml:
                try:
                    stats[f"gpu{i}/utilization_pct"] = float(torch.cuda.utilization(i))
                except Exception:  # no pynvml / NVML: memory stats only
                    self.nvml = False
        return stats
