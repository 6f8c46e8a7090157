"""The HF style under a real Lightning Trainer: detection, derived arguments, naming, control flags, stages, config.

The comparison with ``transformers.Trainer`` itself is in test_hf_conformance.py.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from callbridge.adapters import detect_style, from_config, to_lightning
from toy import ToyRegression, make_trainer

transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    EarlyStoppingCallback,
    PrinterCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)


class Seen(TrainerCallback):
    """Keeps what each event received: the args object, a copy of logs/metrics, the flags after the event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, dict[str, Any]]] = []
        self.args: list[Any] = []
        self.types: set[tuple[str, type, type]] = set()

    def _keep(self, event, args, state, control, payload=None):
        self.events.append((event, state.global_step, dict(payload or {})))
        self.args.append(args)
        self.types.add((event, type(state), type(control)))

    def on_train_begin(self, args, state, control, **kwargs):
        self._keep("on_train_begin", args, state, control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._keep("on_log", args, state, control, logs)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._keep("on_evaluate", args, state, control, metrics)

    def on_save(self, args, state, control, **kwargs):
        self._keep("on_save", args, state, control)

    def on_prediction_step(self, args, state, control, **kwargs):
        self._keep("on_prediction_step", args, state, control)

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        self._keep("on_predict", args, state, control, metrics)

    def of(self, event: str) -> list[tuple[int, dict[str, Any]]]:
        return [(step, payload) for name, step, payload in self.events if name == event]


class SaveAtStep(TrainerCallback):
    """Asks for a checkpoint through ``control.should_save`` at one step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True


# -- detection, classes, options ------------------------------------------------------------------------------
def test_importing_the_style_and_detecting_others_never_imports_transformers() -> None:
    """As without the extra installed: importing transformers fails. (No Lightning here: torchmetrics imports
    transformers whenever it is installed.)"""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "transformers" or name.startswith("transformers."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        import callbridge.adapters.hf
        from callbridge.adapters.registry import get_style
        from callbridge.adapters.styles import detect_style
        from callbridge.callbacks import Callback
        class Duck:
            def on_log(self, args, state, control, logs=None, **kwargs): ...
        class KerasLike:
            def on_epoch_end(self, epoch, logs=None): ...
        print(get_style("hf").name, detect_style(Callback()), detect_style(Duck()), detect_style(KerasLike()))
        try:
            get_style("hf").adapt([Duck()])
        except ImportError as error:
            print("ImportError:", error)
        print("transformers" in sys.modules, "lightning" in sys.modules)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "hf callbridge hf keras"
    assert "pip install 'callbridge[hf]'" in lines[1]
    assert lines[-1] == "False False"


def test_classes_and_instances_are_accepted_as_hf_trainer_accepts_them() -> None:
    assert detect_style(PrinterCallback) == detect_style(PrinterCallback()) == "hf"
    with pytest.raises(TypeError, match="not an instance"):
        detect_style(ToyRegression)  # other classes are still refused
    (bridge,) = to_lightning([PrinterCallback, EarlyStoppingCallback(early_stopping_patience=3)])
    adapter = bridge.callbacks[0]
    assert [type(cb).__name__ for cb in adapter.callbacks] == ["PrinterCallback", "EarlyStoppingCallback"]
    restored = pickle.loads(pickle.dumps(bridge))  # ddp_spawn ships the bridge to worker processes
    assert restored.callbacks[0].callbacks[1].early_stopping_patience == 3


def test_bad_options_are_named() -> None:
    with pytest.raises(TypeError, match=r"training_args must be a transformers\.TrainingArguments"):
        to_lightning([PrinterCallback()], training_args={"output_dir": "x"})
    with pytest.raises(TypeError, match=r"key_map\['val_loss'\]"):
        to_lightning([PrinterCallback()], key_map={"val_loss": 3})
    with pytest.raises(TypeError, match="unknown option"):
        to_lightning([PrinterCallback()], patience=3)


def test_inspect_knows_the_style_through_the_registry() -> None:
    from callbridge.adapters.cli import inspect_class

    report = inspect_class(EarlyStoppingCallback)
    assert report["style"] == "hf"
    assert [h["hook"] for h in report["hooks"]] == ["on_train_begin", "on_evaluate"]
    assert report["hooks"][1]["lightning"].startswith("on_validation_end")

    class Pusher(TrainerCallback):
        def on_push_begin(self, args, state, control, **kwargs): ...

    assert any("never" in problem for problem in inspect_class(Pusher)["problems"])


def test_two_callbacks_of_one_class_keep_their_own_state() -> None:
    first, second = EarlyStoppingCallback(2), EarlyStoppingCallback(5)
    (bridge,) = to_lightning([first, second])
    first.early_stopping_patience_counter, second.early_stopping_patience_counter = 1, 4
    saved = bridge.state_dict()
    first.early_stopping_patience_counter = second.early_stopping_patience_counter = 0
    bridge.load_state_dict(json.loads(json.dumps(saved)))  # plain data, as a checkpoint holds it
    assert (first.early_stopping_patience_counter, second.early_stopping_patience_counter) == (1, 4)


# -- a fit with derived arguments: flags, logs, names, checkpoints --------------------------------------------
@pytest.fixture(scope="module")
def derived_run(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hf_derived")
    seen = Seen()
    callbacks = to_lightning([seen, SaveAtStep(3)], key_map={"train_loss_step": "mse"})
    trainer = make_trainer(
        callbacks,
        max_epochs=2,
        log_every_n_steps=3,
        accumulate_grad_batches=2,
        gradient_clip_val=0.5,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
    )
    model = ToyRegression(n=32, batch_size=4)  # 8 batches, 4 optimizer steps per epoch
    trainer.fit(model)
    adapter = callbacks[0].callbacks[0]
    return {"root": root, "seen": seen, "trainer": trainer, "adapter": adapter, "model": model}


def test_training_arguments_are_derived_from_the_lightning_run(derived_run) -> None:
    args = derived_run["seen"].args[0]
    assert isinstance(args, TrainingArguments)
    assert all(a is args for a in derived_run["seen"].args)  # one object for the whole run
    assert args.output_dir == str(derived_run["root"])
    assert (args.num_train_epochs, args.logging_steps, args.logging_strategy) == (2, 3, "steps")
    assert (args.eval_strategy, args.save_strategy, args.report_to) == ("epoch", "no", [])
    assert (args.gradient_accumulation_steps, args.max_grad_norm) == (2, 0.5)
    assert (args.per_device_train_batch_size, args.per_device_eval_batch_size) == (4, 4)
    assert args.learning_rate == 0.05
    state = derived_run["adapter"].state
    assert (state.max_steps, state.num_train_epochs, state.global_step, state.epoch) == (8, 2, 8, 2.0)
    assert {(t[1], t[2]) for t in derived_run["seen"].types} == {(TrainerState, TrainerControl)}


def test_logs_follow_hf_cadence_names_and_types(derived_run) -> None:
    seen = derived_run["seen"]
    train_logs = [(step, logs) for step, logs in seen.of("on_log") if "loss" in logs]
    assert [step for step, _ in train_logs] == [3, 6]  # logging_steps = log_every_n_steps = 3
    assert list(train_logs[0][1]) == ["loss", "grad_norm", "learning_rate", "mse", "epoch"]
    evaluations = seen.of("on_evaluate")
    assert [step for step, _ in evaluations] == [4, 8]
    assert list(evaluations[0][1])[:1] == ["eval_loss"]  # val_loss -> eval_loss
    assert evaluations[0][1]["epoch"] == 1.0
    summary = seen.of("on_log")[-1][1]
    assert list(summary)[:3] == ["train_runtime", "train_samples_per_second", "train_steps_per_second"]
    assert all(type(v) in (int, float) for _, logs in seen.of("on_log") for v in logs.values())


def test_should_save_writes_a_checkpoint_folder_and_fires_on_save(derived_run) -> None:
    folder = derived_run["root"] / "checkpoint-3"
    assert sorted(p.name for p in folder.iterdir()) == ["model.ckpt", "trainer_state.json"]
    assert [step for step, _ in derived_run["seen"].of("on_save")] == [3]
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and [e["step"] for e in state["log_history"]] == [3]


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_fit_from_a_checkpoint_folder_goes_on_with_the_hf_state(derived_run) -> None:
    seen = Seen()
    callbacks = to_lightning([seen])
    trainer = make_trainer(callbacks, max_epochs=2, log_every_n_steps=3, accumulate_grad_batches=2)
    trainer.fit(ToyRegression(n=32, batch_size=4), ckpt_path=str(derived_run["root"] / "checkpoint-3" / "model.ckpt"))
    state = callbacks[0].callbacks[0].state
    assert state.global_step == 8
    # the restored entry (step 3) first, then this fit's windows at 6 (3 and 6 as in the uninterrupted run)
    assert [e["step"] for e in state.log_history if "loss" in e] == [3, 6]
    assert [e["step"] for e in state.log_history if "eval_loss" in e] == [4, 8]


def test_key_map_and_never_logged_best_metric(tmp_path: Path) -> None:
    seen = Seen()
    args = TrainingArguments(output_dir=str(tmp_path), metric_for_best_model="accuracy", report_to="none")
    callbacks = to_lightning([seen], training_args=args, key_map={"val_loss": "eval_mse"})
    trainer = make_trainer(callbacks, max_epochs=1, num_sanity_val_steps=0)
    with pytest.raises(KeyError, match=r"metric_for_best_model 'accuracy' was never logged.*val_loss"):
        trainer.fit(ToyRegression())
    assert "eval_mse" in seen.of("on_evaluate")[0][1] and "eval_loss" not in seen.of("on_evaluate")[0][1]


def test_validate_test_and_predict_reach_hf_events(tmp_path: Path) -> None:
    seen = Seen()
    trainer = make_trainer(to_lightning([seen]), default_root_dir=str(tmp_path))
    model = ToyRegression(n=32, batch_size=16)
    trainer.validate(model)
    trainer.test(model)
    trainer.predict(model)
    (_, validated), (_, tested) = seen.of("on_evaluate")
    assert "eval_loss" in validated and "test_loss" in tested and "test_runtime" in tested
    assert [next(iter(logs)) for _, logs in seen.of("on_log")] == ["eval_loss", "test_loss"]
    assert len(seen.of("on_prediction_step")) == 2 + 2 + 2  # one per batch of each pass
    ((_, predicted),) = seen.of("on_predict")
    assert "test_runtime" in predicted


# -- configuration ----------------------------------------------------------------------------------------------
def test_from_config_accepts_hf_callbacks_in_every_format(tmp_path: Path) -> None:
    module = tmp_path / "my_hf_callbacks.py"
    module.write_text(
        "from transformers import TrainerCallback\n\n"
        "class Mine(TrainerCallback):\n"
        "    def __init__(self, tag='x'):\n"
        "        self.tag = tag\n\n"
        "    def on_log(self, args, state, control, logs=None, **kwargs):\n"
        "        pass\n"
    )
    config = tmp_path / "callbacks.yaml"
    config.write_text(
        textwrap.dedent(
            """
            - _target_: transformers.EarlyStoppingCallback
              early_stopping_patience: 4
            - class_path: transformers.PrinterCallback
            - callback_path: my_hf_callbacks.py
              callback_name: Mine
              kwargs: {tag: from-file}
            """
        )
    )
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    (bridge,) = from_config(config, training_args=args)
    adapter = bridge.callbacks[0]
    assert [type(cb).__name__ for cb in adapter.callbacks] == ["EarlyStoppingCallback", "PrinterCallback", "Mine"]
    assert adapter.callbacks[0].early_stopping_patience == 4 and adapter.callbacks[2].tag == "from-file"
    assert adapter.args is args


def test_the_example_runs(tmp_path: Path) -> None:
    root = Path(__file__).parents[1]
    proc = subprocess.run(
        [sys.executable, "examples/hf_callbacks.py", "--out", str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "HF callbacks under Lightning: stopped at step" in proc.stdout
    assert "{'eval_loss':" in proc.stdout  # PrinterCallback's lines, with Lightning's val_loss named eval_loss
    assert list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoint-60" / "model.ckpt").exists()


def test_a_window_without_logs_stays_small_and_sums_as_hf() -> None:
    """With logging off (or rare), the batch losses are folded into one tensor; the NaN filter still holds."""
    import torch
    from callbridge.adapters.hf.window import FOLD_AT, LossWindow

    window = LossWindow(nan_filter=True)
    values = [float(v) for v in torch.randn(600, generator=torch.Generator().manual_seed(0))]
    values[3], values[300], values[599] = float("nan"), float("inf"), float("nan")
    expected = torch.tensor(0.0)
    for step, value in enumerate(values):  # HF: tr_loss += loss, or tr_loss / (1 + steps in window) for NaN/inf
        window.add(torch.tensor(value), 1 + step)
        loss = torch.tensor(value)
        expected = expected + (loss if torch.isfinite(loss) else expected / (1 + step))
    assert len(window) < FOLD_AT
    assert window.drain() == pytest.approx(float(expected), rel=1e-5)
    assert window.drain() == 0.0  # drained
