"""``callbridge verify``: the conformance harness as a user command (exit 0 equal, 1 differences, 2 usage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

from callbridge.adapters.cli import main

EXAMPLE = Path(__file__).parents[1] / "examples" / "keras_verify"


def test_verify_a_keras_builtin_is_equal(capsys):
    assert main(["verify", "keras.callbacks:ReduceLROnPlateau", "--init", '{"patience": 1, "verbose": 1}']) == 0
    out = capsys.readouterr().out
    assert "callbridge verify: keras.callbacks:ReduceLROnPlateau(patience=1, verbose=1)" in out
    assert "result: equal (0 of 10 checks differ)" in out and "lr           equal" in out


def test_verify_a_third_party_callback_as_json(capsys):
    pytest.importorskip("tqdm")
    assert main(["verify", "tqdm.keras:TqdmCallback", "--init", '{"verbose": 0}', "--epochs", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] is True and {c["name"] for c in report["checks"]} >= {"hooks", "logs", "output"}


def test_verify_a_user_file_shows_the_difference(capsys, monkeypatch):
    monkeypatch.chdir(EXAMPLE)
    assert main(["verify", "my_callbacks.py:PrintsItsModel"]) == 1
    out = capsys.readouterr().out
    assert "output       DIFFERENT" in out and "training ScriptedKeras" in out and "training KerasModelProxy" in out
    assert main(["verify", "my_callbacks:WarmupThenPlateau", "--init", '{"warmup": 2}']) == 0  # module:Class
    assert str(EXAMPLE) not in sys.path  # the working directory was on sys.path only during the command


def test_verify_a_config_entry(tmp_path, capsys):
    config = tmp_path / "callbacks.yaml"
    config.write_text(
        "early_stop:\n"
        "  class_path: keras.callbacks.EarlyStopping\n"
        "  init_args: {patience: 1, restore_best_weights: true}\n"
        "csv:\n"
        "  _target_: keras.callbacks.CSVLogger\n"
        "  filename: log.csv\n"
    )
    assert main(["verify", "--config", str(config), "--entry", "csv"]) == 0
    assert "files        equal" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify"], "TARGET (module:Class or file.py:Class) or --config FILE is required"),
        (["verify", "keras.callbacks:EarlyStopping", "--init", "{patience: 2}"], "--init is not valid JSON"),
        (["verify", "keras.callbacks:EarlyStopping", "--init", '{"patiense": 2}'], "unexpected keyword argument"),
        (["verify", "no_such_module:Thing"], "cannot be imported"),
        (
            ["verify", "callbridge.callbacks:EarlyStoppingCallback"],
            "callbridge-style callback; verify supports: hf, hydra, keras, warprec",
        ),
    ],
)
def test_verify_usage_errors_exit_2(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_the_example_runs_as_documented(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="torch")
    command = [sys.executable, "-m", "callbridge.adapters.cli", "verify", "my_callbacks.py:WarmupThenPlateau"]
    proc = subprocess.run(command, cwd=EXAMPLE, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "result: equal" in proc.stdout
    assert not (EXAMPLE / "lr.csv").exists()  # both runs wrote in a temporary folder
