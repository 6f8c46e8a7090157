"""The scripted run both sides train: the same tiny linear model, data and SGD, whose reported loss and
``mean_absolute_error`` follow a script (so every decision a callback takes is deterministic) while the
gradients are the real mean squared error's (so the weights really train and can be compared)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _default_train() -> list[float]:
    return [1.0, 0.875, 0.75, 0.625, 0.625, 0.5, 0.5, 0.375, 0.375, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.125]


def _default_val() -> list[float]:
    return [1.0, 0.75, 0.875, 0.9375, 0.5, 0.625, 0.6875, 0.71875]


@dataclass(frozen=True)
class Script:
    """What the scripted run reports, per training step (``train_*``) and per epoch's validation (``val_*``).

    All values are dyadic fractions, exact in float32, so means are exact on both sides.

    Examples:
        >>> from callbridge.adapters.keras.conformance import Script
        >>> script = Script(epochs=3)
        >>> script.samples, script.value("val_loss", 1)
        (8, 0.75)
    """

    epochs: int = 5
    steps: int = 2
    batch_size: int = 4
    val_steps: int = 1
    lr: float = 0.0625
    verbose: int | str = 0
    train_loss: list[float] = field(default_factory=_default_train)
    val_loss: list[float] = field(default_factory=_default_val)
    train_mae: list[float] = field(default_factory=lambda: [v / 2 for v in _default_train()])
    val_mae: list[float] = field(default_factory=lambda: [v / 2 for v in _default_val()])

    def __post_init__(self) -> None:
        for name in ("epochs", "steps", "batch_size", "val_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Script.{name} must be an int >= 1, got {value!r}")
        if self.epochs * self.steps > len(self.train_loss) or self.epochs > len(self.val_loss):
            raise ValueError(
                f"Script: {self.epochs} epochs x {self.steps} steps need {self.epochs * self.steps} train values "
                f"and {self.epochs} validation values; the script has {len(self.train_loss)} and {len(self.val_loss)}"
            )

    @property
    def samples(self) -> int:
        return self.steps * self.batch_size

    def value(self, name: str, index: int) -> float:
        """``train_loss``/``train_mae`` at global step ``index``, ``val_*`` after epoch ``index``."""
        values = getattr(self, name)
        return float(values[max(0, min(index, len(values) - 1))])

    def epoch_of(self, steps_done: int) -> int:
        """The epoch whose validation runs after ``steps_done`` training steps (a partial epoch counts)."""
        return max(0, -(-steps_done // self.steps) - 1)

    def data(self) -> dict[str, np.ndarray]:
        """Training, validation and prediction arrays (float32)."""
        rng = np.random.RandomState(0)
        true = np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")
        x = rng.randn(self.samples, 4).astype("float32")
        xv = rng.randn(self.val_steps * self.batch_size, 4).astype("float32")
        return {"x": x, "y": (x @ true).astype("float32"), "x_val": xv, "y_val": (xv @ true).astype("float32")}

    def kernel(self) -> np.ndarray:
        """The initial kernel (4, 1) of the linear model (bias starts at zero)."""
        return np.array([[0.25], [0.5], [-0.25], [0.125]], dtype="float32")


def keras_model(script: Script) -> Any:
    """A compiled ``keras.Model`` (torch backend) that reports the script's values."""
    import keras
    from keras import ops

    class ScriptedKeras(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="scripted")
            self.dense = keras.layers.Dense(1)
            self.mae = keras.metrics.Mean(name="mean_absolute_error")
            self.in_train_step = False

        def call(self, x: Any) -> Any:
            return self.dense(x)

        def _epoch(self) -> int:
            return script.epoch_of(int(self.optimizer.iterations))

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            real = ops.mean(ops.square(y_pred - y))
            if training:
                reported = script.value("train_loss", int(self.optimizer.iterations))
            else:
                reported = script.value("val_loss", self._epoch())
            return real - ops.stop_gradient(real) + reported

        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            if self.in_train_step:
                # compute_metrics runs after the optimizer step: the batch's step is iterations - 1
                self.mae.update_state(script.value("train_mae", int(self.optimizer.iterations) - 1))
            else:
                self.mae.update_state(script.value("val_mae", self._epoch()))
            return self.get_metrics_result()

        def train_step(self, data: Any) -> Any:
            self.in_train_step = True
            try:
                return super().train_step(data)
            finally:
                self.in_train_step = False

    model = ScriptedKeras()
    model.compile(optimizer=keras.optimizers.SGD(script.lr), jit_compile=False)
    model(script.data()["x"][:1])
    model.set_weights([script.kernel(), np.zeros((1,), dtype="float32")])
    return model


def lightning_module(script: Script) -> Any:
    """A LightningModule that logs the same script under Lightning's names (``train_loss``, ``val_loss``, ...)."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    data = script.data()

    class ScriptedLightning(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            with torch.no_grad():
                self.layer.weight.copy_(torch.from_numpy(script.kernel().T.copy()))
                self.layer.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

        def _loss(self, batch: Any, reported: float) -> torch.Tensor:
            x, y = batch
            real = torch.nn.functional.mse_loss(self(x), y)
            return real - real.detach() + reported

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = self._loss(batch, script.value("train_loss", self.global_step))
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            mae = script.value("train_mae", self.global_step)
            self.log("train_mean_absolute_error", mae, on_step=True, on_epoch=True)
            return loss

        def _evaluate(self, batch: Any, prefix: str) -> dict[str, Any]:
            epoch = script.epoch_of(self.global_step)
            loss = self._loss(batch, script.value("val_loss", epoch))
            mae = script.value("val_mae", epoch)
            self.log(f"{prefix}_loss", loss)
            self.log(f"{prefix}_mean_absolute_error", mae)
            return {"loss": loss, "mean_absolute_error": mae}

        def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            return self._evaluate(batch, "val")

        def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            return self._evaluate(batch, "test")

        def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self(batch[0])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=script.lr)

        def train_dataloader(self) -> DataLoader:
            return _loader(data["x"], data["y"])

        def val_dataloader(self) -> DataLoader:
            return _loader(data["x_val"], data["y_val"])

        def test_dataloader(self) -> DataLoader:
            return _loader(data["x_val"], data["y_val"])

        def predict_dataloader(self) -> DataLoader:
            return DataLoader(TensorDataset(torch.from_numpy(data["x_val"])), batch_size=script.batch_size)

    def _loader(x: np.ndarray, y: np.ndarray) -> DataLoader:
        dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        return DataLoader(dataset, batch_size=script.batch_size, shuffle=False)

    return ScriptedLightning()
