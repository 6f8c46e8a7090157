"""The one object every unified hook receives: the training state, readable and writable."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from callbridge.callbacks.serialization import load_checkpoint_file, save_checkpoint_file


def as_float(value: Any) -> float | None:
    """``value`` as a Python float (NaN preserved), or None when it is not a single number.

    A tensor is converted with one ``.item()``: on an accelerator that is a device-to-host sync,
    which is why the context calls this only when a callback reads the value.
    """
    if isinstance(value, float):
        return value
    if isinstance(value, (int, bool)):
        return float(value)
    numel = getattr(value, "numel", None)
    if numel is not None:
        return float(value.item()) if numel() == 1 else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class EngineRequests:
    """What the callbacks asked of the engine, as [`CallbackContext.take_requests`][CallbackContext.take_requests]
    returns it.

    Attributes:
        stop: a callback set ``should_stop`` (it stays requested until the engine sets ``should_stop = False``).
        learning_rate: a callback assigned ``learning_rate`` since the engine last took the requests.
        weights: a callback called ``mark_weights_changed()`` since the engine last took the requests.

    Examples:
        >>> EngineRequests(stop=True)
        EngineRequests(stop=True, learning_rate=False, weights=False)
    """

    stop: bool = False
    learning_rate: bool = False
    weights: bool = False

    def __bool__(self) -> bool:
        return self.stop or self.learning_rate or self.weights


_NO_REQUESTS = EngineRequests()


class CallbackContext:
    """Read/write view of a training run, shared by every callback of that run.

    The engine (the Lightning bridge, or your own loop) keeps the fields current; callbacks read
    them and may write ``should_stop`` and ``learning_rate``. Numbers that live on a device
    (``loss``, ``metrics``) are turned into Python floats only when a callback reads them.

    Examples:
        In a hand-written loop:
        >>> import torch
        >>> from callbridge.callbacks import CallbackContext
        >>> model = torch.nn.Linear(2, 1)
        >>> ctx = CallbackContext(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        >>> ctx.loss = torch.tensor(float("nan"))
        >>> ctx.loss != ctx.loss  # a Python float, NaN preserved
        True
        >>> ctx.learning_rate = 0.01  # sets every param group
        >>> ctx.optimizer.param_groups[0]["lr"]
        0.01

    Fields:
        epoch: training epochs completed before the current one (0-based index of the current epoch).
        step: optimizer steps completed.
        total_steps: optimizer steps the run will take at most, when known.
        max_epochs: epochs the run will take at most, when known.
        evaluated: in ``on_epoch_end``, whether an evaluation pass ran during this training epoch (when
            False, validation values in ``metrics`` are those of an earlier epoch). Engines that skip
            validation on some epochs keep it current; it stays True in loops that never set it.
        num_batches: batches in the current loop (per training epoch, or in the current evaluation or
            prediction pass), when known.
        batch_idx: index of the current batch within its epoch or pass.
        stage: ``"fit"``, ``"validate"``, ``"test"`` or ``"predict"``.
        is_training: True inside the training loop, False during evaluation and prediction.
        model, optimizer, scheduler: the objects being trained (``None`` where absent).
        is_global_zero, world_size: the process's place in a multi-device run.
        checkpoint: the checkpoint dict in ``on_save`` / ``on_load``.
        exception: the exception in ``on_exception``.
        outputs, batch: the current batch and what the step returned for it.
        trainer: the engine driving the run (a ``lightning.Trainer`` under the bridge), or None. Callbacks
            and adapters do not read it: every value they need is a field of this context.
        datamodule: the object that provides the data (a ``LightningDataModule``), or None.
        optimizers, schedulers: every optimizer and learning-rate scheduler of the run (``optimizer`` and
            ``scheduler`` are the first of each).
        hparams: the run's hyperparameters (the model's, then the datamodule's), as a plain dict.
        root_dir: the run's root directory (Lightning's ``default_root_dir``); log_dir: where the run's logs
            go (the first logger's directory, else ``root_dir``); checkpoint_dir: where checkpoints go, when
            the engine knows (``None`` otherwise).
        evaluates: whether the run has an evaluation loop (fit validates); check_val_every_n_epoch: the
            validation cadence in epochs (``None`` when validation is step-based or absent).
        log_every_n_steps: how often ``on_log`` fires during training (0: only at epoch and evaluation end).
        global_rank, local_rank: the process's ranks (0 in a single process).
        weights_sharded: the model's weights are sharded across processes (FSDP, DeepSpeed, model
            parallel): [`model_state`][model_state] and [`load_model_state`][load_model_state] are then collectives that
            every process calls, and a weight change on one process alone cannot be broadcast.
        train_dataloader: the training dataloader of the current fit, when the engine knows it; eval_dataloader:
            the dataloader (a list when there are several) of the current evaluation pass.
        accumulate_grad_batches: batches whose gradients add up before each optimizer step (1: no accumulation).
        gradient_clip_val: the engine's gradient clipping threshold (``None``: no clipping).
        max_steps: the optimizer-step limit the engine was given (``None``: no limit besides ``max_epochs``).
        callbacks: the [`CallbackList`][CallbackList] dispatching to this context (set by the list on its first
            dispatch); [`save_checkpoint`][save_checkpoint] uses it for ``on_save`` and the callbacks' state.

    Engine protocol: an engine (the Lightning bridge, a hand-written loop, another trainer) keeps the
    fields above current, and uses these public methods, and nothing else, to exchange the rest:

    - ``metrics_source``: optional callable returning the engine's live metrics (raw tensors or numbers);
      merged into [`metrics`][metrics] when they are next read.
    - [`update_metrics`][update_metrics] / the ``metrics`` setter: hand over new values.
    - [`invalidate_metrics`][invalidate_metrics]: the run moved on (a new batch or epoch): convert again at the next
      read.
    - [`clear_metrics`][clear_metrics]: forget every value (a new entry point: ``validate`` after ``fit``, say).
    - [`take_requests`][take_requests]: what the callbacks asked for (stop, learning rate, weights), so the engine
      can apply it (and agree on it across processes).
    """

    def __init__(
        self,
        *,
        model: Any = None,
        optimizer: Any = None,
        scheduler: Any = None,
        trainer: Any = None,
        stage: str = "fit",
        total_steps: int | None = None,
        world_size: int = 1,
        is_global_zero: bool = True,
        metrics_source: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.trainer = trainer
        self.stage = stage
        self.total_steps = total_steps
        self.max_epochs: int | None = None
        self.evaluated = True
        self.num_batches: int | None = None
        self.world_size = world_size
        self.is_global_zero = is_global_zero
        self.epoch = 0
        self.step = 0
        self.batch_idx = 0
        self.is_training = False
        self.checkpoint: dict[str, Any] | None = None
        self.exception: BaseException | None = None
        self.outputs: Any = None
        self.batch: Any = None
        self._should_stop = False
        self._loss_raw: Any = None
        self._loss: float | None = None
        self._loss_ready = True
        self._raw_metrics: dict[str, Any] = {}
        self._metrics: dict[str, float] | None = None  # None: convert (and read metrics_source) at next read
        self._lr_changed = False
        self._weights_changed = False
        self.callbacks: Any = None
        self.datamodule: Any = None
        self.optimizers: list[Any] = [optimizer] if optimizer is not None else []
        self.schedulers: list[Any] = [scheduler] if scheduler is not None else []
        self.hparams: dict[str, Any] = {}
        self.root_dir: str | None = None
        self.log_dir: str | None = None
        self.checkpoint_dir: str | None = None
        self.evaluates = True
        self.check_val_every_n_epoch: int | None = 1
        self.log_every_n_steps = 0
        self.global_rank = 0
        self.local_rank = 0
        self.weights_sharded = False
        self.metrics_source = metrics_source
        self.train_dataloader: Any = None
        self.eval_dataloader: Any = None
        self.accumulate_grad_batches = 1
        self.gradient_clip_val: float | None = None
        self.max_steps: int | None = None

    # -- loss ----------------------------------------------------------------------------------
    @property
    def loss(self) -> float | None:
        """The last training batch's loss as a float (NaN preserved); None before the first step."""
        if not self._loss_ready:
            self._loss = None if self._loss_raw is None else as_float(self._loss_raw)
            self._loss_ready = True
        return self._loss

    @loss.setter
    def loss(self, value: Any) -> None:
        self._loss_raw = value
        self._loss_ready = False

    # -- metrics -------------------------------------------------------------------------------
    @property
    def metrics(self) -> dict[str, float]:
        """Everything logged so far in this run, as ``{name: float}``; later values replace earlier ones."""
        if self._metrics is None:
            if self.metrics_source is not None:
                self._raw_metrics.update(self.metrics_source())
            converted = {}
            for key, value in self._raw_metrics.items():
                number = as_float(value)
                if number is not None:
                    converted[key] = number
            self._metrics = converted
        return self._metrics

    @metrics.setter
    def metrics(self, values: Mapping[str, Any]) -> None:
        self._raw_metrics = dict(values)
        self._metrics = None

    def update_metrics(self, values: Mapping[str, Any]) -> None:
        """Merge new raw values (tensors or numbers); they are converted when first read."""
        self._raw_metrics.update(values)
        self._metrics = None

    def invalidate_metrics(self) -> None:
        """Engine protocol: values may have changed; [`metrics`][metrics] is rebuilt (and ``metrics_source`` read
        again) at its next read. Cheap: nothing is converted until a callback reads."""
        self._metrics = None

    def clear_metrics(self) -> None:
        """Engine protocol: forget every metric (a new entry point starts: it sees only its own values)."""
        self._raw_metrics = {}
        self._metrics = None

    def take_requests(self) -> EngineRequests:
        """Engine protocol: what the callbacks asked for since the last call.

        ``learning_rate`` and ``weights`` are cleared by this call (the engine applies them once);
        ``stop`` stays set, as ``should_stop`` does, until the engine sets ``should_stop = False``.

        Examples:
            >>> ctx = CallbackContext()
            >>> ctx.mark_weights_changed()
            >>> ctx.take_requests().weights, ctx.take_requests().weights
            (True, False)
        """
        if not (self._should_stop or self._lr_changed or self._weights_changed):
            return _NO_REQUESTS  # the common case, at every sync point: no allocation
        requests = EngineRequests(self._should_stop, self._lr_changed, self._weights_changed)
        self._lr_changed = self._weights_changed = False
        return requests

    # -- writes --------------------------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """Set to True to stop training at the next point the engine can stop."""
        return self._should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self._should_stop = bool(value)

    @property
    def learning_rate(self) -> float | None:
        """The first param group's learning rate; assigning sets every param group of ``optimizer``."""
        if self.optimizer is None:
            return None
        return float(self.optimizer.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self.optimizer is None:
            raise AttributeError("ctx.learning_rate cannot be set: this run has no optimizer")
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"ctx.learning_rate must be a finite number >= 0, got {value!r}")
        for group in self.optimizer.param_groups:
            group["lr"] = value
        self._lr_changed = True

    def mark_weights_changed(self) -> None:
        """Tell the engine this process replaced the model's weights (a rank-zero-only callback
        restoring a snapshot, say), so that a multi-device engine broadcasts them."""
        self._weights_changed = True

    # -- engine services -----------------------------------------------------------------------
    def model_state(self, *, offload: bool = False, into: dict[str, Any] | None = None) -> dict[str, Any]:
        """A copy of the model's weights, right for whole and sharded models alike (see
        `callbridge.callbacks.weights.snapshot_weights`; with sharded weights every process calls it
        and keeps its own shard). ``offload`` keeps the copy in host memory; ``into`` reuses an earlier copy."""
        from callbridge.callbacks.weights import snapshot_weights

        return snapshot_weights(self.model, sharded=self.weights_sharded, offload=offload, into=into)

    def load_model_state(self, state: Mapping[str, Any]) -> None:
        """Loads a [`model_state`][model_state] copy back into the model (every process, with sharded weights)."""
        from callbridge.callbacks.weights import restore_weights

        restore_weights(self.model, state, sharded=self.weights_sharded)

    def broadcast(self, value: Any, src: int = 0) -> Any:
        """``value`` as process ``src`` has it, on every process (a small picklable object).

        Callbacks that run on every rank use it to take the same decision everywhere. A single
        process returns ``value``; multi-device engines override this.
        """
        return value

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Saves the full training state to ``path`` (call it on every process; global rank zero writes).

        The format follows the extension: ``.safetensors`` (tensors in a safetensors file, structure as
        JSON metadata, never pickled) or else `torch.save`. The write is atomic. ``on_save`` fires
        first, with ``ctx.checkpoint`` the dict about to be written.

        This plain-loop version saves ``{"epoch", "global_step", "state_dict", "optimizer_states",
        "lr_schedulers", "callbacks"}``; under Lightning the bridge's context saves Lightning's whole
        checkpoint through ``trainer.save_checkpoint`` instead (loops, callbacks, precision state).
        """
        checkpoint: dict[str, Any] = {"epoch": self.epoch, "global_step": self.step}
        if self.model is not None:
            checkpoint["state_dict"] = self.model.state_dict()
        checkpoint["optimizer_states"] = [self.optimizer.state_dict()] if self.optimizer is not None else []
        checkpoint["lr_schedulers"] = [self.scheduler.state_dict()] if self.scheduler is not None else []
        if self.callbacks is not None:
            checkpoint["callbacks"] = self.callbacks.state_dict()
            self.checkpoint = checkpoint
            try:
                self.callbacks.dispatch("on_save", self)
            finally:
                self.checkpoint = None
        if self.is_global_zero:
            save_checkpoint_file(checkpoint, path)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Restores what [`save_checkpoint`][save_checkpoint] wrote: model, optimizer, scheduler, ``epoch``, ``step``
        and the callbacks' state; then ``on_load`` fires. Returns the checkpoint dict.

        Loading never runs arbitrary pickle code: ``.safetensors`` files are not pickled at all and
        other files are read with ``torch.load(weights_only=True)``.
        """
        device = next((p.device for p in self.model.parameters()), None) if self.model is not None else None
        checkpoint = load_checkpoint_file(path, map_location=device if device is not None else "cpu")
        if self.model is not None and "state_dict" in checkpoint:
            self.model.load_state_dict(checkpoint["state_dict"])
        if self.optimizer is not None and checkpoint.get("optimizer_states"):
            self.optimizer.load_state_dict(checkpoint["optimizer_states"][0])
        if self.scheduler is not None and checkpoint.get("lr_schedulers"):
            self.scheduler.load_state_dict(checkpoint["lr_schedulers"][0])
        self.epoch = int(checkpoint.get("epoch", self.epoch))
        self.step = int(checkpoint.get("global_step", self.step))
        if self.callbacks is not None:
            self.callbacks.load_state_dict(checkpoint.get("callbacks", {}))
            self.checkpoint = checkpoint
            try:
                self.callbacks.dispatch("on_load", self)
            finally:
                self.checkpoint = None
        return checkpoint

    def __repr__(self) -> str:
        return (
            f"CallbackContext(stage={self.stage!r}, epoch={self.epoch}, step={self.step}, "
            f"batch_idx={self.batch_idx}, should_stop={self.should_stop})"
        )
