"""Hydra-style callbacks under a real Lightning Trainer: one run per entry point, config, errors (issue 5)."""

from __future__ import annotations

import logging
import pickle
import warnings

import hydra_seed
import lightning as L
import pytest
from callbridge.adapters import ConfigError, HydraAdapter, detect_style, from_hydra_config, to_lightning
from callbridge.adapters.hydra import LightningTask
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callbacks import LogJobReturnCallback, PickleJobInfoCallback
from hydra.types import RunMode
from hydra_helpers import Broken, Recorder, capture, hooks
from omegaconf import DictConfig, OmegaConf
from toy import ToyRegression, make_trainer


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
class HydraConfigProbe(L.Callback):
    """A native Lightning callback that reads HydraConfig during training, as user code in a Hydra job may."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append((HydraConfig.get().job.name, HydraConfig.get().runtime.output_dir))


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hydra_fit")
    events: list = []
    log = capture()
    pickler = PickleJobInfoCallback()
    callbacks = [Recorder("a", events), Broken(), LogJobReturnCallback(), pickler, Recorder("b", events)]
    probe = HydraConfigProbe()
    trainer = make_trainer(
        [*to_lightning(callbacks, config_name="train", job_name="train"), probe],
        default_root_dir=str(root),
        limit_val_batches=2,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(ToyRegression(lr=0.02))
    return {"events": events, "trainer": trainer, "root": root, "log": log.records, "warnings": caught, "probe": probe}


def test_hydra_config_is_set_for_the_job_and_restored(fit_run):
    assert fit_run["probe"].seen == [("train", str(fit_run["root"]))] * 2  # both epochs, inside the job
    assert not HydraConfig.initialized()


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
    task = by_hook["on_job_start"]["task_function"]
    assert isinstance(task, LightningTask) and task.__name__ == "fit" and task.model == "toy.ToyRegression"
    with pytest.raises(RuntimeError, match="Lightning's fit"):
        task({})
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
    assert config.hydra.job.config_name == "train"
    assert OmegaConf.is_missing(config.hydra.job, "num")  # as in a Hydra RUN: only sweeps number their jobs
    assert config.hydra.mode is RunMode.RUN and config.hydra.run.dir == str(fit_run["root"])
    assert OmegaConf.get_type(config, "hydra") is HydraConf  # composed by Hydra: the structured schema
    assert not HydraConfig.initialized()  # set for the job, restored afterwards


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
    log = capture()
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
    assert [kw["task_function"].stage for _, hook, _, kw in events if hook == "on_job_start"] == [
        "test",
        "validate",
        "predict",
    ]
    assert "test_loss" in jobs[0][0].return_value and "val_loss" in jobs[1][0].return_value


def test_job_return_stand_in_without_hydra_behaves_like_hydras():
    from callbridge.adapters.hydra import JobReturnStandIn, JobStatusStandIn

    ret = JobReturnStandIn(overrides=["a=1"])
    ret.status, ret.return_value = JobStatusStandIn.FAILED, KeyError("x")
    with pytest.raises(KeyError):
        _ = ret.return_value
    ret.status, ret.return_value = JobStatusStandIn.COMPLETED, {"loss": 1.0}
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
        ({"hydra": {"callbacks": {"upload": {"bucket": "b"}}}}, "hydra.callbacks.upload: has no _target_"),
        ({"callbacks": {"x": {"_target_": "no_such_module.Cb"}}}, "callbacks.x: .*no_such_module.Cb"),
        (
            {"hydra": {"callbacks": {"up": {"_target_": "hydra_seed.MyCallback", "bucket": "b"}}}},
            "hydra.callbacks.up: .*missing 1 required positional argument: 'file_path'",
        ),
        ([{"_target_": "hydra_seed.MyCallback", "nope": 1}], r"\[0\]: .*unexpected keyword argument 'nope'"),
    ],
)
def test_bad_entries_name_the_entry(cfg, message):
    with pytest.raises(ConfigError, match=message):
        from_hydra_config(OmegaConf.create(cfg))


def test_one_config_error_lists_every_bad_entry():
    cfg = {
        "hydra": {
            "callbacks": {
                "ok": {"_target_": "hydra.experimental.callbacks.LogJobReturnCallback"},
                "no_target": {"bucket": "b"},
                "unknown": {"_target_": "no_such_module.Cb"},
                "disabled": None,  # a disabled entry of a callbacks group is skipped
            }
        }
    }
    with pytest.raises(ConfigError) as raised:
        from_hydra_config(cfg)
    assert [label for label, _ in raised.value.problems] == ["hydra.callbacks.no_target", "hydra.callbacks.unknown"]


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


# -- DDP ---------------------------------------------------------------------------------------------------
def test_ddp_job_hooks_fire_once_on_rank_zero(ddp_results):
    rank0, rank1 = ddp_results("hydra_job_hooks_once")
    assert rank0["hooks"] == ["on_run_start", "on_job_start", "on_job_end", "on_run_end"]
    assert rank0["status"] == "COMPLETED"
    assert rank1["hooks"] == []
    assert rank0["sweep_hooks"] == ["on_multirun_start", "on_job_start", "on_job_end", "on_multirun_end"]
    assert rank1["sweep_hooks"] == []
    assert rank0["pickles"] == ["config.pickle", "job_return.pickle"]
    assert not rank0["hydra_config_left_set"] and not rank1["hydra_config_left_set"]


def test_compose_restores_the_global_state_hydras_compose_api_touches(tmp_path):
    from callbridge.adapters.hydra import compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import JobRuntime
    from hydra.version import VersionBase

    def state():
        return (
            GlobalHydra.instance().is_initialized(),
            JobRuntime.instance().get("name"),
            VersionBase.instance().getbase(),
        )

    before = state()
    cfg = compose({"lr": 0.1}, multirun=False, job_name="composed")
    assert cfg.hydra.job.name == "composed" and state() == before
    # inside a caller's own initialize(): its GlobalHydra is kept
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.2", job_name="outer"):
        outer = state()
        compose({}, multirun=True, job_name="inner")
        assert state() == outer
