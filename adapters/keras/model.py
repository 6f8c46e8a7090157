"""``self.model`` as a Keras callback sees it: Keras' model API over the LightningModule and the run."""

from __future__ import annotations

import os
from typing import Any, Protocol

from callbridge.adapters.keras.optimizer import KerasOptimizerProxy
from callbridge.callbacks import CallbackContext


class KerasProxyError(AttributeError):
    """A Keras callback used a model attribute the proxy cannot honour.

    An ``AttributeError``, so ``hasattr(self.model, ...)`` probes in Keras' own callbacks still answer False.
    """


class ProxyHost(Protocol):
    """What the proxy needs from its adapter."""

    def context(self) -> CallbackContext: ...
    def who(self) -> str: ...
    def default_history(self) -> Any: ...


PROXY_ATTRIBUTES = (
    "stop_training",
    "optimizer",
    "get_weights",
    "set_weights",
    "save",
    "save_weights",
    "load_weights",
    "history",
    "name",
    "summary",
    "predict",
    "evaluate",
    "count_params",
)
_SUPPORTED = (
    "stop_training, optimizer (.learning_rate, .iterations, .get_config()), get_weights(), set_weights(), "
    "save(path), save_weights(path), load_weights(path), summary(), predict(x), evaluate(x, y), count_params(), "
    "history, name, and any attribute of the LightningModule"
)


