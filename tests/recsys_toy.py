"""A tiny recommender for the WarpRec tests: synthetic interactions, matrix factorization."""

from __future__ import annotations

from typing import Any

import lightning as L
import pandas as pd
import torch
from callbridge.adapters.warprec import announce_data
from torch.utils.data import DataLoader, TensorDataset


def synthetic_interactions(n_users: int = 20, n_items: int = 15, n_rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """``user_id, item_id, rating`` rows; ratings 1..5."""
    generator = torch.Generator().manual_seed(seed)
    return pd.DataFrame(
        {
            "user_id": torch.randint(0, n_users, (n_rows,), generator=generator).tolist(),
            "item_id": torch.randint(0, n_items, (n_rows,), generator=generator).tolist(),
            "rating": torch.randint(1, 6, (n_rows,), generator=generator).float().tolist(),
        }
    )


def _dataset(frame: pd.DataFrame) -> TensorDataset:
    return TensorDataset(
        torch.tensor(frame["user_id"].to_numpy()),
        torch.tensor(frame["item_id"].to_numpy()),
        torch.tensor(frame["rating"].to_numpy(), dtype=torch.float32),
    )


class Interactions(L.LightningDataModule):
    """Reads the interactions in ``setup``, announces them (WarpRec's ``on_data_reading``), splits 80/20.

    Follows the WarpRec DataModule convention: ``main_dataset``, ``val_dataset``, ``validation_folds``.
    """

    def __init__(self, n_rows: int = 200, batch_size: int = 50, folds: int = 0) -> None:
        super().__init__()
        self.n_rows, self.batch_size, self.folds = n_rows, batch_size, folds
        self.raw_rows: int | None = None
        self.data: pd.DataFrame | None = None

    def setup(self, stage: str) -> None:
        raw = synthetic_interactions(n_rows=self.n_rows)
        self.raw_rows = len(raw)
        self.data = announce_data(self, raw, broadcast=True)  # every rank runs setup
        cut = int(len(self.data) * 0.8)
        self.main_dataset = _dataset(self.data.iloc[:cut])
        self.val_dataset = _dataset(self.data.iloc[cut:])
        self.validation_folds = [_dataset(part) for part in _chunks(self.data.iloc[:cut], self.folds)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.main_dataset, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=self.batch_size)


def _chunks(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    if n <= 0:
        return []
    size = max(1, len(frame) // n)
    return [frame.iloc[i * size : (i + 1) * size] for i in range(n)]


class MatrixFactorization(L.LightningModule):
    """Dot product of user and item embeddings plus biases; counts the training rows it sees."""

    def __init__(self, n_users: int = 20, n_items: int = 15, dim: int = 4, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.users = torch.nn.Embedding(n_users, dim)
        self.items = torch.nn.Embedding(n_items, dim)
        self.bias = torch.nn.Parameter(torch.tensor(3.0))
        self.rows_seen = 0

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.users(users) * self.items(items)).sum(-1) + self.bias

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        users, items, ratings = batch
        self.rows_seen += len(ratings)
        loss = torch.nn.functional.mse_loss(self(users, items), ratings)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        users, items, ratings = batch
        self.log("val_rmse", torch.nn.functional.mse_loss(self(users, items), ratings).sqrt())

    def test_step(self, batch: Any, batch_idx: int) -> None:
        users, items, ratings = batch
        self.log("test_rmse", torch.nn.functional.mse_loss(self(users, items), ratings).sqrt())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
