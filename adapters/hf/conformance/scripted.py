"""The scripted run of the HF harness: the same callbacks run by ``transformers.Trainer`` and by callbridge.

Both runs train the same tiny torch network (same initial weights, same optimizer, same data) on CPU:

* home: ``transformers.Trainer`` with ``use_cpu=True``, ``report_to="none"`` (integrations are passed explicitly),
  the default progress callback removed (each test passes the callbacks it compares);
* bridge: a ``lightning.Trainer`` whose LightningModule wraps the same network, with
  ``to_lightning(callbacks, training_args=<the same TrainingArguments>)``.

Every training sample is the same row, so the loss trajectory does not depend on the order HF's sampler picks,
and evaluation is scripted: the network counts its evaluation passes in a buffer (saved in checkpoints, so a
resumed run goes on with the script) and returns the scripted loss and accuracy of that pass. Scripted values
are dyadic fractions, exact in float32 whichever way a framework averages them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from callbridge.adapters.conformance import scripted_trainer
from torch.utils.data import DataLoader, Dataset

FEATURES = 4
TRAIN_SAMPLES = 16
BATCH = 4
EVAL_SAMPLES = 4
LR = 0.1
#: Scripted evaluation passes: (eval_loss, eval_accuracy), pass i gets entry min(i, len - 1).
SCRIPT: list[tuple[float, float]] = [
    (1.0, 0.5),
    (0.875, 0.625),
    (0.9375, 0.75),
    (0.96875, 0.6875),
    (0.984375, 0.71875),
    (0.75, 0.5),
    (0.8125, 0.53125),
    (0.84375, 0.5625),
    (0.859375, 0.5625),
    (0.875, 0.5625),
]


class Rows(Dataset):
    """``n`` copies of one sample, as HF's default collator and Lightning's both batch them (dicts)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.x = torch.tensor([0.5, -1.0, 2.0, 0.25])
        self.y = torch.tensor([1.5])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x, "labels": self.y}


class TinyNet(torch.nn.Module):
    """A linear layer; in eval mode it returns the scripted loss and accuracy of the current evaluation pass.

    ``nan_from``: training losses are NaN from that training forward (1-based) on.
    """

    def __init__(self, script: Sequence[tuple[float, float]] = SCRIPT, nan_from: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(FEATURES, 1)
        self.register_buffer("evals", torch.zeros((), dtype=torch.long))
        self.register_buffer("forwards", torch.zeros((), dtype=torch.long))
        self.script = [tuple(row) for row in script]
        self.nan_from = nan_from

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.layer(x)
        if not self.training:
            loss, accuracy = self.script[min(int(self.evals), len(self.script) - 1)]
            self.evals += 1
            return {"loss": torch.tensor(loss), "logits": torch.full_like(out, accuracy)}
        self.forwards += 1
        loss = torch.nn.functional.mse_loss(out, labels)
        if self.nan_from is not None and int(self.forwards) >= self.nan_from:
            loss = loss * float("nan")
        return {"loss": loss, "logits": out}


def accuracy(prediction: Any) -> dict[str, float]:
    """HF's ``compute_metrics``: the scripted accuracy the network put in its logits."""
    return {"accuracy": float(np.asarray(prediction.predictions).mean())}


def constant_schedule(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


class TinyNetModule(L.LightningModule):
    """The LightningModule of the bridge run: the same network, optimizer, schedule and data."""

    def __init__(self, net: TinyNet) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(**batch)["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.net(**batch)
        self.log("val_loss", out["loss"], batch_size=len(batch["x"]))
        self.log("val/accuracy", out["logits"].mean(), batch_size=len(batch["x"]))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=LR)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": constant_schedule(optimizer), "interval": "step"}}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Rows(TRAIN_SAMPLES), batch_size=BATCH)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(Rows(EVAL_SAMPLES), batch_size=EVAL_SAMPLES)


def training_args(output_dir: Path, **overrides: Any) -> Any:
    """The ``TrainingArguments`` both runs get (the home run's ``use_cpu``/``report_to`` included)."""
    from transformers import TrainingArguments

    options: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": BATCH,
        "per_device_eval_batch_size": EVAL_SAMPLES,
        "num_train_epochs": 8,
        "logging_steps": 2,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "max_grad_norm": 0.0,
        "learning_rate": LR,
        "use_cpu": True,
        "report_to": "none",
        "restore_callback_states_from_checkpoint": True,
        "seed": 0,
    }
    options.update(overrides)
    return TrainingArguments(**options)


def run_home(
    callbacks: Sequence[Any], args: Any, *, net: TinyNet | None = None, resume: str | None = None, evaluates=True
) -> Any:
    """``transformers.Trainer`` itself, with only ``callbacks`` (besides its DefaultFlowCallback): the progress
    callback the Trainer adds by itself is removed (not one the caller passed)."""
    from transformers import PrinterCallback, ProgressCallback, Trainer

    net = net or TinyNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    trainer = Trainer(
        model=net,
        args=args,
        train_dataset=Rows(TRAIN_SAMPLES),
        eval_dataset=Rows(EVAL_SAMPLES) if evaluates else None,
        compute_metrics=accuracy if evaluates else None,
        callbacks=list(callbacks),
        optimizers=(optimizer, constant_schedule(optimizer)),
    )
    given = {id(callback) for callback in callbacks}
    for added in list(trainer.callback_handler.callbacks):
        if isinstance(added, (ProgressCallback, PrinterCallback)) and id(added) not in given:
            trainer.remove_callback(added)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def run_bridge(
    callbacks: Sequence[Any],
    args: Any | None,
    *,
    root: Path,
    net: TinyNet | None = None,
    resume: str | None = None,
    evaluates: bool = True,
    lightning_callbacks: Sequence[Any] = (),
    **trainer_options: Any,
) -> tuple[L.Trainer, Any]:
    """A real ``lightning.Trainer`` running ``callbacks`` through callbridge; returns (trainer, HFAdapter)."""
    from callbridge.adapters import to_lightning

    options = {} if args is None else {"training_args": args}
    bridge = to_lightning(list(callbacks), **options)
    module = TinyNetModule(net or TinyNet())
    settings: dict[str, Any] = {
        "max_epochs": int(args.num_train_epochs) if args is not None else 8,
        "log_every_n_steps": args.logging_steps if args is not None else 2,
        "default_root_dir": str(root),
        "limit_val_batches": 1.0 if evaluates else 0,
    }
    settings.update(trainer_options)
    trainer = scripted_trainer([*bridge, *lightning_callbacks], **settings)
    trainer.fit(module, ckpt_path=resume)
    return trainer, bridge[0].callbacks[0]


def without_timings(logs: dict[str, Any]) -> dict[str, Any]:
    """A log entry without the values that measure time (runtime, per-second rates)."""
    return {k: v for k, v in logs.items() if not k.endswith(("_runtime", "_per_second"))}


def tb_scalars(folder: Path) -> dict[str, list[int]]:
    """``{tag: [steps]}`` of every scalar in the TensorBoard event files under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[int]] = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        events = EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            out.setdefault(tag, []).extend(event.step for event in events.Scalars(tag))
    return out


def set_env(**values: str | None) -> dict[str, str | None]:
    """Sets (or, with None, removes) environment variables; returns the previous values for `set_env`."""
    previous = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return previous
