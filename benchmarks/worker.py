"""One repeat of the benchmark: every configuration once, in the order the orchestrator gives, in this process.

``python -m benchmarks.worker SPEC.json RESULTS.jsonl`` (started by `benchmarks.run`, one fresh
process per repeat: Lightning is imported once per repeat, not once per configuration). Each
configuration first runs a short warm-up fit (discarded) so that first-use costs (imports inside
loggers, allocator growth, lazily built caches) are paid before any measured fit. One JSON line per
configuration is appended to RESULTS.jsonl as soon as it finishes, so a crash keeps what ran before it.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_config(name: str, steps: int, epochs: int, tmp: Path, keep: bool = False) -> dict[str, Any]:
    """Fit configuration ``name`` once and return its measurements (never raises)."""
    import lightning as L
    import torch

    from benchmarks import configs

    result: dict[str, Any] = {"config": name, "status": "ok"}
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp))
    env = configs.Env(steps=steps, epochs=epochs, workdir=workdir)
    try:
        torch.manual_seed(0)
        try:
            setup = configs.FACTORIES[name](env)
        except configs.Unavailable as missing:
            return {**result, "status": "unavailable", "missing": missing.missing}
        timer = configs.LoopTimer()
        model = configs.BenchModule(batches=env.batches)
        options = {**configs.COMMON_TRAINER, "max_epochs": epochs, "default_root_dir": str(workdir), **setup.trainer}
        trainer = L.Trainer(callbacks=[timer, *setup.callbacks], **options)
        for attach in setup.attach:
            attach(trainer)
        gc.collect()
        start = time.perf_counter()
        trainer.fit(model)
        fit_wall = time.perf_counter() - start
        done = int(trainer.global_step)
        if done != env.batches * epochs:
            raise AssertionError(f"ran {done} steps, expected {env.batches * epochs} (did something stop the run?)")
        facts = setup.after_fit(trainer) if setup.after_fit else {}
        loop = timer.t1 - timer.t0
        deltas = [b - a for a, b in zip(timer.marks, timer.marks[1:], strict=False)]
        meters = {key: meter.as_dict() for key, meter in setup.meters.items()}
        result.update(
            steps=done,
            loop_s=loop,
            fit_wall_s=fit_wall,
            per_step_us=loop / done * 1e6,
            step_p50_us=statistics.median(deltas) * 1e6 if deltas else None,
            meters=meters,
            blocked_logging_s=sum(meters[k]["seconds"] for k in setup.logging_meters) if setup.logging_meters else None,
            blocked_logging_in_loop_s=(
                sum(meters[k]["loop_seconds"] for k in setup.logging_meters) if setup.logging_meters else None
            ),
            blocked_checkpoint_s=(
                sum(meters[k]["seconds"] for k in setup.checkpoint_meters) if setup.checkpoint_meters else None
            ),
            blocked_mlflow_s=meters[setup.mlflow_meter]["seconds"] if setup.mlflow_meter else None,
            blocked_logging_at_end_s=(
                sum(
                    seconds
                    for k in setup.logging_meters
                    for name, seconds in meters[k]["by_name"].items()
                    if name in configs.END_METHODS
                )
                if setup.logging_meters
                else None
            ),
            **facts,
        )
        return result
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        return {**result, "status": "error", "error": message, "trace": traceback.format_exc()}
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    out = Path(args[1])
    _quiet()
    import torch

    torch.set_num_threads(1)
    from benchmarks.catalog import BY_NAME

    tmp = Path(spec["tmp"])
    tmp.mkdir(parents=True, exist_ok=True)
    for position, name in enumerate(spec["order"]):
        group_steps = spec["stack_steps"] if BY_NAME[name].group == "stack" else spec["steps"]
        if spec.get("warmup"):  # discarded; an unavailable or broken configuration shows in the measured run
            run_config(name, steps=2 * max(1, spec["warmup_batches"]), epochs=2, tmp=tmp)
        result = run_config(name, steps=group_steps, epochs=spec["epochs"], tmp=tmp, keep=spec.get("keep", False))
        result.update(repeat=spec["repeat"], position=position)
        with out.open("a") as stream:
            stream.write(json.dumps(result) + "\n")
        status = result["status"]
        detail = f"{result['per_step_us']:.1f} us/step" if status == "ok" else result.get("error") or result["missing"]
        print(f"[repeat {spec['repeat']}] {name}: {status} {detail}", file=sys.__stderr__, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
