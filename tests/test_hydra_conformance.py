"""Differential tests: Hydra callbacks nobody on this project wrote, at home and under callbridge (issue 13).

The callbacks: hydra-callbacks' GitInfo, RuntimePerformance, LatestRunLink, MultiRunGatherer, ResourceMonitor,
RegisterRunCallback, and Hydra's own LogJobReturnCallback and PickleJobInfoCallback, plus a probe that records
every hook. Three ways to run the same training (tests/hydra_conformance/), each as a single run and as a sweep
(``lr=0.1,0.01``):

- **home**: a real ``@hydra.main`` app that fits then tests; Hydra calls the callbacks (``hydra.callbacks``);
- **inside**: the same app; the task function gives the callbacks to Lightning (``from_hydra_config``) and Hydra
  calls only callbridge's ``HydraRelay``;
- **outside**: no Hydra app; ``to_lightning`` / ``HydraMultirun`` with ``config_dir`` drive Lightning fits.

The two app variants run in subprocesses (one process each runs the app twice, run then ``--multirun``, through
its real ``@hydra.main`` entry point), in parallel with the outside variant in this process. Every difference is
asserted here and listed in docs/hydra.md's conformance table.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hydra_callbacks")

from callbridge.adapters.hydra import HydraMultirun, from_hydra_config
from callbridge.adapters.hydra.conformance.snapshot import HYDRA_OWN, snapshot, without_hydra_own
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent
APP = HERE / "hydra_conformance"
CONF = APP / "conf"
sys.path.insert(0, str(APP))

import probes  # noqa: E402

MODES = ("run", "multirun")


@contextlib.contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    """Runs in ``path`` with the callbacks' logs captured; restores the cwd (MultiRunGatherer changes it)."""
    path.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(path)
    installed = probes.capture_logs(str(path / "logs.jsonl"))
    try:
        yield
    finally:
        probes.release_logs(installed)
        os.chdir(cwd)


