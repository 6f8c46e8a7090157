"""A tiny recommender trained by Lightning, with WarpRec-style callbacks that run unchanged.

Matrix factorization on synthetic ``user_id, item_id, rating`` interactions. Two callbacks in the style of
WarpRec's guide: one filters the raw data (``on_data_reading``), one collects a metric from
``trial.last_result`` at each checkpoint (``on_trial_save``) and plots it in ``on_training_complete``.

Run: ``python examples/warprec_recommender.py [OUT_DIR]`` (needs ``pip install "callbridge[ray]"``; CPU, a few
seconds). The plot lands in OUT_DIR, with ``val_rmse.csv``, the points it was drawn from. Under WarpRec these
classes would derive from ``warprec.utils.callback.WarpRecCallback``; here they derive from ``ray.tune.Callback``,
WarpRec's own base class.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from callbridge.adapters import announce_data, to_lightning
from lightning.pytorch.callbacks import ModelCheckpoint
from ray.tune import Callback as Base
from torch.utils.data import DataLoader, TensorDataset


# -- WarpRec-style callbacks (unchanged WarpRec code) -------------------------------------------------
class DropColdUsers(Base):
    """``on_data_reading``: keep users with at least ``min_interactions`` ratings."""

    def __init__(self, min_interactions: int = 5) -> None:
        self.min_interactions = min_interactions

    def on_data_reading(self, data):
        counts = data["user_id"].map(data["user_id"].value_counts())
        kept = data[counts >= self.min_interactions].reset_index(drop=True)
        print(f"on_data_reading: {len(data)} -> {len(kept)} interactions")
        return kept


class ComputeRMSEOverIterations(Base):
    """From WarpRec's callback guide: collect a metric at each save, plot it when training completes."""

    def __init__(self, *args, **kwargs) -> None:
        self._save_path = kwargs.get("save_path")
        self._scores: list[float] = []

    def on_trial_save(self, iteration, trials, trial, **info):
        self._scores.append(trial.last_result.get("val_rmse", 0.0))

    def on_training_complete(self, model, *args, **kwargs):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self._scores:
            print("on_training_complete: no scores collected, nothing to plot")
            return
        plt.figure(figsize=(6, 4))
        (line,) = plt.plot(range(1, len(self._scores) + 1), self._scores, marker="o", label="val RMSE")
        plt.xlabel("Iteration")
        plt.ylabel("RMSE")
        plt.legend()
        if self._save_path:
            plt.savefig(self._save_path)
            points = pd.DataFrame(line.get_xydata(), columns=["iteration", "val_rmse"])  # what the figure holds
            points.to_csv(Path(self._save_path).with_suffix(".csv"), index=False)
            print(f"on_training_complete: {len(points)} points plotted to {self._save_path}")
        plt.close()

    def on_evaluation_complete(self, model, params, results, *args, **kwargs):
        print(f"on_evaluation_complete: params={params} results={results}")


# -- data and model --------------------------------------------------------------------------------
def synthetic_interactions(n_users: int = 50, n_items: int = 40, n_rows: int = 1500) -> pd.DataFrame:
    generator = torch.Generator().manual_seed(0)
    users = torch.randint(0, n_users, (n_rows,), generator=generator)
    items = torch.randint(0, n_items, (n_rows,), generator=generator)
    taste = torch.randn(n_users, 3, generator=generator) @ torch.randn(3, n_items, generator=generator)
    ratings = (3 + taste[users, items]).clamp(1, 5).round()
    return pd.DataFrame({"user_id": users.tolist(), "item_id": items.tolist(), "rating": ratings.tolist()})


def to_dataset(frame: pd.DataFrame) -> TensorDataset:
    columns = [torch.tensor(frame[c].to_numpy()) for c in ("user_id", "item_id")]
    return TensorDataset(*columns, torch.tensor(frame["rating"].to_numpy(), dtype=torch.float32))


class Interactions(L.LightningDataModule):
    """The WarpRec DataModule convention: announce raw data, expose main/val datasets and folds."""

    def setup(self, stage: str) -> None:
        data = announce_data(self, synthetic_interactions())  # on_data_reading runs here
        data = data.sample(frac=1.0, random_state=0)
        cut = int(0.8 * len(data))
        self.main_dataset = to_dataset(data.iloc[:cut])
        self.val_dataset = to_dataset(data.iloc[cut:])
        self.validation_folds = []  # on_dataset_creation(main_dataset=, val_dataset=, validation_folds=)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.main_dataset, batch_size=128, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=512)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


class MatrixFactorization(L.LightningModule):
    def __init__(self, n_users: int = 50, n_items: int = 40, dim: int = 8, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.users = torch.nn.Embedding(n_users, dim)
        self.items = torch.nn.Embedding(n_items, dim)
        self.user_bias = torch.nn.Embedding(n_users, 1)
        self.item_bias = torch.nn.Embedding(n_items, 1)
        self.mean = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.users(users) * self.items(items)).sum(-1)
        return dot + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + self.mean

    def _rmse(self, batch) -> torch.Tensor:
        users, items, ratings = batch
        return torch.nn.functional.mse_loss(self(users, items), ratings).sqrt()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._rmse(batch)
        self.log("train_rmse", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val_rmse", self._rmse(batch))

    def test_step(self, batch, batch_idx: int) -> None:
        self.log("test_rmse", self._rmse(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "val_rmse.png"
    callbacks = [DropColdUsers(min_interactions=25), ComputeRMSEOverIterations(save_path=str(plot))]
    trainer = L.Trainer(
        callbacks=[*to_lightning(callbacks), ModelCheckpoint(dirpath=out_dir / "checkpoints")],
        max_epochs=5,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out_dir,
    )
    model, data = MatrixFactorization(), Interactions()
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return plot


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="warprec-")))
