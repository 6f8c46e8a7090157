"""``callbridge verify`` for HF callbacks: ``transformers.Trainer`` against callbridge on the scripted run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("mlflow")

from callbridge.adapters.cli import main
from process_state import process_state

EXAMPLE = Path(__file__).parents[1] / "examples" / "hf_verify"


def test_verify_hf_early_stopping_is_equal(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["verify", "transformers:EarlyStoppingCallback", "--init", '{"early_stopping_patience": 2}']
    assert main([*args, "--keep", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "callbridge verify: transformers:EarlyStoppingCallback(early_stopping_patience=2)" in out
    assert "control          equal" in out and "result: equal (0 of 9 checks differ)" in out
    assert "output           -          not compared: nothing printed to stdout on either side" in out
    # both sides ran where --keep says (tests/test_hf_conformance.py checks where this callback stops: step 16)
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"transformers", "callbridge"}


def test_verify_mlflow_callback_compares_the_store_as_json(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = process_state()
    assert main(["verify", "transformers.integrations:MLflowCallback", "--epochs", "2", "--json"]) == 0
    assert process_state() == before  # no MLflow URI, environment variable or handler left behind
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] is True and report["home"] == "transformers.Trainer"
    assert [c["name"] for c in report["checks"]][:3] == ["hooks", "prediction_steps", "arguments"]


def test_verify_user_callbacks_one_equal_one_different(capsys, monkeypatch):
    monkeypatch.chdir(EXAMPLE)
    assert main(["verify", "my_callbacks.py:StopOnPlateau", "--init", '{"patience": 1}']) == 0
    assert "result: equal" in capsys.readouterr().out
    assert not (EXAMPLE / "evals.csv").exists()  # each side wrote in its own temporary folder
    assert main(["verify", "my_callbacks.py:LogsItsModel"]) == 1
    out = capsys.readouterr().out
    # HF hands callbacks its network as `model`, callbridge the LightningModule (docs/hf.md)
    assert "output           DIFFERENT" in out and "training TinyNet" in out and "training TinyNetModule" in out
    assert str(EXAMPLE) not in sys.path


def test_verify_finds_a_difference_the_trace_shows(capsys, tmp_path, monkeypatch):
    """on_pre_optimizer_step runs after Lightning's optimizer step (docs/hf.md): a callback reading the
    weights there sees other values."""
    (tmp_path / "pre_step.py").write_text(
        "from transformers import TrainerCallback\n"
        "class PreStep(TrainerCallback):\n"
        "    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):\n"
        "        weight = optimizer.param_groups[0]['params'][0]\n"
        "        print(f'step {state.global_step}: {float(weight.detach().sum()):.5f}')\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "pre_step.py:PreStep", "--epochs", "1"]) == 1
    out = capsys.readouterr().out
    assert "hooks            equal" in out and "output           DIFFERENT" in out


@pytest.mark.parametrize(
    "target",
    [
        "transformers:PrinterCallback",
        "transformers.integrations:TensorBoardCallback",
        "transformers.integrations:WandbCallback",  # offline (tests/conftest.py), each side its own run folder
    ],
)
def test_verify_hf_builtins_are_equal(target, capsys, tmp_path, monkeypatch):
    if "Wandb" in target:
        pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    assert main(["verify", target, "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "files            equal" in out and "result: equal" in out
    assert ("output           equal" in out) == (target == "transformers:PrinterCallback")  # the others print nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "expected a whole number of epochs >= 1, got '0'"),
        (["--keep", "."], "must be a new or empty folder"),
    ],
)
def test_verify_refuses_bad_epochs_and_a_used_keep_folder(args, message, capsys, tmp_path, monkeypatch):
    (tmp_path / "earlier.txt").write_text("a file of an earlier run")
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "transformers:PrinterCallback", *args]) == 2
    assert message in capsys.readouterr().err
