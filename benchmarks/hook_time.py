"""Time spent in Lightning's callback dispatch per training step, per configuration of ``benchmarks.configs``: a
load-resistant view of what callbacks add (the wall-clock harness, ``benchmarks.run``, needs a quiet machine to
resolve tens of microseconds).

It wraps ``lightning.pytorch.trainer.call._call_callback_hooks`` (Lightning's dispatch of one hook to every
callback, callbridge's bridge included) and sums the time inside it between ``on_train_start`` and
``on_train_end``, divided by the steps: thread CPU time (``--clock cpu``, the default: what the callbacks cost,
whatever else runs on the machine) or wall time (``--clock wall``). The configurations run interleaved,
``--repeats`` times each, after one short warm-up fit each; the table gives the minimum (the least disturbed run),
the median, and each minus the baseline's (``baseline`` is always run).

It wraps a private Lightning function: a diagnostic tool, not part of ``make bench``.

Run: ``python -m benchmarks.hook_time --configs baseline,native20,hf20 --steps 2000 --repeats 5 [--clock wall]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer import call

from benchmarks import configs

_DISPATCH = call._call_callback_hooks
_CLOCKS = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}
_SPENT = {"ns": 0, "on": False, "clock": time.thread_time_ns}


def _timed_dispatch(trainer: Any, hook_name: str, *args: Any, **kwargs: Any) -> Any:
    if not _SPENT["on"]:
        return _DISPATCH(trainer, hook_name, *args, **kwargs)
    clock = _SPENT["clock"]
    start = clock()
    try:
        return _DISPATCH(trainer, hook_name, *args, **kwargs)
    finally:
        _SPENT["ns"] += clock() - start


class _Window(L.pytorch.callbacks.Callback):
    """Counts only between on_train_start and on_train_end (not setup, sanity checks or teardown)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _SPENT.update(ns=0, on=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _SPENT["on"] = False


def hook_time_per_step(name: str, steps: int, epochs: int) -> float:
    """Microseconds per step spent in callback hooks during one fit of configuration ``name``."""
    setup = configs.FACTORIES[name](configs.Env(steps=steps, epochs=epochs, workdir=Path(tempfile.mkdtemp())))
    options = {**configs.COMMON_TRAINER, **setup.trainer}
    trainer = L.Trainer(callbacks=[_Window(), *setup.callbacks], max_epochs=epochs, **options)
    trainer.fit(configs.BenchModule(batches=steps // epochs))
    if setup.after_fit is not None:
        setup.after_fit(trainer)
    return _SPENT["ns"] / 1000 / steps


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hook_time", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="baseline,native20,hf20", help="comma-separated (baseline is added)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(_CLOCKS), default="cpu")
    args = parser.parse_args()
    names = ["baseline", *[name for name in args.configs.split(",") if name and name != "baseline"]]
    unknown = [name for name in names if name not in configs.FACTORIES]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; known: {', '.join(sorted(configs.FACTORIES))}")
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    _SPENT["clock"] = _CLOCKS[args.clock]
    call._call_callback_hooks = _timed_dispatch
    for name in names:  # warm-up
        hook_time_per_step(name, 100, 2)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            runs[name].append(hook_time_per_step(name, args.steps, args.epochs))
    base_min, base_median = min(runs["baseline"]), statistics.median(runs["baseline"])
    print(f"| configuration | {args.clock} us/step in hooks, min | median | min - baseline | median - baseline |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        low, mid = min(runs[name]), statistics.median(runs[name])
        print(f"| {name} | {low:.1f} | {mid:.1f} | {low - base_min:+.1f} | {mid - base_median:+.1f} |")


if __name__ == "__main__":
    main()
