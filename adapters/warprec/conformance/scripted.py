"""The scripted run both sides train: a tiny linear model on made-up tensors whose reported losses follow a script
(so every decision a callback takes is deterministic) while the gradients are the real mean squared error's.

At home the run is the trainable of a one-trial ``ray.tune.Tuner`` ([`trainable`][trainable], named after the module
as callbridge names its trial); under callbridge it is a plain ``trainer.fit`` of the same
[`ScriptedModule`][ScriptedModule].
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from callbridge.adapters.conformance import scripted_trainer
from torch.utils.data import DataLoader, TensorDataset

#: ``train_loss`` (every training step of an epoch) and ``val_loss`` (the epoch's validation), per epoch.
#: Dyadic fractions: exact in float32, so both sides report the very same numbers.
TRAIN_LOSS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125)
VAL_LOSS = (1.0, 0.75, 0.875, 0.5, 0.625, 0.5625, 0.6875, 0.71875)
#: The epochs of the scripted run unless ``callbridge verify --epochs`` says otherwise.
DEFAULT_EPOCHS = 2
#: The search space of the one-trial experiment (and the module's hyperparameters).
LEARNING_RATE = 0.0625


def config(epochs: int | None = None) -> dict[str, Any]:
    """The trial's config: the module's hyperparameters (a fixed search space, so one trial).

    Examples:
        >>> config(3)
        {'lr': 0.0625, 'epochs': 3}
        >>> config(9)
        Traceback (most recent call last):
        ...
        ValueError: --epochs must be an int from 1 to 8 (the script has 8 epochs), got 9
    """
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= len(VAL_LOSS):
        raise ValueError(f"--epochs must be an int from 1 to {len(VAL_LOSS)} (the script has 8 epochs), got {epochs!r}")
    return {"lr": LEARNING_RATE, "epochs": epochs}


class ScriptedModule(L.LightningModule):
    """8 training and 4 validation samples of 4 features, batches of 4, SGD; logs the script's ``train_loss`` each
    step and ``val_loss`` each validation; ``hparams`` is the trial's config.

    Examples:
        >>> module = ScriptedModule(epochs=3)
        >>> dict(module.hparams), len(module.train_dataloader())
        ({'lr': 0.0625, 'epochs': 3}, 2)
    """

    def __init__(self, lr: float = LEARNING_RATE, epochs: int = DEFAULT_EPOCHS) -> None:
        super().__init__()
        self.save_hyperparameters()
        generator = torch.Generator().manual_seed(0)
        self.layer = torch.nn.Linear(4, 1)
        with torch.no_grad():
            self.layer.weight.copy_(torch.tensor([[0.25, 0.5, -0.25, 0.125]]))
            self.layer.bias.zero_()
        self.x = torch.randn(12, 4, generator=generator)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def _loss(self, batch: Any, reported: float) -> torch.Tensor:
        x, y = batch
        real = torch.nn.functional.mse_loss(self(x), y)
        return real - real.detach() + reported  # the script's value, the real gradient

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch, TRAIN_LOSS[self.current_epoch])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch, VAL_LOSS[self.current_epoch]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x[:8], self.y[:8]), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x[8:], self.y[8:]), batch_size=4)


def trainer(callbacks: list[Any], epochs: int, checkpointing: bool) -> Any:
    """A quiet CPU ``lightning.Trainer`` for the scripted run (no logger, no progress bar, no sanity check)."""
    return scripted_trainer(callbacks, max_epochs=epochs, enable_checkpointing=checkpointing, deterministic=True)


def trainable(config: dict[str, Any]) -> None:
    """The home side's trainable: the scripted fit with Ray's own Lightning report callback
    (``TuneReportCheckpointCallback``: a result and a checkpoint after each validation)."""
    from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

    L.seed_everything(0, verbose=False)
    trainer([TuneReportCheckpointCallback()], config["epochs"], checkpointing=False).fit(ScriptedModule(**config))


trainable.__name__ = "ScriptedModule"  # Tune names a trial after its trainable, callbridge after the LightningModule