class KerasModelProxy:
    """The ``model`` a Keras callback holds: Keras' model API over the LightningModule and the run.

    Always truthy (Keras' ``CallbackList.set_model`` skips a falsy model). New attributes are kept on the proxy.
    ``stop_training`` is honoured where ``keras.Model.fit`` checks it: after a training batch and after an epoch;
    a request made in ``on_train_begin`` or ``on_epoch_begin`` still runs one batch and that epoch's validation.

    Examples:
        >>> import torch
        >>> from callbridge.adapters.keras import KerasAdapter
        >>> from callbridge.callbacks import CallbackContext
        >>> module = torch.nn.Linear(2, 1)
        >>> adapter = KerasAdapter([])
        >>> adapter.on_train_begin(CallbackContext(model=module, optimizer=torch.optim.SGD(module.parameters())))
        >>> model = adapter.model
        >>> [w.shape for w in model.get_weights()], model.count_params()
        ([(1, 2), (1,)], 3)
        >>> model.predict(torch.ones(3, 2).numpy(), verbose=0).shape
        (3, 1)
    """

    def __init__(self, host: ProxyHost) -> None:
        object.__setattr__(self, "_host", host)
        object.__setattr__(self, "_attrs", {})
        object.__setattr__(self, "_optimizer", KerasOptimizerProxy(self))
        object.__setattr__(self, "_stop", False)

    def context(self) -> CallbackContext:
        """The run's context (what every read and write goes through)."""
        return self._host.context()

    def who(self) -> str:
        """The callback running now, for messages."""
        return self._host.who()

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"KerasModelProxy({type(self._module).__name__})"

    @property
    def _module(self) -> Any:
        return self._host.context().model

    # -- the run ---------------------------------------------------------------------------------------
    @property
    def stop_training(self) -> bool:
        return bool(self._stop or self._host.context().should_stop)

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        object.__setattr__(self, "_stop", bool(value))

    def take_stop_request(self) -> bool:
        """The stop flag set through this proxy since the last call (the adapter forwards it where Keras checks)."""
        stop = self._stop
        object.__setattr__(self, "_stop", False)
        return stop

    @property
    def optimizer(self) -> KerasOptimizerProxy | None:
        ctx = self._host.context()
        has = getattr(ctx, "optimizers", None) or ctx.optimizer is not None
        return self._optimizer if has else None

    @property
    def name(self) -> str:
        return self._attrs.get("name", type(self._module).__name__)

    @property
    def history(self) -> Any:
        return self._attrs.get("history", self._host.default_history())

    # -- weights ---------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return self._module.state_dict()

    def get_weights(self) -> list[Any]:
        """Copies of every parameter and buffer, as numpy arrays, in ``state_dict`` order."""
        return [t.detach().cpu().numpy().copy() for t in self._state().values()]

    def set_weights(self, weights: list[Any]) -> None:
        """Load arrays returned by `get_weights`; under DDP the bridge broadcasts them from rank zero."""
        import torch

        state = self._state()
        if len(weights) != len(state):
            raise ValueError(
                f"{self.who()} called model.set_weights with {len(weights)} arrays; the model has "
                f"{len(state)} (its get_weights() order: {', '.join(state)})"
            )
        with torch.no_grad():
            for (name, tensor), value in zip(state.items(), weights, strict=True):
                new = torch.as_tensor(value)
                if tuple(new.shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"{self.who()}: model.set_weights: {name} has shape {tuple(tensor.shape)}, "
                        f"got {tuple(new.shape)}"
                    )
                tensor.copy_(new.to(device=tensor.device, dtype=tensor.dtype))
        self._host.context().mark_weights_changed()

    def count_params(self) -> int:
        """Parameters of the module (as Keras counts its weights)."""
        return int(sum(p.numel() for p in self._module.parameters()))

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True, **_: Any) -> None:
        """Write the module's ``state_dict`` in the safetensors format under ``filepath`` (atomically)."""
        _write_state(self._module, filepath, overwrite)

    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True, **_: Any) -> None:
        """Same file as `save_weights`: there is no Keras model to serialise; see ``docs/keras.md``."""
        _write_state(self._module, filepath, overwrite)

    def load_weights(self, filepath: str | os.PathLike[str], **_: Any) -> None:
        """Load a file written by `save_weights` / `save`."""
        from safetensors.torch import load_file

        self._module.load_state_dict(load_file(os.fspath(filepath)))
        self._host.context().mark_weights_changed()

    # -- Keras' model methods that run the module ------------------------------------------------------
    def summary(self, line_length: int | None = None, print_fn: Any = None, **_: Any) -> None:
        """Keras' summary layout (model name, a row per top-level submodule, parameter totals); ``print_fn``
        gets the whole text once, as Keras calls it."""
        from callbridge.adapters.keras.running import summary

        summary(self._module, self.name, print_fn=print_fn, line_length=line_length)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", callbacks: Any = None, **_: Any):
        """The module's outputs on ``x`` (NumPy or tensors) in batches, as a NumPy array: eval mode, no grad,
        the module's original mode restored; ``callbacks`` get Keras' predict hooks (and a progress bar unless
        ``verbose=0``), as in ``keras.Model.predict``."""
        from callbridge.adapters.keras.running import predict

        return predict(self, x, batch_size=batch_size, verbose=verbose, callbacks=callbacks)

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = "auto",
        callbacks: Any = None,
        return_dict: bool = False,
        **_: Any,
    ) -> Any:
        """Runs the module's ``validation_step`` on ``(x, y)`` in batches (eval mode, no grad) and returns what it
        logs (and returns), averaged over the samples, with Keras' names; ``callbacks`` get Keras' test hooks."""
        from callbridge.adapters.keras.running import evaluate

        return evaluate(
            self, x, y, batch_size=batch_size, verbose=verbose, callbacks=callbacks, return_dict=return_dict
        )

    # -- everything else -------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_host", "_attrs", "_optimizer", "_stop"):
            raise AttributeError(name)  # pickle's probes and the proxy's own slots before they are set
        attrs = object.__getattribute__(self, "_attrs")
        if name in attrs:
            return attrs[name]
        module = self._module
        if not name.startswith("__") and hasattr(module, name):
            return getattr(module, name)
        raise KerasProxyError(
            f"{self.who()} read model.{name}: the model a Keras callback holds under callbridge is a "
            f"proxy over the {type(module).__name__} (a LightningModule), which has no {name!r}. "
            f"Supported: {_SUPPORTED}."
        )

    def __setattr__(self, name: str, value: Any) -> None:
        prop = getattr(type(self), name, None)
        if isinstance(prop, property) and prop.fset is not None:
            prop.fset(self, value)
        elif name == "optimizer":
            raise KerasProxyError(
                f"{self.who()} replaced model.optimizer; the optimizer belongs to the LightningModule "
                "(configure_optimizers). Assign model.optimizer.learning_rate instead."
            )
        else:
            self._attrs[name] = value


def _write_state(module: Any, filepath: str | os.PathLike[str], overwrite: bool) -> None:
    from callbridge.callbacks.serialization import atomic_path
    from safetensors.torch import save_file

    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "written_by": "callbridge.adapters.keras"})
