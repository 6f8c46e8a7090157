"""``model.optimizer`` as a Keras callback sees it: a Keras-shaped view of the run's torch optimizers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from callbridge.adapters.keras.variables import synced_variable

if TYPE_CHECKING:
    from callbridge.adapters.keras.model import KerasModelProxy

#: Keras ``get_config()`` keys and the torch ``param_groups`` entry each comes from, per optimizer family.
_CONFIG_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "SGD": (("momentum", "momentum"), ("nesterov", "nesterov")),
    "Adam": (("beta_1", "betas0"), ("beta_2", "betas1"), ("epsilon", "eps"), ("amsgrad", "amsgrad")),
    "AdamW": (("beta_1", "betas0"), ("beta_2", "betas1"), ("epsilon", "eps"), ("amsgrad", "amsgrad")),
    "RMSprop": (("rho", "alpha"), ("momentum", "momentum"), ("epsilon", "eps"), ("centered", "centered")),
    "Adagrad": (("initial_accumulator_value", "initial_accumulator_value"), ("epsilon", "eps")),
}


class KerasOptimizerProxy:
    """What a Keras callback sees as ``model.optimizer``.

    ``learning_rate`` (alias ``lr``) and ``iterations`` are real Keras variables (float32, int64) that read the
    torch optimizers when read; assigning the learning rate (``optimizer.learning_rate = x`` or
    ``optimizer.learning_rate.assign(x)``) sets every param group of every optimizer of the run, keeping the
    ratios between groups, and rescales the ``base_lrs`` of torch LR schedulers so they continue from the new
    rate. ``get_config()`` answers with Keras' keys. Other attributes fall through to the first torch optimizer.

    Examples:
        >>> import torch
        >>> from callbridge.adapters.keras import KerasAdapter
        >>> from callbridge.callbacks import CallbackContext
        >>> module = torch.nn.Linear(2, 1)
        >>> ctx = CallbackContext(model=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1))
        >>> adapter = KerasAdapter([])
        >>> adapter.on_train_begin(ctx)
        >>> optimizer = adapter.model.optimizer
        >>> float(optimizer.learning_rate), optimizer.get_config()["name"]
        (0.10000000149011612, 'sgd')
        >>> _ = optimizer.learning_rate.assign(0.05)
        >>> ctx.optimizer.param_groups[0]["lr"]
        0.05000000074505806
    """

    def __init__(self, model: KerasModelProxy) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_lr", None)
        object.__setattr__(self, "_iterations", None)

    def _optimizers(self) -> list[Any]:
        ctx = self._model.context()
        return list(getattr(ctx, "optimizers", None) or ([ctx.optimizer] if ctx.optimizer is not None else []))

    def _first(self) -> Any:
        optimizers = self._optimizers()
        return optimizers[0] if optimizers else None

    def _read_lr(self) -> float | None:
        first = self._first()
        return None if first is None else float(first.param_groups[0]["lr"])

    def _write_lr(self, value: Any) -> None:
        rate = float(value)
        ctx = self._model.context()
        old = self._read_lr()
        groups = [group for optimizer in self._optimizers() for group in optimizer.param_groups]
        scale = rate / old if old else None
        previous = [group["lr"] for group in groups]
        ctx.learning_rate = rate  # validates, sets the first optimizer, marks the change for the engine
        for group, before in zip(groups, previous, strict=True):
            group["lr"] = before * scale if scale is not None and before != old else rate
        schedulers = getattr(ctx, "schedulers", None) or ([ctx.scheduler] if ctx.scheduler is not None else [])
        for scheduler in schedulers:
            base = getattr(scheduler, "base_lrs", None)
            if isinstance(base, list) and scale is not None:
                scheduler.base_lrs = [lr * scale for lr in base]

    @property
    def learning_rate(self) -> Any:
        if self._lr is None:
            object.__setattr__(self, "_lr", synced_variable("learning_rate", "float32", self._read_lr, self._write_lr))
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        if callable(value) and not hasattr(value, "numpy"):
            raise TypeError(
                f"{self._model.who()} assigned model.optimizer.learning_rate = {value!r}; only a number is "
                "supported (a Keras LearningRateSchedule object has no torch equivalent: use "
                "keras.callbacks.LearningRateScheduler or a torch lr_scheduler)"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{self._model.who()} assigned model.optimizer.learning_rate = {value!r}; only a number is "
                "supported (a Keras LearningRateSchedule object has no torch equivalent: use "
                "keras.callbacks.LearningRateScheduler or a torch lr_scheduler)"
            ) from None
        self.learning_rate.assign(number)

    lr = learning_rate

    @property
    def iterations(self) -> Any:
        if self._iterations is None:
            variable = synced_variable("iteration", "int64", lambda: int(self._model.context().step), None)
            object.__setattr__(self, "_iterations", variable)
        return self._iterations

    @property
    def name(self) -> str:
        """The torch optimizer's class name in Keras' snake case (``SGD`` -> ``sgd``, ``AdamW`` -> ``adam_w``)."""
        first = self._first()
        if first is None:
            return "optimizer"
        name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", type(first).__name__)
        return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()

    def _family(self) -> str:
        first = self._first()
        return type(first).__name__ if first is not None else ""

    def get_config(self) -> dict[str, Any]:
        """Keras' optimizer config keys, filled from the first torch optimizer's first param group.

        Keras-only settings (clipping, EMA, loss scaling, gradient accumulation) read ``None``/``False`` and
        Keras' defaults; a torch ``weight_decay`` of 0 reads ``None`` as Keras' default does.
        """
        import numpy as np

        first = self._first()
        group = dict(first.param_groups[0]) if first is not None else {}
        betas = group.get("betas") or (None, None)
        group["betas0"], group["betas1"] = betas[0], betas[1]
        decay = group.get("weight_decay")
        config: dict[str, Any] = {
            "name": self.name,
            "learning_rate": float(np.float32(group.get("lr", 0.0))),
            "weight_decay": float(decay) if decay else None,
            "clipnorm": None,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
        }
        for keras_key, torch_key in _CONFIG_KEYS.get(self._family(), ()):
            value = group.get(torch_key)
            config[keras_key] = (
                float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            )
        return config

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # private names (pickle's probes, unset slots) are never forwarded
            raise AttributeError(name)
        first = self._first()
        if hasattr(first, name):
            return getattr(first, name)
        from callbridge.adapters.keras.model import KerasProxyError

        raise KerasProxyError(
            f"{self._model.who()} read model.optimizer.{name}, which the torch optimizer "
            f"({type(first).__name__}) does not have; supported: learning_rate (alias lr), iterations, name, "
            "get_config(), and the torch optimizer's own attributes (param_groups, ...)"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("learning_rate", "lr"):
            type(self).learning_rate.fset(self, value)  # type: ignore[attr-defined]
            return
        from callbridge.adapters.keras.model import KerasProxyError

        raise KerasProxyError(
            f"{self._model.who()} set model.optimizer.{name}; only learning_rate (alias lr) can be assigned"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"_model": self._model, "_lr": None, "_iterations": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return f"KerasOptimizerProxy({self.name})"
