"""Keras-style callbacks under any engine that drives unified callbacks (a Lightning Trainer, through the bridge).

[`KerasAdapter`][KerasAdapter] is one unified [`Callback`][callbridge.callbacks.base.Callback] that runs every
Keras-style callback of a [`to_lightning`][callbridge.adapters.lightning.to_lightning] call, with what
``keras.Model.fit`` would show them: ``set_model`` and ``set_params`` first, the Keras hooks in Keras' order, one
``logs`` dict of Python floats per hook call shared by all of them, Lightning metric names mapped to Keras names, and a
``model`` proxy whose writes (``stop_training``, ``optimizer.learning_rate``, ``set_weights``) change the real run.

Keras itself is optional: duck-typed classes with Keras hook signatures run without it. Hook mapping, the model
proxy and the known differences are in ``docs/keras.md``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import os
import tempfile
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from callbridge.adapters.registry import Style, register
from callbridge.callbacks import Callback, CallbackContext

STYLE = "keras"

#: Each hook of this style and the Lightning hook it runs from (``callbridge inspect`` prints it).
#: A value starting with "-" means: no Lightning counterpart (the text says when, if ever, it runs).
HOOK_MAP: dict[str, str] = {
    "set_model": "on_train_start, and again before evaluate and predict (gets a proxy of the LightningModule)",
    "set_params": "on_train_start, and again before evaluate and predict",
    "on_train_begin": "on_train_start",
    "on_train_end": "on_train_end",
    "on_epoch_begin": "on_train_epoch_start",
    "on_epoch_end": "on_train_epoch_end (logs carry val_* keys)",
    "on_train_batch_begin": "on_train_batch_start",
    "on_train_batch_end": "on_train_batch_end",
    "on_batch_begin": "on_train_batch_start (alias of on_train_batch_begin)",
    "on_batch_end": "on_train_batch_end (alias of on_train_batch_end)",
    "on_test_begin": "on_validation_start (inside fit) / on_test_start",
    "on_test_end": "on_validation_end (inside fit) / on_test_end",
    "on_test_batch_begin": "on_validation_batch_start / on_test_batch_start",
    "on_test_batch_end": "on_validation_batch_end / on_test_batch_end",
    "on_predict_begin": "on_predict_start",
    "on_predict_end": "on_predict_end",
    "on_predict_batch_begin": "on_predict_batch_start",
    "on_predict_batch_end": "on_predict_batch_end",
}
OPTIONS = ("key_map", "verbose")

#: Keras hooks that take only ``logs``.
_PLAIN_HOOKS = ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end")
#: Keras hooks that take an epoch or batch index, then ``logs``.
_INDEX_HOOKS = (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_batch_begin",
    "on_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)
KERAS_HOOKS: tuple[str, ...] = _PLAIN_HOOKS + _INDEX_HOOKS

#: Keras callbacks that need a real Keras model, with what to use instead.
_REJECTED = {
    "BackupAndRestore": (
        "it saves and reloads a Keras model and optimizer through Keras' own file formats",
        "Lightning's fault-tolerant resume: lightning.pytorch.callbacks.ModelCheckpoint(save_last=True) and "
        "trainer.fit(model, ckpt_path='last'); Keras callbacks' own state is restored from that checkpoint",
    ),
    "SwapEMAWeights": (
        "it swaps the EMA variables of a Keras optimizer (use_ema=True), which a torch optimizer does not have",
        "lightning.pytorch.callbacks.WeightAveraging (or torch.optim.swa_utils.AveragedModel)",
    ),
    "TensorBoard": (
        "it writes Keras-model graphs, histograms and profiles through TensorFlow's summary API",
        "lightning.pytorch.loggers.TensorBoardLogger (trainer logger) and "
        "lightning.pytorch.callbacks.LearningRateMonitor",
    ),
    "OrbaxCheckpoint": (
        "it checkpoints a JAX/Keras state tree through Orbax",
        "lightning.pytorch.callbacks.ModelCheckpoint",
    ),
}

#: Attributes that a Keras class recomputes in ``on_train_begin`` and that must not be restored over it.
_NOT_STATE = {"CSVLogger": frozenset({"append_header"})}

_TRAIN_PREFIXES = ("train_", "train/", "training_", "training/")
_VAL_PREFIXES = ("val_", "val/", "valid_", "valid/", "validation_", "validation/")
_TEST_PREFIXES = ("test_", "test/")


# -- style detection ---------------------------------------------------------------------------------
def _keras_classes(obj: Any) -> list[type]:
    return [c for c in type(obj).__mro__ if c.__module__.split(".")[0] in ("keras", "tf_keras")]


def is_instance(obj: Any) -> bool:
    """``obj`` derives from ``keras.callbacks.Callback`` (checked without importing Keras)."""
    return any(c.__name__ == "Callback" for c in _keras_classes(obj))


def _is_keras_callback_list(obj: Any) -> bool:
    return any(c.__name__ == "CallbackList" for c in _keras_classes(obj))


def _takes_logs(method: Any, with_index: bool) -> bool:
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    wanted = 2 if with_index else 1
    if len(positional) != wanted or positional[-1].name != "logs":
        return False
    return all(p.default is not p.empty for p in params if p.kind == p.KEYWORD_ONLY)


def looks_like(obj: Any) -> bool:
    """``obj`` has at least one Keras hook with Keras' signature (``on_epoch_end(self, epoch, logs=None)``)."""
    found = False
    for hook in KERAS_HOOKS:
        method = getattr(obj, hook, None)
        if method is None:
            continue
        if not callable(method) or not _takes_logs(method, hook in _INDEX_HOOKS):
            return False
        found = True
    return found


