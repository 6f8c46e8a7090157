"""The bridge's context fills every public CallbackContext field from the trainer, so that callbacks and
adapters never read ``ctx.trainer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from callbridge.adapters import LightningContext, to_lightning
from callbridge.callbacks import Callback, CallbackContext
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset
from toy import ToyRegression, make_trainer

FIELDS = (
    "stage",
    "epoch",
    "step",
    "max_epochs",
    "num_batches",
    "total_steps",
    "hparams",
    "root_dir",
    "log_dir",
    "checkpoint_dir",
    "evaluates",
    "check_val_every_n_epoch",
    "log_every_n_steps",
    "global_rank",
    "local_rank",
    "world_size",
    "is_global_zero",
)


class TwoOptimizers(ToyRegression):
    """Manual optimization with two optimizers, each with its scheduler."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.head = torch.nn.Linear(1, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        first, second = self.optimizers()
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.head(self(x)), y)
        first.zero_grad()
        second.zero_grad()
        self.manual_backward(loss)
        first.step()
        second.step()
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        first = torch.optim.SGD(self.layer.parameters(), lr=0.01)
        second = torch.optim.Adam(self.head.parameters(), lr=0.001)
        return [first, second], [torch.optim.lr_scheduler.StepLR(first, 1), torch.optim.lr_scheduler.StepLR(second, 1)]


class Data(L.LightningDataModule):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.x = torch.randn(32, 4)
        self.y = torch.randn(32, 1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8)


class Fields(Callback):
    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

    def _record(self, where: str, ctx: CallbackContext) -> None:
        self.seen[where] = {name: getattr(ctx, name) for name in FIELDS}
        self.seen[where].update(
            optimizers=[type(o).__name__ for o in ctx.optimizers],
            schedulers=[type(s).__name__ for s in ctx.schedulers],
            optimizer=ctx.optimizer,
            first_optimizer=ctx.optimizers[0] if ctx.optimizers else None,
            datamodule=type(ctx.datamodule).__name__,
            context=type(ctx).__name__,
        )

    def on_train_begin(self, ctx: CallbackContext) -> None:
        self._record("train_begin", ctx)

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self._record(f"epoch_end_{ctx.epoch}", ctx)

    def on_evaluate(self, ctx: CallbackContext) -> None:
        self._record(f"evaluate_{ctx.stage}", ctx)


def test_every_public_field_is_filled_from_the_trainer(tmp_path: Path) -> None:
    fields = Fields()
    trainer = make_trainer(
        [*to_lightning([fields]), ModelCheckpoint(dirpath=tmp_path / "ckpts")],
        default_root_dir=str(tmp_path),
        logger=CSVLogger(str(tmp_path / "logs")),
        enable_checkpointing=True,
        max_epochs=2,
        limit_val_batches=1,
        check_val_every_n_epoch=2,
        log_every_n_steps=3,
    )
    trainer.fit(TwoOptimizers(lr=0.5), datamodule=Data())
    begin = fields.seen["train_begin"]
    assert begin["context"] == "LightningContext"
    assert begin["optimizers"] == ["SGD", "Adam"] and begin["schedulers"] == ["StepLR", "StepLR"]
    assert begin["optimizer"] is begin["first_optimizer"]
    assert begin["datamodule"] == "Data"
    hparams = begin["hparams"]
    assert list(hparams)[:2] == ["lr", "nan_at_step"] and hparams["lr"] == 0.5 and hparams["width"] == 4
    assert begin["root_dir"] == str(tmp_path)
    assert Path(begin["log_dir"]) == tmp_path / "logs" / "lightning_logs" / "version_0"
    assert Path(begin["checkpoint_dir"]) == tmp_path / "ckpts"
    assert (begin["evaluates"], begin["check_val_every_n_epoch"], begin["log_every_n_steps"]) == (True, 2, 3)
    assert (begin["global_rank"], begin["local_rank"], begin["world_size"], begin["is_global_zero"]) == (0, 0, 1, True)
    assert (begin["stage"], begin["max_epochs"], begin["num_batches"], begin["total_steps"]) == ("fit", 2, 4, 8)
    assert fields.seen["epoch_end_1"]["step"] == 16  # two optimizer steps per batch, as Lightning counts them
    assert fields.seen["evaluate_fit"]["num_batches"] == 1  # the validation pass's own count
    assert fields.seen["epoch_end_1"]["num_batches"] == 4  # the training loop's again, after validation

    trainer.validate(TwoOptimizers(), datamodule=Data(), verbose=False)
    validate = fields.seen["evaluate_validate"]
    assert (validate["stage"], validate["evaluates"], validate["num_batches"]) == ("validate", True, 1)


def test_without_validation_or_logger_the_fields_say_so(tmp_path: Path) -> None:
    fields = Fields()
    trainer = make_trainer(to_lightning([fields]), default_root_dir=str(tmp_path), limit_val_batches=0)
    trainer.fit(ToyRegression())
    begin = fields.seen["train_begin"]
    assert (begin["evaluates"], begin["check_val_every_n_epoch"]) == (False, None)
    assert begin["log_dir"] == str(tmp_path) and begin["checkpoint_dir"] is None
    assert begin["datamodule"] == "NoneType" and begin["schedulers"] == []


def test_the_lightning_context_is_exported() -> None:
    assert issubclass(LightningContext, CallbackContext)
