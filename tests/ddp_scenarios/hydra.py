"""DDP scenarios for the Hydra adapter: run/job hooks fire once, on global rank zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbridge.adapters import to_lightning
from toy import ToyRegression

from ddp_scenarios import scenario


class _Hooks:
    def __init__(self) -> None:
        self.hooks: list[str] = []
        self.status: str | None = None

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self.hooks.append("on_run_start")

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        self.hooks.append("on_job_start")

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        self.hooks.append("on_job_end")
        self.status = job_return.status.name

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        self.hooks.append("on_run_end")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.hooks.append("on_multirun_start")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self.hooks.append("on_multirun_end")


@scenario
def hydra_job_hooks_once(workdir: Path) -> dict[str, Any]:
    from hydra.experimental.callbacks import PickleJobInfoCallback

    from ddp_scenarios import ddp_trainer

    recorder = _Hooks()
    trainer = ddp_trainer(
        to_lightning([recorder, PickleJobInfoCallback()]), max_epochs=1, limit_val_batches=1, default_root_dir=workdir
    )
    trainer.fit(ToyRegression(n=32, batch_size=8))
    trainer.strategy.barrier()
    subdir = workdir / ".hydra"

    from callbridge.adapters.hydra import HydraMultirun

    swept = _Hooks()
    with HydraMultirun([swept]) as sweep:
        ddp_trainer(sweep.job(), max_epochs=1, limit_train_batches=1, limit_val_batches=1).fit(ToyRegression(n=32))
    from hydra.core.hydra_config import HydraConfig

    return {
        "hydra_config_left_set": HydraConfig.initialized(),
        "sweep_hooks": swept.hooks,
        "hooks": recorder.hooks,
        "status": recorder.status,
        "pickles": sorted(p.name for p in subdir.iterdir()) if subdir.is_dir() else [],
    }
