"""Run every benchmark configuration side by side and write ``results.json`` and ``results.md``.

    python -m benchmarks.run [--smoke] [--repeats N] [--steps N] [--stack-steps N] [--out DIR]

Method (see ``docs/performance.md``): each repeat is one fresh worker process
(`benchmarks.worker`) that imports Lightning once, warms every configuration up with a short
discarded fit, then fits each configuration once. The order rotates by one position per repeat, so
every configuration runs early and late in a process equally often and slow drifts of the machine
hit all of them alike. Per-step time is the fit loop's wall time (``on_train_start`` to
``on_train_end``, measured by the same first callback in every configuration) divided by the steps.
Overheads and ratios are paired: each configuration is compared with the baseline of the same
repeat (same process, minutes apart at most), then the median over repeats is reported.

``--smoke`` (run by ``make test``) fits each configuration for a few steps once, checks that every
available configuration runs, and asserts nothing about time. The exit status is 1 when a
configuration failed (an error, not merely unavailable).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.catalog import BASELINE, BY_NAME, CONFIGS

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few steps, one repeat: checks that it runs")
    parser.add_argument("--repeats", type=int, default=None, help="worker processes, one per repeat (default 5)")
    parser.add_argument("--steps", type=int, default=None, help="training steps of configurations 1-4 (default 2000)")
    parser.add_argument(
        "--stack-steps", type=int, default=None, help="training steps of the logger/checkpoint stacks (default 500)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs the steps are split into (default 10)")
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="output folder (default .bench/)")
    parser.add_argument("--configs", default=None, help="comma-separated subset (default: all); baseline is added")
    parser.add_argument("--no-warmup", action="store_true", help="skip the discarded warm-up fit per configuration")
    parser.add_argument("--no-memory", action="store_true", help="skip benchmarks.memory")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary folder (logs, checkpoints)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per worker process (default 3600)")
    args = parser.parse_args(argv)
    defaults = (1, 40, 20, 2, 300.0) if args.smoke else (5, 2000, 500, 10, 3600.0)
    for name, default in zip(("repeats", "steps", "stack_steps", "epochs", "timeout"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.smoke:
        args.no_warmup = True
    if args.repeats < 1 or args.epochs < 1 or min(args.steps, args.stack_steps) < args.epochs:
        parser.error("--repeats and --epochs must be >= 1, and --steps/--stack-steps >= --epochs")
    return args


def selected(args: argparse.Namespace) -> list[str]:
    if not args.configs:
        return [info.name for info in CONFIGS]
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; known: {', '.join(BY_NAME)}")
    return [info.name for info in CONFIGS if info.name in names or info.name == BASELINE]


def machine() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": {d: version(d) for d in ("torch", "lightning", "mlflow", "tensorboard", "keras", "hydra-core")},
    }


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=env.get("KERAS_BACKEND", "torch"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONHASHSEED="0",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        GIT_PYTHON_REFRESH="quiet",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    env.pop("MLFLOW_ENABLE_ASYNC_LOGGING", None)  # MLFlowLogger measured with MLflow's default (synchronous)
    return env


def run_repeats(args: argparse.Namespace, names: list[str], out: Path) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    results = out / "runs.jsonl"
    results.unlink(missing_ok=True)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        order = names[shift:] + names[:shift]
        spec = {
            "order": order,
            "repeat": repeat,
            "steps": args.steps,
            "stack_steps": args.stack_steps,
            "epochs": args.epochs,
            "warmup": not args.no_warmup,
            "warmup_batches": 5,
            "keep": args.keep,
            "tmp": str((out / "tmp").resolve()),
        }
        spec_path = out / f"spec-{repeat}.json"
        spec_path.write_text(json.dumps(spec))
        before = len(_read_runs(results))
        started = time.perf_counter()
        with (out / f"worker-{repeat}.log").open("w") as log:
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(results)],
                    cwd=ROOT,
                    env=worker_env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=args.timeout,
                )
                crashed = proc.returncode != 0
            except subprocess.TimeoutExpired:
                crashed = True
        done = _read_runs(results)[before:]
        for name in order[len(done) :] if crashed else ():
            done.append(
                {"config": name, "repeat": repeat, "status": "error", "error": f"worker died; see worker-{repeat}.log"}
            )
        runs.extend(done)
        summary = ", ".join(
            f"{r['config']}={r['per_step_us']:.0f}us" if r["status"] == "ok" else f"{r['config']}={r['status']}"
            for r in done
        )
        print(f"repeat {repeat + 1}/{args.repeats} ({time.perf_counter() - started:.0f}s): {summary}", flush=True)
    return runs


def _read_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- summary ---------------------------------------------------------------------------------------------
def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    by: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in names}
    for run in runs:
        by.setdefault(run["config"], {})[run["repeat"]] = run
    base = {r: run for r, run in by.get(BASELINE, {}).items() if run["status"] == "ok"}
    summary: dict[str, Any] = {}
    for name in names:
        mine = by.get(name, {})
        ok = {r: run for r, run in mine.items() if run["status"] == "ok"}
        entry: dict[str, Any] = {"title": BY_NAME[name].title, "group": BY_NAME[name].group}
        if not ok:
            bad = next(iter(mine.values()), {"status": "missing", "error": "not run"})
            entry["status"] = bad["status"]
            entry["detail"] = (
                f"missing: {', '.join(bad['missing'])}" if bad["status"] == "unavailable" else bad.get("error", "")
            )
            summary[name] = entry
            continue
        paired = [r for r in ok if r in base]
        errors = [run.get("error", "") for run in mine.values() if run["status"] == "error"]
        entry.update(
            status="ok" if not errors else "partly failed",
            detail="; ".join(errors),
            steps=next(iter(ok.values()))["steps"],
            per_step_us=_stats([run["per_step_us"] for run in ok.values()]),
            step_p50_us=_stats([run["step_p50_us"] for run in ok.values() if run.get("step_p50_us") is not None]),
            overhead_us=_stats([ok[r]["per_step_us"] - base[r]["per_step_us"] for r in paired]),
            ratio=_stats([ok[r]["per_step_us"] / base[r]["per_step_us"] for r in paired]),
            fit_wall_s=_stats([run["fit_wall_s"] for run in ok.values()]),
        )
        for key in (
            "blocked_logging_s",
            "blocked_logging_in_loop_s",
            "blocked_logging_at_end_s",
            "blocked_checkpoint_s",
            "blocked_mlflow_s",
        ):
            values = [run[key] for run in ok.values() if run.get(key) is not None]
            entry[key] = _stats(values)
            entry[key[: -len("_s")] + "_us_per_step"] = _stats([v / entry["steps"] * 1e6 for v in values])
        save = [run["meters"]["save_checkpoint"] for run in ok.values() if "save_checkpoint" in run.get("meters", {})]
        if save:
            entry["save_checkpoint_s"] = _stats([m["seconds"] for m in save])
            entry["save_checkpoint_calls"] = save[0]["calls"]
        if any("mlflow_stored" in run for run in ok.values()):
            entry["mlflow"] = [
                {"repeat": r, "submitted": run.get("mlflow_submitted"), "stored": run.get("mlflow_stored")}
                for r, run in sorted(ok.items())
            ]
        entry["paired_repeats"] = sorted(paired)
        summary[name] = entry
    return summary


def _paired_median(runs: list[dict[str, Any]], a: str, b: str, key: str = "per_step_us") -> float | None:
    """Median over repeats of ``a - b`` (same repeat, both ok)."""
    got: dict[str, dict[int, float]] = {a: {}, b: {}}
    for run in runs:
        if run["config"] in got and run["status"] == "ok" and run.get(key) is not None:
            got[run["config"]][run["repeat"]] = run[key]
    common = sorted(set(got[a]) & set(got[b]))
    return statistics.median(got[a][r] - got[b][r] for r in common) if common else None


def _added_wall(runs: list[dict[str, Any]], name: str) -> float | None:
    """Median over repeats of what ``name`` adds to the baseline's whole ``fit`` wall time (setup and the final
    flush included). The baseline runs ``--steps``, the stacks ``--stack-steps``: its loop time is scaled to the
    configuration's steps, its time outside the loop (setup, teardown) kept as it is."""
    base = {run["repeat"]: run for run in runs if run["config"] == BASELINE and run["status"] == "ok"}
    added = []
    for run in runs:
        b = base.get(run["repeat"])
        if run["config"] != name or run["status"] != "ok" or b is None:
            continue
        baseline_wall = (b["fit_wall_s"] - b["loop_s"]) + b["loop_s"] / b["steps"] * run["steps"]
        added.append(run["fit_wall_s"] - baseline_wall)
    return statistics.median(added) if added else None


