"""The main job behind `make demo`: train a digits classifier under Lightning with callbridge callbacks.

Run: python examples/digits/train.py [--smoke]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).parent))

from callbridge.adapters import to_lightning
from callbridge.callbacks import Callback, CallbackContext
from model import DigitsClassifier, DigitsDataModule


class HaltOnNan(Callback):
    """The seed's example: stop as soon as the loss turns NaN."""

    def on_step_end(self, ctx: CallbackContext) -> None:
        if ctx.loss != ctx.loss:
            print(f"NaN overflow detected at step {ctx.step}!")
            ctx.should_stop = True


class EpochReport(Callback):
    """Prints one line per epoch and remembers the best validation accuracy."""

    def __init__(self) -> None:
        self.best_acc = 0.0

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        m = ctx.metrics
        self.best_acc = max(self.best_acc, m["val_acc"])
        print(
            f"epoch {ctx.epoch}: train_loss {m['train_loss_epoch']:.3f}  val_loss {m['val_loss']:.3f}  "
            f"val_acc {m['val_acc']:.3f}  lr {ctx.learning_rate:g}"
        )

    def state_dict(self) -> dict[str, float]:
        return {"best_acc": self.best_acc}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.best_acc = state_dict["best_acc"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few batches only (CI)")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args(argv)

    L.seed_everything(0, verbose=False)
    report = EpochReport()
    trainer = L.Trainer(
        max_epochs=1 if args.smoke else args.epochs,
        limit_train_batches=2 if args.smoke else None,
        callbacks=to_lightning([HaltOnNan(), report]),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.fit(DigitsClassifier(), DigitsDataModule())
    summary = {"epochs": trainer.current_epoch, "steps": trainer.global_step, "best_val_acc": report.best_acc}
    print(
        f"\ncallbridge demo: trained {summary['epochs']} epochs ({summary['steps']} optimizer steps) under Lightning;"
    )
    print(f"unified callbacks HaltOnNan and EpochReport ran; best validation accuracy {report.best_acc:.3f}")
    return summary


if __name__ == "__main__":
    main()