def adapt(objs: Iterable[Any], **options: Any) -> list[Callback]:
    """One [`KerasAdapter`][KerasAdapter] for all Keras-style callbacks of a ``to_lightning`` call."""
    return [KerasAdapter(list(objs), **options)]


# -- Lightning metric names -> Keras names -----------------------------------------------------------
def default_key(name: str) -> tuple[str, str]:
    """``(kind, keras_name)`` of a Lightning metric name; ``kind`` is ``"train"``, ``"val"`` or ``"test"``.

    ``train_loss``, ``train/loss``, ``train_loss_epoch``, ``loss`` -> ``("train", "loss")``;
    ``val_loss``, ``val/loss``, ``validation_loss`` -> ``("val", "val_loss")``; ``test_acc`` -> ``("test", "acc")``.
    The ``_step`` / ``_epoch`` suffixes Lightning adds for ``on_step=True, on_epoch=True`` are stripped.
    """
    base = name
    for suffix in ("_epoch", "_step"):
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    for kind, prefixes in (("train", _TRAIN_PREFIXES), ("val", _VAL_PREFIXES), ("test", _TEST_PREFIXES)):
        for prefix in prefixes:
            if base.startswith(prefix) and len(base) > len(prefix):
                rest = base[len(prefix) :]
                return kind, f"val_{rest}" if kind == "val" else rest
    return "train", base


