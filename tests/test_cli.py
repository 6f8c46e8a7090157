"""The callbridge command: LightningCLI runs with callbacks of every style, inspect, help and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from callbridge.adapters.cli import Callbacks, inspect_class, load_target, main
from callbridge.adapters.config import ConfigError

ROOT = Path(__file__).parents[1]
SMOKE = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


def callbridge(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), KERAS_BACKEND="torch")
    return subprocess.run(
        [sys.executable, "-m", "callbridge.adapters.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_fit_runs_the_digits_example_config(tmp_path: Path) -> None:
    proc = callbridge("fit", "--config", str(ROOT / "examples/digits/config.yaml"), *SMOKE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Epoch 0: train_loss" in proc.stdout  # EpochReport (a _target_ entry inside Callbacks) ran
    assert "`Trainer.fit` stopped: `max_epochs=1` reached" in proc.stdout + proc.stderr
    assert (tmp_path / "config.yaml").exists()  # LightningCLI saved the resolved config


def test_fit_beside_its_config_never_replaces_a_file(tmp_path: Path) -> None:
    # Run from the example's own folder (trainer.logger: false, so the run's log dir is the working directory),
    # where the user's config.yaml and an earlier run's resolved config-1.yaml already are: both are kept byte for
    # byte, and this run's resolved config goes to config-2.yaml.
    folder = tmp_path / "digits"
    shutil.copytree(ROOT / "examples/digits", folder)
    (folder / "config-1.yaml").write_text("# an earlier run's resolved config\n")
    before = {name: (folder / name).read_bytes() for name in ("config.yaml", "config-1.yaml")}
    proc = callbridge("fit", "--config", "config.yaml", *SMOKE, cwd=folder)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {name: (folder / name).read_bytes() for name in before} == before
    resolved = (folder / "config-2.yaml").read_text()
    assert "max_epochs: 1" in resolved and "limit_train_batches: 2" in resolved
    assert sorted(p.name for p in folder.glob("config*.yaml")) == ["config-1.yaml", "config-2.yaml", "config.yaml"]


LOCAL_CALLBACKS = """
from pathlib import Path
from callbridge.callbacks import Callback

class Marker(Callback):
    def __init__(self, path: str, fail: bool = False):
        self.path, self.fail = path, fail
    def on_train_begin(self, ctx):
        if self.fail:
            raise RuntimeError("callback failed on purpose")
    def on_stage_end(self, ctx):
        Path(self.path).write_text(ctx.stage)
