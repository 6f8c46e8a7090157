"""A real ``@hydra.main`` Lightning app whose task config also lists Hydra callbacks for Lightning.

    python examples/hydra_app/train.py                              # one run
    python examples/hydra_app/train.py --multirun lr=0.1,0.01       # a sweep with Hydra's basic launcher

Hydra calls the callbacks in ``hydra.callbacks`` around each job. The callbacks listed under ``callbacks``
go to the Lightning Trainer through callbridge (those Hydra already calls are skipped); callbridge's
``HydraRelay`` (in ``hydra.callbacks``) hands them Hydra's own hooks: multirun start and end, and one job
start and end per Hydra job, with Hydra's config, task function and ``JobReturn``. See docs/hydra.md.
"""

from __future__ import annotations

import hydra
import lightning as L
import torch
from callbridge.adapters.hydra import from_hydra_config
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch.utils.data import DataLoader, TensorDataset


class Regression(L.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=generator)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    trainer = L.Trainer(
        callbacks=from_hydra_config(cfg),
        max_epochs=cfg.max_epochs,
        default_root_dir=HydraConfig.get().runtime.output_dir,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Regression(lr=cfg.lr))
    return float(trainer.callback_metrics["train_loss"])


if __name__ == "__main__":
    main()