class _Keys:
    """Splits a metrics dict into the Keras logs of each hook, applying ``key_map`` first."""

    def __init__(self, key_map: Mapping[str, str | None] | None) -> None:
        if key_map is not None and not isinstance(key_map, Mapping):
            raise TypeError(f"KerasAdapter: key_map must be a mapping {{lightning_name: keras_name}}, got {key_map!r}")
        self.key_map = dict(key_map or {})
        for key, value in self.key_map.items():
            if value is not None and not isinstance(value, str):
                raise TypeError(f"KerasAdapter: key_map[{key!r}] must be a Keras metric name (str) or None (drop it)")
        self._cache: dict[str, tuple[str, str, str] | None] = {}

    def classify(self, name: str) -> tuple[str, str, str] | None:
        """``(kind, keras_name, suffix)``, or None for a dropped key."""
        hit = self._cache.get(name, ())
        if hit != ():
            return hit  # type: ignore[return-value]
        suffix = "_step" if name.endswith("_step") else "_epoch" if name.endswith("_epoch") else ""
        mapped = name if name in self.key_map else name[: -len(suffix)] if suffix else None
        if mapped in self.key_map:  # exact name first, then the name without Lightning's _step/_epoch suffix
            target = self.key_map[mapped]
            result = None if target is None else (("val" if target.startswith("val_") else "train"), target, suffix)
        else:
            kind, keras_name = default_key(name)
            result = (kind, keras_name, suffix)
        self._cache[name] = result
        return result

    def epoch_logs(self, metrics: Mapping[str, float], with_validation: bool = True) -> dict[str, float]:
        """Training values (epoch aggregates preferred) plus, when this epoch validated, ``val_*`` values.

        As in Keras with ``validation_freq > 1``, an epoch without validation carries no ``val_*`` keys.
        """
        ranked: dict[str, tuple[int, float]] = {}
        for name, value in metrics.items():
            info = self.classify(name)
            if info is None or info[0] == "test" or info[2] == "_step" or (info[0] == "val" and not with_validation):
                continue
            rank = 2 if info[2] == "_epoch" else 1
            if ranked.get(info[1], (0, 0.0))[0] < rank:
                ranked[info[1]] = (rank, value)
        return {key: ranked[key][1] for key in sorted(ranked)}

    def eval_logs(self, metrics: Mapping[str, float], kind: str) -> dict[str, float]:
        """Results of an evaluation pass with unprefixed keys, as Keras' ``evaluate`` reports them."""
        out: dict[str, tuple[int, float]] = {}
        for name, value in metrics.items():
            info = self.classify(name)
            if info is None or info[0] != kind or info[2] == "_step":
                continue
            key = info[1][4:] if kind == "val" else info[1]
            rank = 2 if info[2] == "_epoch" else 1
            if out.get(key, (0, 0.0))[0] < rank:
                out[key] = (rank, value)
        return {key: out[key][1] for key in sorted(out)}

    def step_logs(self, metrics: Mapping[str, float], kind: str) -> dict[str, float]:
        """Per-batch values (``*_step`` metrics) of ``kind``, unprefixed."""
        out = {}
        for name, value in metrics.items():
            info = self.classify(name)
            if info is not None and info[0] == kind and info[2] == "_step":
                out[info[1][4:] if kind == "val" else info[1]] = value
        return out


# -- the model proxy ---------------------------------------------------------------------------------
class KerasProxyError(AttributeError):
    """A Keras callback used a model attribute the proxy cannot honour.

    An ``AttributeError``, so ``hasattr(self.model, ...)`` probes in Keras' own callbacks still answer False.
    """


_PROXY_ATTRIBUTES = (
    "stop_training",
    "optimizer",
    "get_weights",
    "set_weights",
    "save",
    "save_weights",
    "load_weights",
    "history",
    "name",
)
_MODEL_SUPPORTED = (
    "stop_training, optimizer (.learning_rate, .iterations), get_weights(), set_weights(), save(path), "
    "save_weights(path), load_weights(path), history, name, and any attribute of the LightningModule"
)


