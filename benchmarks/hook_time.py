"""Time spent in Lightning's callback-hook dispatch per training step, for configurations of ``benchmarks.configs``.

``make bench`` times whole steps; on a busy machine that wall time varies more than the callbacks cost. This
measures the callbacks' part directly: the time inside Lightning's ``_call_callback_hooks`` (every callback hook,
callbridge's bridge included) between ``on_train_start`` and ``on_train_end``, divided by the steps. The
configurations run interleaved, ``--repeats`` times each; the minimum over repeats is the least disturbed run.

It wraps a private Lightning function (``lightning.pytorch.trainer.call._call_callback_hooks``): a diagnostic
tool, not part of ``make bench``.

Run: ``python -m benchmarks.hook_time --configs baseline,native20,hf20 --steps 2000 --repeats 5``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer import call

from benchmarks import configs

_TOTAL = {"seconds": 0.0, "on": False}
_DISPATCH = call._call_callback_hooks


def _timed_dispatch(trainer: Any, hook_name: str, *args: Any, **kwargs: Any) -> Any:
    if not _TOTAL["on"]:
        return _DISPATCH(trainer, hook_name, *args, **kwargs)
    start = time.perf_counter()
    try:
        return _DISPATCH(trainer, hook_name, *args, **kwargs)
    finally:
        _TOTAL["seconds"] += time.perf_counter() - start


class _Window(L.pytorch.callbacks.Callback):
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _TOTAL.update(seconds=0.0, on=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _TOTAL["on"] = False


def hook_time_per_step(name: str, steps: int, epochs: int) -> float:
    """Microseconds per step spent in callback hooks during one fit of configuration ``name``."""
    setup = configs.FACTORIES[name](configs.Env(steps=steps, epochs=epochs, workdir=Path(tempfile.mkdtemp())))
    options = {**configs.COMMON_TRAINER, **setup.trainer}
    trainer = L.Trainer(callbacks=[_Window(), *setup.callbacks], max_epochs=epochs, **options)
    trainer.fit(configs.BenchModule(batches=steps // epochs))
    if setup.after_fit is not None:
        setup.after_fit(trainer)
    return _TOTAL["seconds"] / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="baseline,native20,hf20", help="comma-separated, baseline first")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    names = args.configs.split(",")
    torch.set_num_threads(1)
    call._call_callback_hooks = _timed_dispatch
    for name in names:  # warm-up
        hook_time_per_step(name, 100, 2)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            runs[name].append(hook_time_per_step(name, args.steps, args.epochs))
    base = min(runs[names[0]])
    print("| configuration | callback hooks us/step, min | median | min minus first configuration |")
    print("|---|---:|---:|---:|")
    for name in names:
        low, mid = min(runs[name]), statistics.median(runs[name])
        print(f"| {name} | {low:.1f} | {mid:.1f} | {low - base:+.1f} |")


if __name__ == "__main__":
    main()
