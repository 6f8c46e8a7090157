"""The bridge's context: the one piece of callbridge that reads a ``lightning.Trainer``'s state.

`LightningContext` fills every public [`CallbackContext`][callbridge.callbacks.context.CallbackContext] field from the
trainer (run directories, data, optimizers, cadence, ranks, counters) and offers the few trainer operations
the bridge needs (stop, reduce, broadcast). Callbacks and adapters read the fields, never the trainer.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from callbridge.adapters.lightning.sharding import sharding_strategy
from callbridge.callbacks import CallbackContext
from lightning.pytorch.callbacks import ModelCheckpoint


class LightningContext(CallbackContext):
    """A [`CallbackContext`][callbridge.callbacks.context.CallbackContext] kept current from a ``lightning.Trainer``.

    The bridge creates one per trainer and calls `refresh` (counters), `begin_stage`
    (everything an entry point fixes: optimizers, schedulers, data, directories, cadence) and the
    ``enter_*`` methods (batch counts of the loop that starts); ``metrics`` come live from
    ``trainer.callback_metrics``.

    Examples:
        >>> import lightning as L, torch
        >>> from callbridge.adapters.lightning import LightningContext
        >>> class Tiny(L.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.save_hyperparameters({"width": 4})
        >>> trainer = L.Trainer(logger=False, default_root_dir="runs", enable_progress_bar=False)
        >>> ctx = LightningContext(trainer, Tiny())
        >>> ctx.begin_stage()
        >>> ctx.hparams, ctx.root_dir.endswith("runs"), ctx.world_size, ctx.log_every_n_steps
        ({'width': 4}, True, 1, 50)
    """

    def __init__(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().__init__(
            model=pl_module,
            trainer=trainer,
            world_size=trainer.world_size,
            is_global_zero=trainer.is_global_zero,
            metrics_source=self._callback_metrics,
        )
        self.global_rank = trainer.global_rank
        self.local_rank = trainer.local_rank

    def _callback_metrics(self) -> Mapping[str, Any]:
        return self.trainer.callback_metrics

    # -- reading the trainer -----------------------------------------------------------------------
    def attach(self, pl_module: pl.LightningModule, stage: str) -> None:
        """``setup``: the module and the entry point being set up, and the run's configuration (known from here
        on, before ``on_init_end``: styles that derive their own settings from the run read it there)."""
        trainer = self.trainer
        self.model = pl_module
        self.stage = trainer.state.fn.value if trainer.state.fn else str(stage)
        self.root_dir = str(trainer.default_root_dir)
        self.log_dir = _log_dir(trainer)
        self.max_epochs = _count(trainer.max_epochs)
        self.max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.log_every_n_steps = int(trainer.log_every_n_steps or 0)
        self.evaluates = self.stage in ("validate", "test") or (self.stage == "fit" and _validates(trainer))
        self.check_val_every_n_epoch = trainer.check_val_every_n_epoch if self.evaluates else None
        self.accumulate_grad_batches = int(trainer.accumulate_grad_batches)
        self.gradient_clip_val = float(trainer.gradient_clip_val) if trainer.gradient_clip_val else None
        self.datamodule = trainer.datamodule

    def refresh(self) -> LightningContext:
        """Counters (``epoch``, ``step``, ``is_training``) as the trainer has them now; metrics read anew."""
        trainer = self.trainer
        self.epoch = trainer.current_epoch
        self.step = trainer.global_step
        self.is_training = trainer.training
        self.invalidate_metrics()
        return self

    def begin_stage(self) -> None:
        """What an entry point (``fit``, ``validate``, ``test``, ``predict``) fixes, read once when it starts;
        the metrics of an earlier entry point are forgotten."""
        trainer = self.trainer
        module = trainer.lightning_module or self.model
        self.model = module
        self.stage = trainer.state.fn.value if trainer.state.fn else self.stage
        self.max_epochs = _count(trainer.max_epochs)
        self.optimizers = list(trainer.optimizers)
        self.optimizer = self.optimizers[0] if self.optimizers else None
        self.schedulers = [config.scheduler for config in trainer.lr_scheduler_configs]
        self.scheduler = self.schedulers[0] if self.schedulers else None
        self.datamodule = trainer.datamodule
        self.hparams = _hparams(module, self.datamodule)
        self.root_dir = str(trainer.default_root_dir)
        self.log_dir = _log_dir(trainer)
        self.checkpoint_dir = self.find_checkpoint_dir()
        self.evaluates = self.stage in ("validate", "test") or (self.stage == "fit" and _validates(trainer))
        self.check_val_every_n_epoch = trainer.check_val_every_n_epoch if self.evaluates else None
        self.log_every_n_steps = int(trainer.log_every_n_steps or 0)
        self.world_size = trainer.world_size
        self.is_global_zero = trainer.is_global_zero
        self.global_rank = trainer.global_rank
        self.local_rank = trainer.local_rank
        self.weights_sharded = sharding_strategy(trainer) is not None
        self.exception = None
        self.clear_metrics()

    def enter_training(self) -> None:
        """The training loop starts: its step and batch counts."""
        trainer = self.trainer
        self.total_steps = _total_steps(trainer)
        self.num_batches = _count(trainer.num_training_batches)
        self.train_dataloader = trainer.train_dataloader
        if self.stage == "fit":  # the validation dataloaders are known now
            self.evaluates = _validates(trainer, loaded=True)
            self.check_val_every_n_epoch = trainer.check_val_every_n_epoch if self.evaluates else None

    def enter_evaluation(self) -> None:
        """A validation or test pass starts: its batch count."""
        trainer = self.trainer
        self.num_batches = _count(trainer.num_test_batches if trainer.testing else trainer.num_val_batches)
        loaders = trainer.test_dataloaders if trainer.testing else trainer.val_dataloaders
        self.eval_dataloader = loaders[0] if isinstance(loaders, (list, tuple)) and len(loaders) == 1 else loaders

    def leave_evaluation(self) -> None:
        """The validation pass inside ``fit`` ended: the training loop's batch count again."""
        self.num_batches = _count(self.trainer.num_training_batches)

    def enter_prediction(self) -> None:
        """A prediction pass starts: its batch count."""
        self.num_batches = _count(self.trainer.num_predict_batches)

    def find_checkpoint_dir(self) -> str | None:
        """The folder of the trainer's first ``ModelCheckpoint`` (None without one, or before it knows)."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, ModelCheckpoint):
                return None if callback.dirpath is None else str(callback.dirpath)
        return None

    @property
    def fitting(self) -> bool:
        """Whether the current entry point is ``fit``."""
        return self.trainer.state.fn is not None and self.trainer.state.fn.value == "fit"

    @property
    def sanity_checking(self) -> bool:
        """Whether Lightning runs its sanity-check validation (invisible to callbacks)."""
        return bool(self.trainer.sanity_checking)

    # -- the stop flag ---------------------------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """Requested by a callback, or already set on the trainer (by Lightning's own ``EarlyStopping``, say)."""
        return CallbackContext.should_stop.fget(self) or bool(self.trainer.should_stop)

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        CallbackContext.should_stop.fset(self, value)

    # -- trainer operations the bridge uses ------------------------------------------------------------
    def stop_trainer(self) -> None:
        """Sets ``trainer.should_stop``: Lightning stops at its next check, as for its own ``EarlyStopping``."""
        self.trainer.should_stop = True

    def all_reduce_flags(self, flags: list[float]) -> list[float]:
        """The sum over every process of ``flags`` (one small collective)."""
        strategy = self.trainer.strategy
        tensor = torch.tensor(flags, device=strategy.root_device)
        return strategy.reduce(tensor, reduce_op="sum").tolist()

    def broadcast_learning_rates(self) -> None:
        """Every param group of every optimizer gets global rank zero's learning rate."""
        groups = [group for opt in self.trainer.optimizers for group in opt.param_groups]
        rates = self.trainer.strategy.broadcast([group["lr"] for group in groups], src=0)
        for group, rate in zip(groups, rates, strict=True):
            group["lr"] = rate

    def broadcast_weights(self) -> None:
        """The LightningModule's parameters and buffers as global rank zero has them, on every process.

        Raises:
            RuntimeError: the weights are sharded (each rank holds a different shard: rank zero's is not the
                model, and broadcasting it would overwrite the other shards).
        """
        strategy = sharding_strategy(self.trainer)
        if strategy is not None:
            raise RuntimeError(
                f"a rank-zero-only callback changed the model's weights under {strategy}, which shards them: "
                "rank zero's shard cannot be broadcast. Write weights from a callback that runs on every rank "
                "through ctx.model_state()/ctx.load_model_state() (as EarlyStoppingCallback does), and set its "
                "writes_weights = True"
            )
        module = self.trainer.lightning_module
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            torch.distributed.broadcast(tensor.data, src=0)

    def broadcast(self, value: Any, src: int = 0) -> Any:
        if self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.broadcast(value, src=src)

    def save_checkpoint(self, path: Any) -> None:
        """Lightning's whole checkpoint (model, optimizers, schedulers, loops, callback states) through
        ``trainer.save_checkpoint``: call it on every rank; the strategy writes on global rank zero and
        ``on_save`` fires through the bridge's ``on_save_checkpoint``."""
        self.trainer.save_checkpoint(path, weights_only=False)

    def load_checkpoint(self, path: Any) -> dict[str, Any]:
        raise NotImplementedError(
            "under Lightning, resume with trainer.fit(model, ckpt_path=...) (it restores the model, optimizers, "
            "loops and every callback's state, and fires on_load)"
        )


def _count(value: Any) -> int | None:
    """A batch or epoch count as an int; None when unknown or infinite. Lists (one per dataloader) are summed."""
    if isinstance(value, (list, tuple)):
        value = sum(value)
    if value is None or value == float("inf") or value < 0:
        return None
    return int(value)


def _total_steps(trainer: pl.Trainer) -> int | None:
    try:
        steps = trainer.estimated_stepping_batches
    except Exception:  # no dataloader length, e.g. an iterable dataset
        return None
    return int(steps) if steps != float("inf") else None


def _validates(trainer: pl.Trainer, *, loaded: bool = False) -> bool:
    """Whether ``fit`` runs validation; with ``loaded``, also that the validation dataloaders have batches."""
    try:
        enabled = bool(trainer.enable_validation)
    except (AttributeError, TypeError):
        return False
    if not enabled or not loaded:
        return enabled
    batches = trainer.num_val_batches  # [] until the validation dataloaders are loaded: trust enable_validation
    return not isinstance(batches, (list, tuple)) or not batches or sum(batches) > 0


def _log_dir(trainer: pl.Trainer) -> str:
    """``trainer.log_dir`` without its broadcast: the first logger's ``log_dir`` (else its ``save_dir``), else
    ``default_root_dir``. Adapters read it on rank zero only, where a collective would hang."""
    directory = None
    if trainer.loggers:
        logger = trainer.loggers[0]
        directory = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
    return str(directory or trainer.default_root_dir)


def _hparams(module: Any, datamodule: Any) -> dict[str, Any]:
    """The LightningModule's hyperparameters, then the datamodule's (the module's value wins a clash)."""
    merged: dict[str, Any] = {}
    for owner in (module, datamodule):
        hparams = getattr(owner, "hparams", None) if owner is not None else None
        if isinstance(hparams, Mapping):
            for key, value in hparams.items():
                merged.setdefault(key, value)
    return merged
