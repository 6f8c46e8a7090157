"""[`KerasAdapter`][KerasAdapter]: Keras-style callbacks as one unified callback, with ``keras.Model.fit``'s
semantics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from callbridge.adapters.keras.detect import (
    KERAS_HOOKS,
    is_instance,
    is_keras_callback_list,
    looks_like,
    overrides,
    rejection,
)
from callbridge.adapters.keras.keys import Keys, RunningMeans, batch_size, output_logs, to_numpy
from callbridge.adapters.keras.model import KerasModelProxy
from callbridge.adapters.keras.source import assigned_hooks, stops_outside_epoch_end
from callbridge.adapters.keras.state import apply_state, plain_state, try_setattr
from callbridge.callbacks import Callback, CallbackContext

_TRAIN_BATCH = {"begin": ("on_train_batch_begin", "on_batch_begin"), "end": ("on_train_batch_end", "on_batch_end")}


class _Entry:
    """One wrapped callback: which Keras hooks it may use (known when wrapped) and which it has now."""

    def __init__(self, obj: Any, index: int, internal: bool = False) -> None:
        self.obj = obj
        self.index = index
        self.internal = internal  # the History the adapter adds, as fit does: not part of evaluate/predict
        self.real = is_instance(obj)
        # Hooks overridden now, plus those the class assigns to its instances at run time (looked up when called).
        self.may = frozenset(h for h in KERAS_HOOKS if overrides(obj, h)) | assigned_hooks(type(obj))
        self.stops_early = stops_outside_epoch_end(type(obj))

    def train_batch_method(self, when: str) -> Any:
        """What to call for a training batch, looked up now as Keras' ``CallbackList`` does: a Keras callback's
        ``on_train_batch_*`` (whose base version forwards to ``on_batch_*``, also one assigned at run time); for a
        duck-typed class, ``on_train_batch_*`` or else its alias ``on_batch_*``, once."""
        full, alias = _TRAIN_BATCH[when]
        method = getattr(self.obj, full, None)
        return method if method is not None or self.real else getattr(self.obj, alias, None)

    @property
    def name(self) -> str:
        cls = type(self.obj)
        return f"{cls.__module__}.{cls.__qualname__} (Keras callback #{self.index})"


class KerasAdapter(Callback):
    """Runs Keras-style callbacks (``keras.callbacks.*``, a Keras ``CallbackList``, or duck-typed classes with Keras
    hook signatures) as one unified callback. [`to_lightning`][callbridge.adapters.lightning.api.to_lightning] builds it
    for you.

    As ``keras.Model.fit`` does, a real ``keras.callbacks.History`` runs after them (unless you registered one) and
    is ``model.history``; hooks are looked up when called; training batch logs are running means over the epoch;
    ``model.stop_training`` is honoured where fit checks it. Keras callbacks run on global rank zero only; the
    bridge broadcasts what they change (stop, learning rate, weights). Their counters and best values are saved in
    the Lightning checkpoint (see [`state_dict`][state_dict]).

    Args:
        callbacks: the Keras-style callbacks, in the order Keras would call them.
        key_map: ``{lightning_metric_name: keras_name}`` overriding [`default_key`][default_key]; map a name to None to
            drop it.
        verbose: ``params["verbose"]`` (what ``model.fit(verbose=...)`` would pass: ``"auto"``, 0, 1 or 2).

    Examples:
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
        self, callbacks: Iterable[Any], key_map: Mapping[str, str | None] | None = None, verbose: int | str = "auto"
    ) -> None:
        objects: list[Any] = []
        for obj in callbacks:
            objects.extend(list(obj.callbacks) if is_keras_callback_list(obj) else [obj])
        for index, obj in enumerate(objects):
            rejected = rejection(obj)
            if rejected is not None:
                name, why, instead = rejected
                raise TypeError(
                    f"keras.callbacks.{name} (Keras callback #{index}) cannot run under callbridge: "
                    f"{why}. Use {instead} instead."
                )
            if not (is_instance(obj) or looks_like(obj)):
                raise TypeError(
                    f"KerasAdapter: callback #{index} ({type(obj).__module__}.{type(obj).__qualname__}) is not a "
                    f"Keras-style callback: it needs hooks named like {', '.join(KERAS_HOOKS[:4])} ... with Keras' "
                    "signatures, e.g. on_epoch_end(self, epoch, logs=None)"
                )
        if verbose != "auto" and (not isinstance(verbose, int) or isinstance(verbose, bool)):
            raise TypeError(f"KerasAdapter: verbose must be 'auto' or an int (0, 1 or 2), got {verbose!r}")
        self._entries = [_Entry(obj, i) for i, obj in enumerate(objects)]
        self._history = _new_history(objects)
        if self._history is not None and not any(e.obj is self._history for e in self._entries):
            self._entries.append(_Entry(self._history, len(self._entries), internal=True))
        self._keys = Keys(key_map)
        self.verbose = verbose
        self._ctx: CallbackContext | None = None
        self._current: _Entry | None = None
        self.model = KerasModelProxy(self)
        self._last_epoch_logs: dict[str, Any] = {}
        self._pending_state: dict[str, Any] | None = None
        self._means = RunningMeans()
        self._means_epoch = -1
        self._loss_only = False
        self._eval_means = RunningMeans()
        self._hooks = self._needed_hooks()
        self._batch_entries = {
            when: [e for e in self._entries if e.may.intersection(hooks)] for when, hooks in _TRAIN_BATCH.items()
        }

    @property
    def writes_weights(self) -> bool:
        """Whether a wrapped callback will restore weights (Keras' ``restore_best_weights=True``): such a callback
        runs on rank zero and is refused before training under a strategy that shards the weights."""
        return any(getattr(entry.obj, "restore_best_weights", False) is True for entry in self._entries)

    @property
    def callbacks(self) -> list[Any]:
        """The wrapped Keras-style callbacks, in call order (without the ``History`` the adapter adds)."""
        return [entry.obj for entry in self._entries if not entry.internal]

    def __repr__(self) -> str:
        return f"KerasAdapter([{', '.join(type(cb).__name__ for cb in self.callbacks)}])"

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (``ddp_spawn`` ships callbacks to workers): the run's context is not kept."""
        state = self.__dict__.copy()
        state["_ctx"] = None
        state["_current"] = None
        return state

    # -- what the proxy asks of its host -------------------------------------------------------------
    def context(self) -> CallbackContext:
        """The context of the hook running now."""
        if self._ctx is None:
            raise RuntimeError("the Keras model proxy is used outside a run (no hook has fired yet)")
        return self._ctx

    def who(self) -> str:
        """The callback running now, for messages."""
        return self._current.name if self._current is not None else "a Keras callback"

    def default_history(self) -> Any:
        """The ``History`` that ``model.history`` returns."""
        return self._history

    # -- which unified hooks this adapter listens to -------------------------------------------------
    def _may(self, *hooks: str) -> bool:
        return any(entry.may.intersection(hooks) for entry in self._entries)

    def _needed_hooks(self) -> frozenset[str]:
        # on_train_begin / on_epoch_end / on_train_end always: set_model and set_params, model.history and the
        # logs handed to on_train_end. Batch hooks only when a wrapped callback may have a batch hook.
        needed = {"on_train_begin", "on_epoch_end", "on_train_end", "on_evaluate_begin", "on_predict_begin"}
        self._batch_logs = self._may("on_train_batch_end", "on_batch_end")
        pairs = {
            "on_epoch_begin": ("on_epoch_begin",),
            "on_step_begin": ("on_train_batch_begin", "on_batch_begin"),
            "on_step_end": ("on_train_batch_end", "on_batch_end"),
            "on_evaluate_batch_begin": ("on_test_batch_begin",),
            "on_evaluate_batch_end": ("on_test_batch_end",),
            "on_evaluate": ("on_test_end",),
            "on_predict_batch_begin": ("on_predict_batch_begin",),
            "on_predict_batch_end": ("on_predict_batch_end",),
            "on_predict_end": ("on_predict_end",),
        }
        needed.update(hook for hook, keras_hooks in pairs.items() if self._may(*keras_hooks))
        if any(entry.stops_early for entry in self._entries):
            needed.add("on_step_end")  # a stop asked for before a batch takes effect after it, as in fit
        return frozenset(needed)

    def implemented_hooks(self) -> frozenset[str]:
        return self._hooks

    # -- dispatch ------------------------------------------------------------------------------------
    def _invoke(self, entry: _Entry, method: str, args: tuple[Any, ...], logs: dict[str, Any], keyword: bool) -> None:
        self._current = entry
        try:
            hook = getattr(entry.obj, method)
            if keyword:
                hook(*args, logs=logs)
            else:
                hook(*args, logs)
        finally:
            self._current = None

    def _call(self, hook: str, *args: Any, logs: dict[str, Any], keyword: bool = False, fit: bool = True) -> None:
        """Calls ``hook`` on every wrapped callback whose ``hook``, looked up now, does something; one ``logs``."""
        for entry in self._entries:
            if (fit or not entry.internal) and hook in entry.may and overrides(entry.obj, hook):
                self._invoke(entry, hook, args, logs, keyword)

    def _train_batch(self, when: str, batch: int, logs: dict[str, Any]) -> None:
        for entry in self._batch_entries[when]:
            method = entry.train_batch_method(when)
            if method is not None:
                self._current = entry
                try:
                    method(batch, logs=logs)
                finally:
                    self._current = None

    def _any_now(self, *hooks: str) -> bool:
        return any(overrides(entry.obj, hook) for entry in self._entries for hook in hooks if hook in entry.may)

    def _configure(self, params: dict[str, Any], fit: bool) -> None:
        """``set_model`` then ``set_params``, as Keras' ``CallbackList`` does when a fit/evaluate/predict starts."""
        for entry in self._entries:
            if entry.internal and not fit:
                continue
            self._current = entry
            try:
                obj = entry.obj
                if callable(getattr(obj, "set_model", None)):
                    obj.set_model(self.model)
                else:
                    try_setattr(obj, "model", self.model)
                if callable(getattr(obj, "set_params", None)):
                    obj.set_params(params)  # one dict for all, as Keras' CallbackList passes it
                else:
                    try_setattr(obj, "params", params)
            finally:
                self._current = None

    def _params(self, ctx: CallbackContext, kind: str) -> dict[str, Any]:
        epochs = ctx.max_epochs if kind == "fit" else 1
        return {"verbose": self.verbose, "epochs": epochs, "steps": ctx.num_batches}

    def _forward_stop(self, ctx: CallbackContext) -> None:
        if self.model.take_stop_request():
            ctx.should_stop = True

    # -- training ------------------------------------------------------------------------------------
    def on_train_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._last_epoch_logs = {}
        self.model.take_stop_request()  # fit starts with stop_training = False
        self._means_epoch = -1
        self._configure(self._params(ctx, "fit"), fit=True)
        self._call("on_train_begin", logs={})
        if self._pending_state is not None:  # after on_train_begin, which resets Keras callbacks' counters
            self._apply_state(self._pending_state)
            self._pending_state = None

    def on_epoch_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_epoch_begin", ctx.epoch, logs={})

    def on_step_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._train_batch("begin", ctx.batch_idx, {})

    def on_step_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        if self._batch_logs:
            if ctx.epoch != self._means_epoch:
                self._means.reset()
                self._means_epoch = ctx.epoch
                self._loss_only = False
            # Lightning rebuilds its metrics dict on each read: when the first step of an epoch logged nothing per
            # step but the loss, the rest of the epoch takes the loss from what training_step returned.
            values = {} if self._loss_only else self._keys.step_logs(ctx.metrics, "train")
            if ctx.loss is not None:
                self._loss_only = self._loss_only or set(values) <= {"loss"}
                values["loss"] = ctx.loss
            logs = self._means.update(values, batch_size(ctx.batch))
            self._train_batch("end", ctx.batch_idx, logs)
        self._forward_stop(ctx)

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        logs = self._keys.epoch_logs(ctx.metrics, with_validation=ctx.evaluated)
        self._last_epoch_logs = logs  # the same dict: what callbacks add (learning_rate) reaches on_train_end
        self._call("on_epoch_end", ctx.epoch, logs=logs)
        self._forward_stop(ctx)

    def on_train_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_train_end", logs=dict(sorted(self._last_epoch_logs.items())))

    # -- evaluation ----------------------------------------------------------------------------------
    def _eval_kind(self, ctx: CallbackContext) -> str:
        return "test" if ctx.stage == "test" else "val"

    def on_evaluate_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        fit = ctx.stage == "fit"
        if not fit:
            self._configure(self._params(ctx, ctx.stage), fit=False)
        self._eval_means.reset()
        self._call("on_test_begin", logs={}, fit=fit)

    def on_evaluate_batch_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_test_batch_begin", ctx.batch_idx, logs={}, keyword=True, fit=ctx.stage == "fit")

    def on_evaluate_batch_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        if not self._any_now("on_test_batch_end"):
            return
        values = self._keys.step_logs(ctx.metrics, self._eval_kind(ctx))
        values.update(output_logs(ctx.outputs))
        logs = self._eval_means.update(values, batch_size(ctx.batch))
        self._call("on_test_batch_end", ctx.batch_idx, logs=logs, keyword=True, fit=ctx.stage == "fit")

    def on_evaluate(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        logs = self._keys.eval_logs(ctx.metrics, self._eval_kind(ctx))
        self._call("on_test_end", logs=logs, fit=ctx.stage == "fit")

    # -- prediction ----------------------------------------------------------------------------------
    def on_predict_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._configure(self._params(ctx, "predict"), fit=False)
        self._call("on_predict_begin", logs={}, fit=False)

    def on_predict_batch_begin(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_predict_batch_begin", ctx.batch_idx, logs={}, keyword=True, fit=False)

    def on_predict_batch_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        logs = {"outputs": to_numpy(ctx.outputs)}
        self._call("on_predict_batch_end", ctx.batch_idx, logs=logs, keyword=True, fit=False)

    def on_predict_end(self, ctx: CallbackContext) -> None:
        self._ctx = ctx
        self._call("on_predict_end", logs={}, fit=False)

    # -- resumable state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Each wrapped callback's run state, pickle-free: its attributes that hold plain data (numbers, strings,
        lists and dicts of them; numpy arrays become tensors), minus its constructor arguments (configuration).
        ``EarlyStopping``: ``wait``, ``best``, ``best_epoch``, ``stopped_epoch``, ``best_weights``;
        ``ReduceLROnPlateau``: ``wait``, ``best``, ``cooldown_counter``; ``History``: ``history``, ``epoch``."""
        return {_state_key(entry): plain_state(entry.obj) for entry in self._entries}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Kept until the next ``on_train_begin`` and applied right after it (Keras callbacks reset there)."""
        self._pending_state = dict(state_dict)
        self._apply_state(state_dict)

    def _apply_state(self, state_dict: Mapping[str, Any]) -> None:
        for entry in self._entries:
            saved = state_dict.get(_state_key(entry))
            if saved:
                apply_state(entry.obj, saved)


def _state_key(entry: _Entry) -> str:
    return f"{entry.index}:{type(entry.obj).__qualname__}"


def _new_history(objects: list[Any]) -> Any:
    """The History ``model.history`` is: the user's, else a new ``keras.callbacks.History`` (run last, as fit adds
    it), else (Keras not installed) a record with ``history``, ``epoch`` and ``params``."""
    for obj in objects:
        if any(c.__name__ == "History" and c.__module__.startswith("keras") for c in type(obj).__mro__):
            return obj
    from callbridge.adapters.keras.backend import keras_or_none

    keras = keras_or_none()
    return keras.callbacks.History() if keras is not None else _History()


class _History:
    """``model.history`` without Keras installed: what ``keras.callbacks.History`` records."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] | None = None
        self.model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={self.epoch})"
