"""Keras-style callbacks under a Lightning Trainer, compared with ``keras.Model.fit`` itself.

Each Keras run is tiny (8 or 64 samples); Lightning runs are grouped in module-scoped fixtures.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from callbridge.adapters import KerasAdapter, to_lightning
from callbridge.adapters.keras import default_key, looks_like
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from toy import ToyRegression, make_trainer

keras = pytest.importorskip("keras")

VAL_SEQUENCE = [1.0, 0.9, 0.95, 0.97, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98]


# -- helpers -----------------------------------------------------------------------------------------
class Recorder(keras.callbacks.Callback):
    """Records every hook with its index and the names and types of its logs."""

    def __init__(self) -> None:
        super().__init__()
        self.trace: list[tuple] = []

    def set_model(self, model):
        super().set_model(model)
        self.trace.append(("set_model",))

    def set_params(self, params):
        super().set_params(params)
        self.trace.append(("set_params", tuple(sorted(params)), params.get("epochs"), params.get("steps")))

    def _record(self, hook, index, logs):
        self.trace.append((hook, index, tuple((k, type(v).__name__) for k, v in sorted((logs or {}).items()))))


def _plain(hook):
    def method(self, logs=None):
        self._record(hook, None, logs)

    return method


def _indexed(hook):
    def method(self, index, logs=None):
        self._record(hook, index, logs)

    return method


for _hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end"):
    setattr(Recorder, _hook, _plain(_hook))
for _hook in (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
):
    setattr(Recorder, _hook, _indexed(_hook))


class Script(keras.callbacks.Callback):
    """Replaces ``val_loss`` in the shared epoch logs by a scripted sequence (runs first, so others see it)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = VAL_SEQUENCE[epoch]


class Probe(keras.callbacks.Callback):
    """Reads the model the way Keras callbacks do."""

    def __init__(self) -> None:
        super().__init__()
        self.lr_begin: list[float] = []
        self.lr_end: list[float] = []
        self.weights: list[list[np.ndarray]] = []
        self.epochs: list[int] = []
        self.logs: list[dict] = []
        self.truthy = None

    def on_train_begin(self, logs=None):
        self.truthy = bool(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self.lr_begin.append(float(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.lr_end.append(float(self.model.optimizer.learning_rate))
        self.weights.append(self.model.get_weights())
        self.logs.append(dict(logs))


def keras_model(lr: float = 0.1):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def keras_data(n: int, nan_batch: int | None = None, batch: int = 8):
    rng = np.random.RandomState(0)
    x = rng.randn(n, 4).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")).astype("float32")
    if nan_batch is not None:
        x[nan_batch * batch : (nan_batch + 1) * batch] = np.nan
    return x, y


def keras_fit(callbacks, epochs, n=8, batch=8, nan_batch=None):
    model = keras_model()
    x, y = keras_data(n, nan_batch, batch)
    model.fit(
        x, y, batch_size=batch, epochs=epochs, validation_data=(x, y), verbose=0, callbacks=callbacks, shuffle=False
    )
    return model


def lightning_fit(callbacks, epochs, n=8, batch=8, **options):
    model = ToyRegression(n=n, batch_size=batch, lr=0.1, nan_at_step=options.pop("nan_at_step", None))
    trainer = make_trainer(to_lightning(callbacks, **options.pop("adapter", {})), max_epochs=epochs, **options)
    trainer.fit(model)
    return trainer, model


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- hook trace: fit with validation, evaluate, predict -------------------------------------------
@pytest.fixture(scope="module")
def traces():
    keras_rec = Recorder()
    model = keras_model()
    x, y = keras_data(64)
    model.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), verbose=0, callbacks=[keras_rec], shuffle=False)
    model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[keras_rec])
    model.predict(x, batch_size=16, verbose=0, callbacks=[keras_rec])

    ours = Recorder()
    module = ToyRegression(n=64, batch_size=16)
    trainer = make_trainer(to_lightning([ours]), max_epochs=2)
    trainer.fit(module)
    trainer.validate(module, verbose=False)
    trainer.predict(module)
    trainer.test(module, verbose=False)
    return keras_rec.trace, ours.trace


