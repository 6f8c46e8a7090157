"""The Lightning bridge: hook order, writes that take effect, state, priority and bad input."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from callbridge.adapters import to_lightning
from callbridge.adapters.lightning import LightningBridge
from callbridge.callbacks import HOOKS, Callback, CallbackContext, CallbackList
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from toy import ToyRegression, make_trainer

DOCS = Path(__file__).parents[1] / "docs" / "hooks.md"


def documented_order(entry_point: str) -> list[str]:
    match = re.search(rf"```text {entry_point}\n(.*?)```", DOCS.read_text(), re.S)
    assert match, f"docs/hooks.md has no ```text {entry_point} block"
    return match.group(1).split()


class Recorder(Callback):
    """Records every unified hook with the stage it saw."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.stages: list[str] = []
        self.metrics_at_epoch_end: list[dict[str, float]] = []


for _hook in HOOKS:

    def _record(self: Recorder, ctx: CallbackContext, _hook: str = _hook) -> None:
        self.events.append(_hook)
        self.stages.append(ctx.stage)
        if _hook == "on_epoch_end":
            self.metrics_at_epoch_end.append(dict(ctx.metrics))

    setattr(Recorder, _hook, _record)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One trainer runs fit, validate, test and predict; each entry point's events are kept."""
    recorder = Recorder()
    checkpoints = ModelCheckpoint(dirpath=tmp_path_factory.mktemp("ckpt"), save_top_k=-1)
    trainer = make_trainer(
        [*to_lightning([recorder]), checkpoints],
        enable_checkpointing=True,
        limit_train_batches=1,
        limit_val_batches=1,
        limit_test_batches=1,
        limit_predict_batches=1,
    )
    model = ToyRegression()
    runs: dict[str, Any] = {}
    for name, run in [
        ("fit", lambda: trainer.fit(model)),
        ("validate", lambda: trainer.validate(model, verbose=False)),
        ("test", lambda: trainer.test(model, verbose=False)),
        ("predict", lambda: trainer.predict(model)),
    ]:
        recorder.events.clear()
        recorder.stages.clear()
        run()
        runs[name] = {"events": list(recorder.events), "stages": set(recorder.stages)}
    runs["metrics_at_epoch_end"] = recorder.metrics_at_epoch_end
    return runs


@pytest.mark.parametrize("entry_point", ["fit", "validate", "test", "predict"])
def test_hook_order_matches_docs(traced: dict[str, Any], entry_point: str) -> None:
    assert traced[entry_point]["events"] == documented_order(entry_point)
    assert traced[entry_point]["stages"] == {entry_point}


def test_sanity_check_is_invisible_and_epoch_end_sees_validation(traced: dict[str, Any]) -> None:
    # num_sanity_val_steps=2 in make_trainer: a visible sanity check would add evaluate events before on_train_begin.
    fit = traced["fit"]["events"]
    assert fit.index("on_train_begin") < fit.index("on_evaluate_begin")
    for metrics in traced["metrics_at_epoch_end"]:
        assert {"train_loss_epoch", "val_loss"} <= set(metrics)
        assert all(type(value) is float for value in metrics.values())


class HaltOnNan(Callback):
    # The seed's example, copied unchanged except for the import line.
    def on_step_end(self, ctx: CallbackContext):
        if ctx.loss != ctx.loss:  # NaN check
            print(f"NaN overflow detected at step {ctx.step}!")
            ctx.should_stop = True


def test_seed_halt_on_nan_stops_at_the_nan_step(capsys: pytest.CaptureFixture[str]) -> None:
    trainer = make_trainer(to_lightning([HaltOnNan()]), max_epochs=5, limit_val_batches=0)
    trainer.fit(ToyRegression(nan_at_step=5, n=64, batch_size=8))  # 8 batches per epoch
    # The NaN loss is that of the 6th batch (global step 5 before it); the run stops right after it.
    assert trainer.global_step == 6
    assert trainer.current_epoch == 1  # Lightning counts the interrupted first epoch as done
    assert "NaN overflow detected at step 6!" in capsys.readouterr().out


