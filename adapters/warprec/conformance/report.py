"""Compares what a Ray Tune / WarpRec callback did in a one-trial Tuner and under callbridge, check by check."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from callbridge.adapters.conformance import Check, Report, compare_sequences, not_compared, wandb_entry
from callbridge.adapters.warprec.conformance.normalize import file_content, normalize_name, normalize_text
from callbridge.adapters.warprec.conformance.runner import CHECKPOINTS, EXPERIMENT, STORAGE, Recorder
from callbridge.adapters.warprec.hooks import WARPREC_HOOKS

HOME = "ray.tune.Tuner (one trial)"
STEP_HOOKS = ("on_step_begin", "on_step_end")

#: The checks, in report order, with what each compares.
CHECKS: dict[str, str] = {
    "hooks": "the Ray Tune hooks called on the callback, in order",
    "arguments": "each hook's keyword arguments: setup's values, checkpoint type, trial statuses (iteration masked)",
    "results": "each on_trial_result's result: keys, key order and values (clock, pid, host, ids masked)",
    "trials": "the trial each hook sees: status, name/id format, last result, checkpoint; one shared trial",
    "files": "files it wrote under its side's folder: names, JSON/CSV/pickle/text content (volatile values masked)",
    "output": "what it printed in its hooks (paths, ids, dates and durations masked)",
    "error": "the exception the run raised, if any",
    "step_hooks": "on_step_begin/on_step_end, when the callback defines them",
    "warprec_hooks": "WarpRec's own hooks, when the callback defines them",
}

#: Files left out of ``files``: Tune's copies of each checkpoint and its controller state at home (experiment and
#: search state, the callbacks' ``get_state``, ``tuner.pkl``), Lightning's checkpoint folder under callbridge
#: (see docs/warprec.md).
_TUNE_OWN = re.compile(
    rf"^{STORAGE}/{EXPERIMENT}/("
    r"[^/]+/checkpoint_\d+/.*|experiment_state-[^/]*\.json|basic-variant-state-[^/]*\.json|"
    r"search_gen_state-[^/]*\.json|callback-states-[^/]*\.pkl|tuner\.pkl|\.[^/]*)$"
)


def side_files(side: Path, skip: list[str]) -> list[list[Any]]:
    """``[[normalized name, content], ...]`` for the files under ``side`` the callback wrote (sorted)."""
    rows = []
    for path in sorted(side.rglob("*")):
        name = path.relative_to(side).as_posix()
        if not path.is_file() or name in skip or _TUNE_OWN.match(name) or name.startswith(f"{CHECKPOINTS}/"):
            continue
        wandb = wandb_entry(name)
        if wandb is None:
            rows.append([normalize_name(name), file_content(path, side)])
        elif wandb and [normalize_name(wandb), "<wandb run>"] not in rows:
            rows.append([normalize_name(wandb), "<wandb run>"])
    return sorted(rows, key=lambda row: row[0])


def compare(home: tuple[Recorder, str | None], bridge: tuple[Recorder, str | None], *, workdir: Path) -> list[Check]:
    """One `Check` per entry of `CHECKS`."""
    (h, h_error), (b, b_error) = home, bridge

    def ray_trace(recorder: Recorder) -> list[list[Any]]:
        return [entry for entry in recorder.trace if entry[0] not in STEP_HOOKS]

    checks = [
        compare_sequences("hooks", [e[0] for e in ray_trace(h)], [e[0] for e in ray_trace(b)]),
        compare_sequences(
            "arguments",
            *(
                [[e[0], {k: v for k, v in e[1].items() if k not in ("trial", "result")}] for e in ray_trace(r)]
                for r in (h, b)
            ),
        ),
        compare_sequences("results", *([e[1]["result"] for e in r.trace if e[0] == "on_trial_result"] for r in (h, b))),
        compare_sequences(
            "trials",
            *(
                [
                    *([e[0], e[1]["trial"]] for e in ray_trace(r) if "trial" in e[1]),
                    f"{len({id(trial) for trial in r.trials})} trial object(s)",
                ]
                for r in (h, b)
            ),
        ),
        compare_sequences(
            "files", side_files(workdir / "home", []), side_files(workdir / "callbridge", b.warprec_files)
        ),
        compare_sequences(
            "output",
            *(normalize_text(r.printed.getvalue(), r.side).splitlines() for r in (h, b)),
        ),
        compare_sequences("error", [h_error], [b_error]),
    ]
    steps = [hook for hook in STEP_HOOKS if hook in b.defined]
    if steps:
        counts = [dict(Counter(e[0] for e in r.trace if e[0] in STEP_HOOKS)) for r in (h, b)]
        checks.append(
            not_compared(
                "step_hooks",
                f"Tune fires {'/'.join(steps)} per event-loop step ({counts[0]}), callbridge per training batch "
                f"({counts[1]}); see docs/warprec.md",
            )
        )
    else:
        checks.append(Check("step_hooks", True, note="the callback defines no step hooks"))
    checks.append(_warprec_check(b))
    return checks


def _warprec_check(bridge: Recorder) -> Check:
    defined = [hook for hook in WARPREC_HOOKS if hook in bridge.defined]
    if not defined:
        return Check("warprec_hooks", True, note="the callback defines no WarpRec hooks")
    ran = ", ".join(f"{hook} x{n}" for hook, n in Counter(bridge.warprec).items()) or "none"
    files = f"; files they wrote (left out of files): {', '.join(bridge.warprec_files)}" if bridge.warprec_files else ""
    return not_compared(
        "warprec_hooks",
        f"no home run: the verifier runs no WarpRec pipeline (WarpRec needs Python 3.12 and CUDA torch); defines "
        f"{', '.join(defined)}; "
        f"under callbridge they ran: {ran}{files}",
    )


def as_report(label: str, checks: list[Check]) -> Report:
    """The [`Report`][callbridge.adapters.conformance.Report] ``callbridge verify`` prints for a Ray Tune /
    WarpRec callback."""
    return Report(label, HOME, checks, CHECKS)
