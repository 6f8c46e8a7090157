"""The ``TrainingArguments`` HF callbacks see when ``to_lightning`` is given none: derived from the Lightning run.

Every field not listed in `derived_fields` keeps ``TrainingArguments``' own default. The table of derived
fields is in ``docs/hf.md``.
"""

from __future__ import annotations

import os
from typing import Any

from callbridge.callbacks import CallbackContext


def _batch_size(loader: Any) -> int | None:
    loaders = loader if isinstance(loader, (list, tuple)) else [loader]
    for item in loaders:
        size = getattr(item, "batch_size", None)
        if isinstance(size, int) and size > 0:
            return size
    return None


def _on_cpu(ctx: CallbackContext) -> bool:
    model = ctx.model
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return True
    first = next(iter(parameters()), None)
    return first is None or first.device.type == "cpu"


def derived_fields(ctx: CallbackContext) -> dict[str, Any]:
    """The ``TrainingArguments`` fields callbridge derives from the run the context describes.

    Examples:
        >>> from callbridge.callbacks import CallbackContext
        >>> ctx = CallbackContext()
        >>> ctx.root_dir, ctx.max_epochs, ctx.log_every_n_steps = "runs/demo", 4, 10
        >>> fields = derived_fields(ctx)
        >>> fields["output_dir"], fields["num_train_epochs"], fields["logging_steps"], fields["eval_strategy"]
        ('runs/demo', 4, 10, 'epoch')
    """
    fields: dict[str, Any] = {
        "output_dir": str(ctx.root_dir or os.getcwd()),
        "report_to": "none",
        "disable_tqdm": True,
        "save_strategy": "no",
        "restore_callback_states_from_checkpoint": True,
        "use_cpu": _on_cpu(ctx),
        "gradient_accumulation_steps": max(1, int(ctx.accumulate_grad_batches or 1)),
        "max_grad_norm": float(ctx.gradient_clip_val or 0.0),
        "max_steps": int(ctx.max_steps) if ctx.max_steps else -1,
    }
    if ctx.max_epochs:
        fields["num_train_epochs"] = ctx.max_epochs
    if ctx.log_every_n_steps and ctx.log_every_n_steps > 0:
        fields.update(logging_strategy="steps", logging_steps=int(ctx.log_every_n_steps))
    else:
        fields["logging_strategy"] = "epoch"
    if not ctx.evaluates:
        fields["eval_strategy"] = "no"
    elif ctx.check_val_every_n_epoch:
        fields["eval_strategy"] = "epoch"
    else:  # Lightning validates every val_check_interval batches
        fields["eval_strategy"] = "steps"
    train_batch = _batch_size(ctx.train_dataloader)
    if train_batch:
        fields["per_device_train_batch_size"] = train_batch
    eval_batch = _batch_size(ctx.eval_dataloader)
    if eval_batch:
        fields["per_device_eval_batch_size"] = eval_batch
    rate = ctx.learning_rate
    if rate is not None:
        fields["learning_rate"] = rate
    return fields


def derive_training_args(ctx: CallbackContext) -> Any:
    """A ``transformers.TrainingArguments`` built from `derived_fields`."""
    from transformers import TrainingArguments

    return TrainingArguments(**derived_fields(ctx))


def refresh_training_args(args: Any, ctx: CallbackContext) -> None:
    """Updates derived arguments in place with what the run knows at ``on_train_begin`` (batch sizes, epochs...).

    The fields are those of a fresh `derive_training_args` (normalised by ``TrainingArguments`` itself), so
    the object the callbacks saw at ``on_init_end`` stays the one they see. Only for arguments callbridge derived
    itself: a caller's ``TrainingArguments`` is never changed.
    """
    fresh = derive_training_args(ctx)
    for name in derived_fields(ctx):
        value = getattr(fresh, name)
        if name != "use_cpu" and getattr(args, name) != value:
            setattr(args, name, value)
    args.eval_steps = fresh.eval_steps