class LossReader(Callback):
    def __init__(self) -> None:
        self.losses: list[float | None] = []

    def on_train_begin(self, ctx: CallbackContext) -> None:
        self.losses.append(ctx.loss)

    def on_step_end(self, ctx: CallbackContext) -> None:
        self.losses.append(ctx.loss)


def test_loss_is_none_before_first_step_then_a_float() -> None:
    reader = LossReader()
    make_trainer(to_lightning(reader), max_epochs=1, limit_train_batches=2, limit_val_batches=0).fit(ToyRegression())
    assert reader.losses[0] is None
    assert len(reader.losses) == 3 and all(type(v) is float and math.isfinite(v) for v in reader.losses[1:])


class HalveLearningRate(Callback):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        self.seen.append(ctx.learning_rate)

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        ctx.learning_rate = ctx.learning_rate / 2


class TwoGroups(ToyRegression):
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            [{"params": [self.layer.weight]}, {"params": [self.layer.bias], "lr": 0.2}], lr=self.hparams.lr
        )


def test_learning_rate_write_sets_every_param_group() -> None:
    callback = HalveLearningRate()
    trainer = make_trainer(to_lightning([callback]), max_epochs=3, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(TwoGroups(lr=0.4))
    assert callback.seen == [0.4, 0.2, 0.1]
    assert [group["lr"] for group in trainer.optimizers[0].param_groups] == [0.05, 0.05]


class Counter(Callback):
    """A stateful callback: counts epochs, stamps checkpoints, and reads the stamp back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.epochs = 0
        self.loaded_stamp: str | None = None

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self.epochs += 1

    def on_save(self, ctx: CallbackContext) -> None:
        ctx.checkpoint.setdefault("stamps", []).append(f"{self.name}:{self.epochs}")

    def on_load(self, ctx: CallbackContext) -> None:
        self.loaded_stamp = ",".join(ctx.checkpoint["stamps"])

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = state_dict["epochs"]


def test_save_load_round_trip_and_separate_state_for_two_instances(tmp_path: Path) -> None:
    first, second = Counter("a"), Counter("b")
    second.epochs = 100
    trainer = make_trainer(to_lightning([first, second]), max_epochs=2, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(ToyRegression())
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)

    saved = torch.load(path, weights_only=False)
    assert saved["stamps"] == ["a:2", "b:102"]  # on_save edits are in the file
    (bridge_state,) = [v for k, v in saved["callbacks"].items() if k.startswith("callbridge[")]
    assert bridge_state == {"Counter": {"epochs": 2}, "Counter[1]": {"epochs": 102}}

    resumed_a, resumed_b = Counter("a"), Counter("b")
    trainer = make_trainer(
        to_lightning([resumed_a, resumed_b]), max_epochs=3, limit_train_batches=1, limit_val_batches=0
    )
    trainer.fit(ToyRegression(), ckpt_path=path)
    assert (resumed_a.epochs, resumed_b.epochs) == (3, 103)  # restored separately, then one more epoch each
    assert resumed_a.loaded_stamp == resumed_b.loaded_stamp == "a:2,b:102"

    # Resumed with a different set of unified callbacks: each one still finds its own state by key.
    only_a = Counter("a")
    trainer = make_trainer(
        to_lightning([HaltOnNan(), only_a]), max_epochs=3, limit_train_batches=1, limit_val_batches=0
    )
    trainer.fit(ToyRegression(), ckpt_path=path)
    assert only_a.epochs == 3


class Ordered(Callback):
    def __init__(self, name: str, log: list[str], priority: int | None = None) -> None:
        self.name, self.calls = name, log
        if priority is not None:
            self.priority = priority

    def on_train_begin(self, ctx: CallbackContext) -> None:
        self.calls.append(self.name)

    def on_step_end(self, ctx: CallbackContext) -> None:
        ctx.should_stop = True  # every callback still receives every later event


def test_priority_order_is_stable_and_nobody_is_skipped_after_a_stop() -> None:
    calls: list[str] = []
    callbacks = [Ordered("late", calls, 200), Ordered("a", calls), Ordered("early", calls, 5), Ordered("b", calls)]
    trainer = make_trainer(to_lightning(callbacks), max_epochs=3, limit_val_batches=0)
    trainer.fit(ToyRegression())
    assert calls == ["early", "a", "b", "late"]
    assert trainer.global_step == 1  # stopped after the first batch

    hits: list[str] = []

    class Hit(Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_step_end(self, ctx: CallbackContext) -> None:
            hits.append(self.name)
            ctx.should_stop = True

    CallbackList([Hit("x"), Hit("y")]).on_step_end(CallbackContext())
    assert hits == ["x", "y"]


def test_on_exception_fires_and_the_exception_propagates() -> None:
    class Seen(Callback):
        exception: BaseException | None = None
        ended = False

        def on_exception(self, ctx: CallbackContext) -> None:
            self.exception = ctx.exception

        def on_stage_end(self, ctx: CallbackContext) -> None:
            self.ended = True

    seen = Seen()
    with pytest.raises(RuntimeError, match="training failed at step 1"):
        make_trainer(to_lightning(seen), limit_val_batches=0).fit(ToyRegression(fail_at_step=1))
    assert isinstance(seen.exception, RuntimeError) and not seen.ended


def test_native_lightning_callbacks_pass_through_in_place() -> None:
    monitor = LearningRateMonitor()
    unified = HaltOnNan()
    result = to_lightning([monitor, unified])
    assert result[0] is monitor and isinstance(result[1], LightningBridge) and result[1].callbacks == [unified]
    assert to_lightning(monitor) == [monitor]
    assert to_lightning(CallbackList([unified]))[0].callbacks == [unified]


class NotACallback:
    def on_something(self) -> None: ...


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            NotACallback(),
            r"callback #0: .*NotACallback is not a callback of any supported style \(supported: callbridge, lightning",
        ),
        (HaltOnNan, r"got the class .*HaltOnNan, not an instance: pass HaltOnNan\(...\) instead"),
        (42, r"builtins.int is not a callback of any supported style"),
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_it(bad: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        to_lightning([bad])


def test_same_instance_twice_and_unknown_options_are_rejected() -> None:
    callback = HaltOnNan()
    with pytest.raises(ValueError, match=r"callback #1 \(.*HaltOnNan\) is registered twice"):
        to_lightning([callback, callback])
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['colour'\]"):
        to_lightning([callback], colour="red")
    expected = r"CallbackList takes callbridge\.callbacks\.Callback instances, got builtins\.str"
    with pytest.raises(TypeError, match=expected):
        CallbackList(["nope"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="finite number"):
        CallbackContext(optimizer=torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)).learning_rate = -1


def test_on_init_end_fires_once_per_trainer() -> None:
    class Init(Callback):
        count = 0

        def on_init_end(self, ctx: CallbackContext) -> None:
            self.count += 1

    init = Init()
    trainer = make_trainer(to_lightning(init), max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    model = ToyRegression()
    trainer.fit(model)
    trainer.validate(model, verbose=False)
    assert init.count == 1
    make_trainer(trainer.callbacks[:1], max_epochs=1, limit_train_batches=1).fit(model)
    assert init.count == 2


def test_plain_pytorch_loop_example_runs() -> None:
    import runpy

    namespace = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "plain_loop.py"), run_name="not_main")
    result = namespace["train"](epochs=20)
    assert result["stopped_early"] and result["epochs_run"] < 20
    assert result["events"][0] == "on_train_begin" and result["events"][-1] == "on_train_end"


def test_lightning_is_not_imported_by_the_unified_api() -> None:
    import subprocess
    import sys

    code = "import sys, callbridge.callbacks; print('lightning' in sys.modules or 'lightning.pytorch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_bridge_state_key_is_unique_per_callback_set() -> None:
    a = to_lightning([Counter("a")])[0]
    b = to_lightning([Counter("a"), Counter("b")])[0]
    assert a.state_key == "callbridge[Counter]"
    assert b.state_key == "callbridge[Counter, Counter[1]]"
    assert isinstance(L.Trainer, type)


class EpochMetrics(Callback):
    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []
        self.evaluated: list[bool] = []

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self.seen.append(dict(ctx.metrics))
        self.evaluated.append(ctx.evaluated)


class ScoresAtEpochEnd(ToyRegression):
    """Logs ``train_score`` in its own on_train_epoch_end, as torchmetrics users often do."""

    def on_train_epoch_end(self) -> None:
        self.log("train_score", float(10 * self.current_epoch))


def test_epoch_end_sees_this_epochs_values_only() -> None:
    recorder = EpochMetrics()
    trainer = make_trainer(
        to_lightning(recorder), max_epochs=4, limit_train_batches=1, limit_val_batches=1, check_val_every_n_epoch=2
    )
    model = ScoresAtEpochEnd()
    trainer.test(model, verbose=False)  # an earlier entry point's metrics must not leak into fit's
    trainer.fit(model)
    # Logged in the module's own on_train_epoch_end: visible in the same epoch's on_epoch_end.
    assert [m["train_score"] for m in recorder.seen] == [0.0, 10.0, 20.0, 30.0]
    assert all("test_loss" not in m for m in recorder.seen)
    assert recorder.evaluated == [False, True, False, True]


def test_a_raising_on_exception_neither_hides_the_error_nor_silences_later_callbacks() -> None:
    class Raises(Callback):
        def on_exception(self, ctx: CallbackContext) -> None:
            raise ValueError("cleanup failed")

    class Later(Callback):
        priority = 200
        seen: BaseException | None = None

        def on_exception(self, ctx: CallbackContext) -> None:
            self.seen = ctx.exception

    later = Later()
    with (
        pytest.warns(RuntimeWarning, match=r"Raises\.on_exception raised ValueError: cleanup failed"),
        pytest.raises(RuntimeError, match="training failed"),
    ):
        make_trainer(to_lightning([Raises(), later]), limit_val_batches=0).fit(ToyRegression(fail_at_step=0))
    assert isinstance(later.seen, RuntimeError)


def test_on_log_cadence_follows_lightning_and_zero_disables_it() -> None:
    class Logs(Callback):
        def __init__(self) -> None:
            self.steps: list[int] = []

        def on_log(self, ctx: CallbackContext) -> None:
            if ctx.is_training:
                self.steps.append(ctx.step)

    every_two, never = Logs(), Logs()
    make_trainer(to_lightning(every_two), max_epochs=1, limit_val_batches=0, log_every_n_steps=2).fit(
        ToyRegression(n=96, batch_size=16)
    )
    make_trainer(to_lightning(never), max_epochs=1, limit_val_batches=0, log_every_n_steps=0).fit(ToyRegression())
    assert every_two.steps == [2, 4, 6, 6]  # steps 2, 4, 6 at the cadence, then once after the epoch
    assert never.steps == [4]  # only after the epoch (4 steps)


def test_callback_list_rank_zero_filter_follows_is_global_zero() -> None:
    class ZeroOnly(Callback):
        rank_zero_only = True
        calls = 0

        def on_epoch_end(self, ctx: CallbackContext) -> None:
            self.calls += 1

    callback = ZeroOnly()
    callbacks = CallbackList([callback])
    callbacks.is_global_zero = False
    callbacks.on_epoch_end(CallbackContext())
    assert callback.calls == 0
