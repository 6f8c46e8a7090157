"""Fault injection: ``kill -9`` a checkpointing run at random moments, resume it, and count what is left.

    python -m benchmarks.kill_resume [--kills N] [--seed S] [--out DIR]

Each round starts a training process (a ~1.6 MB model with Adam, so a checkpoint is ~5 MB; a
``CheckpointCallback`` keeping the best 3 by ``val_loss``, saving every 2 steps, mid-epoch included; a resumable
training dataloader), waits until it trains, sleeps a random fraction of a run and sends SIGKILL: then, or
(rounds alternate between the three ``MODES``) at the next moment a save is writing its temporary file, or at
the next moment K+1 ranked files are on disk. It then counts what the kill left in the checkpoint folder
(``.tmp`` files, ranked files beyond K), resumes from ``last.pt`` in a new process to the end, and counts
again; the resumed run's final weights are compared bit for bit with an uninterrupted run's. Prints a summary and
writes ``kill_resume.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

K = 3
MAX_EPOCHS = 4
BATCHES = 8


def _worker(folder: Path, resume: bool) -> None:
    import lightning as L
    import torch
    from callbridge.adapters import to_lightning
    from callbridge.callbacks import Callback, CallbackContext, CheckpointCallback

    class Loader:  # resumable: Lightning saves and restores its position (state_dict / load_state_dict)
        def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
            self.x, self.y, self.epoch, self.next_epoch, self.yielded, self.skip = x, y, 0, 0, 0, 0

        def __len__(self) -> int:
            return BATCHES

        def __iter__(self):
            # Each pass is the next epoch: Lightning stops after len() batches without exhausting the iterator,
            # so the epoch is counted when a pass starts, never when one ends.
            self.epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
            start, self.skip = self.skip, 0
            order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.epoch))
            size = len(self.x) // BATCHES
            self.yielded = start
            for number in range(start, BATCHES):
                self.yielded = number + 1
                index = order[number * size : (number + 1) * size]
                yield self.x[index], self.y[index]

        def state_dict(self) -> dict[str, int]:
            return {"epoch": self.epoch, "yielded": self.yielded}

        def load_state_dict(self, state: dict[str, int]) -> None:
            done = state["yielded"] >= BATCHES
            self.next_epoch, self.skip = state["epoch"] + done, 0 if done else state["yielded"]

    class Model(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(64, 640), torch.nn.ReLU(), torch.nn.Linear(640, 640))
            generator = torch.Generator().manual_seed(0)
            self.x, self.y = torch.randn(256, 64, generator=generator), torch.randn(256, 640, generator=generator)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            # scripted by epoch so that ranks move: the kept set changes as the run goes
            self.log("val_loss", [0.9, 0.5, 0.7, 0.4, 0.6, 0.3][self.current_epoch % 6] + 0.01 * batch_idx)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

        def train_dataloader(self) -> Loader:
            return Loader(self.x, self.y)

        def val_dataloader(self) -> Any:
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.x[:32], self.y[:32]), batch_size=32)

    class Started(Callback):
        def on_train_begin(self, ctx: CallbackContext) -> None:
            (folder / "started").write_text(str(ctx.step))

    torch.manual_seed(0)
    model = Model()
    ckpt = CheckpointCallback(folder / "ckpt", strategy="step", save_steps=2, save_total_limit=K, monitor="val_loss")
    trainer = L.Trainer(
        callbacks=to_lightning([Started(), ckpt]),
        max_epochs=MAX_EPOCHS,
        val_check_interval=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    last = folder / "ckpt" / "last.pt"
    trainer.fit(model, ckpt_path=last if resume and last.exists() else None)
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    (folder / "final.txt").write_text(digest)


def _leftovers(folder: Path) -> dict[str, int]:
    ckpt = folder / "ckpt"
    names = [p.name for p in ckpt.iterdir()] if ckpt.is_dir() else []
    ranked = [n for n in names if re.match(r"^epoch=\d+-step=\d+\.pt$", n)]
    return {"tmp": sum(n.endswith(".tmp") for n in names), "ranked": len(ranked)}


def _start(folder: Path, resume: bool) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "benchmarks.kill_resume", "--worker", str(folder)]
    command += ["--resume"] if resume else []
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


#: When a round kills: after a random delay; once the random delay passed, at the first moment a save is writing
#: its temporary file; or at the first moment K+1 ranked files are on disk (a new one written, the evicted one not
#: yet deleted).
MODES = ("random", "mid-write", "before-eviction")


def _wait_for(mode: str, ckpt: Path, proc: subprocess.Popen, deadline: float) -> None:
    while proc.poll() is None:
        now = time.monotonic()
        if mode == "random" and now >= deadline:
            return
        if mode != "random" and now >= deadline and ckpt.is_dir():
            names = os.listdir(ckpt)
            if mode == "mid-write" and any(n.endswith(".tmp") for n in names):
                return
            if mode == "before-eviction" and sum(bool(re.match(r"^epoch=.*\.pt$", n)) for n in names) > K:
                return
        time.sleep(0.0005)


def _drive(kills: int, seed: int, out: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    reference = out / "reference"
    began = time.monotonic()
    proc = _start(reference, resume=False)
    while not (reference / "started").exists() and proc.poll() is None:
        time.sleep(0.05)
    train_began = time.monotonic()
    if proc.wait() != 0:
        raise RuntimeError(proc.stderr.read().decode()[-3000:])
    train_s = time.monotonic() - train_began
    expected = (reference / "final.txt").read_text()
    rounds = []
    for number in range(kills):
        folder = out / f"round{number}"
        mode = MODES[number % len(MODES)]
        proc = _start(folder, resume=False)
        while not (folder / "started").exists() and proc.poll() is None:
            time.sleep(0.02)
        # train_s includes the process's exit; the targeted modes then wait for their moment
        delay = rng.uniform(0.0, 0.8 * train_s if mode == "random" else 0.3 * train_s)
        _wait_for(mode, folder / "ckpt", proc, time.monotonic() + delay)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        after_kill = _leftovers(folder)
        (folder / "started").unlink(missing_ok=True)
        resumed = _start(folder, resume=True)
        code = resumed.wait()
        after_resume = _leftovers(folder)
        final = (folder / "final.txt").read_text() if (folder / "final.txt").exists() else None
        rounds.append(
            {
                "mode": mode,
                "delay_s": round(delay, 2),
                "killed": killed,
                "after_kill": after_kill,
                "resume_exit": code,
                "after_resume": after_resume,
                "same_final_weights": final == expected,
            }
        )
        print(json.dumps(rounds[-1]), flush=True)
    summary = {
        "rounds": len(rounds),
        "kills": sum(r["killed"] for r in rounds),
        "kills_leaving_tmp": sum(r["killed"] and r["after_kill"]["tmp"] > 0 for r in rounds),
        "kills_leaving_more_than_k": sum(r["killed"] and r["after_kill"]["ranked"] > K for r in rounds),
        "resumes_failed": sum(r["resume_exit"] != 0 for r in rounds),
        "tmp_left_after_resume": sum(r["after_resume"]["tmp"] for r in rounds),
        "resumes_with_more_than_k": sum(r["after_resume"]["ranked"] > K for r in rounds),
        "resumes_with_different_weights": sum(not r["same_final_weights"] for r in rounds),
        "uninterrupted_train_s": round(train_s, 2),
        "wall_s": round(time.monotonic() - began, 1),
    }
    (out / "kill_resume.json").write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kill_resume", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("kill_resume_out"))
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        _worker(args.worker, args.resume)
        return 0
    summary = _drive(args.kills, args.seed, args.out)
    for key, value in summary.items():
        print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