def _comparable(trace):
    # Listed difference (docs/keras.md): Keras' on_test_batch_end logs carry running metrics; Lightning computes
    # validation metrics at the end of the pass, so ours carry only what validation_step returned.
    return [(e[0], e[1], ()) if e[0] == "on_test_batch_end" else e for e in trace]


def test_trace_matches_keras_fit_evaluate_predict(traces):
    keras_trace, ours = traces
    n = len(keras_trace)
    assert _comparable(ours[:n]) == _comparable(keras_trace)


def test_trace_logs_are_floats_with_keras_names(traces):
    _, ours = traces
    epoch_ends = [e for e in ours if e[0] == "on_epoch_end"]
    assert epoch_ends[0][2] == (("loss", "float"), ("val_loss", "float"))
    assert next(e for e in ours if e[0] == "on_train_end")[2] == (("loss", "float"), ("val_loss", "float"))
    assert ("on_test_end", None, (("loss", "float"),)) in ours
    assert ("on_train_batch_end", 0, (("loss", "float"),)) in ours


def test_trainer_test_reports_unprefixed_keys(traces):
    _, ours = traces
    tail = ours[ours.index(("on_predict_end", None, ())) + 1 :]
    assert tail[0] == ("set_model",)
    assert tail[1] == ("set_params", ("epochs", "steps", "verbose"), 1, 4)
    assert tail[-1] == ("on_test_end", None, (("loss", "float"),))


def test_sanity_check_is_invisible(traces):
    _, ours = traces  # make_trainer runs 2 sanity-check batches; the trace starts with set_model/on_train_begin
    params = ("set_params", ("epochs", "steps", "verbose"), 2, 4)
    assert ours[:3] == [("set_model",), params, ("on_train_begin", None, ())]


# -- semantics against keras.Model.fit on a scripted val_loss sequence ----------------------------
def _run_one():
    return dict(
        script=Script(),
        es=keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True, start_from_epoch=1),
        rlr=keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5),
        history=keras.callbacks.History(),
        probe=Probe(),
        lam_epochs=[],
    )


def _callbacks_one(run, csv_path):
    lam = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: run["lam_epochs"].append(epoch))
    run["csv"] = csv_path
    return [
        run["script"],
        run["es"],
        run["rlr"],
        keras.callbacks.CSVLogger(str(csv_path)),
        run["history"],
        lam,
        run["probe"],
    ]


