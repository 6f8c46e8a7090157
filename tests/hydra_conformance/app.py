"""A real ``@hydra.main`` app that fits then tests: at home (``--config-name home``) Hydra calls the callbacks
under test; under callbridge (``--config-name bridge``) the task function gives them to Lightning.

``python driver.py DIR`` runs it twice in one process (a single run, then ``--multirun lr=0.1,0.01``), each in
its own working dir under DIR, as ``python app.py`` and ``python app.py --multirun ...`` would.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from probes import train


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="home")
def main(cfg: DictConfig) -> dict[str, float]:
    hydra_cfg = HydraConfig.get()
    callbacks = []
    if hydra_cfg.job.config_name == "bridge":
        from callbridge.adapters.hydra import from_hydra_config

        callbacks = from_hydra_config(cfg.cbs)
    return train(cfg.lr, hydra_cfg.runtime.output_dir, callbacks, test=True)


if __name__ == "__main__":
    main()
