"""CPU time spent in Lightning's callback dispatch per step, per configuration: a load-resistant view of what
callbacks add (the wall-clock harness, ``benchmarks.run``, needs a quiet machine to resolve tens of microseconds).

Wraps ``lightning.pytorch.trainer.call._call_callback_hooks`` (Lightning's dispatch to every callback of a hook)
with ``time.thread_time_ns`` and fits each configuration ``--repeats`` times, interleaved.

Usage: python -m benchmarks.hook_cpu [--steps 2000] [--repeats 5] [CONFIG ...]
(default configs: baseline native_batch20 keras_batch20 keras20)
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hook_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", default=["baseline", "native_batch20", "keras_batch20", "keras20"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import lightning as L
    from lightning.pytorch.trainer import call

    from benchmarks.configs import COMMON_TRAINER, FACTORIES, BenchModule, Env

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    original = call._call_callback_hooks
    spent = [0]

    def timed(trainer: Any, hook_name: str, *a: Any, **k: Any) -> Any:
        start = time.thread_time_ns()
        try:
            return original(trainer, hook_name, *a, **k)
        finally:
            spent[0] += time.thread_time_ns() - start

    call._call_callback_hooks = timed
    names = ["baseline", *[c for c in args.configs if c != "baseline"]]
    results: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            env = Env(steps=args.steps, epochs=args.epochs, workdir=Path(tempfile.mkdtemp()))
            setup = FACTORIES[name](env)
            trainer = L.Trainer(max_epochs=args.epochs, callbacks=setup.callbacks, **COMMON_TRAINER)
            spent[0] = 0
            trainer.fit(BenchModule(batches=env.batches))
            results[name].append(spent[0] / 1000 / (env.batches * args.epochs))
    base = statistics.median(results["baseline"])
    print("| configuration | us/step in callback dispatch (median) | adds vs baseline us |")
    print("|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median - base:.1f} |")


if __name__ == "__main__":
    main()
