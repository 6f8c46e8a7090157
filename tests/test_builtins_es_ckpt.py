"""EarlyStoppingCallback and CheckpointCallback: under a real Lightning Trainer, in a plain loop, and under DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from callbridge.adapters import CallbridgeCheckpointIO, to_lightning
from callbridge.callbacks import (
    Callback,
    CallbackContext,
    CallbackList,
    CheckpointCallback,
    EarlyStoppingCallback,
    serialization,
)
from callbridge.callbacks.serialization import load_checkpoint_file, save_checkpoint_file
from toy import ToyRegression, make_trainer

# val_loss per epoch for the shared run: the best two are epochs 3 and 1, so "keep the newest two"
# and "keep the best two" disagree.
VAL_LOSSES = [1.0, 0.5, 0.7, 0.4, 0.8, 0.9, 0.95, 0.99]


class Scripted(ToyRegression):
    """Logs ``val_loss = val_losses[current_epoch]`` (indexed by epoch, so a resumed run sees the same values);
    Adam, so the checkpoint carries optimizer tensors."""

    def on_validation_epoch_end(self) -> None:
        scripted = self.hparams.val_losses
        if scripted is not None and not self.trainer.sanity_checking:
            self.log("val_loss", float(scripted[min(self.current_epoch, len(scripted) - 1)]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Recorder(Callback):
    """Counts on_save/on_load and remembers the weights at each evaluation inside fit."""

    priority = 10

    def __init__(self) -> None:
        self.saves: list[int] = []
        self.loads: list[int] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_save(self, ctx: CallbackContext) -> None:
        assert isinstance(ctx.checkpoint, dict) and "state_dict" in ctx.checkpoint
        self.saves.append(ctx.step)

    def on_load(self, ctx: CallbackContext) -> None:
        assert isinstance(ctx.checkpoint, dict)
        self.loads.append(ctx.checkpoint["global_step"])

    def on_evaluate(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit":
            self.weights[ctx.epoch] = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_tree(a, b, where="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same_tree(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# -- one Lightning run feeding several tests ---------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lightning")
    recorder = Recorder()
    early = EarlyStoppingCallback(monitor="eval_loss", patience=2, min_delta=0.001, mode="min", restore_best=True)
    ckpt = CheckpointCallback(folder / "ckpt", save_total_limit=2, monitor="val_loss", format="safetensors")
    model = Scripted(val_losses=VAL_LOSSES, lr=0.01)
    trainer = make_trainer(to_lightning([recorder, early, ckpt]), max_epochs=20, limit_val_batches=1)
    trainer.fit(model)
    both = {ext: str(folder / f"final.{ext}") for ext in ("pt", "safetensors")}
    for path in both.values():
        trainer.save_checkpoint(path)
    return {
        "folder": folder,
        "recorder": recorder,
        "early": early,
        "ckpt": ckpt,
        "model": model,
        "trainer": trainer,
        "both": both,
    }


def test_early_stopping_under_lightning(run):
    early, trainer = run["early"], run["trainer"]
    # best 0.4 at epoch 3; epochs 4 and 5 do not improve -> stop after epoch 5 (patience 2)
    assert early.best == pytest.approx(0.4) and early.best_epoch == 3
    assert early.stopped_epoch == 5 and trainer.current_epoch == 6
    assert early.checked_on == "evaluate"  # val_loss is produced by validation


def test_restore_best_weights_under_lightning(run):
    model, recorder = run["model"], run["recorder"]
    assert same_weights(model.state_dict(), recorder.weights[3])
    assert not same_weights(recorder.weights[3], recorder.weights[5])
    snapshot = run["early"].best_weights
    assert all(v.device == p.device for v, p in zip(snapshot.values(), model.state_dict().values(), strict=True))


def test_top_k_keeps_the_best_not_the_newest(run):
    ckpt, folder = run["ckpt"], run["folder"]
    assert [Path(p).name for p in ckpt.kept_paths] == ["epoch=3-step=16.safetensors", "epoch=1-step=8.safetensors"]
    assert ckpt.best_path == ckpt.kept_paths[0] and ckpt.best_score == pytest.approx(0.4)
    assert Path(ckpt.last_path).name == "last.safetensors"
    on_disk = sorted(p.name for p in (folder / "ckpt").iterdir())
    assert on_disk == ["epoch=1-step=8.safetensors", "epoch=3-step=16.safetensors", "last.safetensors"]
    last = load_checkpoint_file(ckpt.last_path)
    assert last["global_step"] == 24 and last["epoch"] == 5


def test_on_save_fires_for_every_save(run):
    # one save per epoch end (a ranked checkpoint, or last only when the value is not in the top 2) + 2 final saves
    assert run["recorder"].saves == [4, 8, 12, 16, 20, 24, 24, 24]


def test_safetensors_holds_the_full_state_without_pickle(run):
    from safetensors import safe_open

    pt = torch.load(run["both"]["pt"], weights_only=False)
    st = load_checkpoint_file(run["both"]["safetensors"])
    assert_same_tree(pt, st)  # everything: model, Adam state, loops, callback states (incl. the ES snapshot)
    assert pt["optimizer_states"][0]["state"]  # Adam moments are in there
    with safe_open(run["both"]["safetensors"], framework="pt") as handle:
        assert "callbridge.structure" in handle.metadata()
        n_tensors = len(list(handle.keys()))
    assert n_tensors >= len(pt["state_dict"]) + 2 * len(pt["state_dict"])  # weights + exp_avg + exp_avg_sq


def test_resume_from_safetensors_fires_on_load_and_never_unpickles(run, monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load was called while resuming from a safetensors checkpoint")

    monkeypatch.setattr(torch, "load", no_pickle)
    recorder = Recorder()
    early = EarlyStoppingCallback(monitor="val_loss", patience=2)
    ckpt = CheckpointCallback(run["folder"] / "resumed", format="safetensors", save_last=False)
    trainer = make_trainer(to_lightning([recorder, early, ckpt]), max_epochs=5, limit_val_batches=1)
    best = run["ckpt"].best_path  # epoch 3, step 16
    trainer.fit(Scripted(val_losses=VAL_LOSSES, lr=0.01), ckpt_path=best)
    assert recorder.loads == [16]
    assert trainer.global_step == 20 and trainer.current_epoch == 5
    assert early.best == pytest.approx(0.4)  # restored best, epoch 4 (0.8) is not an improvement
    assert isinstance(trainer.strategy.checkpoint_io, CallbridgeCheckpointIO)


# -- resume equivalence ------------------------------------------------------------------------------
RESUME_LOSSES = [1.0, 0.9, 0.8, 0.85, 0.95, 0.7, 0.75, 0.8, 0.9, 0.99, 0.99, 0.99]


def _resume_fit(folder: Path, *, fail_at_step=None, ckpt_path=None):
    early = EarlyStoppingCallback(monitor="val_loss", patience=3)
    ckpt = CheckpointCallback(folder, format="pt")
    torch.manual_seed(0)  # the same initial weights in every run
    model = Scripted(val_losses=RESUME_LOSSES, lr=0.01, fail_at_step=fail_at_step)
    trainer = make_trainer(to_lightning([early, ckpt]), max_epochs=30, limit_val_batches=1)
    trainer.fit(model, ckpt_path=ckpt_path)
    return trainer, early, model


def test_interrupted_and_resumed_run_stops_at_the_same_epoch(tmp_path):
    full, full_es, full_model = _resume_fit(tmp_path / "full")
    # best 0.7 at epoch 5; 6, 7, 8 do not improve -> stop after epoch 8
    assert full_es.stopped_epoch == 8 and full.current_epoch == 9

    # crash in epoch 7 (steps 28-31): the last checkpoint is epoch 6's, where the counter is already 1
    with pytest.raises(RuntimeError, match="training failed at step 30"):
        _resume_fit(tmp_path / "cut", fail_at_step=30)
    assert load_checkpoint_file(tmp_path / "cut" / "last.pt", weights_only=False)["callbacks"]
    resumed, resumed_es, resumed_model = _resume_fit(tmp_path / "cut", ckpt_path=tmp_path / "cut" / "last.pt")
    assert resumed_es.stopped_epoch == 8 and resumed.current_epoch == 9
    assert (resumed_es.best, resumed_es.best_epoch, resumed_es.wait) == (full_es.best, full_es.best_epoch, full_es.wait)
    # the best-weights snapshot travelled in the checkpoint: both runs end with the same restored weights
    assert same_weights(resumed_model.state_dict(), full_model.state_dict())


# -- monitor names and missing monitors ---------------------------------------------------------------
def test_missing_monitor_is_a_clear_error_listing_logged_keys():
    early = EarlyStoppingCallback(monitor="val_acc")
    trainer = make_trainer(to_lightning([early]), max_epochs=2, limit_val_batches=1)
    with pytest.raises(KeyError, match=r"'val_acc' or 'eval_acc'.*keys logged: train_loss.*val_loss"):
        trainer.fit(ToyRegression())


def test_missing_monitor_with_strict_false_warns_and_trains_on():
    early = EarlyStoppingCallback(monitor="nope", strict=False)
    trainer = make_trainer(to_lightning([early]), max_epochs=2, limit_val_batches=1)
    with pytest.warns(RuntimeWarning, match="'nope' was never logged.*val_loss"):
        trainer.fit(ToyRegression())
    assert trainer.current_epoch == 2 and early.best is None


def test_training_metric_is_checked_at_epoch_end():
    early = EarlyStoppingCallback(monitor="train_loss_epoch", patience=0, mode="max")
    trainer = make_trainer(to_lightning([early]), max_epochs=5, limit_val_batches=1)
    trainer.fit(ToyRegression())
    # the training loss falls, so in "max" mode the first check after the first one stops the run
    assert early.checked_on == "epoch_end" and early.stopped_epoch == 1 and trainer.current_epoch == 2


def test_checkpoint_missing_monitor_lists_keys(tmp_path):
    ckpt = CheckpointCallback(tmp_path, monitor="val_acc")
    trainer = make_trainer(to_lightning([ckpt]), max_epochs=1, limit_val_batches=1)
    with pytest.raises(KeyError, match=r"CheckpointCallback: monitor 'val_acc'.*keys logged:.*val_loss"):
        trainer.fit(ToyRegression())
    assert not list(tmp_path.iterdir())


def test_epochs_without_validation(tmp_path):
    early = EarlyStoppingCallback(monitor="val_loss", patience=1)
    ckpt = CheckpointCallback(tmp_path, monitor="val_loss", save_total_limit=5)
    trainer = make_trainer(to_lightning([early, ckpt]), max_epochs=4, limit_val_batches=1, check_val_every_n_epoch=2)
    with pytest.warns(RuntimeWarning, match="'val_loss' is not logged yet at epoch 0, step 4"):
        trainer.fit(ToyRegression())
    assert early.checked_on == "evaluate" and early._last_checked_epoch == 3  # epochs 1 and 3 were checked
    assert [Path(p).name for p in sorted(ckpt.kept_paths)] == [
        "epoch=1-step=8.pt",
        "epoch=2-step=12.pt",
        "epoch=3-step=16.pt",
    ]
    assert Path(ckpt.last_path).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "batch"}, "strategy must be one of"),
        ({"strategy": "step"}, "needs save_steps"),
        ({"strategy": "step", "save_steps": 0}, "needs save_steps"),
        ({"save_steps": 5}, "applies to strategy='step' only"),
        ({"format": "h5"}, "format must be one of"),
        ({"mode": "best"}, "mode must be one of"),
        ({"save_total_limit": 0}, "save_total_limit must be"),
        ({"monitor": ""}, "monitor must be None or a non-empty"),
    ],
)
def test_checkpoint_argument_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=f"CheckpointCallback: .*{message}"):
        CheckpointCallback(tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "auto"}, "mode must be one of"),
        ({"patience": -1}, "patience must be"),
        ({"min_delta": -0.1}, "min_delta must be"),
        ({"monitor": ""}, "monitor must be"),
        ({"check_on": "batch"}, "check_on must be"),
    ],
)
def test_early_stopping_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=f"EarlyStoppingCallback: {message}"):
        EarlyStoppingCallback(**kwargs)


# -- step strategy, newest-K retention ----------------------------------------------------------------
def test_step_strategy_keeps_the_newest_k(tmp_path):
    ckpt = CheckpointCallback(tmp_path, strategy="step", save_steps=3, save_total_limit=2, save_last=False)
    assert "on_epoch_end" not in ckpt.implemented_hooks()
    trainer = make_trainer(to_lightning([ckpt]), max_epochs=3, limit_val_batches=1)  # 12 steps
    trainer.fit(ToyRegression())
    assert [Path(p).name for p in ckpt.kept_paths] == ["epoch=2-step=9.pt", "epoch=2-step=12.pt"]
    assert ckpt.best_path == ckpt.kept_paths[-1] and ckpt.last_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=2-step=12.pt", "epoch=2-step=9.pt"]
    # a mid-epoch checkpoint resumes mid-epoch
    resumed = make_trainer([], max_epochs=3, limit_val_batches=1)
    resumed.fit(ToyRegression(), ckpt_path=tmp_path / "epoch=2-step=9.pt")
    assert resumed.global_step == 12


# -- a plain PyTorch loop ------------------------------------------------------------------------------
def _plain_loop(folder: Path, fmt: str, losses: list[float]):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
    recorder = Recorder()
    early = EarlyStoppingCallback(monitor="eval_loss", patience=2)
    ckpt = CheckpointCallback(folder, save_total_limit=2, monitor="eval_loss", format=fmt)
    callbacks = CallbackList([recorder, early, ckpt])
    ctx = CallbackContext(model=model, optimizer=optimizer, scheduler=scheduler)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    weights = {}
    callbacks.on_train_begin(ctx)
    for epoch in range(20):
        ctx.epoch = epoch
        for _ in range(2):
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ctx.step += 1
        scheduler.step()
        ctx.metrics = {"eval_loss": losses[epoch]}  # a scripted "evaluation"
        callbacks.on_evaluate(ctx)
        weights[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        callbacks.on_epoch_end(ctx)
        if ctx.should_stop:
            break
    callbacks.on_train_end(ctx)
    return model, early, ckpt, recorder, weights


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_plain_loop(tmp_path, fmt):
    model, early, ckpt, recorder, weights = _plain_loop(tmp_path, fmt, VAL_LOSSES)
    assert early.stopped_epoch == 5 and early.best_epoch == 3
    assert same_weights(model.state_dict(), weights[3])  # restore_best
    assert [Path(p).name for p in ckpt.kept_paths] == [f"epoch=3-step=8.{fmt}", f"epoch=1-step=4.{fmt}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"epoch=3-step=8.{fmt}", f"epoch=1-step=4.{fmt}", f"last.{fmt}"]
    )
    assert recorder.saves == [2, 4, 6, 8, 10, 12]

    # load the best checkpoint into a fresh model/optimizer/scheduler and fresh callbacks
    fresh = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(fresh.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
    recorder2, early2 = Recorder(), EarlyStoppingCallback(monitor="eval_loss", patience=2)
    ctx = CallbackContext(model=fresh, optimizer=optimizer, scheduler=scheduler)
    ctx.callbacks = CallbackList([recorder2, early2])
    checkpoint = ctx.load_checkpoint(ckpt.best_path)
    assert same_weights(fresh.state_dict(), weights[3])
    assert (ctx.epoch, ctx.step, recorder2.loads) == (3, 8, [8])
    assert early2.best == pytest.approx(0.4) and early2.best_epoch == 3
    assert scheduler.last_epoch == 4 and len(checkpoint["optimizer_states"][0]["state"]) == 2


def test_plain_loop_only_rank_zero_writes(tmp_path):
    model = torch.nn.Linear(2, 1)
    ctx = CallbackContext(model=model, is_global_zero=False)
    recorder = Recorder()
    ctx.callbacks = CallbackList([recorder])
    ctx.save_checkpoint(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists() and recorder.saves == [0]  # on_save still fires on every rank


# -- atomic writes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_a_write_failing_midway_leaves_previous_checkpoints_intact(tmp_path, monkeypatch, fmt):
    state = {"state_dict": {"w": torch.arange(6.0)}, "epoch": 1}
    path = tmp_path / f"ckpt.{fmt}"
    save_checkpoint_file(state, path)

    real_replace = os.replace

    def half_written(src, dst):  # the temp file is complete but the process "dies" before the rename
        Path(src).write_bytes(Path(src).read_bytes()[:10])
        raise OSError("disk full")

    monkeypatch.setattr(serialization.os, "replace", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint_file({"state_dict": {"w": torch.zeros(6)}, "epoch": 2}, path)
    monkeypatch.setattr(serialization.os, "replace", real_replace)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    loaded = load_checkpoint_file(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["state_dict"]["w"], torch.arange(6.0))


def test_a_process_killed_mid_save_leaves_previous_checkpoints_loadable(tmp_path):
    """A real SIGKILL while torch.save is streaming the new checkpoint into the temporary file."""
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from callbridge.callbacks.serialization import save_checkpoint_file
        path = {str(tmp_path / "last.pt")!r}
        save_checkpoint_file({{"epoch": 1, "w": torch.ones(1000)}}, path)
        real_save = torch.save
        def dying_save(obj, f, *a, **k):
            with open(f, "wb") as handle:
                handle.write(b"PK\\x03\\x04 partial")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        torch.save = dying_save
        save_checkpoint_file({{"epoch": 2, "w": torch.zeros(1000)}}, path)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    loaded = load_checkpoint_file(tmp_path / "last.pt")
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(1000))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.pt.") and leftovers[0].endswith(".tmp")


def test_safetensors_codec_round_trips_awkward_values(tmp_path):
    shared = torch.arange(4.0)
    from collections import OrderedDict

    state = {
        "odict": OrderedDict([("a", shared), ("b", shared)]),  # shared storage (tied weights)
        3: {"int_keys": {0: torch.tensor(1.5), (1, 2): "tuple key"}},
        "floats": [float("nan"), float("inf"), -0.0, 1e-300],
        "misc": (None, True, "s", torch.Size([2, 3]), torch.float16, torch.device("cpu"), {1, 2}),
        "empty": torch.empty(0, 3),
        "bf16": torch.ones(2, dtype=torch.bfloat16),
    }
    save_checkpoint_file(state, tmp_path / "x.safetensors")
    back = load_checkpoint_file(tmp_path / "x.safetensors")
    assert isinstance(back["odict"], OrderedDict) and torch.equal(back["odict"]["b"], shared)
    assert back[3]["int_keys"][(1, 2)] == "tuple key" and back[3]["int_keys"][0].item() == 1.5
    assert str(back["floats"]) == str(state["floats"])
    assert back["misc"] == (None, True, "s", (2, 3), torch.float16, torch.device("cpu"), {1, 2})
    assert back["empty"].shape == (0, 3) and back["bf16"].dtype == torch.bfloat16
    with pytest.raises(TypeError, match=r"checkpoint\['bad'\] is a builtins.object.*format='pt'"):
        save_checkpoint_file({"bad": object()}, tmp_path / "y.safetensors")
    assert not (tmp_path / "y.safetensors").exists()


# -- DDP -----------------------------------------------------------------------------------------------
def test_ddp_early_stopping_and_checkpoints(ddp_results):
    rank0, rank1 = ddp_results("builtins_es_ckpt")
    assert rank0["stopped_epoch"] == rank1["stopped_epoch"] == 3  # rank zero's values decide, together
    assert rank0["current_epoch"] == rank1["current_epoch"]
    assert rank0["weights"] == rank1["weights"]  # restore_best left identical weights everywhere
    assert rank0["restored_best"] and rank1["restored_best"]
    assert rank0["writes"] > 0 and rank1["writes"] == 0  # only global rank zero wrote
    assert rank0["kept"] == rank1["kept"] and rank0["files"] == sorted(rank0["kept_names"] + ["last.pt"])


def test_atomic_checkpoint_files_get_the_usual_permissions(tmp_path) -> None:
    import os

    import torch
    from callbridge.callbacks import CallbackContext

    model = torch.nn.Linear(2, 1)
    ctx = CallbackContext(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    for name in ("a.pt", "a.safetensors"):
        ctx.save_checkpoint(tmp_path / name)
        umask = os.umask(0)
        os.umask(umask)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
