"""Hugging Face Transformers callbacks, unchanged, under a Lightning Trainer.

A small regression LightningModule trains with HF's own ``EarlyStoppingCallback``, ``PrinterCallback`` and
``TensorBoardCallback`` plus a callback written for ``transformers.Trainer`` (it stops on a NaN loss through
``control``). They get a real ``TrainingArguments``, ``TrainerState`` and ``TrainerControl``, and Lightning's
``val_loss`` reaches them as ``eval_loss``. ``save_strategy="epoch"`` makes callbridge write HF-style
``checkpoint-N`` folders (a Lightning checkpoint and ``trainer_state.json``) that ``fit(ckpt_path=...)`` resumes.

Run: ``python examples/hf_callbacks.py [--out DIR]`` (needs ``pip install 'callbridge[hf]'``); then
``tensorboard --logdir DIR/runs``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import lightning as L
import torch
from callbridge.adapters import to_lightning
from torch.utils.data import DataLoader, TensorDataset
from transformers import EarlyStoppingCallback, PrinterCallback, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback


class StopOnNan(TrainerCallback):
    """A callback written for transformers.Trainer: stops training when a logged loss is NaN."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if math.isnan(logs.get("loss", 0.0)):
            print(f"NaN loss at step {state.global_step}: stopping")
            control.should_training_stop = True


class Regression(L.LightningModule):
    """y = x @ w + noise; logs ``val_loss`` (callbridge hands it to HF callbacks as ``eval_loss``)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 8, generator=generator)
        self.y = self.x @ torch.randn(8, 1, generator=generator) + 0.3 * torch.randn(256, 1, generator=generator)
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x[:192], self.y[:192]), batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[192:], self.y[192:]), batch_size=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    out = parser.parse_args().out or Path(tempfile.mkdtemp(prefix="callbridge-hf-"))
    L.seed_everything(0, verbose=False)
    args = TrainingArguments(
        output_dir=str(out),
        metric_for_best_model="loss",  # eval_loss, i.e. Lightning's val_loss
        greater_is_better=False,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        logging_steps=3,
        report_to="none",  # the callbacks are passed explicitly
        use_cpu=True,
    )
    callbacks = to_lightning(
        [
            EarlyStoppingCallback(early_stopping_patience=2, early_stopping_threshold=1e-3),
            PrinterCallback,
            TensorBoardCallback(),
            StopOnNan(),
        ],
        training_args=args,
    )
    trainer = L.Trainer(
        callbacks=callbacks,
        max_epochs=30,
        log_every_n_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(out),
    )
    trainer.fit(Regression())
    state = callbacks[0].callbacks[0].state  # the HF TrainerState the callbacks saw
    print(
        f"HF callbacks under Lightning: stopped at step {state.global_step} (epoch {state.epoch:g}), "
        f"best eval_loss {state.best_metric:.4f} in {Path(state.best_model_checkpoint).name}"
    )
    print("checkpoints:", ", ".join(sorted(p.name for p in out.glob("checkpoint-*"))))
    print(f"open: tensorboard --logdir {out}/runs")


if __name__ == "__main__":
    main()
