"""Runs every DDP scenario in one ``torchrun`` launch; each rank writes ``<out>/<scenario>/rank<r>.json``.

Usage: python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_runner.py OUT_DIR [NAME ...]
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("KERAS_BACKEND", "torch")

from ddp_scenarios import load_all


def main() -> None:
    out = Path(sys.argv[1])
    wanted = sys.argv[2:]
    rank = int(os.environ.get("RANK", "0"))
    scenarios = load_all()
    for name in sorted(scenarios):
        if wanted and name not in wanted:
            continue
        workdir = out / name
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            result = {"ok": True, "result": scenarios[name](workdir / "work")}
        except BaseException as error:  # a failing scenario must not hide the others' results
            result = {"ok": False, "error": "".join(traceback.format_exception(error))}
        (workdir / f"rank{rank}.json").write_text(json.dumps(result, default=str))
    # Leave no collective state for interpreter exit: gloo's threads torn down at exit can abort the process.
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
