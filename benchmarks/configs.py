"""The benchmark's model, its timing instruments and one factory per configuration (imports Lightning).

A factory takes an `Env` and returns a `Setup`: the callbacks, the Trainer options that
differ from `COMMON_TRAINER`, the meters that time the pieces of interest from the outside, and a
check run after ``fit``. A factory whose pieces are not importable yet raises `Unavailable`
naming them; the report shows that configuration as unavailable instead of failing.

Every configuration trains the same `BenchModule` (a tiny linear layer on pre-batched in-memory
tensors, so that a step costs little besides the framework) with the same `LoopTimer` first
in its callback list.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from callbridge.adapters.conformance import SCRIPTED_TRAINER
from lightning.pytorch.callbacks import Callback as PLCallback
from torch.utils.data import DataLoader, TensorDataset

N_CALLBACKS = 20
BATCH_SIZE = 16
FEATURES = 8
VAL_BATCHES = 4

#: Trainer options shared by every configuration; a configuration overrides only what it is about.
COMMON_TRAINER: dict[str, Any] = {**SCRIPTED_TRAINER, "log_every_n_steps": 1}


# -- the model -----------------------------------------------------------------------------------------
class BenchModule(L.LightningModule):
    """A linear regression whose step costs almost nothing: the framework's per-step cost dominates.

    The data are pre-batched tensors (``DataLoader(batch_size=None)``: no collation), optionally created
    on ``device`` so that no host-to-device copy happens per step. Logs ``train_loss`` (step and epoch)
    and ``val_loss``, which the stacks monitor and log. ``after_step`` (if set) is called at the end of
    the module's ``on_train_batch_end``, which Lightning runs after every callback's.
    """

    def __init__(self, batches: int, val_batches: int = VAL_BATCHES, device: str | torch.device = "cpu") -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(FEATURES, 1, generator=generator)

        def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randn(n, BATCH_SIZE, FEATURES, generator=generator)
            y = x @ weight + 0.1 * torch.randn(n, BATCH_SIZE, 1, generator=generator)
            return x.to(device), y.to(device)

        self.x, self.y = make(batches)
        self.vx, self.vy = make(val_batches)
        self.layer = torch.nn.Linear(FEATURES, 1)
        self.after_step: Callable[[], None] | None = None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True, batch_size=BATCH_SIZE)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), batch_size=BATCH_SIZE)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.after_step is not None:
            self.after_step()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.vx, self.vy), batch_size=None)


# -- instruments ---------------------------------------------------------------------------------------
#: True between the LoopTimer's on_train_start and on_train_end: meters split their time on it.
IN_LOOP = [False]


class LoopTimer(PLCallback):
    """First callback of every configuration: the fit loop's wall time and the time of each step.

    ``t0`` at ``on_train_start``, ``t1`` at ``on_train_end`` (before the other callbacks' ``on_train_end``),
    and ``marks``: ``perf_counter()`` at every ``on_train_batch_end``.
    """

    def __init__(self) -> None:
        self.t0 = self.t1 = 0.0
        self.marks: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks = []
        IN_LOOP[0] = True
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t1 = time.perf_counter()
        IN_LOOP[0] = False


@dataclass
class Meter:
    """Time spent inside wrapped methods (a timing proxy installed from outside, in the benchmark only)."""

    calls: int = 0
    seconds: float = 0.0
    #: the part of ``seconds`` spent while the fit loop ran (on_train_start to on_train_end)
    loop_seconds: float = 0.0
    max_s: float = 0.0
    #: number of metric values passed to wrapped ``log_metrics`` calls
    values: int = 0
    #: seconds per wrapped method name
    by_name: dict[str, float] = field(default_factory=dict)

    def wrap(self, obj: Any, name: str, *, count_values: bool = False) -> None:
        original = getattr(obj, name)
        meter = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                meter.calls += 1
                meter.seconds += spent
                if IN_LOOP[0]:
                    meter.loop_seconds += spent
                meter.max_s = max(meter.max_s, spent)
                meter.by_name[name] = meter.by_name.get(name, 0.0) + spent
                if count_values:
                    metrics = kwargs.get("metrics", args[0] if args else {})
                    meter.values += len(metrics)

        timed.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(obj, name, timed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "seconds": self.seconds,
            "loop_seconds": self.loop_seconds,
            "max_s": self.max_s,
            "values": self.values,
            "by_name": dict(self.by_name),
        }


#: Methods that run once the loop is over: the final flush of a logger or callback happens here.
END_METHODS = ("on_train_end", "on_fit_end", "on_stage_end", "teardown", "finalize", "on_exception")

LOGGER_METHODS = ("log_metrics", "log_hyperparams", "save", "finalize", "after_save_checkpoint", "log_graph")


def time_logger(logger: Any, meter: Meter) -> None:
    """Wrap every method through which the Trainer hands work to a Lightning logger."""
    for name in LOGGER_METHODS:
        if hasattr(logger, name):
            meter.wrap(logger, name, count_values=name == "log_metrics")


def time_lightning_hooks(callback: PLCallback, meter: Meter) -> None:
    """Wrap the Lightning hooks that ``callback``'s class overrides."""
    for name in dir(PLCallback):
        if (name.startswith("on_") or name in ("setup", "teardown")) and getattr(type(callback), name) is not getattr(
            PLCallback, name
        ):
            meter.wrap(callback, name)


def time_unified_hooks(callback: Any, meter: Meter) -> None:
    """Wrap the unified hooks ``callback`` listens to (the bridge looks them up on the instance)."""
    for name in callback.implemented_hooks():
        meter.wrap(callback, name)


# -- configurations ------------------------------------------------------------------------------------
class Unavailable(Exception):
    """A configuration's pieces are not importable (yet): ``missing`` names them."""

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = list(missing)
        super().__init__(", ".join(self.missing))


def need(module: str, *names: str) -> list[Any]:
    """``module``'s attributes ``names``, or `Unavailable` listing what is missing."""
    try:
        imported = importlib.import_module(module)
    except ImportError:
        raise Unavailable([f"{module}.{n}" for n in names] or [module]) from None
    missing = [f"{module}.{n}" for n in names if not hasattr(imported, n)]
    if missing:
        raise Unavailable(missing)
    return [getattr(imported, n) for n in names]


def need_style(obj: Any, style: str) -> None:
    """`Unavailable` unless callbridge's style detection recognises ``obj`` as ``style``."""
    (detect_style,) = need("callbridge.adapters.styles", "detect_style")
    try:
        found = detect_style(obj)
    except TypeError:
        found = None
    if found != style:
        raise Unavailable([f"the {style!r} style (callbridge.adapters.registry)"])


@dataclass
class Env:
    """What a factory may use: the run's size and a fresh folder of its own."""

    steps: int
    epochs: int
    workdir: Path

    @property
    def batches(self) -> int:
        return self.steps // self.epochs


@dataclass
class Setup:
    callbacks: list[Any]
    trainer: dict[str, Any] = field(default_factory=dict)
    meters: dict[str, Meter] = field(default_factory=dict)
    #: meter names summed into "blocked in logging" / "blocked in checkpointing"
    logging_meters: tuple[str, ...] = ()
    checkpoint_meters: tuple[str, ...] = ()
    mlflow_meter: str | None = None
    #: called with the trainer before fit (e.g. to time trainer.save_checkpoint)
    attach: list[Callable[[L.Trainer], None]] = field(default_factory=list)
    #: called after fit: returns extra facts for the report, raises AssertionError when the run was wrong
    after_fit: Callable[[L.Trainer], dict[str, Any]] | None = None


class _Counter:
    def __init__(self) -> None:
        self.calls = 0


def _expect_calls(counter: _Counter, expected: int, what: str) -> Callable[[L.Trainer], dict[str, Any]]:
    def check(trainer: L.Trainer) -> dict[str, Any]:
        if counter.calls != expected:
            raise AssertionError(f"{what}: {counter.calls} hook calls, expected {expected}")
        return {"hook_calls": counter.calls}

    return check


# The 20 callbacks override one epoch-level hook each, cycling through four; the unified ones override the
# hook the bridge maps that Lightning hook to (docs/hooks.md).
NATIVE_HOOKS = ("on_train_epoch_start", "on_train_epoch_end", "on_validation_start", "on_validation_end")
UNIFIED_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_evaluate_begin", "on_evaluate")


def _native_class(hook: str) -> type:
    def method(self: Any, trainer: Any, pl_module: Any) -> None:
        self.counter.calls += 1

    def __init__(self: Any, counter: _Counter) -> None:
        self.counter = counter

    return type(f"Native_{hook}", (PLCallback,), {"__init__": __init__, hook: method})


def _unified_class(hook: str) -> type:
    (Callback,) = need("callbridge.callbacks", "Callback")

    def method(self: Any, ctx: Any) -> None:
        self.counter.calls += 1

    def __init__(self: Any, counter: _Counter) -> None:
        self.counter = counter

    return type(f"Unified_{hook}", (Callback,), {"__init__": __init__, hook: method})


class KerasStyle:
    """Duck-typed Keras callback: ``on_epoch_end(epoch, logs)`` only, no base class."""

    def __init__(self, counter: _Counter) -> None:
        self.counter = counter

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.counter.calls += 1


class HydraStyle:
    """Hydra-style callback: ``on_job_end(config, job_return, **kwargs)`` only, no base class."""

    def __init__(self, counter: _Counter) -> None:
        self.counter = counter

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        self.counter.calls += 1


def baseline(env: Env) -> Setup:
    return Setup(callbacks=[])


def native20(env: Env) -> Setup:
    counter = _Counter()
    classes = [_native_class(h) for h in NATIVE_HOOKS]
    callbacks = [classes[i % len(classes)](counter) for i in range(N_CALLBACKS)]
    return Setup(callbacks, after_fit=_expect_calls(counter, N_CALLBACKS * env.epochs, "native callbacks"))


def unified20(env: Env) -> Setup:
    (to_lightning,) = need("callbridge.adapters", "to_lightning")
    counter = _Counter()
    classes = [_unified_class(h) for h in UNIFIED_HOOKS]
    callbacks = [classes[i % len(classes)](counter) for i in range(N_CALLBACKS)]
    return Setup(to_lightning(callbacks), after_fit=_expect_calls(counter, N_CALLBACKS * env.epochs, "unified"))


def keras20(env: Env) -> Setup:
    (to_lightning,) = need("callbridge.adapters", "to_lightning")
    counter = _Counter()
    callbacks = [KerasStyle(counter) for _ in range(N_CALLBACKS)]
    need_style(callbacks[0], "keras")
    return Setup(to_lightning(callbacks), after_fit=_expect_calls(counter, N_CALLBACKS * env.epochs, "keras"))


class _NativeBatchReader(PLCallback):
    """Reads the batch loss as a native Lightning callback does: ``outputs["loss"].item()`` every step."""

    def __init__(self, counter: _Counter) -> None:
        self.counter = counter
        self.total = 0.0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.total += outputs["loss"].item()
        self.counter.calls += 1


def native_batch20(env: Env) -> Setup:
    counter = _Counter()
    callbacks = [_NativeBatchReader(counter) for _ in range(N_CALLBACKS)]
    return Setup(
        callbacks, after_fit=_expect_calls(counter, N_CALLBACKS * env.batches * env.epochs, "native batch readers")
    )


def keras_batch20(env: Env) -> Setup:
    """20 real Keras callbacks reading ``logs["loss"]`` in ``on_train_batch_end`` (running means, as in fit)."""
    (to_lightning,) = need("callbridge.adapters", "to_lightning")
    (callbacks_module,) = need("keras", "callbacks")
    counter = _Counter()

    class KerasBatchReader(callbacks_module.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.total = 0.0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.total += logs["loss"]
            counter.calls += 1

    callbacks = [KerasBatchReader() for _ in range(N_CALLBACKS)]
    return Setup(
        to_lightning(callbacks), after_fit=_expect_calls(counter, N_CALLBACKS * env.batches * env.epochs, "keras batch")
    )


def hydra20(env: Env) -> Setup:
    (to_lightning,) = need("callbridge.adapters", "to_lightning")
    counter = _Counter()
    callbacks = [HydraStyle(counter) for _ in range(N_CALLBACKS)]
    need_style(callbacks[0], "hydra")
    return Setup(to_lightning(callbacks), after_fit=_expect_calls(counter, N_CALLBACKS, "hydra on_job_end"))


#: The HF events the 20 HF callbacks override, cycling: each fires once per epoch (validation every epoch).
HF_EVENTS = ("on_epoch_begin", "on_epoch_end", "on_evaluate")


def _hf_class(event: str) -> type:
    (TrainerCallback,) = need("transformers", "TrainerCallback")

    def method(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.counter.calls += 1

    def __init__(self: Any, counter: _Counter) -> None:
        self.counter = counter

    return type(f"HF_{event}", (TrainerCallback,), {"__init__": __init__, event: method})


def hf20(env: Env) -> Setup:
    """20 HF ``TrainerCallback``\\ s with derived ``TrainingArguments``: besides their epoch-level events the
    adapter keeps HF's state every step (global_step, epoch, the loss window) and, with ``log_every_n_steps=1``,
    logs HF's window (loss, grad_norm, learning_rate) at every step, as HF would with ``logging_steps=1``."""
    (to_lightning,) = need("callbridge.adapters", "to_lightning")
    counter = _Counter()
    classes = [_hf_class(e) for e in HF_EVENTS]
    callbacks = [classes[i % len(classes)](counter) for i in range(N_CALLBACKS)]
    need_style(callbacks[0], "hf")
    return Setup(to_lightning(callbacks), after_fit=_expect_calls(counter, N_CALLBACKS * env.epochs, "hf"))


# -- the stacks (5, 6) ---------------------------------------------------------------------------------
def _mlflow_store(workdir: Path) -> str:
    """A local sqlite MLflow store, created (schema migrated) before the run, outside any timing."""
    need("mlflow", "MlflowClient")
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def count_mlflow_values(uri: str, run_id: str | None) -> int | None:
    """How many metric values the store holds for ``run_id`` (every key's full history)."""
    if run_id is None:
        return None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    return sum(len(client.get_metric_history(run_id, key)) for key in run.data.metrics)


def _time_save_checkpoint(meter: Meter) -> Callable[[L.Trainer], None]:
    return lambda trainer: meter.wrap(trainer, "save_checkpoint")


def native_stack(env: Env) -> Setup:
    need("mlflow")
    need("tensorboard")
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

    uri = _mlflow_store(env.workdir)
    tb = TensorBoardLogger(save_dir=str(env.workdir), name="tb")
    mlf = MLFlowLogger(experiment_name="bench", tracking_uri=uri)
    early = EarlyStopping(monitor="val_loss", mode="min", patience=10**9)
    ckpt = ModelCheckpoint(
        dirpath=str(env.workdir / "ckpt"), monitor="val_loss", mode="min", save_top_k=2, save_last=True
    )
    bar = TQDMProgressBar(refresh_rate=1)
    lr = LearningRateMonitor(logging_interval="step")
    meters = {name: Meter() for name in ("tensorboard", "mlflow", "lr_monitor", "checkpoint", "save_checkpoint")}
    meters.update(early_stopping=Meter(), progress=Meter())
    time_logger(tb, meters["tensorboard"])
    time_logger(mlf, meters["mlflow"])
    time_lightning_hooks(lr, meters["lr_monitor"])
    time_lightning_hooks(ckpt, meters["checkpoint"])
    time_lightning_hooks(early, meters["early_stopping"])
    time_lightning_hooks(bar, meters["progress"])

    def after_fit(trainer: L.Trainer) -> dict[str, Any]:
        return {"mlflow_submitted": meters["mlflow"].values, "mlflow_stored": count_mlflow_values(uri, mlf.run_id)}

    return Setup(
        callbacks=[early, ckpt, bar, lr],
        trainer={"logger": [tb, mlf], "enable_checkpointing": True, "enable_progress_bar": True},
        meters=meters,
        logging_meters=("tensorboard", "mlflow", "lr_monitor"),
        checkpoint_meters=("checkpoint",),
        mlflow_meter="mlflow",
        attach=[_time_save_checkpoint(meters["save_checkpoint"])],
        after_fit=after_fit,
    )


def _logging_callback(env: Env, backends: list[str], uri: str) -> Any:
    (LoggingCallback,) = need("callbridge.callbacks", "LoggingCallback")
    # close_timeout: every value must be stored when fit returns, however long that takes
    return LoggingCallback(
        backends=backends,
        log_steps=1,
        save_dir=str(env.workdir),
        tracking_uri=uri,
        experiment_name="bench",
        close_timeout=600.0,
    )


def _logging_facts(callback: Any, uri: str) -> dict[str, Any]:
    logged = getattr(callback, "logged", None)
    return {
        "mlflow_submitted": sum(logged.values()) if isinstance(logged, dict) else None,
        "mlflow_stored": count_mlflow_values(uri, getattr(callback, "mlflow_run_id", None)),
        "self_reported_blocked_s": getattr(callback, "blocked_seconds", None),
    }


def callbridge_stack(env: Env) -> Setup:
    (to_lightning,) = need("callbridge.adapters", "to_lightning")
    names = ("EarlyStoppingCallback", "CheckpointCallback", "LoggingCallback", "ProgressCallback")
    EarlyStoppingCallback, CheckpointCallback, _, ProgressCallback = need("callbridge.callbacks", *names)
    uri = _mlflow_store(env.workdir)
    # restore_best=False: Lightning's EarlyStopping keeps no snapshot; benchmarks/memory.py measures snapshots.
    early = EarlyStoppingCallback(monitor="val_loss", mode="min", patience=10**9, restore_best=False)
    ckpt = CheckpointCallback(
        str(env.workdir / "ckpt"), strategy="epoch", monitor="val_loss", mode="min", save_total_limit=2, save_last=True
    )
    logging = _logging_callback(env, ["tensorboard", "mlflow"], uri)
    progress = ProgressCallback(refresh_rate=1)
    meters = {name: Meter() for name in ("logging", "checkpoint", "save_checkpoint", "early_stopping", "progress")}
    time_unified_hooks(logging, meters["logging"])
    time_unified_hooks(ckpt, meters["checkpoint"])
    time_unified_hooks(early, meters["early_stopping"])
    time_unified_hooks(progress, meters["progress"])
    return Setup(
        callbacks=to_lightning([early, ckpt, logging, progress]),
        meters=meters,
        logging_meters=("logging",),
        checkpoint_meters=("checkpoint",),
        mlflow_meter="logging",  # TensorBoard and MLflow together: an upper bound of MLflow's share
        attach=[_time_save_checkpoint(meters["save_checkpoint"])],
        after_fit=lambda trainer: _logging_facts(logging, uri),
    )


def native_mlflow(env: Env, synchronous: bool | None = None) -> Setup:
    need("mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    uri = _mlflow_store(env.workdir)
    mlf = MLFlowLogger(experiment_name="bench", tracking_uri=uri, synchronous=synchronous)
    meters = {"mlflow": Meter()}
    time_logger(mlf, meters["mlflow"])

    # with synchronous=False, MLFlowLogger.finalize (set_terminated) waits until MLflow's queue is drained:
    # fit's wall time includes storing every value, as it does for LoggingCallback (close_timeout=600)
    def after_fit(trainer: L.Trainer) -> dict[str, Any]:
        return {"mlflow_submitted": meters["mlflow"].values, "mlflow_stored": count_mlflow_values(uri, mlf.run_id)}

    return Setup(
        callbacks=[],
        trainer={"logger": mlf},
        meters=meters,
        logging_meters=("mlflow",),
        mlflow_meter="mlflow",
        after_fit=after_fit,
    )


def native_mlflow_async(env: Env) -> Setup:
    """MLFlowLogger(synchronous=False): log_batch hands the values to MLflow's own background queue."""
    return native_mlflow(env, synchronous=False)


def callbridge_mlflow(env: Env) -> Setup:
    (to_lightning,) = need("callbridge.adapters", "to_lightning")
    need("mlflow")
    uri = _mlflow_store(env.workdir)
    logging = _logging_callback(env, ["mlflow"], uri)
    meters = {"logging": Meter()}
    time_unified_hooks(logging, meters["logging"])
    return Setup(
        callbacks=to_lightning([logging]),
        meters=meters,
        logging_meters=("logging",),
        mlflow_meter="logging",
        after_fit=lambda trainer: _logging_facts(logging, uri),
    )


FACTORIES: dict[str, Callable[[Env], Setup]] = {
    "baseline": baseline,
    "native20": native20,
    "unified20": unified20,
    "keras20": keras20,
    "hydra20": hydra20,
    "native_batch20": native_batch20,
    "keras_batch20": keras_batch20,
    "hf20": hf20,
    "native_stack": native_stack,
    "callbridge_stack": callbridge_stack,
    "native_mlflow": native_mlflow,
    "native_mlflow_async": native_mlflow_async,
    "callbridge_mlflow": callbridge_mlflow,
}
