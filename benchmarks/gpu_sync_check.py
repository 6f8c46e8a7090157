"""On a CUDA device: do epoch-only callbacks cause a device-to-host sync during training steps?

    python -m benchmarks.gpu_sync_check [--steps 40] [--mode error|warn]

Each case fits `benchmarks.configs.BenchModule` with its data already on the GPU (no host-to-device
copy per step) and ``torch.cuda.set_sync_debug_mode(mode)`` switched on from the first callback's
``on_train_batch_start`` to the module's ``on_train_batch_end`` (which Lightning runs after every
callback's), so only what happens inside training steps is checked. With ``error`` a synchronising call
raises. Cases:

* ``baseline`` (no callbacks): must not sync, or the check is inconclusive (Lightning itself syncs);
* ``unified20``, ``keras20``, ``hydra20``: the benchmark's 20 epoch-level callbacks through ``to_lightning``
  (a style that is not registered yet is reported as unavailable): must not sync;
* ``loss_reader`` (a unified callback reading ``ctx.loss`` in ``on_step_end``): must sync, which shows the
  check can see a sync at all.

Without CUDA it prints why it skips and exits 0. Exit status 1 when an expectation fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any


def _fit(callbacks: list[Any], steps: int, mode: str) -> tuple[bool, str]:
    """(synced, message) for one fit with the sync debug mode on inside training steps."""
    import lightning as L
    import torch

    from benchmarks.configs import COMMON_TRAINER, BenchModule

    class Window(L.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            torch.cuda.set_sync_debug_mode(mode)

    epochs = 2
    model = BenchModule(batches=max(1, steps // epochs), device="cuda")
    model.after_step = lambda: torch.cuda.set_sync_debug_mode(0)
    options = {**COMMON_TRAINER, "accelerator": "gpu", "max_epochs": epochs}
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(callbacks=[Window(), *callbacks], default_root_dir=root, **options)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                trainer.fit(model)
        except RuntimeError as error:
            if "synchroniz" in str(error):
                return True, str(error).splitlines()[0]
            raise
        finally:
            torch.cuda.set_sync_debug_mode(0)
    synced = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    return bool(synced), synced[0] if synced else "no sync"


def cases() -> dict[str, Any]:
    """name -> (factory returning Lightning callbacks or raising Unavailable, expected to sync)."""
    from benchmarks import configs

    def env() -> configs.Env:
        return configs.Env(steps=2, epochs=2, workdir=Path(tempfile.gettempdir()))

    def loss_reader() -> list[Any]:
        (to_lightning,) = configs.need("callbridge.adapters", "to_lightning")
        (Callback,) = configs.need("callbridge.callbacks", "Callback")

        class LossReader(Callback):
            def on_step_end(self, ctx: Any) -> None:
                self.last = ctx.loss

        return to_lightning([LossReader()])

    return {
        "baseline": (lambda: [], False),
        "unified20": (lambda: configs.unified20(env()).callbacks, False),
        "keras20": (lambda: configs.keras20(env()).callbacks, False),
        "hydra20": (lambda: configs.hydra20(env()).callbacks, False),
        "loss_reader": (loss_reader, True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_sync_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--mode", choices=("error", "warn"), default="error")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_sync_check: skipped, no CUDA device")
        return 0
    from benchmarks import configs

    failed = False
    baseline_synced = False
    for name, (factory, expect_sync) in cases().items():
        try:
            callbacks = factory()
        except configs.Unavailable as missing:
            print(f"{name}: unavailable (missing: {', '.join(missing.missing)})")
            continue
        synced, message = _fit(callbacks, args.steps, args.mode)
        if name == "baseline":
            baseline_synced = synced
        if synced == expect_sync:
            verdict = "ok"
        elif synced and baseline_synced:
            verdict = "inconclusive: Lightning itself syncs inside steps (rerun with --mode warn to see where)"
        else:
            verdict = "FAIL"
            failed = True
        expected = "sync" if expect_sync else "no sync"
        print(f"{name}: {'synced' if synced else 'no sync'} ({message}); expected {expected} -> {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
