"""DDP scenarios for WarpRec-style callbacks: hooks fire once, on rank zero; every rank trains on the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbridge.adapters import announce_data, to_lightning
from recsys_toy import Interactions, MatrixFactorization, synthetic_interactions
from warprec_callbacks import FilterLowRatings, Recorder

from ddp_scenarios import ddp_trainer, scenario


class AnnouncesInPrepareToo(Interactions):
    """Also announces in ``prepare_data`` (local rank zero only: no broadcast there, so no hang)."""

    prepared_rows: int | None = None

    def prepare_data(self) -> None:
        self.prepared_rows = len(announce_data(self, synthetic_interactions(n_rows=self.n_rows), broadcast=False))


@scenario
def warprec_hooks_once_on_rank_zero(workdir: Path) -> dict[str, Any]:
    data_filter, recorder = FilterLowRatings(min_rating=3), Recorder()
    trainer = ddp_trainer(
        to_lightning([data_filter, recorder]), max_epochs=2, limit_val_batches=1, default_root_dir=workdir
    )
    model, datamodule = MatrixFactorization(), AnnouncesInPrepareToo()
    trainer.fit(model, datamodule=datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    return {
        "names": recorder.names(),
        "filter_calls": data_filter.seen_rows,
        "rows": len(datamodule.data),
        "raw_rows": datamodule.raw_rows,
        "prepared_rows": datamodule.prepared_rows,
        "kept": int((datamodule.data["rating"] >= 3).sum()),
        "rows_seen": model.rows_seen,
        "trial_dirs": sorted(path.name for path in workdir.glob("ray_results/*/*") if path.is_dir()),
    }