@pytest.fixture(scope="module")
def run_one(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras_one")
    k, ours = _run_one(), _run_one()
    k["model"] = keras_fit(_callbacks_one(k, tmp / "keras.csv"), epochs=12)
    trainer, module = lightning_fit(_callbacks_one(ours, tmp / "ours.csv"), epochs=12, limit_val_batches=1)
    ours["trainer"], ours["module"] = trainer, module
    return k, ours


def test_early_stopping_stops_at_the_same_epoch(run_one):
    k, ours = run_one
    assert ours["probe"].epochs == k["probe"].epochs == list(range(8))
    for attr in ("stopped_epoch", "best_epoch", "best", "wait"):
        assert getattr(ours["es"], attr) == getattr(k["es"], attr), attr
    assert ours["trainer"].current_epoch == 8  # Lightning counts the stopped epoch as completed


def test_restore_best_weights_restores_the_best_epoch(run_one):
    k, ours = run_one
    best = ours["es"].best_epoch
    final = [t.detach().numpy() for t in ours["module"].state_dict().values()]
    for got, want in zip(final, ours["probe"].weights[best], strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(k["model"].get_weights(), k["probe"].weights[best], strict=True):
        np.testing.assert_array_equal(got, want)


def test_reduce_lr_on_plateau_reaches_the_same_learning_rates(run_one):
    k, ours = run_one
    assert ours["probe"].lr_end == pytest.approx(k["probe"].lr_end, rel=1e-6)
    assert ours["probe"].lr_begin == pytest.approx(k["probe"].lr_begin, rel=1e-6)
    assert ours["trainer"].optimizers[0].param_groups[0]["lr"] == pytest.approx(ours["probe"].lr_end[-1])
    assert (ours["rlr"].wait, ours["rlr"].cooldown_counter) == (k["rlr"].wait, k["rlr"].cooldown_counter)


def test_logs_dict_is_shared_and_keys_match(run_one):
    k, ours = run_one
    # ReduceLROnPlateau added learning_rate to the one dict; the probe (later) sees it, and Script's val_loss.
    assert [sorted(d) for d in ours["probe"].logs] == [sorted(d) for d in k["probe"].logs]
    assert [d["val_loss"] for d in ours["probe"].logs] == VAL_SEQUENCE[:8]
    assert all(type(v) is float for d in ours["probe"].logs for v in d.values())


def test_csv_logger_history_lambda_match(run_one):
    k, ours = run_one
    ours_rows, keras_rows = read_csv(ours["csv"]), read_csv(k["csv"])
    assert list(ours_rows[0]) == list(keras_rows[0]) == ["epoch", "learning_rate", "loss", "val_loss"]
    for column in ("epoch", "val_loss"):
        assert [r[column] for r in ours_rows] == [r[column] for r in keras_rows]
    assert [float(r["learning_rate"]) for r in ours_rows] == pytest.approx(
        [float(r["learning_rate"]) for r in keras_rows], rel=1e-6
    )
    assert ours["history"].epoch == k["history"].epoch
    assert sorted(ours["history"].history) == sorted(k["history"].history)
    assert ours["history"].history["val_loss"] == k["history"].history["val_loss"]
    assert ours["lam_epochs"] == k["lam_epochs"] == list(range(8))
    assert ours["probe"].truthy is True
    assert ours["probe"].model.history is ours["history"]


# -- second group: baseline, LearningRateScheduler, ModelCheckpoint, ProgbarLogger ---------------
def _run_two(tmp: Path, name: str):
    run = dict(
        script=Script(),
        es=keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, baseline=0.8),
        sched=keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch >= 1 else lr),
        probe=Probe(),
        ckpt=keras.callbacks.ModelCheckpoint(
            str(tmp / f"{name}-{{epoch:02d}}.weights.h5"), save_weights_only=True, monitor="val_loss"
        ),
        full=keras.callbacks.ModelCheckpoint(str(tmp / f"{name}-best.keras"), monitor="val_loss", save_best_only=True),
    )
    run["list"] = [run["script"], run["es"], run["sched"], run["ckpt"], run["full"], run["probe"]]
    return run


