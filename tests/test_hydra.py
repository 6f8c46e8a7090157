"""Hydra-style callbacks under a real Lightning Trainer (issue 5)."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra_seed
import pytest
from callbridge.adapters import HydraAdapter, HydraMultirun, detect_style, from_hydra_config, to_lightning
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback as HydraCallback
from hydra.experimental.callbacks import LogJobReturnCallback, PickleJobInfoCallback
from omegaconf import DictConfig, OmegaConf
from toy import ToyRegression, make_trainer

REPO = Path(__file__).resolve().parents[1]


class Recorder:
    """Duck-typed Hydra callback (no base class) recording (name, hook, kwargs)."""

    def __init__(self, name: str, events: list) -> None:
        self.name = name
        self.events = events

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_run_start", config, kwargs))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_run_end", config, kwargs))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_multirun_start", config, kwargs))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append((self.name, "on_multirun_end", config, kwargs))

    def on_job_start(self, config: DictConfig, *, task_function: Any, **kwargs: Any) -> None:
        self.events.append((self.name, "on_job_start", config, {"task_function": task_function, **kwargs}))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self.events.append((self.name, "on_job_end", config, {"job_return": job_return, **kwargs}))


class Broken(HydraCallback):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        raise ValueError("no bucket")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _capture(name: str = "hydra.experimental.callbacks") -> _Capture:
    handler = _Capture()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def hooks(events: list) -> list[tuple[str, str]]:
    return [(name, hook) for name, hook, *_ in events]


# -- detection -------------------------------------------------------------------------------------
def test_detection_by_base_class_and_by_signature():
    assert detect_style(LogJobReturnCallback()) == "hydra"
    assert detect_style(Recorder("a", [])) == "hydra"
    assert detect_style(hydra_seed.MyCallback("b", "f")) == "hydra"

    class WrongSignature:
        def on_job_end(self, cfg):  # Hydra calls on_job_end(config=..., job_return=...)
            pass

    with pytest.raises(TypeError, match="not a callback of any supported style"):
        detect_style(WrongSignature())
    with pytest.raises(TypeError, match="not a Hydra callback"):
        HydraAdapter([object()])


# -- one fit: order, arguments, config, Hydra's own callbacks --------------------------------------
@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hydra_fit")
    events: list = []
    log = _capture()
    pickler = PickleJobInfoCallback()
    callbacks = [Recorder("a", events), Broken(), LogJobReturnCallback(), pickler, Recorder("b", events)]
    trainer = make_trainer(
        to_lightning(callbacks, config_name="train"), default_root_dir=str(root), limit_val_batches=2
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(ToyRegression(lr=0.02))
    return {"events": events, "trainer": trainer, "root": root, "log": log.records, "warnings": caught}


def test_fit_is_one_run_with_one_job_in_hydra_order(fit_run):
    assert hooks(fit_run["events"]) == [
        ("a", "on_run_start"),
        ("b", "on_run_start"),
        ("a", "on_job_start"),
        ("b", "on_job_start"),
        ("b", "on_job_end"),  # end events in reverse registration order
        ("a", "on_job_end"),
        ("b", "on_run_end"),
        ("a", "on_run_end"),
    ]
    by_hook = {hook: kwargs for name, hook, _, kwargs in fit_run["events"] if name == "a"}
    assert by_hook["on_run_start"] == {"config_name": "train"}
    assert by_hook["on_job_start"]["task_function"] == fit_run["trainer"].fit
    assert by_hook["on_run_end"]["job_return"] is by_hook["on_job_end"]["job_return"]


def test_job_return_is_hydras_own_with_final_metrics(fit_run):
    ret = next(kw["job_return"] for _, hook, _, kw in fit_run["events"] if hook == "on_job_end")
    assert isinstance(ret, JobReturn)
    assert ret.status == JobStatus.COMPLETED
    assert set(ret.return_value) >= {"train_loss", "val_loss"}
    assert all(type(v) is float for v in ret.return_value.values())
    assert ret.return_value["val_loss"] == pytest.approx(float(fit_run["trainer"].callback_metrics["val_loss"]))
    assert ret.overrides == [] and ret.cfg.lr == 0.02 and "hydra" not in ret.cfg
    assert ret.hydra_cfg.hydra.runtime.output_dir == str(fit_run["root"])
    assert ret.task_name == ret.hydra_cfg.hydra.job.name and ret.working_dir


def test_config_has_hparams_and_hydra_node(fit_run):
    config = fit_run["events"][0][2]
    assert isinstance(config, DictConfig)
    assert config.lr == 0.02 and config.batch_size == 16  # the LightningModule's hyperparameters
    assert config.hydra.runtime.output_dir == str(fit_run["root"])  # the trainer's log dir
    assert config.hydra.output_subdir == ".hydra"
    assert config.hydra.job.num == 0 and config.hydra.job.config_name == "train"
    assert config.hydra.mode == "RUN"


def test_raising_callback_becomes_warning_naming_it(fit_run):
    messages = [str(w.message) for w in fit_run["warnings"]]
    assert "Callback Broken.on_job_start raised ValueError: no bucket" in messages


def test_log_job_return_callback_logs_success(fit_run):
    infos = [r.getMessage() for r in fit_run["log"] if r.levelno == logging.INFO]
    assert any(m.startswith("Succeeded with return value: {") and "val_loss" in m for m in infos)


def test_pickle_job_info_callback_writes_both_pickles(fit_run):
    subdir = fit_run["root"] / ".hydra"
    config = pickle.loads((subdir / "config.pickle").read_bytes())
    job_return = pickle.loads((subdir / "job_return.pickle").read_bytes())
    assert config.lr == 0.02 and config.hydra.runtime.output_dir == str(fit_run["root"])
    assert job_return.status == JobStatus.COMPLETED
    assert job_return.return_value.keys() >= {"train_loss", "val_loss"}
    assert job_return.cfg.lr == 0.02


# -- failure -----------------------------------------------------------------------------------------
def test_failing_training_step_gives_failed_job_return_and_still_raises(tmp_path):
    events: list = []
    log = _capture()
    trainer = make_trainer(to_lightning([Recorder("a", events), LogJobReturnCallback()]), default_root_dir=tmp_path)
    with pytest.raises(RuntimeError, match="training failed at step 2") as raised:
        trainer.fit(ToyRegression(fail_at_step=2))
    assert hooks(events) == [("a", "on_run_start"), ("a", "on_job_start"), ("a", "on_job_end"), ("a", "on_run_end")]
    ret = events[2][3]["job_return"]
    assert ret.status == JobStatus.FAILED and ret._return_value is raised.value
    with pytest.raises(RuntimeError, match="training failed at step 2"):
        _ = ret.return_value  # re-raises, as in Hydra
    errors = [r for r in log.records if r.levelno == logging.ERROR]
    assert errors and errors[-1].exc_info[1] is raised.value


def test_strict_reraises_a_callback_error(tmp_path):
    trainer = make_trainer(to_lightning([Broken()], strict=True), default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="no bucket"):
        trainer.fit(ToyRegression())


def test_each_entry_point_is_a_run(tmp_path):
    events: list = []
    model = ToyRegression()
    trainer = make_trainer(to_lightning([Recorder("a", events)]), default_root_dir=tmp_path)
    trainer.test(model)
    trainer.validate(model)
    trainer.predict(model)
    jobs = [(kw["job_return"], kw) for _, hook, _, kw in events if hook == "on_job_end"]
    assert len(events) == 12 and len(jobs) == 3
    assert [kw["task_function"] for _, hook, _, kw in events if hook == "on_job_start"] == [
        trainer.test,
        trainer.validate,
        trainer.predict,
    ]
    assert "test_loss" in jobs[0][0].return_value and "val_loss" in jobs[1][0].return_value


def test_job_return_stand_in_without_hydra_behaves_like_hydras():
    from callbridge.adapters.hydra import _JobReturn, _JobStatus

    ret = _JobReturn(overrides=["a=1"])
    ret.status, ret.return_value = _JobStatus.FAILED, KeyError("x")
    with pytest.raises(KeyError):
        _ = ret.return_value
    ret.status, ret.return_value = _JobStatus.COMPLETED, {"loss": 1.0}
    assert ret.return_value == {"loss": 1.0}


def test_struct_config_gets_the_hydra_node():
    from callbridge.adapters.hydra import build_config

    task = OmegaConf.create({"lr": 0.1})
    OmegaConf.set_struct(task, True)
    cfg = build_config(task, output_dir="out", job_name="j", job_num=3, overrides=["lr=0.1"], multirun=True)
    assert cfg.lr == 0.1 and cfg.hydra.job.num == 3 and cfg.hydra.job.override_dirname == "lr=0.1"


# -- registration from config ------------------------------------------------------------------------
SEED_YAML = """\
# @package _global_
hydra:
  callbacks:
    my_callback:
      _target_: hydra_seed.MyCallback
      bucket: my_s3_bucket
      file_path: ./test.pt