def _outside(base: Path) -> str:
    """callbridge outside any Hydra app: the config composed by Hydra from the app's config dir; returns the
    warnings it gave, one per line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _outside_runs(base)
    return "\n".join(str(w.message) for w in caught)


def _outside_runs(base: Path) -> None:
    entries = OmegaConf.load(CONF / "cbs" / "all.yaml")
    options = {"config_dir": str(CONF), "config_name": "bridge", "job_name": "app"}
    with _working_dir(base / "run"):
        probes.train(0.05, "outputs/run", from_hydra_config(entries, **options), test=False)
    with _working_dir(base / "multirun"):
        callbacks = [instantiate(entry) for entry in entries.values()]
        with HydraMultirun(callbacks, overrides=["lr=0.1,0.01"], **options) as sweep:
            for num, lr in enumerate((0.1, 0.01)):
                job = sweep.job(overrides=[f"lr={lr}"])
                probes.train(lr, f"{sweep.config.hydra.sweep.dir}/{num}", job, test=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], dict[str, Any]]:
    """Snapshots of every variant and mode: ``runs[("home", "run")]`` ..."""
    root = tmp_path_factory.mktemp("hydra_conformance")
    # GitInfo reads the repository around the working dir: one repository for every variant (same sha)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(root)], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(APP)]), "HYDRA_FULL_ERROR": "1"}
    procs = {
        variant: subprocess.Popen(
            [sys.executable, str(APP / "driver.py"), str(root / variant), config_name],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for variant, config_name in (("home", "home"), ("inside", "bridge"))
    }
    try:
        outside_output = _outside(root / "outside")
    finally:
        outputs = {variant: proc.communicate(timeout=300)[0] for variant, proc in procs.items()}
    for variant, proc in procs.items():
        assert proc.returncode == 0, f"{variant} app failed:\n{outputs[variant][-4000:]}"
    snaps = {(v, m): snapshot(root / v / m) for v in ("home", "inside", "outside") for m in MODES}
    outputs["outside"] = outside_output
    for variant, output in outputs.items():
        for mode in MODES:
            snaps[variant, mode]["output"] = output
    return snaps


def _hooks(snap: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(e["hook"], e["job_num"]) for e in snap["events"]]


# -- inside a Hydra app: the relay gives callbridge's callbacks what Hydra gives its own --------------------
@pytest.mark.parametrize("mode", MODES)
def test_inside_the_app_every_callback_behaves_as_at_home(runs, mode):
    home, inside = runs["home", mode], runs["inside", mode]
    # one job per Hydra job although the task fits then tests; multirun hooks delivered
    assert _hooks(inside) == _hooks(home)
    events, expected = copy.deepcopy(inside["events"]), copy.deepcopy(home["events"])
    contents, home_contents = copy.deepcopy(inside["contents"]), copy.deepcopy(home["contents"])
    if mode == "run":
        # The relay meets the callbacks when the first fit starts, inside Hydra's job: on_run_start comes after
        # run_job set the output dir, and after Hydra took JobReturn.cfg, so GitInfo's config.git is not in it.
        assert (events[0].pop("output_dir"), expected[0].pop("output_dir")) == ("outputs/run", "???")
        for seen, want in zip(events[2:], expected[2:], strict=True):
            assert want["job_return"].pop("cfg") == ["cbs", "git", "lr"]
            assert seen["job_return"].pop("cfg") == ["cbs", "lr"]
        path = "outputs/run/.hydra/job_return.pickle"
        home_git = home_contents[path]["cfg"].pop("git")
        assert home_git["sha"] == "<sha>" and "git" not in contents[path]["cfg"]
    assert events == expected
    assert inside["logs"] == home["logs"]
    assert inside["files"] == home["files"]
    assert inside["links"] == home["links"]
    assert contents == home_contents


def test_callback_errors_are_hydras_warnings(runs):
    # RegisterRunCallback compares hydra.mode with the string "MULTIRUN" (False for Hydra's RunMode), so in a
    # sweep it writes under outputs/, which does not exist: at home and under callbridge alike.
    message = "Callback RegisterRunCallback.on_job_end raised OSError: Cannot save file into a non-existent directory"
    for variant in ("home", "inside", "outside"):
        output = runs[variant, "multirun"]["output"]  # the run's and the sweep's
        assert output.count(message) == 2 and output.count(" raised ") == 2, variant  # and nothing else raised


# -- outside any app: Hydra's compose API, HydraConfig per job ------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_outside_an_app_the_callbacks_behave_as_at_home(runs, mode):
    home, outside = runs["home", mode], runs["outside", mode]
    assert _hooks(outside) == _hooks(home)
    for seen, expected in zip(copy.deepcopy(outside["events"]), copy.deepcopy(home["events"]), strict=True):
        if "task_function" in expected:  # Hydra's task function vs the Lightning entry point that runs
            assert (seen.pop("task_function"), expected.pop("task_function")) == ("LightningTask", "function")
        assert seen == expected
    assert outside["logs"] == home["logs"]
    # Hydra's own output files are written by Hydra's run_job, not by callbacks
    assert outside["files"] == without_hydra_own(home)["files"]
    assert [f for f in home["files"] if HYDRA_OWN.search(f)]
    assert outside["links"] == home["links"]
    assert outside["contents"] == home["contents"]


def test_outside_an_app_hydra_config_is_restored(runs):
    assert runs["outside", "run"]["events"][1]["hydra_config"] == "outputs/run"  # set during the job
    assert not HydraConfig.initialized()  # and restored after it


# -- the callbacks did their work (at home, so every equality above compares something) ---------------------
def test_each_callback_left_its_effect_at_home(runs):
    run, sweep = runs["home", "run"], runs["home", "multirun"]
    messages = [m for _, _, m in run["logs"]]
    assert "Git sha: <sha>, dirty: False" in messages  # GitInfo
    assert "Total runtime: <t> seconds" in messages  # RuntimePerformance
    assert run["links"] == {"outputs/latest": "<base>/outputs/run"}  # LatestRunLink
    assert sweep["contents"]["multirun/sweep/agg_results.csv"]["count"] == 2  # MultiRunGatherer
    assert sweep["contents"]["multirun/sweep/resource_monitoring.csv"]["labels"] == [("app", "0"), ("app", "1")]
    assert run["contents"]["outputs/register.csv"]["rows"][0][-2:] == ["outputs/run", "True"]  # RegisterRunCallback
    assert any(m.startswith("Succeeded with return value: {'train_loss'") for m in messages)  # LogJobReturn
    assert run["contents"]["outputs/run/.hydra/job_return.pickle"]["status"] == "COMPLETED"  # PickleJobInfo
    assert [e["hook"] for e in run["events"]] == ["on_run_start", "on_job_start", "on_job_end", "on_run_end"]
