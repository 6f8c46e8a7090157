"""The unified callback that runs HF ``TrainerCallback``\\ s as ``transformers.Trainer`` runs them.

It plays the part of HF's ``CallbackHandler`` and of the training loop around it: one real ``TrainingArguments``,
``TrainerState`` and ``TrainerControl`` shared by every HF callback of the run, HF's ``DefaultFlowCallback`` first
(so ``control`` flags are set where HF sets them), then the callbacks in the order given. Flags act on the run:
``should_training_stop`` -> ``ctx.should_stop``; ``should_save`` -> a Lightning checkpoint in
``output_dir/checkpoint-N`` then ``on_save``; ``should_log`` -> HF's logging window (``loss``, ``grad_norm``,
``learning_rate``, ``epoch``) through ``on_log`` into ``state.log_history``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from callbridge.adapters.hf import EVENTS, is_instance, looks_like
from callbridge.adapters.hf import persist as hf_persist
from callbridge.adapters.hf.args import derive_training_args, refresh_training_args
from callbridge.adapters.hf.evaluation import Evaluations, batch_of, gradient_norm
from callbridge.adapters.hf.names import check_key_map, training_extras
from callbridge.adapters.hf.window import LossWindow
from callbridge.callbacks import Callback, CallbackContext
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import DefaultFlowCallback
from transformers.trainer_utils import speed_metrics

_BASE_HOOKS = frozenset(
    {
        "on_init_end",
        "on_train_begin",
        "on_epoch_begin",
        "on_step_begin",
        "on_step_end",
        "on_evaluate_begin",
        "on_evaluate",
        "on_epoch_end",
        "on_train_end",
        "on_predict_begin",
        "on_predict_end",
    }
)
#: Events after which a callback other than DefaultFlowCallback may have set ``control.should_save`` at a step.
_STEP_EVENTS = (
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_log",
)


def _overrides(callback: Any, event: str) -> bool:
    method = getattr(type(callback), event, None)
    return method is not None and method is not getattr(TrainerCallback, event, None)


class HFAdapter(Evaluations, Callback):
    """Runs HF ``TrainerCallback``\\ s (classes or instances) with HF's arguments, state, control and metric names.

    Build it with ``to_lightning([...], training_args=..., key_map=..., processing_class=...)``.

    Args:
        callbacks: HF callbacks (instances, or classes, which are instantiated without arguments as HF does).
        training_args: the ``TrainingArguments`` the callbacks see; derived from the Lightning run when None.
        key_map: ``{lightning_metric: hf_name}`` overriding the default naming (``val_x`` -> ``eval_x``); None
            drops a metric. A name without an ``eval_``/``test_`` prefix adds that training metric to HF's logs.
        processing_class: what HF passes as ``processing_class`` (a tokenizer, a processor), else None.

    Examples:
        >>> from transformers import PrinterCallback
        >>> from callbridge.adapters import to_lightning
        >>> bridge, = to_lightning([PrinterCallback])
        >>> [type(cb).__name__ for cb in bridge.callbacks[0].callbacks]
        ['PrinterCallback']
    """

    def __init__(
        self,
        callbacks: Iterable[Any],
        training_args: TrainingArguments | None = None,
        key_map: Mapping[str, str | None] | None = None,
        processing_class: Any = None,
    ) -> None:
        if training_args is not None and not isinstance(training_args, TrainingArguments):
            raise TypeError(
                f"HFAdapter: training_args must be a transformers.TrainingArguments, got {type(training_args).__name__}"
            )
        user = []
        for index, callback in enumerate(callbacks):
            if not (is_instance(callback) or looks_like(callback)):
                raise TypeError(f"HFAdapter: callback #{index} ({callback!r}) is not a transformers.TrainerCallback")
            user.append(callback() if isinstance(callback, type) else callback)
        self._user = user
        self._key_map = check_key_map(key_map)
        self._train_extras = training_extras(self._key_map)
        self._processing_class = processing_class
        self.args: Any = training_args
        self._derived = training_args is None
        flow: list[Any] = [] if any(isinstance(cb, DefaultFlowCallback) for cb in user) else [DefaultFlowCallback()]
        self._handlers = [*flow, *self._integrations(training_args, user), *user]
        self._listeners = {
            event: tuple(getattr(cb, event) for cb in self._handlers if _overrides(cb, event)) for event in EVENTS
        }
        # Only callbacks other than DefaultFlowCallback (whose flags every rank sets alike) can disagree across ranks.
        self._user_step_flags = any(
            _overrides(cb, event)
            for cb in self._handlers
            if not isinstance(cb, DefaultFlowCallback)
            for event in _STEP_EVENTS
        )
        self.state = TrainerState()
        self.control = TrainerControl()
        self._restored = False
        self._ctx: CallbackContext | None = None
        self._reset_run()

    @staticmethod
    def _integrations(args: Any, user: list[Any]) -> list[Any]:
        """The ``report_to`` integrations HF's Trainer would add (none for derived arguments: ``report_to="none"``)."""
        if args is None:
            return []
        from transformers.integrations import get_reporting_integration_callbacks

        have = {type(cb) for cb in user}
        return [cls() for cls in get_reporting_integration_callbacks(args.report_to) if cls not in have]

    @property
    def callbacks(self) -> list[Any]:
        """The HF callbacks given (classes instantiated), in order."""
        return list(self._user)

    @property
    def state_key(self) -> str:
        return "HFAdapter"

    def implemented_hooks(self) -> frozenset[str]:
        hooks = set(_BASE_HOOKS)
        if self._listeners["on_prediction_step"]:
            hooks.update({"on_evaluate_batch_end", "on_predict_batch_end"})
        return frozenset(hooks)

    # -- HF's CallbackHandler ------------------------------------------------------------------------
    def _fire(self, event: str, **extra: Any) -> None:
        methods = self._listeners[event]
        if not methods:
            return
        ctx = self._ctx
        kwargs = {
            "model": ctx.model,
            "processing_class": self._processing_class,
            "optimizer": ctx.optimizer,
            "lr_scheduler": ctx.scheduler,
            "train_dataloader": ctx.train_dataloader,
            "eval_dataloader": self._eval_dataloader,
            **extra,
        }
        args, state = self.args, self.state
        for method in methods:
            result = method(args, state, self.control, **kwargs)
            if result is not None:  # a callback may return a (new) control, as HF allows
                self.control = result

    def _apply(self, ctx: CallbackContext) -> None:
        if self.control.should_training_stop:
            ctx.should_stop = True

    def _agree(self, ctx: CallbackContext, flag: bool, *, at_step: bool = False) -> bool:
        """Rank zero's ``flag`` on every rank (a checkpoint save is collective): at a training step only when a
        callback other than DefaultFlowCallback acts there, at epoch ends and evaluations always."""
        if ctx.world_size > 1 and (self._user_step_flags or not at_step):
            return bool(ctx.broadcast(bool(flag)))
        return bool(flag)

    # -- setup and training ----------------------------------------------------------------------------
    def _ensure(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        if self.args is None:
            self.args = derive_training_args(ctx)
        self.state.is_world_process_zero = bool(ctx.is_global_zero)
        self.state.is_local_process_zero = ctx.local_rank == 0

    def _reset_run(self) -> None:
        self._losses = LossWindow(nan_filter=True)
        self._total_loss = 0.0
        self._last_logged = 0
        self._initial_step = 0
        self._last_step = 0
        self._in_step = False
        self._step_lr: float | None = None
        self._start = time.time()
        self._eval_start = time.time()
        self._pending_eval: dict[str, Any] | None = None
        self._eval_dataloader: Any = None
        self._train_batches: int | None = None
        self._batch_idx = -1

    def on_init_end(self, ctx: CallbackContext) -> None:
        self._ensure(ctx)
        self._fire("on_init_end")

    def on_train_begin(self, ctx: CallbackContext) -> None:
        self._ensure(ctx)
        if self._derived:
            refresh_training_args(self.args, ctx)
        args = self.args
        if not self._restored:  # HF starts a new TrainerState at each train() that does not resume
            self.state = TrainerState(
                is_local_process_zero=ctx.local_rank == 0, is_world_process_zero=bool(ctx.is_global_zero)
            )
        self._restored = False
        state = self.state
        lightning_steps = ctx.total_steps
        if args.max_steps > 0:
            max_steps = min(args.max_steps, lightning_steps) if lightning_steps else args.max_steps
        else:
            max_steps = lightning_steps or 2**62
        state.compute_steps(args, max_steps)
        state.max_steps = max_steps
        state.num_train_epochs = ctx.max_epochs or math.ceil(args.num_train_epochs)
        state.train_batch_size = batch_of(ctx.train_dataloader) or args.per_device_train_batch_size
        state.global_step = ctx.step
        self._reset_run()
        self._initial_step = self._last_logged = self._last_step = ctx.step
        self._num_samples = self._train_samples(ctx, max_steps)
        self._losses = LossWindow(nan_filter=bool(args.logging_nan_inf_filter))
        self.control.should_training_stop = False
        self._fire("on_train_begin")
        self._apply(ctx)

    def _train_samples(self, ctx: CallbackContext, max_steps: int) -> float | None:
        """HF's ``num_train_samples`` for the speed metrics: samples of the whole planned run."""
        per_step = (batch_of(ctx.train_dataloader) or 0) * self.args.gradient_accumulation_steps * ctx.world_size
        if ctx.max_steps or self.args.max_steps > 0:
            return float(max_steps * per_step) if per_step else None
        dataset = getattr(ctx.train_dataloader, "dataset", None)
        try:
            examples = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
        return float(examples * self.state.num_train_epochs)

    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        self.control.should_epoch_stop = False
        self._train_batches = ctx.num_batches
        self._fire("on_epoch_begin")
        self._apply(ctx)

    def on_step_begin(self, ctx: CallbackContext) -> None:
        if self._in_step:  # a later micro-batch of the same optimizer step
            return
        self._in_step = True
        optimizer = ctx.optimizer
        self._step_lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None
        control = self.control
        control.should_log = control.should_evaluate = control.should_save = False
        if self._listeners["on_step_begin"]:
            self._fire("on_step_begin")
            self._apply(ctx)

    def on_step_end(self, ctx: CallbackContext) -> None:
        self._accumulate(ctx.outputs)
        self._batch_idx = ctx.batch_idx
        if ctx.step == self._last_step:  # no optimizer step: a gradient-accumulation micro-batch
            self._fire("on_substep_end")
            self._apply(ctx)
            return
        self._fire("on_pre_optimizer_step")  # HF: before global_step counts the step
        self._fire("on_optimizer_step")
        state = self.state
        self._last_step = state.global_step = ctx.step
        batches = self._train_batches
        state.epoch = ctx.epoch + (ctx.batch_idx + 1) / batches if batches else float(ctx.epoch)
        self._in_step = False
        self._fire("on_step_end")
        if self.control.should_log and state.global_step > self._last_logged:
            self._log_window(ctx)
        if self._agree(ctx, self.control.should_save, at_step=True):
            self._save(ctx)
        self._apply(ctx)

    def _accumulate(self, outputs: Any) -> None:
        """Keeps the batch's loss for HF's logging window (see `LossWindow`)."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.add(loss, 1 + self.state.global_step - self._last_logged)

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self._fire("on_epoch_end")
        if self.control.should_log and self.state.global_step > self._last_logged:
            self._log_window(ctx)
        if self._pending_eval is not None:
            self._evaluated(ctx)
        if self._agree(ctx, self.control.should_save):
            self._save(ctx)
        self._apply(ctx)

    def on_train_end(self, ctx: CallbackContext) -> None:
        if self._pending_eval is not None:
            self._evaluated(ctx)
        state = self.state
        self._total_loss += self._losses.drain()
        steps = state.global_step - self._initial_step
        samples = None if self._num_samples is None else self._num_samples * steps / max(state.max_steps, 1)
        metrics = speed_metrics("train", self._start, num_samples=samples, num_steps=steps)
        metrics["total_flos"] = float(state.total_flos)
        metrics["train_loss"] = self._total_loss / max(steps, 0.001)
        self._log(metrics)
        if self.args.load_best_model_at_end and state.best_model_checkpoint is not None:
            hf_persist.load_best_weights(ctx.model, state.best_model_checkpoint)
        self._fire("on_train_end")

    # -- logs ------------------------------------------------------------------------------------------
    def _log(self, logs: dict[str, Any]) -> None:
        """HF's ``Trainer.log``: adds ``epoch``, appends to ``state.log_history``, fires ``on_log``."""
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self.control.should_log = False
        self._fire("on_log", logs=logs)

    def _log_window(self, ctx: CallbackContext) -> None:
        """The training logs HF writes at a logging step: the mean loss of the window, grad norm, learning rate."""
        state = self.state
        logs: dict[str, Any] = {}
        if self._losses.saw_loss:
            window = self._losses.drain()
            logs["loss"] = window / (state.global_step - self._last_logged)
            self._total_loss += window
        grad_norm = gradient_norm(ctx.model)
        if grad_norm is not None:
            logs["grad_norm"] = grad_norm
        if self._step_lr is not None:
            logs["learning_rate"] = self._step_lr
        if self._train_extras:
            values = ctx.metrics
            logs.update({target: values[src] for src, target in self._train_extras.items() if src in values})
        self._last_logged = state.global_step
        self._log(logs)

    # -- checkpoint state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self.state.stateful_callbacks = hf_persist.stateful_callbacks(self._handlers, self.control)
        return {"trainer_state": hf_persist.state_as_dict(self.state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("trainer_state")
        if not saved:
            return
        self.state = hf_persist.state_from_dict(saved)
        unused = hf_persist.restore_callbacks(self.state.stateful_callbacks, self._handlers, self.control)
        if unused:
            warnings.warn(
                f"HFAdapter: the checkpoint holds the state of HF callbacks this run does not have: {unused}",
                RuntimeWarning,
                stacklevel=2,
            )
        self._restored = True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ctx"] = None  # the run's context (and its trainer) stays with the run
        return state

    def __repr__(self) -> str:
        return f"HFAdapter({[type(cb).__name__ for cb in self._user]})"