class _OptimizerProxy:
    """What a Keras callback sees as ``model.optimizer``: ``learning_rate`` (float, assignable) and ``iterations``."""

    def __init__(self, adapter: KerasAdapter) -> None:
        object.__setattr__(self, "_adapter", adapter)

    @property
    def learning_rate(self) -> float:
        return float(self._adapter._ctx_now().learning_rate)

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        try:
            rate = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{self._adapter._who()} assigned model.optimizer.learning_rate = {value!r}; only a number is "
                "supported (a Keras LearningRateSchedule object has no torch equivalent: use "
                "keras.callbacks.LearningRateScheduler or a torch lr_scheduler)"
            ) from None
        self._adapter._ctx_now().learning_rate = rate

    lr = learning_rate

    @property
    def iterations(self) -> int:
        return int(self._adapter._ctx_now().step)

    @property
    def name(self) -> str:
        return type(self._adapter._ctx_now().optimizer).__name__

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # private names (pickle's probes, an unset _adapter) are never forwarded
            raise AttributeError(name)
        optimizer = self._adapter._ctx_now().optimizer
        if not name.startswith("_") and hasattr(optimizer, name):
            return getattr(optimizer, name)
        raise KerasProxyError(
            f"{self._adapter._who()} read model.optimizer.{name}, which the torch optimizer "
            f"({type(optimizer).__name__}) does not have; supported: learning_rate (alias lr), iterations, name, "
            "and the torch optimizer's own attributes (param_groups, ...)"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("learning_rate", "lr"):
            type(self).learning_rate.fset(self, value)  # type: ignore[attr-defined]
            return
        raise KerasProxyError(
            f"{self._adapter._who()} set model.optimizer.{name}; only learning_rate (alias lr) can be assigned"
        )


class KerasModelProxy:
    """The ``model`` a Keras callback holds: Keras' model API over the LightningModule and the run.

    Always truthy (Keras' ``CallbackList.set_model`` skips a falsy model). New attributes are kept on the proxy.
    """

    def __init__(self, adapter: KerasAdapter) -> None:
        object.__setattr__(self, "_adapter", adapter)
        object.__setattr__(self, "_attrs", {})
        object.__setattr__(self, "_optimizer", _OptimizerProxy(adapter))

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"KerasModelProxy({type(self._module).__name__})"

    @property
    def _module(self) -> Any:
        return self._adapter._ctx_now().model

    # -- the run ---------------------------------------------------------------------------------------
    @property
    def stop_training(self) -> bool:
        return bool(self._adapter._ctx_now().should_stop)

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._adapter._ctx_now().should_stop = bool(value)

    @property
    def optimizer(self) -> _OptimizerProxy | None:
        return None if self._adapter._ctx_now().optimizer is None else self._optimizer

    @property
    def name(self) -> str:
        return self._attrs.get("name", type(self._module).__name__)

    @property
    def history(self) -> Any:
        return self._attrs.get("history", self._adapter._history)

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
                f"{self._adapter._who()} called model.set_weights with {len(weights)} arrays; the model has "
                f"{len(state)} (its get_weights() order: {', '.join(state)})"
            )
        with torch.no_grad():
            for (name, tensor), value in zip(state.items(), weights, strict=True):
                new = torch.as_tensor(value)
                if tuple(new.shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"{self._adapter._who()}: model.set_weights: {name} has shape {tuple(tensor.shape)}, "
                        f"got {tuple(new.shape)}"
                    )
                tensor.copy_(new.to(device=tensor.device, dtype=tensor.dtype))
        self._adapter._ctx_now().mark_weights_changed()

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True, **_: Any) -> None:
        """Write the module's ``state_dict`` in the safetensors format under ``filepath`` (atomically)."""
        _write_state(self._module, filepath, overwrite)

    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True, **_: Any) -> None:
        """Same file as `save_weights`: there is no Keras model to serialise; see ``docs/keras.md``."""
        _write_state(self._module, filepath, overwrite)

    def load_weights(self, filepath: str | os.PathLike[str], **_: Any) -> None:
        """Load a file written by `save_weights` / `save`."""
        from safetensors.torch import load_file

        state = load_file(os.fspath(filepath))
        self._module.load_state_dict(state)
        self._adapter._ctx_now().mark_weights_changed()

    # -- everything else -------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_adapter", "_attrs", "_optimizer"):
            raise AttributeError(name)  # pickle's probes and the proxy's own slots before they are set: not forwarded
        attrs = self.__dict__.get("_attrs", {})
        if name in attrs:
            return attrs[name]
        module = self._module
        if not name.startswith("__") and hasattr(module, name):
            return getattr(module, name)
        raise KerasProxyError(
            f"{self._adapter._who()} read model.{name}: the model a Keras callback holds under callbridge is a "
            f"proxy over the {type(module).__name__} (a LightningModule), which has no {name!r}. "
            f"Supported: {_MODEL_SUPPORTED}."
        )

    def __setattr__(self, name: str, value: Any) -> None:
        prop = getattr(type(self), name, None)
        if isinstance(prop, property) and prop.fset is not None:
            prop.fset(self, value)
        elif name == "optimizer":
            raise KerasProxyError(
                f"{self._adapter._who()} replaced model.optimizer; the optimizer belongs to the LightningModule "
                "(configure_optimizers). Assign model.optimizer.learning_rate instead."
            )
        else:
            self._attrs[name] = value


