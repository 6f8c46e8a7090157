"""Epoch-end ordering without a disguise: with callbridge installed, Lightning's views of its early-stopping
and checkpoint callbacks, and ``ckpt_path="best"``, are exactly what they are without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from callbridge.adapters import to_lightning
from callbridge.adapters.lightning import EpochEndRelay
from callbridge.callbacks import Callback, CallbackContext
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from toy import ToyRegression, make_trainer


class ScoreAtEpochEnd(ToyRegression):
    """Logs ``train_score`` in its own ``on_train_epoch_end`` (a common torchmetrics pattern)."""

    def on_train_epoch_end(self) -> None:
        self.log("train_score", float(10 * self.current_epoch))


class EpochCounter(Callback):
    """Unified: counts epoch ends and keeps what each saw; its count is its checkpointed state."""

    def __init__(self) -> None:
        self.count = 0
        self.scores: list[float] = []

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self.count += 1
        self.scores.append(ctx.metrics["train_score"])

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.count = state_dict["count"]


def views(trainer: L.Trainer) -> dict[str, Any]:
    """What Lightning (and user code) sees of the trainer's monitoring callbacks, as comparable values."""

    def name(cb: Any) -> Any:
        return None if cb is None else (type(cb).__name__, id(cb))

    return {
        "early_stopping_callback": name(trainer.early_stopping_callback),
        "early_stopping_callbacks": [name(cb) for cb in trainer.early_stopping_callbacks],
        "checkpoint_callback": name(trainer.checkpoint_callback),
        "checkpoint_callbacks": [name(cb) for cb in trainer.checkpoint_callbacks],
        "relays": [cb for cb in trainer.callbacks if isinstance(cb, EpochEndRelay)],
    }


class Probe(L.Callback):
    """A plain Lightning callback that records the views at hooks around the epoch end."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append(views(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append(views(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append(views(trainer))  # placed before the bridge: Lightning's first pass, before the relay

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append(views(trainer))


class RecordingCheckpoint(ModelCheckpoint):
    """A user ModelCheckpoint that also records the views in Lightning's monitoring pass (after the relay)."""

    def __init__(self, probe: Probe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.probe.seen.append(views(trainer))
        super().on_train_epoch_end(trainer, pl_module)


def run(tmp_path: Path, *, user: str, bridged: bool) -> tuple[L.Trainer, Probe, list[dict[str, Any]]]:
    probe = Probe()
    callbacks: list[Any] = [probe]
    options: dict[str, Any] = {"default_root_dir": str(tmp_path)}
    if user in ("es", "both"):
        callbacks.append(EarlyStopping(monitor="val_loss", patience=5))
    if user in ("mc", "both"):
        callbacks.append(RecordingCheckpoint(probe, dirpath=tmp_path / "mc", monitor="val_loss", save_top_k=1))
        options["enable_checkpointing"] = True
    if user == "default_mc":
        options["enable_checkpointing"] = True  # Lightning adds its own ModelCheckpoint
    if bridged:
        callbacks += to_lightning([EpochCounter()])
    trainer = make_trainer(callbacks, limit_train_batches=2, limit_val_batches=1, **options)
    before = views(trainer)
    trainer.fit(ScoreAtEpochEnd())
    return trainer, probe, [before, *probe.seen, views(trainer)]


def _ids_to_roles(seen: list[dict[str, Any]], trainer: L.Trainer) -> list[dict[str, Any]]:
    """Object ids replaced by the callback's place in ``trainer.callbacks``: comparable across two trainers."""
    roles = {
        id(cb): f"{type(cb).__name__}#{i}"
        for i, cb in enumerate(c for c in trainer.callbacks if not hasattr(c, "callbacks"))
    }
    return [
        {
            key: (
                value
                if key == "relays"
                else [(n, roles.get(i, i)) for n, i in value]
                if isinstance(value, list)
                else value and (value[0], roles.get(value[1], value[1]))
            )
            for key, value in view.items()
        }
        for view in seen
    ]


@pytest.mark.parametrize("user", ["none", "default_mc", "es", "mc", "both"])
def test_lightning_sees_the_same_monitoring_callbacks_with_and_without_callbridge(tmp_path: Path, user: str) -> None:
    plain_trainer, _, plain = run(tmp_path / "plain", user=user, bridged=False)
    bridged_trainer, _, bridged = run(tmp_path / "bridged", user=user, bridged=True)
    assert _ids_to_roles(bridged, bridged_trainer) == _ids_to_roles(plain, plain_trainer)
    assert all(view["relays"] == [] for view in bridged)
    # and the unified epoch end still ran after the module's own on_train_epoch_end, every epoch
    counter = next(cb for cb in bridged_trainer.callbacks if hasattr(cb, "callbacks")).callbacks[0]
    assert counter.scores == [0.0, 10.0]


@pytest.mark.parametrize("bridged", [False, True])
def test_ckpt_path_best_behaves_as_without_callbridge(tmp_path: Path, bridged: bool) -> None:
    mc = ModelCheckpoint(dirpath=tmp_path / "mc", monitor="val_loss", save_top_k=1)
    extra = to_lightning([EpochCounter()]) if bridged else []
    trainer = make_trainer(
        [mc, *extra], limit_train_batches=2, limit_val_batches=1, enable_checkpointing=True, max_epochs=3
    )
    model = ScoreAtEpochEnd(val_losses=[0.5, 0.2, 0.9])
    trainer.fit(model)
    assert Path(mc.best_model_path).name == "epoch=1-step=4.ckpt"
    trainer.test(model, ckpt_path="best", verbose=False)
    assert trainer.ckpt_path == mc.best_model_path

    without = make_trainer(extra and to_lightning([EpochCounter()]), limit_train_batches=1, limit_val_batches=1)
    without.fit(ScoreAtEpochEnd())
    with pytest.raises(ValueError, match='ckpt_path="best"\\)` is set but `ModelCheckpoint` is not configured'):
        without.test(ScoreAtEpochEnd(), ckpt_path="best", verbose=False)


def test_unified_epoch_end_runs_before_a_model_checkpoint_saves_at_train_epoch_end(tmp_path: Path) -> None:
    counter = EpochCounter()
    mc = ModelCheckpoint(dirpath=tmp_path, save_on_train_epoch_end=True, save_top_k=-1, monitor="train_score")
    trainer = make_trainer(
        [mc, *to_lightning([counter])], limit_train_batches=1, limit_val_batches=0, enable_checkpointing=True
    )
    trainer.fit(ScoreAtEpochEnd())
    for epoch in (0, 1):
        (path,) = tmp_path.glob(f"epoch={epoch}-*.ckpt")
        states = torch.load(path, weights_only=False)["callbacks"]
        (bridge_state,) = [value for key, value in states.items() if key.startswith("callbridge[")]
        assert bridge_state["EpochCounter"] == {"count": epoch + 1}  # this epoch's on_epoch_end is in it
        assert not any(key.endswith(".epoch_end") for key in states)


class FailsAtEpochEnd(ToyRegression):
    def on_train_epoch_end(self) -> None:
        raise RuntimeError("module epoch end failed")


def test_the_relay_leaves_when_the_module_epoch_end_raises() -> None:
    trainer = make_trainer(to_lightning([EpochCounter()]), limit_train_batches=1, limit_val_batches=0)
    with pytest.raises(RuntimeError, match="module epoch end failed"):
        trainer.fit(FailsAtEpochEnd())
    assert not any(isinstance(cb, EpochEndRelay) for cb in trainer.callbacks)