"""


def write_config(directory: Path, *entries: str) -> Path:
    (directory / "local_cbs.py").write_text(LOCAL_CALLBACKS)
    config = directory / "run.yaml"
    lines = [
        "trainer:",
        "  accelerator: cpu",
        "  logger: false",
        "  enable_checkpointing: false",
        "  enable_progress_bar: false",
        "  enable_model_summary: false",
        "  callbacks:",
        "    - class_path: callbridge.adapters.cli.Callbacks",
        "      init_args:",
        "        callbacks:",
        *(f"          - {entry}" for entry in entries),
        "model: {class_path: toy.ToyRegression}",
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def test_validate_and_exit_codes_of_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process main() (the subprocess path is covered above): each run starts no new interpreter.
    good = write_config(tmp_path, "{class_path: local_cbs.Marker, init_args: {path: marker.txt}}")
    assert main(["validate", "--config", str(good), "--trainer.limit_val_batches", "1"]) == 0
    assert Path("marker.txt").read_text() == "validate"  # local_cbs resolved from the config's directory

    failing = write_config(tmp_path, "{class_path: local_cbs.Marker, init_args: {path: m.txt, fail: true}}")
    assert main(["fit", "--config", str(failing), *SMOKE]) == 1
    assert "callbridge: fit failed: RuntimeError: callback failed on purpose" in capsys.readouterr().err


def test_bad_entries_are_usage_errors_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_config(
        tmp_path,
        "{class_path: local_cbs.Marker, init_args: {path: x.txt, colour: red}}",
        "{_target_: local_cbs.Nope}",
    )
    assert main(["fit", "--config", str(bad), *SMOKE]) == 2
    err = capsys.readouterr().err
    assert "2 invalid callback config entries" in err
    assert "entry #0: class_path 'local_cbs.Marker': wrong arguments" in err and "colour" in err
    assert "entry #1: unknown class: _target_ 'local_cbs.Nope'" in err
    assert not Path("x.txt").exists()


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # LightningCLI saves config.yaml in the working directory
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_help_everywhere_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = callbridge("--help", cwd=tmp_path)
    assert proc.returncode == 0 and "inspect" in proc.stdout and "fit" in proc.stdout
    assert main(["fit", "--help"]) == 0
    assert "--trainer.callbacks" in capsys.readouterr().out
    assert main(["inspect", "--help"]) == 0
    assert "file.py:Class" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err
    assert main(["fit", "--trainer.max_epochs", "many"]) == 2
    assert main(["fit", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["inspect"]) == 2


def test_callbacks_entry_rejects_native_lightning_callbacks() -> None:
    with pytest.raises(ConfigError, match=r"entry #0 .*directly under trainer.callbacks"):
        Callbacks([{"class_path": "lightning.pytorch.callbacks.EarlyStopping", "init_args": {"monitor": "x"}}])
    assert Callbacks().callbacks == []


def test_inspect_reports_style_hooks_and_lightning_counterparts(tmp_path: Path) -> None:
    file = tmp_path / "mine.py"
    file.write_text(
        textwrap.dedent(
            """
            import lightning.pytorch as pl
            from callbridge.callbacks import Callback

            class HaltOnNan(Callback):
                def __init__(self, required):
                    self.required = required
                def on_step_end(self, ctx): ...
                def on_epoch_end(self, ctx): ...

            class Native(pl.Callback):
                def on_validation_end(self, trainer, pl_module): ...

            class Silent(Callback):
                pass
            """
        )
    )
    proc = callbridge("inspect", f"{file}:HaltOnNan", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "HaltOnNan: callbridge style" in proc.stdout
    assert "on_step_end   -> on_train_batch_end" in proc.stdout
    assert "on_epoch_end  -> on_train_epoch_end" in proc.stdout
    assert "will not work under Lightning: nothing found" in proc.stdout

    native = inspect_class(load_target(f"{file}:Native"))
    assert native["style"] == "lightning"
    assert native["hooks"] == [{"hook": "on_validation_end", "lightning": "on_validation_end"}]
    silent = inspect_class(load_target(f"{file}:Silent"))
    assert silent["problems"] == ["it overrides no hook: it will never be called"]
    assert main(["inspect", "--strict", f"{file}:Silent"]) == 1
    assert main(["inspect", "--json", "lightning.pytorch.callbacks.EarlyStopping"]) == 0
    assert main(["inspect", "cfg_callbacks.NotACallback"]) == 1  # no known style
    assert main(["inspect", "no.such.Module"]) == 1
    assert main(["inspect", f"{file}:Missing"]) == 1


def test_inspect_keras_callback_reports_what_needs_a_keras_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--json", "keras.callbacks.TerminateOnNaN"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["style"] == "keras"
    assert {"hook": "on_batch_end"}.items() <= report["hooks"][0].items()
    assert main(["inspect", "--strict", "keras.callbacks.BackupAndRestore"]) == 1
    assert "needs a real Keras model" in capsys.readouterr().out


def test_inspect_hydra_multirun_hooks_have_no_single_run_counterpart(tmp_path: Path) -> None:
    file = tmp_path / "hydra_cb.py"
    file.write_text(
        "class Sweep:\n"
        "    def on_multirun_end(self, config, **kwargs): ...\n"
        "    def on_job_end(self, config, job_return, **kwargs): ...\n"
    )
    report = inspect_class(load_target(f"{file}:Sweep"))
    assert report["style"] == "hydra"
    assert [h["hook"] for h in report["hooks"]] == ["on_job_end", "on_multirun_end"]
    assert any("on_multirun_end has no Lightning counterpart" in p for p in report["problems"])


def test_inspect_names_a_file_class_as_given_and_leaves_sys_path_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine.py").write_text(
        "from callbridge.callbacks import Callback\nclass Report(Callback):\n    def on_epoch_end(self, ctx): ...\n"
    )
    before = list(sys.path)
    assert main(["inspect", "mine.py:Report"]) == 0
    assert capsys.readouterr().out.startswith("mine.py:Report: callbridge style")
    assert main(["inspect", "--json", "mine.py:Report"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "mine.py:Report"
    config = write_config(tmp_path, "{class_path: local_cbs.Marker, init_args: {path: v.txt}}")
    assert main(["validate", "--config", str(config), "--trainer.limit_val_batches", "1"]) == 0
    assert sys.path == before  # the command's class-path directories are gone once it returns