def _write_state(module: Any, filepath: str | os.PathLike[str], overwrite: bool) -> None:
    from safetensors.torch import save_file

    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in module.state_dict().items()}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "written_by": "callbridge.adapters.keras"})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class _History:
    """``model.history`` when no Keras ``History`` callback is registered (Keras' fit always adds one)."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"History(epochs={self.epoch})"


# -- the adapter -------------------------------------------------------------------------------------
class _Entry:
    """One wrapped callback and which Keras hooks it overrides."""

    def __init__(self, obj: Any, index: int) -> None:
        self.obj = obj
        self.index = index
        self.real = is_instance(obj)
        self.hooks = frozenset(h for h in KERAS_HOOKS if self._overrides(h))
        # What the engine calls for a training batch: Keras calls on_train_batch_*, whose base version forwards to
        # on_batch_*; a duck-typed class that only has on_batch_* gets that alias, once.
        self.train_batch: dict[str, str | None] = {}
        for when in ("begin", "end"):
            full, alias = f"on_train_batch_{when}", f"on_batch_{when}"
            if full in self.hooks or (self.real and alias in self.hooks):
                self.train_batch[when] = full
            elif alias in self.hooks:
                self.train_batch[when] = alias
            else:
                self.train_batch[when] = None

    def _overrides(self, hook: str) -> bool:
        method = getattr(self.obj, hook, None)
        if method is None:
            return False
        return not (self.real and getattr(method, "_is_default", False))

    @property
    def name(self) -> str:
        cls = type(self.obj)
        return f"{cls.__module__}.{cls.__qualname__} (Keras callback #{self.index})"


class KerasAdapter(Callback):
    """Runs Keras-style callbacks (``keras.callbacks.*``, a Keras ``CallbackList``, or duck-typed classes with Keras
    hook signatures) as one unified callback. [`to_lightning`][callbridge.adapters.lightning.to_lightning] builds it for
    you.

    Keras callbacks run on global rank zero only; the bridge broadcasts what they change (stop, learning rate,
    weights). Their counters and best values are saved in the Lightning checkpoint (see [`state_dict`][state_dict]).

    Args:
        callbacks: the Keras-style callbacks, in the order Keras would call them.
        key_map: ``{lightning_metric_name: keras_name}`` overriding [`default_key`][default_key]; map a name to None to
            drop it.
        verbose: ``params["verbose"]`` (what ``model.fit(verbose=...)`` would pass; used by ``ProgbarLogger``).

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters import to_lightning
        >>> class PrintLoss:  # duck-typed: Keras signatures, no Keras import
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         print(epoch, sorted(logs))
        >>> callbacks = to_lightning([PrintLoss()], key_map={"my_metric": "acc"})
        >>> [type(cb).__name__ for cb in callbacks]
        ['LightningBridge']
    """

    rank_zero_only = True
    priority = 100

    def __init__(
        self, callbacks: Iterable[Any], key_map: Mapping[str, str | None] | None = None, verbose: int = 1
    ) -> None:
        objects: list[Any] = []
        for obj in callbacks:
            objects.extend(list(obj.callbacks) if _is_keras_callback_list(obj) else [obj])
        for index, obj in enumerate(objects):
            for cls in _keras_classes(obj):
                if cls.__name__ in _REJECTED:
                    why, instead = _REJECTED[cls.__name__]
                    raise TypeError(
                        f"keras.callbacks.{cls.__name__} (Keras callback #{index}) cannot run under callbridge: "
                        f"{why}. Use {instead} instead."
                    )
            if not (is_instance(obj) or looks_like(obj)):
                raise TypeError(
                    f"KerasAdapter: callback #{index} ({type(obj).__module__}.{type(obj).__qualname__}) is not a "
                    f"Keras-style callback: it needs hooks named like {', '.join(KERAS_HOOKS[:4])} ... with Keras' "
                    "signatures, e.g. on_epoch_end(self, epoch, logs=None)"
                )
        if not isinstance(verbose, int) or isinstance(verbose, bool):
            raise TypeError(f"KerasAdapter: verbose must be an int (0, 1 or 2), got {verbose!r}")
        self._entries = [_Entry(obj, i) for i, obj in enumerate(objects)]
        self._keys = _Keys(key_map)
        self.verbose = verbose
        self._ctx: CallbackContext | None = None
        self._current: _Entry | None = None
        self.model = KerasModelProxy(self)
        self._history = _History()
        self._last_epoch_logs: dict[str, float] = {}
        self._pending_state: dict[str, Any] | None = None
        self._hooks = self._needed_hooks()

    @property
    def callbacks(self) -> list[Any]:
        """The wrapped Keras-style callbacks, in call order."""
        return [entry.obj for entry in self._entries]

    def __repr__(self) -> str:
        return f"KerasAdapter([{', '.join(type(e.obj).__name__ for e in self._entries)}])"

    # -- plumbing ------------------------------------------------------------------------------------
    def _ctx_now(self) -> CallbackContext:
        if self._ctx is None:
            raise RuntimeError("the Keras model proxy is used outside a run (no hook has fired yet)")
        return self._ctx

    def _who(self) -> str:
        return self._current.name if self._current is not None else "a Keras callback"

    def _any(self, *hooks: str) -> bool:
        return any(entry.hooks.intersection(hooks) for entry in self._entries)

    def _needed_hooks(self) -> frozenset[str]:
        # on_train_begin / on_epoch_end / on_train_end always: set_model and set_params, model.history and the
        # logs handed to on_train_end. Batch hooks only when a wrapped callback has a batch hook.
        needed = {"on_train_begin", "on_epoch_end", "on_train_end", "on_evaluate_begin", "on_predict_begin"}
        if self._any("on_epoch_begin"):
            needed.add("on_epoch_begin")
        if any(entry.train_batch["begin"] for entry in self._entries):
            needed.add("on_step_begin")
        if any(entry.train_batch["end"] for entry in self._entries):
            needed.add("on_step_end")
        if self._any("on_test_batch_begin"):
            needed.add("on_evaluate_batch_begin")
        if self._any("on_test_batch_end"):
            needed.add("on_evaluate_batch_end")
        if self._any("on_test_end"):
            needed.add("on_evaluate")
        if self._any("on_predict_batch_begin"):
            needed.add("on_predict_batch_begin")
        if self._any("on_predict_batch_end"):
            needed.add("on_predict_batch_end")
        if self._any("on_predict_end"):
            needed.add("on_predict_end")
        return frozenset(needed)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (``ddp_spawn`` ships callbacks to workers): the run's context is not kept."""
        state = self.__dict__.copy()
        state["_ctx"] = None
        state["_current"] = None
        return state

    def implemented_hooks(self) -> frozenset[str]:
        return self._hooks

    def _call(self, hook: str, *args: Any, logs: dict[str, Any], keyword: bool = False) -> None:
        """Calls ``hook`` on every wrapped callback that overrides it, all with the same ``logs`` dict."""
        for entry in self._entries:
            if hook in entry.hooks:
                self._invoke(entry, hook, args, logs, keyword)

    def _invoke(self, entry: _Entry, hook: str, args: tuple[Any, ...], logs: dict[str, Any], keyword: bool) -> None:
        self._current = entry
        try:
            method = getattr(entry.obj, hook)
            if keyword:
                method(*args, logs=logs)
            else:
                method(*args, logs)
        finally:
            self._current = None

    def _call_train_batch(self, when: str, batch: int, logs: dict[str, Any]) -> None:
        for entry in self._entries:
            hook = entry.train_batch[when]
            if hook is not None:
                self._invoke(entry, hook, (batch,), logs, keyword=True)

    def _configure(self, params: dict[str, Any]) -> None:
        """``set_model`` then ``set_params``, as Keras' ``CallbackList`` does when a fit/evaluate/predict starts."""
        for entry in self._entries:
            self._current = entry
            try:
                obj = entry.obj
                if callable(getattr(obj, "set_model", None)):
                    obj.set_model(self.model)
                else:
                    _try_setattr(obj, "model", self.model)
                if callable(getattr(obj, "set_params", None)):
                    obj.set_params(params)  # one dict for all, as Keras' CallbackList passes it
                else:
                    _try_setattr(obj, "params", params)
            finally:
                self._current = None

    def _params(self, ctx: CallbackContext, kind: str) -> dict[str, Any]:
        epochs = ctx.max_epochs if kind == "fit" else 1
        return {"verbose": self.verbose, "epochs": epochs, "steps": ctx.num_batches}

    # -- training ------------------------------------------------------------------------------------
    def on_train_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._last_epoch_logs = {}
        self._history = _History()
        params = self._params(ctx, "fit")
        self._history.params = params
        self._configure(params)
        self._call("on_train_begin", logs={})
        if self._pending_state is not None:  # after on_train_begin, which resets Keras callbacks' counters
            self._apply_state(self._pending_state)
            self._pending_state = None

    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_epoch_begin", ctx.epoch, logs={})

    def on_step_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call_train_batch("begin", ctx.batch_idx, {})

    def on_step_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        logs = self._keys.step_logs(ctx.metrics, "train")
        if ctx.loss is not None:
            logs["loss"] = ctx.loss
        self._call_train_batch("end", ctx.batch_idx, dict(sorted(logs.items())))

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        logs = self._keys.epoch_logs(ctx.metrics, with_validation=ctx.evaluated)
        self._last_epoch_logs = dict(logs)
        history = self._history
        history.epoch.append(ctx.epoch)
        for key, value in logs.items():
            history.history.setdefault(key, []).append(value)
        self._call("on_epoch_end", ctx.epoch, logs=logs)

    def on_train_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_train_end", logs=dict(self._last_epoch_logs))

    # -- evaluation ----------------------------------------------------------------------------------
    def _eval_kind(self, ctx: CallbackContext) -> str:
        return "test" if ctx.stage == "test" else "val"

    def on_evaluate_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        if ctx.stage != "fit":
            self._configure(self._params(ctx, ctx.stage))
        self._call("on_test_begin", logs={})

    def on_evaluate_batch_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_test_batch_begin", ctx.batch_idx, logs={}, keyword=True)

    def on_evaluate_batch_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        logs = self._keys.step_logs(ctx.metrics, self._eval_kind(ctx))
        logs.update(_output_logs(ctx.outputs))
        self._call("on_test_batch_end", ctx.batch_idx, logs=dict(sorted(logs.items())), keyword=True)

    def on_evaluate(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_test_end", logs=self._keys.eval_logs(ctx.metrics, self._eval_kind(ctx)))

    # -- prediction ----------------------------------------------------------------------------------
    def on_predict_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._configure(self._params(ctx, "predict"))
        self._call("on_predict_begin", logs={})

    def on_predict_batch_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_predict_batch_begin", ctx.batch_idx, logs={}, keyword=True)

    def on_predict_batch_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_predict_batch_end", ctx.batch_idx, logs={"outputs": _to_numpy(ctx.outputs)}, keyword=True)

    def on_predict_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_predict_end", logs={})

    # -- resumable state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Each wrapped callback's run state, pickle-free: its attributes that hold plain data (numbers, strings,
        lists and dicts of them; numpy arrays become tensors), minus its constructor arguments (configuration).
        ``EarlyStopping``: ``wait``, ``best``, ``best_epoch``, ``stopped_epoch``, ``best_weights``;
        ``ReduceLROnPlateau``: ``wait``, ``best``, ``cooldown_counter``; ``History``: ``history``, ``epoch``."""
        return {_state_key(entry): _plain_state(entry.obj) for entry in self._entries}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Kept until the next ``on_train_begin`` and applied right after it (Keras callbacks reset there)."""
        self._pending_state = dict(state_dict)
        self._apply_state(state_dict)

    def _apply_state(self, state_dict: Mapping[str, Any]) -> None:
        for entry in self._entries:
            saved = state_dict.get(_state_key(entry))
            if not saved:
                continue
            skip = _NOT_STATE.get(type(entry.obj).__name__, frozenset())
            for name, value in saved.items():
                if name not in skip:
                    _try_setattr(entry.obj, name, _from_plain(value))