"""


def test_seed_mycallback_from_yaml_gets_job_end_after_fit(tmp_path, capsys):
    path = tmp_path / "my_callback.yaml"
    path.write_text(SEED_YAML)
    hydra_seed.RECEIVED.clear()
    callbacks = from_hydra_config(path)
    trainer = make_trainer(callbacks, max_epochs=1, default_root_dir=tmp_path)
    trainer.fit(ToyRegression())
    assert "Job ended,uploading..." in capsys.readouterr().out
    ((bucket, job_return),) = hydra_seed.RECEIVED
    assert bucket == "my_s3_bucket" and job_return.status == JobStatus.COMPLETED


SEED = "hydra_seed.MyCallback"


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"hydra": {"callbacks": {"upload": {"bucket": "b"}}}}, "'hydra.callbacks.upload' has no _target_"),
        ({"callbacks": {"x": {"_target_": "no_such_module.Cb"}}}, "'callbacks.x' .*no_such_module.Cb"),
        (
            {"hydra": {"callbacks": {"up": {"_target_": "hydra_seed.MyCallback", "bucket": "b"}}}},
            "'hydra.callbacks.up'",
        ),
        ([{"_target_": "hydra_seed.MyCallback", "nope": 1}], r"'\[0\]'"),
    ],
)
def test_bad_entries_name_the_entry(cfg, message):
    with pytest.raises(ValueError, match=message):
        from_hydra_config(OmegaConf.create(cfg))


def test_from_hydra_config_mixes_styles_in_one_call():
    cfg = {
        "callbacks": [
            {"_target_": "hydra.experimental.callbacks.LogJobReturnCallback"},
            {"_target_": "lightning.pytorch.callbacks.LearningRateMonitor"},
        ]
    }
    result = from_hydra_config(cfg, strict=True)
    assert [type(cb).__name__ for cb in result] == ["LightningBridge", "LearningRateMonitor"]
    assert result[0].callbacks[0].strict is True


# -- multirun ------------------------------------------------------------------------------------------
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
    assert events[0][3] == {"config_name": "sweep"} and events[0][2].hydra.mode == "MULTIRUN"
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
    # The callback only Lightning knows: one job per fit, inside Hydra's job, with Hydra's job number.
    assert seen[1:5] == [
        ("hydra", "on_job_start", 0),
        ("lightning", "on_job_start", 0),
        ("lightning", "on_job_end", 0),
        ("hydra", "on_job_end", 0),
    ]
    lightning_ends = [e for e in lines if e["source"] == "lightning" and e["hook"] == "on_job_end"]
    assert [e["overrides"] for e in lightning_ends] == [["lr=0.1"], ["lr=0.01"]]
    assert all(e["status"] == "COMPLETED" and "train_loss" in e["return_value"] for e in lightning_ends)
    assert "Succeeded with return value: {'train_loss'" in proc.stdout + proc.stderr


def test_inside_hydra_job_uses_its_config_and_skips_what_hydra_calls(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

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
        make_trainer(to_lightning([same, other]), max_epochs=1, limit_train_batches=1).fit(ToyRegression())
    finally:
        HydraConfig.instance().cfg = None
        sys.modules.pop("recorder", None)
    assert not (tmp_path / "events.jsonl").exists()
    assert hooks(events) == [("other", h) for h in ("on_run_start", "on_job_start", "on_job_end", "on_run_end")]
    config = events[0][2]
    assert config.lr == 0.3 and config.hydra.callbacks.recorder.source == "hydra"  # the config Hydra composed
    assert events[2][3]["job_return"].overrides == ["lr=0.3"]


# -- DDP ---------------------------------------------------------------------------------------------------
def test_ddp_job_hooks_fire_once_on_rank_zero(ddp_results):
    rank0, rank1 = ddp_results("hydra_job_hooks_once")
    assert rank0["hooks"] == ["on_run_start", "on_job_start", "on_job_end", "on_run_end"]
    assert rank0["status"] == "COMPLETED"
    assert rank1["hooks"] == []
    assert rank0["sweep_hooks"] == ["on_multirun_start", "on_job_start", "on_job_end", "on_multirun_end"]
    assert rank1["sweep_hooks"] == []
    assert rank0["pickles"] == ["config.pickle", "job_return.pickle"]