@pytest.fixture(scope="module")
def run_two(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras_two")
    k, ours = _run_two(tmp, "keras"), _run_two(tmp, "ours")
    keras_fit(k["list"], epochs=10)
    _trainer, module = lightning_fit(ours["list"], epochs=10, limit_val_batches=1)
    return k, ours, module, tmp


def test_baseline_and_lr_scheduler_match_keras(run_two):
    k, ours, _, _ = run_two
    assert ours["probe"].epochs == k["probe"].epochs
    assert ours["es"].stopped_epoch == k["es"].stopped_epoch > 0
    assert ours["probe"].lr_begin == pytest.approx(k["probe"].lr_begin, rel=1e-6)
    assert ours["probe"].lr_begin[:3] == pytest.approx([0.1, 0.05, 0.025])


def test_model_checkpoint_writes_safetensors_state_dicts(run_two):
    _k, ours, module, tmp = run_two
    from safetensors.torch import load_file

    ours_files = sorted(p.name for p in tmp.glob("ours-*"))
    keras_files = sorted(p.name.replace("keras-", "ours-") for p in tmp.glob("keras-*"))
    assert ours_files == keras_files
    state = load_file(str(tmp / "ours-01.weights.h5"))
    assert sorted(state) == sorted(module.state_dict())
    best = load_file(str(tmp / "ours-best.keras"))
    best_epoch = min(range(len(ours["probe"].epochs)), key=lambda e: VAL_SEQUENCE[e])
    np.testing.assert_array_equal(best["layer.weight"].numpy(), ours["probe"].weights[best_epoch][0])


def test_progbar_logger_prints_keras_progress(capsys):
    lightning_fit([keras.callbacks.ProgbarLogger()], epochs=2, limit_val_batches=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "1/1" in out


# -- TerminateOnNaN: stop after the batch, validation and on_epoch_end still run ------------------
def test_terminate_on_nan_matches_keras_trace():
    keras_rec, ours_rec = Recorder(), Recorder()
    keras_fit([keras.callbacks.TerminateOnNaN(), keras_rec], epochs=3, n=32, nan_batch=2)
    trainer, _ = lightning_fit(
        [keras.callbacks.TerminateOnNaN(), ours_rec], epochs=3, n=32, nan_at_step=2, limit_val_batches=4
    )

    def shape(trace):
        return [(e[0], e[1]) for e in trace if e[0] not in ("set_model", "set_params")]

    assert shape(ours_rec.trace) == shape(keras_rec.trace)
    assert ("on_epoch_end", 0) in shape(ours_rec.trace) and ("on_epoch_begin", 1) not in shape(ours_rec.trace)
    assert trainer.global_step == 3


# -- batch aliases, duck typing, lazy cost -------------------------------------------------------
class OnlyBatchEnd(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("on_batch_end", batch))


class BothBatchEnds(OnlyBatchEnd):
    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("on_train_batch_end", batch))


class DuckBatch:
    def __init__(self):
        self.calls = []

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("on_batch_end", batch, sorted(logs)))


class DuckEpoch:
    def __init__(self):
        self.calls = []

    def set_model(self, model):
        self.model = model

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append((epoch, sorted(logs), self.params["steps"]))
        if epoch == 0:
            self.model.stop_training = True


def test_batch_aliases_fire_once_and_duck_typed_callbacks_run():
    only, both, duck, epoch = OnlyBatchEnd(), BothBatchEnds(), DuckBatch(), DuckEpoch()
    trainer, _ = lightning_fit([only, both, duck, epoch], epochs=3, n=16, limit_val_batches=1)
    assert only.calls == [("on_batch_end", 0), ("on_batch_end", 1)]
    assert both.calls == [("on_train_batch_end", 0), ("on_train_batch_end", 1)]
    assert duck.calls == [("on_batch_end", 0, ["loss"]), ("on_batch_end", 1, ["loss"])]
    assert epoch.calls == [(0, ["loss", "val_loss"], 2)]
    assert trainer.current_epoch == 1


def test_epoch_only_callbacks_do_not_listen_to_batches():
    adapter = KerasAdapter([keras.callbacks.EarlyStopping(), DuckEpoch()])
    assert not adapter.implemented_hooks() & {"on_step_begin", "on_step_end", "on_evaluate_batch_end"}
    assert {"on_step_end"} <= KerasAdapter([keras.callbacks.TerminateOnNaN()]).implemented_hooks()


def test_keras_callback_list_is_unpacked():
    es, rlr = keras.callbacks.EarlyStopping(), keras.callbacks.ReduceLROnPlateau()
    (bridge,) = to_lightning([keras.callbacks.CallbackList([es, rlr])])
    (adapter,) = bridge.callbacks
    assert adapter.callbacks == [es, rlr]
    assert adapter.rank_zero_only


