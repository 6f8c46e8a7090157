"""DDP scenarios for HF callbacks: they run on every rank, as under HF's Trainer, and the ranks agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from callbridge.adapters import to_lightning
from toy import ToyRegression

from ddp_scenarios import ddp_trainer, scenario


@scenario
def hf_every_rank_stop_and_save_agree(workdir: Path) -> dict[str, Any]:
    """A stop asked on rank 1 only and a save asked on rank 0 only; logs written where HF callbacks write them."""
    from transformers import TrainerCallback

    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "logs.jsonl"

    class RankView(TrainerCallback):
        def __init__(self) -> None:
            self.zero: set[bool] = set()
            self.steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.zero.add(state.is_world_process_zero)
            self.steps += 1
            if state.global_step == 2 and state.is_world_process_zero:
                control.should_save = True  # rank 0 only: a checkpoint is collective, both ranks must write it
            if state.global_step == 3 and not state.is_world_process_zero:
                control.should_training_stop = True  # rank 1 only: both ranks stop

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero:  # as HF's integrations do
                with open(log, "a") as handle:
                    handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    view = RankView()
    trainer = ddp_trainer(
        to_lightning([view]), max_epochs=5, limit_val_batches=0, log_every_n_steps=1, default_root_dir=str(workdir)
    )
    trainer.fit(ToyRegression(n=32, batch_size=8))  # 2 batches per rank and epoch
    trainer.strategy.barrier()
    return {
        "global_step": trainer.global_step,
        "steps_seen": view.steps,
        "zero": sorted(view.zero),
        "saved": sorted(p.name for p in workdir.glob("checkpoint-*")),
        "logged_steps": [json.loads(line)["step"] for line in log.read_text().splitlines()],
        "saved_files": sorted(p.name for p in (workdir / "checkpoint-2").iterdir()),
    }