def targets(summary: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def ok(name: str) -> bool:
        return summary.get(name, {}).get("status") in ("ok", "partly failed")

    def why_not(*names: str) -> str:
        missing = [f"{n} {summary.get(n, {}).get('status', 'not selected')}" for n in names if not ok(n)]
        return "n/a: " + ", ".join(missing)

    def overhead(name: str) -> float:
        return summary[name]["overhead_us"]["median"]

    lines: list[dict[str, Any]] = []

    def add(text: str, needs: tuple[str, ...], check: Any) -> None:
        if not all(ok(n) for n in needs):
            lines.append({"target": text, "result": why_not(*needs)})
            return
        passed, detail = check()
        lines.append({"target": text, "result": "pass" if passed else "FAIL", "detail": detail})

    add(
        "(3) unified overhead <= 1/2 of native callbacks' overhead",
        ("unified20", "native20"),
        lambda: (
            overhead("unified20") <= 0.5 * overhead("native20"),
            f"{overhead('unified20'):.1f} us vs 1/2 x {overhead('native20'):.1f} us",
        ),
    )
    for name, style in (("keras20", "Keras"), ("hydra20", "Hydra"), ("hf20", "HF")):
        add(
            f"(4) {style} overhead <= native callbacks' overhead",
            (name, "native20"),
            lambda name=name: (
                overhead(name) <= overhead("native20"),
                f"{overhead(name):.1f} us vs {overhead('native20'):.1f} us",
            ),
        )

    add(
        "(4d) Keras callbacks reading batch logs add <= 1/4 of what native batch readers add",
        ("keras_batch20", "native_batch20"),
        lambda: (
            overhead("keras_batch20") <= 0.25 * overhead("native_batch20"),
            f"{overhead('keras_batch20'):.1f} us vs 1/4 x {overhead('native_batch20'):.1f} us",
        ),
    )

    def stack_check() -> tuple[bool, str]:
        diff = _paired_median(runs, "callbridge_stack", "native_stack")
        a, b = summary["callbridge_stack"]["per_step_us"]["median"], summary["native_stack"]["per_step_us"]["median"]
        return diff is not None and diff <= 0, f"{a:.0f} us vs {b:.0f} us per step (paired difference {diff:+.0f} us)"

    add("(5) callbridge stack per step <= Lightning stack per step", ("callbridge_stack", "native_stack"), stack_check)

    def blocking(cb: str, native: str) -> tuple[bool, str]:
        a = summary[cb]["blocked_mlflow_us_per_step"]["median"]
        b = summary[native]["blocked_mlflow_us_per_step"]["median"]
        return a <= b / 10, f"{a:.0f} us vs 1/10 x {b:.0f} us blocked per step"

    add(
        "(6) MLflow every step: LoggingCallback blocks <= 1/10 of MLFlowLogger",
        ("callbridge_mlflow", "native_mlflow"),
        lambda: blocking("callbridge_mlflow", "native_mlflow"),
    )
    add(
        "(6) in the stacks: LoggingCallback (TB+MLflow) blocks <= 1/10 of MLFlowLogger alone",
        ("callbridge_stack", "native_stack"),
        lambda: blocking("callbridge_stack", "native_stack"),
    )

    def added_wall() -> tuple[bool, str]:
        # fit's whole wall time: both wait at the end until every value is stored
        ours, theirs = _added_wall(runs, "callbridge_mlflow"), _added_wall(runs, "native_mlflow_async")
        ok = ours is not None and theirs is not None and ours <= 0.5 * theirs
        shown = "n/a" if ours is None or theirs is None else f"{ours:.2f} s vs 1/2 x {theirs:.2f} s"
        return ok, f"{shown} added to the baseline's fit wall time (paired medians)"

    add(
        "(6) MLflow every step: LoggingCallback's added wall time <= 1/2 of MLFlowLogger(synchronous=False)'s",
        ("callbridge_mlflow", "native_mlflow_async"),
        added_wall,
    )

    def nothing_lost(name: str) -> tuple[bool, str]:
        counts = summary[name].get("mlflow", [])
        bad = [c for c in counts if c["submitted"] is None or c["stored"] is None or c["stored"] < c["submitted"]]
        shown = ", ".join(f"{c['stored']}/{c['submitted']}" for c in counts)
        return bool(counts) and not bad, f"stored/submitted per repeat: {shown}"

    # MLFlowLogger(synchronous=False) is left out: values equal in key, step, value and millisecond (``epoch``
    # logged at the end of validation and of the epoch) are one row in MLflow's store, so it stores fewer
    for name in ("callbridge_mlflow", "callbridge_stack", "native_mlflow", "native_stack"):
        add(f"(6) nothing lost: every MLflow value of {name} is in the store", (name,), lambda n=name: nothing_lost(n))
    return lines


# -- report ----------------------------------------------------------------------------------------------
def _fmt(stats: dict[str, float] | None, key: str = "median", digits: int = 1) -> str:
    return "" if not stats else f"{stats[key]:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    meta, summary = report["meta"], report["summary"]
    args = meta["args"]
    lines = [
        "# callbridge benchmark",
        "",
        f"- machine: {meta['machine']['cpu']} ({meta['machine']['cpus']} CPUs), {meta['machine']['platform']}, "
        f"load average at start {meta['machine']['load_avg_at_start']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in meta['machine']['versions'].items() if v)}",
        f"- command: `{meta['command']}`",
        f"- {args['repeats']} repeat(s); configurations 1-4: {args['steps']} steps, stacks: {args['stack_steps']} "
        f"steps, in {args['epochs']} epochs; warm-up: {not args['no_warmup']}; {meta['elapsed_s']:.0f} s in all",
        "",
        "## Per-step time",
        "",
        "Loop time (on_train_start to on_train_end) / steps, over repeats; overhead and ratio are paired with the "
        "baseline of the same repeat (median over repeats). p50 step: median time between consecutive batch ends.",
        "",
        "| configuration | status | us/step median | min | max | p50 step us | overhead vs baseline us | ratio "
        "| fit wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in summary.values():
        if entry["status"] in ("ok", "partly failed"):
            per = entry["per_step_us"]
            lines.append(
                f"| {entry['title']} | {entry['status']} | {_fmt(per)} | {_fmt(per, 'min')} | {_fmt(per, 'max')} "
                f"| {_fmt(entry['step_p50_us'])} | {_fmt(entry['overhead_us'])} | {_fmt(entry['ratio'], digits=3)} "
                f"| {_fmt(entry['fit_wall_s'], digits=2)} |"
            )
        else:
            lines.append(f"| {entry['title']} | {entry['status']} ({entry['detail']}) | | | | | | | |")
    lines += [
        "",
        "## Time the loop spends blocked (stacks)",
        "",
        "Measured from outside with timing proxies: Lightning loggers' methods (log_metrics, save, finalize ...), "
        "every overridden hook of the checkpoint / logging / LR-monitor callbacks, and trainer.save_checkpoint. "
        "'All of fit' counts setup and the final flush too, divided by the steps; 'in the loop' only what ran "
        "between on_train_start and on_train_end. MLflow: the MLflow logger's methods (native), or the whole "
        "LoggingCallback (callbridge; with TensorBoard too in 5b, an upper bound). Medians over repeats.",
        "",
        "| configuration | logging, all of fit, us/step | in the loop us/step | at end (flush) s | MLflow us/step "
        "| checkpoint hooks s | save_checkpoint s (calls) | MLflow stored/submitted |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for entry in summary.values():
        if entry.get("group") != "stack" or entry["status"] not in ("ok", "partly failed"):
            continue
        counts = ", ".join(f"{c['stored']}/{c['submitted']}" for c in entry.get("mlflow", []))
        calls = f" ({entry['save_checkpoint_calls']})" if "save_checkpoint_calls" in entry else ""
        lines.append(
            f"| {entry['title']} | {_fmt(entry['blocked_logging_us_per_step'])} "
            f"| {_fmt(entry['blocked_logging_in_loop_us_per_step'])} "
            f"| {_fmt(entry['blocked_logging_at_end_s'], digits=3)} | {_fmt(entry['blocked_mlflow_us_per_step'])} "
            f"| {_fmt(entry['blocked_checkpoint_s'], digits=3)} "
            f"| {_fmt(entry.get('save_checkpoint_s'), digits=3)}{calls} | {counts} |"
        )
    lines += ["", "## Targets", ""]
    for target in report["targets"]:
        detail = f" ({target['detail']})" if target.get("detail") else ""
        lines.append(f"- **{target['result']}** {target['target']}{detail}")
    memory = report.get("memory")
    if memory:
        lines += ["", "## Snapshot memory", "", memory.get("markdown", "")]
    if args["smoke"]:
        lines += ["", "_Smoke run: the numbers above say nothing about performance._"]
    return "\n".join(lines) + "\n"


def run_memory(args: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    target = out / "memory.json"
    command = [sys.executable, "-m", "benchmarks.memory", "--json", str(target)]
    if args.smoke:
        command.append("--smoke")
    with (out / "memory.log").open("w") as log:
        proc = subprocess.run(command, cwd=ROOT, env=worker_env(), stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not target.exists():
        return {"error": f"benchmarks.memory exited {proc.returncode}; see memory.log", "markdown": "(failed)"}
    return json.loads(target.read_text())


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    names = selected(args)
    started = time.perf_counter()
    meta = {
        "machine": machine(),
        "command": " ".join(["python -m benchmarks.run", *(sys.argv[1:] if argv is None else argv)]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "order": "rotated by one position per repeat",
    }
    runs = run_repeats(args, names, out)
    summary = summarize(runs, names)
    report: dict[str, Any] = {"meta": meta, "summary": summary, "targets": targets(summary, runs), "runs": runs}
    if not args.no_memory:
        report["memory"] = run_memory(args, out)
    meta["elapsed_s"] = time.perf_counter() - started
    text = markdown(report)
    write_atomic(out / "results.json", json.dumps(report, indent=2, default=str))
    write_atomic(out / "results.md", text)
    print(text)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    failed = [r for r in runs if r["status"] == "error"]
    memory_failed = bool(report.get("memory", {}) and report["memory"].get("error"))
    for run in failed:
        print(f"ERROR {run['config']} (repeat {run['repeat']}): {run.get('error')}", file=sys.stderr)
        if run.get("trace"):
            print(run["trace"], file=sys.stderr)
    return 1 if failed or memory_failed else 0


if __name__ == "__main__":
    sys.exit(main())