def test_duck_typing_needs_no_keras():
    code = (
        "import sys\n"
        "from callbridge.adapters.keras import looks_like, KerasAdapter\n"
        "class D:\n"
        "    def on_epoch_end(self, epoch, logs=None): pass\n"
        "KerasAdapter([D()])\n"
        "assert looks_like(D()) and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_looks_like_rejects_other_signatures():
    class Hydraish:
        def on_job_end(self, config, job_return): ...

    class WrongSignature:
        def on_epoch_end(self, ctx): ...

    assert not looks_like(Hydraish()) and not looks_like(WrongSignature())


def test_default_key_map():
    assert default_key("train_loss") == ("train", "loss")
    assert default_key("train_loss_epoch") == ("train", "loss")
    assert default_key("train/acc") == ("train", "acc")
    assert default_key("loss") == ("train", "loss")
    assert default_key("val/loss") == ("val", "val_loss")
    assert default_key("val_acc_epoch") == ("val", "val_acc")
    assert default_key("test_loss") == ("test", "loss")


def test_key_map_overrides_names():
    probe = Probe()
    lightning_fit([probe], epochs=1, limit_val_batches=1, adapter={"key_map": {"train_loss": "mse", "val_loss": None}})
    assert sorted(probe.logs[0]) == ["mse"]


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda tmp: keras.callbacks.BackupAndRestore(str(tmp)), "ModelCheckpoint"),
        (lambda tmp: keras.callbacks.SwapEMAWeights(), "WeightAveraging"),
        (lambda tmp: keras.callbacks.TensorBoard(str(tmp)), "TensorBoardLogger"),
    ],
)
def test_callbacks_needing_a_keras_model_are_rejected(make, names, tmp_path):
    with pytest.raises(TypeError, match=names):
        to_lightning([make(tmp_path)])


def test_unsupported_model_attribute_names_callback_and_attribute():
    class ReadsLayers(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.layers  # noqa: B018

    with pytest.raises(AttributeError, match=r"ReadsLayers.*model\.layers.*Supported: stop_training"):
        lightning_fit([ReadsLayers()], epochs=1, limit_val_batches=1)


def test_bad_key_map_and_unknown_option():
    with pytest.raises(TypeError, match="key_map"):
        to_lightning([keras.callbacks.EarlyStopping()], key_map=["loss"])
    with pytest.raises(TypeError, match="unknown option"):
        to_lightning([keras.callbacks.EarlyStopping()], keymap={})


# -- resume: Keras callbacks' state lives in the Lightning checkpoint -----------------------------
def test_resume_stops_at_the_same_epoch(tmp_path):
    def callbacks():
        return [Script(), keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)]

    def fit(cbs, epochs, ckpt_path=None, **extra):
        model = ToyRegression(n=8, batch_size=8)
        trainer = make_trainer(to_lightning(cbs), max_epochs=epochs, limit_val_batches=1, **extra)
        trainer.fit(model, ckpt_path=ckpt_path)
        return trainer

    whole = callbacks()
    full = fit(whole, 12)
    saver = LightningModelCheckpoint(dirpath=tmp_path, save_last=True)
    first = callbacks()
    fit([*first, saver], 6, enable_checkpointing=True)
    assert first[1].wait == 1 and first[1].best == 0.85
    resumed = callbacks()
    again = fit(resumed, 12, ckpt_path=str(tmp_path / "last.ckpt"))
    assert again.current_epoch == full.current_epoch == 8
    assert resumed[1].stopped_epoch == whole[1].stopped_epoch == 7
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "KerasAdapter" in k]
    assert state["KerasAdapter"]["1:EarlyStopping"]["wait"] == 1


