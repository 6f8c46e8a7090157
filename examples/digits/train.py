"""The main job behind `make demo`: a digits classifier under one Lightning Trainer, with callbacks of every style.

Unified callbacks (HaltOnNan, EpochReport), callbridge's four built-ins (early stopping, safetensors checkpoints,
TensorBoard + MLflow + CSV logging, a progress bar), Keras' ReduceLROnPlateau and CSVLogger, Hydra's
LogJobReturnCallback and a WarpRec-style callback all run unchanged through ``to_lightning``.

Run: python examples/digits/train.py [--smoke] [--epochs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 picks its backend at import

import keras
import lightning as L
from hydra.experimental.callbacks import LogJobReturnCallback

sys.path.insert(0, str(Path(__file__).parent))

from callbridge import (
    Callback,
    CallbackContext,
    CheckpointCallback,
    EarlyStoppingCallback,
    LoggingCallback,
    ProgressCallback,
    to_lightning,
)
from callbridge.callbacks import LoggingBackend
from model import DigitsClassifier, DigitsDataModule
from tqdm import tqdm


class HaltOnNan(Callback):
    """Stops the run as soon as the loss turns NaN."""

    def on_step_end(self, ctx: CallbackContext) -> None:
        if ctx.loss != ctx.loss:
            print(f"NaN overflow detected at step {ctx.step}!")
            ctx.should_stop = True


class EpochReport(Callback):
    """Prints one line per epoch (numbered as Lightning numbers epochs) and remembers the best validation accuracy."""

    def __init__(self) -> None:
        self.best_acc = 0.0
        self.last_lr: float | None = None

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        m = ctx.metrics
        self.best_acc = max(self.best_acc, m["val_acc"])
        lr = ctx.learning_rate
        changed = f" (was {self.last_lr:g})" if self.last_lr is not None and lr != self.last_lr else ""
        self.last_lr = lr
        tqdm.write(  # above the progress bar, not into it
            f"Epoch {ctx.epoch}: train_loss {m['train_loss_epoch']:.3f}  val_loss {m['val_loss']:.3f}  "
            f"val_acc {m['val_acc']:.3f}  lr {lr:g}{changed}"
        )

    def state_dict(self) -> dict[str, float]:
        return {"best_acc": self.best_acc}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.best_acc = state_dict["best_acc"]
        self.last_lr = None


class TrainingSummary:
    """A WarpRec-style callback (matched by its hook names and signatures; WarpRec itself is not needed)."""

    def __init__(self) -> None:
        self.parameters = 0

    def on_training_complete(self, model: Any, *args: Any, **kwargs: Any) -> None:
        self.parameters = sum(p.numel() for p in model.parameters())
        print(f"[warprec-style] training complete: {self.parameters} parameters")


def quiet_lightning() -> None:
    """Lightning 2.6 on torch 2.13 warns about torch's deprecated ``LeafSpec`` at every fit, and each Trainer
    advertises a cloud logger: neither concerns this run, so the demo prints only what it is about."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one short epoch (CI)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("outputs/digits"), help="where logs and checkpoints go")
    args = parser.parse_args(argv)
    quiet_lightning()
    out = args.out.resolve()
    runs, checkpoints = out / "runs", out / "checkpoints"

    L.seed_everything(0, verbose=False)
    report = EpochReport()
    checkpoint = CheckpointCallback(
        checkpoints, monitor="val_loss", save_total_limit=2, format="safetensors", save_last=True
    )
    logging_cb = LoggingCallback(
        [LoggingBackend.TENSORBOARD, LoggingBackend.MLFLOW, LoggingBackend.CSV],
        log_steps=5,
        save_dir=runs,
        experiment_name="digits",
    )
    # verbose=0: EpochReport shows the learning rate it sets, in Lightning's epoch numbering (Keras counts from 1)
    keras_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, verbose=0)
    warprec_style = TrainingSummary()
    callbacks = [
        HaltOnNan(),
        report,
        EarlyStoppingCallback(monitor="val_loss", patience=3, restore_best=True),
        checkpoint,
        logging_cb,
        ProgressCallback(monitor="val_acc"),
        keras_lr,
        keras.callbacks.CSVLogger(str(out / "keras_history.csv")),
        LogJobReturnCallback(),
        warprec_style,
    ]
    out.mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(
        max_epochs=1 if args.smoke else args.epochs,
        limit_train_batches=2 if args.smoke else None,
        callbacks=to_lightning(callbacks),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    trainer.fit(DigitsClassifier(), DigitsDataModule())

    summary = {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "best_val_acc": report.best_acc,
        "best_checkpoint": checkpoint.best_path,
        "learning_rate": trainer.optimizers[0].param_groups[0]["lr"],
    }
    print(
        f"\ncallbridge demo: trained {summary['epochs']} epochs ({summary['steps']} optimizer steps) under Lightning."
    )
    print(f"  best validation accuracy  {report.best_acc:.3f}; final learning rate {summary['learning_rate']:g}")
    print(f"  checkpoints (safetensors) {checkpoint.best_path} (best), {checkpoint.last_path} (last)")
    print(f"  TensorBoard logs          {runs}   open: tensorboard --logdir {runs}")
    print(
        f"  MLflow store              {runs / 'mlflow.db'}   open: mlflow ui --backend-store-uri sqlite:///{runs}/mlflow.db"
    )
    print(f"  CSV metrics               {logging_cb.run_dir}/metrics.csv; Keras CSVLogger: {out / 'keras_history.csv'}")
    print(
        "  callbacks that ran: unified HaltOnNan, EpochReport; built-ins EarlyStopping, Checkpoint, Logging, Progress;"
    )
    print("  Keras ReduceLROnPlateau, CSVLogger; Hydra LogJobReturnCallback; WarpRec-style TrainingSummary")
    return summary


if __name__ == "__main__":
    main()
