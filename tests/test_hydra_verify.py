"""``callbridge verify`` on Hydra callbacks: a real ``@hydra.main`` app (a run and a 2-job ``--multirun``) against
callbridge outside any app, through the command's entry point (exit 0 equal, 1 differences)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_callbacks")

from callbridge.adapters.cli import main
from hydra.core.hydra_config import HydraConfig

EXAMPLE = Path(__file__).parents[1] / "examples" / "hydra_verify"


def _line(out: str, check: str) -> str:
    return next(line.split(None, 2)[1] for line in out.splitlines() if line.strip().startswith(check + " "))


def test_hydras_own_callback_is_equal_and_the_process_is_left_as_found(capsys):
    root = logging.getLogger()
    before = (os.getcwd(), list(sys.argv), list(root.handlers), root.level)
    assert main(["verify", "hydra.experimental.callbacks:LogJobReturnCallback", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "callbridge verify: hydra.experimental.callbacks:LogJobReturnCallback()" in out
    for mode in ("run", "multirun"):  # its "Succeeded with return value: {...}" records were compared
        assert {_line(out, f"{mode}.{check}") for check in ("hooks", "args", "logs", "files", "contents")} == {"equal"}
        assert _line(out, f"{mode}.links") == "-"
    assert "result: equal (0 of 12 checks differ)" in out
    assert (os.getcwd(), list(sys.argv), list(root.handlers), root.level) == before
    assert not HydraConfig.initialized()


def test_a_hydra_callbacks_link_as_json(capsys):
    assert main(["verify", "hydra_callbacks:LatestRunLink", "--epochs", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    checks = {check["name"]: check for check in report["checks"]}
    assert report["equal"] is True and report["home"].startswith("@hydra.main app")
    for mode in ("run", "multirun"):  # the outputs/latest and multirun/latest links were made and compared
        assert checks[f"{mode}.links"]["equal"] and not checks[f"{mode}.links"]["note"]
        assert checks[f"{mode}.logs"]["equal"] and not checks[f"{mode}.logs"]["note"]


def test_a_config_entry_in_a_git_repository(tmp_path, capsys, monkeypatch):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    config = tmp_path / "callbacks.yaml"
    config.write_text(
        "log_return:\n  _target_: hydra.experimental.callbacks.LogJobReturnCallback\n"
        "git_info:\n  _target_: hydra_callbacks.GitInfo\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "--config", str(config), "--entry", "git_info", "--epochs", "1", "--keep", "runs"]) == 0
    out = capsys.readouterr().out
    assert f"callbridge verify: {config} entry git_info" in out
    assert _line(out, "run.logs") == "equal" and _line(out, "multirun.logs") == "equal"  # "Git sha: ..., dirty: ..."
    assert (tmp_path / "runs" / "hydra" / "multirun" / "multirun" / "sweep" / "multirun.yaml").is_file()
    assert (tmp_path / "runs" / "callbridge" / "run" / "outputs" / "run" / "results.json").is_file()


@pytest.fixture
def in_the_example(monkeypatch):
    """Runs in examples/hydra_verify; its ``my_callbacks`` module is forgotten after (other examples have one)."""
    monkeypatch.chdir(EXAMPLE)
    sys.modules.pop("my_callbacks", None)
    yield
    sys.modules.pop("my_callbacks", None)


def test_a_user_file_equal_and_with_the_documented_difference(capsys, in_the_example):
    assert main(["verify", "my_callbacks.py:SweepSummary", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert _line(out, "multirun.contents") == "equal" and _line(out, "multirun.output") == "equal"  # summary.csv
    assert main(["verify", "my_callbacks:AnnounceJob", "--epochs", "1"]) == 1
    out = capsys.readouterr().out
    assert _line(out, "run.output") == "DIFFERENT" and _line(out, "multirun.output") == "DIFFERENT"
    assert _line(out, "run.args") == "equal"  # task_function differs by type only, as docs/hydra.md says
    assert '"job 0: starting main(lr=0.1)"' in out and '"job 0: starting fit(lr=0.1)"' in out
    assert "result: DIFFERENT (2 of 12 checks differ)" in out
    assert str(EXAMPLE) not in sys.path and not (EXAMPLE / "outputs").exists()


def test_hydra_is_among_the_styles_verify_supports(capsys):
    assert main(["verify", "callbridge.callbacks:EarlyStoppingCallback"]) == 2
    assert "hydra" in capsys.readouterr().err.rsplit("verify supports: ", 1)[1].strip().split(", ")