# -- helpers -----------------------------------------------------------------------------------------
def _try_setattr(obj: Any, name: str, value: Any) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(obj, name, value)


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


def _output_logs(outputs: Any) -> dict[str, float]:
    from callbridge.callbacks.context import as_float

    if outputs is None:
        return {}
    if isinstance(outputs, Mapping):
        out = {}
        for key, value in outputs.items():
            number = as_float(value)
            if number is not None:
                out[str(key)] = number
        return out
    number = as_float(outputs)
    return {} if number is None else {"loss": number}


def _state_key(entry: _Entry) -> str:
    return f"{entry.index}:{type(entry.obj).__qualname__}"


def _init_params(cls: type) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return frozenset()


_NDARRAY = "__ndarray__"
_SKIP = object()


def _to_plain(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 4:
        return _SKIP
    module = type(value).__module__
    if module == "numpy":
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            return value.item()
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            import torch

            return {_NDARRAY: torch.from_numpy(value.copy())}
        return _SKIP
    if isinstance(value, (list, tuple)):
        items = [_to_plain(v, depth + 1) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            plain = _to_plain(item, depth + 1)
            if not isinstance(key, str) or plain is _SKIP:
                return _SKIP
            out[key] = plain
        return out
    return _SKIP


def _from_plain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_NDARRAY}:
            return value[_NDARRAY].numpy().copy()
        return {key: _from_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_plain(item) for item in value]
    return value


def _plain_state(obj: Any) -> dict[str, Any]:
    config = _init_params(type(obj))
    state = {}
    for name, value in vars(obj).items():
        if name in config or name in ("model", "_model", "params") or callable(value):
            continue
        plain = _to_plain(value)
        if plain is not _SKIP:
            state[name] = plain
    return state


__all__ = ["OPTIONS", "STYLE", "KerasAdapter", "KerasModelProxy", "KerasProxyError", "adapt", "default_key"]


# -- what `callbridge inspect` reports ---------------------------------------------------------------
def inspect_problems(cls: type) -> list[str]:
    """What will not work under Lightning for the Keras-style class ``cls``: a Keras callback that needs a
    real Keras model (the same list [`KerasAdapter`][KerasAdapter] rejects), and ``self.model.X`` uses that only
    work when the LightningModule has ``X``."""
    problems = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("keras", "tf_keras") and klass.__name__ in _REJECTED:
            why, instead = _REJECTED[klass.__name__]
            problems.append(f"{klass.__name__} needs a real Keras model ({why}); under Lightning use {instead}")
            break
    for attr in sorted(_model_attributes(cls) - set(_PROXY_ATTRIBUTES)):
        problems.append(
            f"uses self.model.{attr}: the model is a proxy of the LightningModule that provides "
            f"{', '.join(sorted(_PROXY_ATTRIBUTES))}; {attr} works only if your LightningModule has it"
        )
    return problems


def _model_attributes(cls: type) -> set[str]:
    """``X`` in every ``self.model.X`` in the class's own source (not Keras')."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or klass.__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow"):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "model"
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"
            ):
                names.add(node.attr)
    return names


register(
    Style(
        name=STYLE,
        summary="Keras 3 callbacks (keras.callbacks.Callback) and duck-typed Keras-style classes",
        is_instance=is_instance,
        looks_like=looks_like,
        adapt=adapt,
        hook_map=HOOK_MAP,
        options=OPTIONS,
        library_packages=("keras", "tf_keras", "tensorflow"),
        inspect_problems=inspect_problems,
        extra="keras",
        docs_page="keras.md",
    )
)
