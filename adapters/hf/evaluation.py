"""Evaluation, prediction and ``checkpoint-N`` saves of `HFAdapter`.

HF's ``Trainer.evaluate`` (log the metrics, ``on_evaluate``), ``_determine_best_metric`` and ``_save_checkpoint``,
driven by Lightning's validation, test and predict loops; a mixin of the adapter, which owns the state it reads.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from callbridge.adapters.hf import persist as hf_persist
from callbridge.adapters.hf.names import evaluation_metrics
from callbridge.callbacks import CallbackContext
from transformers.trainer_utils import SaveStrategy, rotate_checkpoints, speed_metrics


class Evaluations:
    """The adapter's evaluation, prediction and checkpoint hooks (state, args and flags live on the adapter)."""

    args: Any
    state: Any
    control: Any
    _key_map: dict[str, str | None]
    _derived: bool
    _pending_eval: dict[str, Any] | None
    _eval_start: float
    _eval_dataloader: Any
    _train_batches: int | None
    _batch_idx: int
    _handlers: list[Any]

    if TYPE_CHECKING:  # provided by the adapter

        def _ensure(self, ctx: CallbackContext) -> None: ...
        def _fire(self, event: str, **extra: Any) -> None: ...
        def _apply(self, ctx: CallbackContext) -> None: ...
        def _agree(self, ctx: CallbackContext, flag: bool, *, at_step: bool = False) -> bool: ...
        def _log(self, logs: dict[str, Any]) -> None: ...

    # -- evaluation ------------------------------------------------------------------------------------
    def on_evaluate_begin(self, ctx: CallbackContext) -> None:
        self._ensure(ctx)
        self._eval_start = time.time()
        self._eval_dataloader = ctx.eval_dataloader
        if self._derived and batch_of(ctx.eval_dataloader):
            self.args.per_device_eval_batch_size = batch_of(ctx.eval_dataloader)

    def _pass_metrics(self, ctx: CallbackContext, prefix: str) -> dict[str, Any]:
        metrics = evaluation_metrics(ctx.metrics, prefix, self._key_map)
        samples = _dataset_size(ctx.eval_dataloader)
        metrics.update(speed_metrics(prefix, self._eval_start, num_samples=samples, num_steps=ctx.num_batches))
        return metrics

    def on_evaluate(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit":
            metrics = self._pass_metrics(ctx, "eval")
            self._pending_eval = metrics
            epoch_ends = self._train_batches is not None and self._batch_idx + 1 >= self._train_batches
            if not (epoch_ends or ctx.should_stop):  # mid-epoch: HF evaluates right after the step
                self._evaluated(ctx)
                if self._agree(ctx, self.control.should_save):
                    self._save(ctx)
                self._apply(ctx)
            return
        self.state.global_step = ctx.step
        metrics = self._pass_metrics(ctx, "test" if ctx.stage == "test" else "eval")
        self._log(metrics)
        self.control.should_evaluate = False
        self._fire("on_evaluate", metrics=metrics)

    def _evaluated(self, ctx: CallbackContext) -> None:
        """HF's ``_evaluate`` inside training: log the metrics, ``on_evaluate``, then track the best metric."""
        metrics, self._pending_eval = self._pending_eval, None
        self._log(metrics)
        self.control.should_evaluate = False
        self._fire("on_evaluate", metrics=metrics)
        is_new_best = self._track_best(ctx, metrics)
        if self.args.save_strategy == SaveStrategy.BEST:
            self.control.should_save = is_new_best

    def _track_best(self, ctx: CallbackContext, metrics: dict[str, Any]) -> bool:
        """HF's ``_determine_best_metric``: ``state.best_metric`` (and the step of the best) after ``on_evaluate``."""
        args, state = self.args, self.state
        name = args.metric_for_best_model
        if name is None:
            return False
        name = name if name.startswith("eval_") else f"eval_{name}"
        if name not in metrics:
            logged = sorted(ctx.metrics)
            raise KeyError(
                f"HFAdapter: metric_for_best_model {args.metric_for_best_model!r} was never logged: the evaluation "
                f"gave {sorted(k for k in metrics if not k.endswith(('_runtime', '_per_second')))}, from the "
                f"Lightning metrics {logged}. Log val_{name[5:]} in validation_step, or map a metric to {name!r} "
                "with to_lightning(..., key_map={...})"
            )
        value = metrics[name]
        better = np.greater if args.greater_is_better else np.less
        if state.best_metric is None:
            state.best_metric = float("-inf") if args.greater_is_better else float("inf")
        if better(value, state.best_metric):
            state.best_metric = value
            if args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST):
                state.best_global_step = state.global_step
            return True
        return False

    def on_evaluate_batch_end(self, ctx: CallbackContext) -> None:
        self._fire("on_prediction_step")

    # -- prediction ------------------------------------------------------------------------------------
    def on_predict_begin(self, ctx: CallbackContext) -> None:
        self._ensure(ctx)
        self._eval_start = time.time()
        self._eval_dataloader = None

    def on_predict_batch_end(self, ctx: CallbackContext) -> None:
        self._fire("on_prediction_step")

    def on_predict_end(self, ctx: CallbackContext) -> None:
        metrics = speed_metrics("test", self._eval_start, num_steps=ctx.num_batches)
        self._fire("on_predict", metrics=metrics)

    # -- checkpoints -----------------------------------------------------------------------------------
    def _save(self, ctx: CallbackContext) -> None:
        """HF's ``_save_checkpoint`` under Lightning: ``output_dir/checkpoint-N/model.ckpt`` (Lightning's whole
        checkpoint, HF state included) and ``trainer_state.json``; then ``on_save``."""
        args, state = self.args, self.state
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        best_step = state.best_global_step
        if best_step and args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST):
            best = os.path.join(args.output_dir, f"checkpoint-{best_step}")
            if best_step == state.global_step or os.path.isdir(best):
                state.best_model_checkpoint = best
        state.stateful_callbacks = hf_persist.stateful_callbacks(self._handlers, self.control)
        ctx.save_checkpoint(os.path.join(folder, hf_persist.CHECKPOINT_FILE))
        if ctx.is_global_zero:
            hf_persist.write_state_file(state, folder)
            rotate_checkpoints(
                output_dir=args.output_dir,
                save_total_limit=args.save_total_limit,
                best_model_checkpoint=state.best_model_checkpoint,
                use_mtime=True,
            )
        self.control.should_save = False
        self._fire("on_save")


def batch_of(loader: Any) -> int | None:
    size = getattr(loader, "batch_size", None)
    return size if isinstance(size, int) and size > 0 else None


def _dataset_size(loader: Any) -> int | None:
    loaders = loader if isinstance(loader, (list, tuple)) else [loader]
    total = 0
    for item in loaders:
        try:
            total += len(item.dataset)
        except (AttributeError, TypeError):
            return None
    return total or None


def gradient_norm(model: Any) -> float | None:
    """The total 2-norm of the model's gradients (as HF logs ``grad_norm``), None when there are none."""
    if model is None:
        return None
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return None
    if len(grads) > 16:  # torch's fused per-tensor norms pay off
        return float(torch.nn.utils.get_total_norm(grads))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
