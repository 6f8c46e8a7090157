"""Hydra multiruns: HydraMultirun outside a Hydra app, and callbridge inside a live one (issues 5, 11, 13)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from callbridge.adapters import HydraMultirun, to_lightning
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra_helpers import Recorder, hooks
from omegaconf import OmegaConf
from toy import ToyRegression, make_trainer

REPO = Path(__file__).resolve().parents[1]


def test_multirun_helper_one_job_per_fit(tmp_path):
    events: list = []
    with HydraMultirun([Recorder("a", events)], config_name="sweep", sweep_dir=tmp_path / "sweep") as sweep:
        for lr in (0.1, 0.01):
            trainer = make_trainer(sweep.job(config={"lr": lr}, overrides=[f"lr={lr}"]), max_epochs=1)
            trainer.fit(ToyRegression(lr=lr))
    assert hooks(events) == [
        ("a", "on_multirun_start"),
        ("a", "on_job_start"),
        ("a", "on_job_end"),
        ("a", "on_job_start"),
        ("a", "on_job_end"),
        ("a", "on_multirun_end"),
    ]
    assert events[0][3] == {"config_name": "sweep"} and events[0][2].hydra.mode is RunMode.MULTIRUN
    ends = [(config, kw["job_return"]) for _, hook, config, kw in events if hook == "on_job_end"]
    assert [c.hydra.job.num for c, _ in ends] == [0, 1]
    assert [c.lr for c, _ in ends] == [0.1, 0.01]
    assert [r.overrides for _, r in ends] == [["lr=0.1"], ["lr=0.01"]]
    assert ends[1][0].hydra.runtime.output_dir == str(tmp_path / "sweep" / "1")


def test_multirun_helper_skips_end_when_the_loop_raises():
    events: list = []
    with pytest.raises(KeyError), HydraMultirun([Recorder("a", events)]):
        raise KeyError("boom")
    assert hooks(events) == [("a", "on_multirun_start")]


def test_real_hydra_app_multirun(tmp_path):
    command = [sys.executable, str(REPO / "examples/hydra_app/train.py"), "--multirun", "lr=0.1,0.01"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    seen = [(e["source"], e["hook"], e["job_num"]) for e in lines]
    # Hydra calls hydra.callbacks itself; callbridge does not call the same entry again.
    assert [s for s in seen if s[0] == "hydra"] == [
        ("hydra", "on_multirun_start", None),
        ("hydra", "on_job_start", 0),
        ("hydra", "on_job_end", 0),
        ("hydra", "on_job_start", 1),
        ("hydra", "on_job_end", 1),
        ("hydra", "on_multirun_end", None),
    ]
    # The callback only callbridge knows gets, through the relay, what Hydra gives its own: the same hooks,
    # job numbers, configs and JobReturns (the task function's return value), built once for the sweep.
    hydra_events = [{**e, "source": None} for e in lines if e["source"] == "hydra"]
    assert [{**e, "source": None} for e in lines if e["source"] == "lightning"] == hydra_events
    assert seen[1:6] == [
        ("hydra", "on_job_start", 0),
        ("lightning", "on_multirun_start", None),
        ("lightning", "on_job_start", 0),
        ("lightning", "on_job_end", 0),
        ("hydra", "on_job_end", 0),
    ]
    assert seen[-2:] == [("lightning", "on_multirun_end", None), ("hydra", "on_multirun_end", None)]
    ends = [e for e in lines if e["source"] == "lightning" and e["hook"] == "on_job_end"]
    assert [e["overrides"] for e in ends] == [["lr=0.1"], ["lr=0.01"]]
    assert all(e["status"] == "COMPLETED" and isinstance(e["return_value"], float) for e in ends)
    assert f"Succeeded with return value: {ends[0]['return_value']}" in proc.stdout + proc.stderr


def test_inside_hydra_job_uses_its_config_and_skips_what_hydra_calls(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO / "examples/hydra_app"))
    with initialize_config_dir(config_dir=str(REPO / "examples/hydra_app/conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["lr=0.3"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        from recorder import EventRecorder  # the class named by hydra.callbacks.recorder._target_

        events: list = []
        same = EventRecorder(path="events.jsonl", source="hydra")  # equal to Hydra's entry: Hydra calls it
        other = Recorder("other", events)
        trainer = make_trainer(to_lightning([same, other]), max_epochs=1, limit_train_batches=1)
        with pytest.warns(UserWarning, match="without callbridge.adapters.hydra.HydraRelay in hydra.callbacks"):
            trainer.fit(ToyRegression())
    finally:
        HydraConfig.instance().cfg = None
        sys.modules.pop("recorder", None)
    assert not (tmp_path / "events.jsonl").exists()
    assert hooks(events) == [("other", h) for h in ("on_run_start", "on_job_start", "on_job_end", "on_run_end")]
    config = events[0][2]
    assert config.lr == 0.3 and config.hydra.callbacks.recorder.source == "hydra"  # the config Hydra composed
    assert events[2][3]["job_return"].overrides == ["lr=0.3"]


def test_multirun_jobs_keep_their_own_state_when_trainers_are_built_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sweep dir is Hydra's default, multirun/<date>/<time>, under the cwd
    events: list = []
    with HydraMultirun([Recorder("a", events)]) as sweep:
        trainers = [
            (make_trainer(sweep.job(config={"lr": lr}, overrides=[f"lr={lr}"]), max_epochs=1), lr) for lr in (0.1, 0.01)
        ]
        for trainer, lr in reversed(trainers):  # the second job fits first
            trainer.fit(ToyRegression(lr=lr))
    starts = [config for _, hook, config, _ in events if hook == "on_job_start"]
    ends = [(config, kw["job_return"]) for _, hook, config, kw in events if hook == "on_job_end"]
    assert [(c.hydra.job.num, c.lr) for c in starts] == [(1, 0.01), (0, 0.1)]  # each job its own config
    assert [(c.hydra.job.id, r.overrides, r.cfg.lr) for c, r in ends] == [
        ("1", ["lr=0.01"], 0.01),
        ("0", ["lr=0.1"], 0.1),
    ]
    sweep_dir = Path(str(events[0][2].hydra.sweep.dir))
    assert sweep_dir.parts[0] == "multirun" and (tmp_path / sweep_dir).is_dir()
    assert [c.hydra.runtime.output_dir for c, _ in ends] == [str(tmp_path / sweep_dir / n) for n in ("1", "0")]
    assert all(c.hydra.sweep.dir == str(sweep_dir) for c in starts)  # one timestamp for the whole sweep
    assert not HydraConfig.initialized()


def test_relay_in_hydras_own_run_gives_one_job_for_fit_then_test(tmp_path, monkeypatch):
    """Hydra's own ``Hydra.run`` (what ``@hydra.main`` calls), in this process: the task fits then tests."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "conf"
    conf.mkdir()
    relay = {"callbridge": {"_target_": "callbridge.adapters.hydra.HydraRelay"}}
    OmegaConf.save({"lr": 0.05, "hydra": {"callbacks": relay, "run": {"dir": "out"}}}, conf / "config.yaml")
    events: list = []
    recorder = Recorder("a", events)

    def task(cfg):
        output_dir = HydraConfig.get().runtime.output_dir
        trainer = make_trainer(to_lightning([recorder]), max_epochs=1, default_root_dir=output_dir)
        model = ToyRegression(lr=cfg.lr)
        trainer.fit(model)
        trainer.test(model)
        return "done"

    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="app"):
        GlobalHydra.instance().hydra.run(
            config_name="config", task_function=task, overrides=["lr=0.1"], with_log_configuration=False
        )
    assert hooks(events) == [("a", h) for h in ("on_run_start", "on_job_start", "on_job_end", "on_run_end")]
    (_, _, run_config, run_kw), (_, _, job_config, job_kw), (_, _, _, end_kw), _ = events
    assert run_kw == {"config_name": "config"} and run_config.hydra.mode is RunMode.RUN
    assert job_kw["task_function"] is task and job_config.lr == 0.1  # Hydra's own task function and config
    ret = end_kw["job_return"]
    assert ret.return_value == "done" and ret.overrides == ["lr=0.1"]  # Hydra's JobReturn: the task's value
    assert job_config.hydra.runtime.output_dir == str(tmp_path / "out")
