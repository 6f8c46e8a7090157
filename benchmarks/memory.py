"""Peak host and device memory of weight snapshots on a large model.

    python -m benchmarks.memory [--params 100_000_000] [--device auto|cpu|cuda] [--smoke] [--json PATH]

Three ways of keeping the best weights, as an early-stopping ``restore_best`` or Keras ``get_weights``
would:

* ``device_clone``: ``{k: v.detach().clone()}`` of the ``state_dict`` on the model's device (fast
  restore; costs one model of *device* memory);
* ``host_copy``: ``{k: v.detach().to("cpu", copy=True)}`` (costs host memory and a device-to-host copy
  per snapshot, none on the device);
* ``keras_get_weights``: a list of NumPy copies of the weights, as Keras ``get_weights`` returns
  (host memory, like ``host_copy``).

Each kind runs in its own fresh process, so that one measurement's allocations cannot hide in another's
peak (``--smoke``: all in one process, quickly). Host peak: the process's high-water mark (``VmHWM``,
reset through ``/proc/self/clear_refs`` just before the snapshot; falling back to ``ru_maxrss``) minus
the resident size before it;
``tracemalloc`` peak is also reported (it sees NumPy buffers but not torch's allocator). Device peak:
``torch.cuda.max_memory_allocated`` minus what was allocated before.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

KINDS = ("device_clone", "host_copy", "keras_get_weights")
ROOT = Path(__file__).resolve().parent.parent


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build_model(params: int, device: str) -> Any:
    import torch

    width = 2048 if params >= 2048 * 2048 else max(8, math.isqrt(params))
    layers = max(1, round(params / (width * width)))
    return torch.nn.Sequential(*(torch.nn.Linear(width, width, bias=False, device=device) for _ in range(layers)))


def measure(kind: str, params: int, device: str) -> dict[str, Any]:
    import torch

    model = build_model(params, device)
    n_params = sum(p.numel() for p in model.parameters())
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        device_before = torch.cuda.memory_allocated()
    rss_before = _status_kib("VmRSS")
    exact_peak = _reset_peak()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    if kind == "device_clone":
        snapshot: Any = {k: v.detach().clone() for k, v in model.state_dict().items()}
    elif kind == "host_copy":
        snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    elif kind == "keras_get_weights":
        snapshot = [p.detach().cpu().numpy().copy() for p in model.parameters()]
    else:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _status_kib("VmHWM") if exact_peak else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "kind": kind,
        "device": device,
        "params": n_params,
        "model_mb": n_params * 4 / 2**20,
        "seconds": seconds,
        "host_peak_mb": (hwm - rss_before) / 1024 if hwm is not None and rss_before is not None else None,
        "host_peak_exact": exact_peak,
        "host_maxrss_growth_mb": (maxrss - maxrss_before) / 1024,
        "host_retained_mb": ((_status_kib("VmRSS") or 0) - (rss_before or 0)) / 1024,
        "tracemalloc_peak_mb": traced_peak / 2**20,
        "device_peak_mb": (torch.cuda.max_memory_allocated() - device_before) / 2**20 if cuda else None,
    }
    del snapshot
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    if not results:
        return "(no measurements)"
    first = results[0]
    lines = [
        f"Model: {first['params'] / 1e6:.1f} M float32 parameters ({first['model_mb']:.0f} MB) on {first['device']}.",
        "",
        "| snapshot | seconds | host peak MB | tracemalloc peak MB | device peak MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['kind']} | error: {r['error']} | | | |")
            continue
        host = r["host_peak_mb"] if r["host_peak_mb"] is not None else r["host_maxrss_growth_mb"]
        device = "" if r["device_peak_mb"] is None else f"{r['device_peak_mb']:.0f}"
        lines.append(f"| {r['kind']} | {r['seconds']:.3f} | {host:.0f} | {r['tracemalloc_peak_mb']:.0f} | {device} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=int, default=None, help="model size (default 100M; 1M with --smoke)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--one", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    params = args.params or (1_000_000 if args.smoke else 100_000_000)
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        print(json.dumps(measure(args.one, params, device)))
        return 0
    results = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    for kind in KINDS:
        if args.smoke:  # one process: quick, and smoke numbers mean nothing anyway
            try:
                results.append(measure(kind, params, device))
            except Exception as error:
                results.append({"kind": kind, "error": f"{type(error).__name__}: {error}"})
            continue
        command = [sys.executable, "-m", "benchmarks.memory", "--one", kind, "--params", str(params)]
        command += ["--device", device]
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            results.append({"kind": kind, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
    text = markdown(results)
    print(text)
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps({"results": results, "markdown": text}, indent=2))
        os.replace(tmp, args.json)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
