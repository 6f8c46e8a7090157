"""DDP scenarios for LoggingCallback and ProgressCallback: only global rank zero writes logs and draws a bar."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from callbridge.adapters import to_lightning
from callbridge.callbacks import LoggingCallback, ProgressCallback
from toy import ToyRegression

from ddp_scenarios import ddp_trainer, scenario


@scenario
def builtins_logging_rank_zero(workdir: Path) -> dict[str, Any]:
    save_dir = workdir / "runs"  # the same folder for both ranks
    logging_cb = LoggingCallback(["csv", "tensorboard", "console"], log_steps=2, save_dir=save_dir, run_name="ddp")
    progress = ProgressCallback()
    trainer = ddp_trainer(to_lightning([logging_cb, progress]), max_epochs=2, limit_val_batches=1)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        trainer.fit(ToyRegression(n=64, batch_size=8))  # 4 steps per rank and epoch
    return {
        "save_dir": str(save_dir),
        "logged": logging_cb.logged,
        "run_dir": None if logging_cb.run_dir is None else str(logging_cb.run_dir),
        "bars_drawn": progress.bars_drawn,
        "stderr": err.getvalue(),
        "stdout": out.getvalue(),
        "lightning_bar": any(type(cb).__name__.endswith("ProgressBar") for cb in trainer.callbacks),
    }
