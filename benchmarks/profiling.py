"""Profile one configuration's ``trainer.fit`` with cProfile and show where the callback layer spends time.

    python -m benchmarks.profiling [--config unified20] [--steps 2000] [--out .bench]

Runs a short warm-up fit, then the measured fit under cProfile; writes ``profile-<config>.pstats``
and prints the top functions by own time plus every callbridge function (``adapters/``,
``callbacks/``) and every Lightning callback-dispatch function, with calls per training step and
microseconds per call. cProfile inflates the cost of each Python call several times over, so read
its numbers relative to each other (bridge vs Lightning's own dispatch), not as absolute costs;
``benchmarks.run`` gives the unprofiled ones.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
from pathlib import Path

from benchmarks.worker import _quiet, run_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="unified20")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(".bench"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    _quiet()
    import torch

    torch.set_num_threads(1)
    import callbridge.adapters
    import callbridge.callbacks

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        warm = run_config(args.config, steps=20, epochs=2, tmp=Path(tmp))
        if warm["status"] != "ok":
            print(f"{args.config}: {warm['status']}: {warm.get('error') or warm.get('missing')}")
            return 1
        profiler = cProfile.Profile()
        profiler.enable()
        result = run_config(args.config, steps=args.steps, epochs=args.epochs, tmp=Path(tmp))
        profiler.disable()
    if result["status"] != "ok":
        print(f"{args.config}: {result['status']}: {result.get('error')}")
        return 1
    steps = result["steps"]
    target = args.out / f"profile-{args.config}.pstats"
    profiler.dump_stats(str(target))
    stats = pstats.Stats(profiler)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.top)
    print(text.getvalue())

    ours = tuple(
        os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (callbridge.adapters, callbridge.callbacks)
    )
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        dispatch = "lightning/pytorch/trainer/call.py" in filename and function.startswith("_call_callback")
        if filename.startswith(ours) or dispatch:
            rows.append((cumtime, calls, tottime, f"{Path(filename).name}:{line}({function})"))
    print(f"{args.config}: {steps} steps, {result['per_step_us']:.1f} us/step under the profiler")
    print(f"{'function':60} {'calls/step':>10} {'own us/call':>12} {'cum us/step':>12}")
    for cumtime, calls, tottime, name in sorted(rows, reverse=True)[: args.top]:
        print(f"{name:60} {calls / steps:10.2f} {tottime / calls * 1e6:12.2f} {cumtime / steps * 1e6:12.2f}")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
