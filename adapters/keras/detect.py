"""Which objects are Keras-style callbacks, which hooks they have, and which Keras callbacks cannot run here."""

from __future__ import annotations

import functools
import inspect
from typing import Any

#: Keras hooks that take only ``logs``.
PLAIN_HOOKS = ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end")
#: Keras hooks that take an epoch or batch index, then ``logs``.
INDEX_HOOKS = (
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
KERAS_HOOKS: tuple[str, ...] = PLAIN_HOOKS + INDEX_HOOKS
LIBRARY_PACKAGES = ("keras", "tf_keras", "tensorflow")

#: Keras callbacks that need a real Keras model: ``{name: (why, what to use instead)}``.
REJECTED = {
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


def keras_classes(obj: Any) -> list[type]:
    """The classes of ``obj``'s MRO that come from Keras itself."""
    return [c for c in type(obj).__mro__ if c.__module__.split(".")[0] in ("keras", "tf_keras")]


def is_instance(obj: Any) -> bool:
    """``obj`` derives from ``keras.callbacks.Callback`` (checked without importing Keras)."""
    return any(c.__name__ == "Callback" for c in keras_classes(obj))


def is_keras_callback_list(obj: Any) -> bool:
    """``obj`` is a ``keras.callbacks.CallbackList``."""
    return any(c.__name__ == "CallbackList" for c in keras_classes(obj))


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
        if not callable(method) or not _takes_logs(method, hook in INDEX_HOOKS):
            return False
        found = True
    return found


def rejection(obj: Any) -> tuple[str, str, str] | None:
    """``(class name, why, instead)`` when ``obj`` is a Keras callback that needs a real Keras model."""
    for cls in keras_classes(obj):
        if cls.__name__ in REJECTED:
            return (cls.__name__, *REJECTED[cls.__name__])
    return None


def default_hook(obj: Any, hook: str) -> Any:
    """Keras' own no-op ``hook`` of the base class, when ``obj`` is a real Keras callback (else None)."""
    return _default_hook(type(obj), hook)


@functools.lru_cache(maxsize=1024)
def _default_hook(cls: type, hook: str) -> Any:
    for klass in cls.__mro__:
        if klass.__name__ == "Callback" and klass.__module__.split(".")[0] in ("keras", "tf_keras"):
            return getattr(klass, hook, None)
    return None


def overrides(obj: Any, hook: str) -> bool:
    """Whether ``obj``'s ``hook``, looked up now, does something: it exists and is not Keras' base no-op.

    Looked up at each call, as Keras' ``CallbackList`` does, so hooks a callback assigns at run time count
    (``tqdm.keras.TqdmCallback(verbose=2)`` sets ``self.on_batch_end`` in ``on_epoch_begin``).
    """
    method = getattr(obj, hook, None)
    if method is None:
        return False
    base = default_hook(obj, hook)
    return base is None or getattr(method, "__func__", None) is not base
