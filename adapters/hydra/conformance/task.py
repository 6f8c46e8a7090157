"""The task both sides of ``callbridge verify`` run for a Hydra callback: a tiny deterministic Lightning fit on CPU.

Examples:
    >>> import tempfile
    >>> metrics = train(0.05, tempfile.mkdtemp(), [], epochs=1)
    >>> sorted(metrics)
    ['train_loss', 'val_loss']
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from callbridge.adapters.conformance import scripted_trainer
from torch.utils.data import DataLoader, TensorDataset

#: Lightning's loggers, quiet (WARNING) during a fit so that its info lines do not mix with what callbacks print.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


class TinyRegression(L.LightningModule):
    """A linear regression on 32 fixed random points (batches of 8); logs ``train_loss`` and ``val_loss``.

    Examples:
        >>> TinyRegression(lr=0.1).hparams.lr
        0.1
    """

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        generator = torch.Generator().manual_seed(0)
        self.layer = torch.nn.Linear(4, 1)
        with torch.no_grad():
            self.layer.weight.copy_(torch.randn(1, 4, generator=generator))
            self.layer.bias.zero_()
        self.x = torch.randn(32, 4, generator=generator)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(32, 1, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's info lines off (WARNING) inside the block, its levels restored after."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def train(lr: float, output_dir: str, callbacks: Sequence[Any], *, epochs: int = 2) -> dict[str, float]:
    """Fits `TinyRegression` for ``epochs`` with ``callbacks``; writes ``results.json`` (``lr`` and the final
    metrics) into ``output_dir`` (MultiRunGatherer reads it); returns the final metrics."""
    with quiet_lightning():
        trainer = scripted_trainer(callbacks, default_root_dir=output_dir, max_epochs=epochs)
        trainer.fit(TinyRegression(lr=lr))
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    os.makedirs(output_dir, exist_ok=True)
    Path(output_dir, "results.json").write_text(json.dumps({"lr": lr, **metrics}))
    return metrics
