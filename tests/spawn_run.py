"""Trains with ``strategy="ddp_spawn"`` on 2 CPU processes with a Keras, a Hydra and a WarpRec-style callback.

Usage: python tests/spawn_run.py OUT_DIR. The trainer, the bridge and every callback are pickled to the
worker processes; the callbacks run on global rank zero there and leave files in OUT_DIR, which
``tests/test_spawn.py`` checks. The callback classes live at module level: the workers unpickle them by name.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).parent))

from hydra.experimental.callback import Callback as HydraCallback
from warprec_callbacks import WarpRecCallback


class JobEndFile(HydraCallback):
    """Hydra style: writes the job's status and output dir when the job ends."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        record = {"status": job_return.status.name, "output_dir": config.hydra.runtime.output_dir, "pid": os.getpid()}
        Path(self.path).write_text(json.dumps(record))


class TrainingCompleteFile(WarpRecCallback):
    """WarpRec style: writes the model's hyperparameters once training completes."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_training_complete(self, model: Any, *args: Any, **kwargs: Any) -> None:
        Path(self.path).write_text(json.dumps({"hparams": dict(model.hparams), "pid": os.getpid()}))


def main(out: Path) -> None:
    import keras
    from callbridge.adapters import to_lightning
    from callbridge.adapters.lightning import EpochEndRelay
    from toy import ToyRegression, make_trainer

    out.mkdir(parents=True, exist_ok=True)
    callbacks = to_lightning(
        [
            keras.callbacks.CSVLogger(str(out / "keras.csv")),
            JobEndFile(str(out / "hydra_job_end.json")),
            TrainingCompleteFile(str(out / "warprec_complete.json")),
        ]
    )
    trainer = make_trainer(
        callbacks,
        strategy="ddp_spawn",
        accelerator="cpu",
        devices=2,
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        default_root_dir=str(out),
    )
    trainer.fit(ToyRegression(lr=0.01))
    summary = {
        "main_pid": os.getpid(),
        "relays_left": sum(isinstance(cb, EpochEndRelay) for cb in trainer.callbacks),
    }
    (out / "main.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
