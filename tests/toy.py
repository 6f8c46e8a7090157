"""Small, fast models and trainers shared by the tests (and the DDP scenario scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class ToyRegression(L.LightningModule):
    """A linear regression on fixed random data; logs ``train_loss`` per step and epoch and ``val_loss``.

    ``nan_at_step``: the training loss becomes NaN from that global step on.
    ``val_losses``: the ``val_loss`` logged at each validation epoch, instead of the real one.
    """

    def __init__(
        self,
        lr: float = 0.05,
        nan_at_step: int | None = None,
        val_losses: Sequence[float] | None = None,
        n: int = 64,
        batch_size: int = 16,
        fail_at_step: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=generator)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=generator)
        self.val_epochs_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.hparams.fail_at_step is not None and self.global_step >= self.hparams.fail_at_step:
            raise RuntimeError(f"training failed at step {self.global_step}")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        if self.hparams.nan_at_step is not None and self.global_step >= self.hparams.nan_at_step:
            loss = loss * float("nan")
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def on_validation_epoch_end(self) -> None:
        scripted = self.hparams.val_losses
        if scripted is not None and not self.trainer.sanity_checking:
            value = scripted[min(self.val_epochs_seen, len(scripted) - 1)]
            self.val_epochs_seen += 1
            self.log("val_loss", float(value))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self(x), y))

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def _loader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()


def make_trainer(callbacks: Sequence[Any] = (), **overrides: Any) -> L.Trainer:
    """A quiet CPU trainer: no logger, no checkpoints, no progress bar, 2 epochs."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 2,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
        "num_sanity_val_steps": 2,
    }
    options.update(overrides)
    return L.Trainer(callbacks=list(callbacks), **options)