# -- DDP (2 processes, gloo): tests/ddp_scenarios/keras.py -----------------------------------------
def test_ddp_keras_callbacks_agree_across_ranks(ddp_results):
    rank0, rank1 = ddp_results("keras_early_stop_lr_csv")
    assert rank0["epoch"] == rank1["epoch"] == 8  # EarlyStopping stopped both ranks after epoch index 7
    assert rank0["global_step"] == rank1["global_step"] == 8
    assert rank0["stopped_epoch"] == 7 and rank1["stopped_epoch"] == 0  # the callbacks ran on rank zero only
    assert (rank0["callback_calls"], rank1["callback_calls"]) == (8, 0)
    assert rank0["lr"] == rank1["lr"] == pytest.approx(0.1 * 0.5**5)  # ReduceLROnPlateau, broadcast
    assert rank0["csv_epochs"] == rank1["csv_epochs"] == [str(e) for e in range(8)]  # one file, written once
    assert rank0["csv_files"] == rank1["csv_files"] == ["log.csv"]
    assert rank0["weights"] == rank1["weights"]  # restore_best_weights, broadcast from rank zero


# -- the model proxy in a plain loop (no trainer) -------------------------------------------------
def test_model_proxy_without_a_trainer(tmp_path):
    from callbridge.callbacks import CallbackContext
    from safetensors.torch import load_file

    class Grab:
        def on_train_begin(self, logs=None):
            pass

    module = torch.nn.Linear(2, 1)
    ctx = CallbackContext(model=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1))
    grab = Grab()
    adapter = KerasAdapter([grab])
    adapter.on_train_begin(ctx)
    model = grab.model
    assert grab.params == {"verbose": 1, "epochs": None, "steps": None}
    assert bool(model) and model.name == "Linear" and model.weight is module.weight  # fall-through
    weights = model.get_weights()
    weights[0][...] = 7.0
    assert not torch.all(module.weight == 7.0)  # copies
    model.set_weights(weights)
    assert torch.all(module.weight == 7.0) and ctx._weights_changed
    with pytest.raises(ValueError, match="1 arrays; the model has 2"):
        model.set_weights(weights[:1])
    assert not hasattr(model.optimizer, "optimizers")  # Keras' own probe
    model.optimizer.learning_rate = 0.25
    assert ctx.optimizer.param_groups[0]["lr"] == 0.25 and float(model.optimizer.lr) == 0.25 and ctx._lr_changed
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        model.optimizer.learning_rate = object()
    model.stop_training = True
    assert ctx.should_stop and model.stop_training
    model.custom = 3
    assert model.custom == 3 and not hasattr(module, "custom")
    model.save_weights(tmp_path / "m.weights.h5")
    assert sorted(load_file(str(tmp_path / "m.weights.h5"))) == ["bias", "weight"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.weights.h5"]  # no temp file left behind


def test_epochs_without_validation_carry_no_val_keys_as_with_validation_freq() -> None:
    class EpochKeys:
        def __init__(self) -> None:
            self.keys: list[list[str]] = []

        def on_epoch_end(self, epoch, logs=None):
            self.keys.append(sorted(logs))

    recorder = EpochKeys()
    trainer = make_trainer(
        to_lightning([recorder]), max_epochs=4, limit_train_batches=1, limit_val_batches=1, check_val_every_n_epoch=2
    )
    trainer.fit(ToyRegression())
    assert ["val_loss" in keys for keys in recorder.keys] == [False, True, False, True]


# -- pickling: ddp_spawn and anything that ships callbacks to workers ------------------------------
def test_bridge_with_keras_callbacks_pickles_and_still_runs(tmp_path):
    import pickle

    path = tmp_path / "log.csv"
    bridge = to_lightning([keras.callbacks.CSVLogger(str(path)), keras.callbacks.EarlyStopping(patience=1)])[0]
    copy = pickle.loads(pickle.dumps(bridge))
    (adapter,) = copy.callbacks
    assert [type(cb).__name__ for cb in adapter.callbacks] == ["CSVLogger", "EarlyStopping"]
    trainer = make_trainer([copy], max_epochs=2, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(ToyRegression(n=8, batch_size=8))
    with open(path, newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    assert adapter.callbacks[1].stopped_epoch == 0 and adapter.model.name == "ToyRegression"
