"""Keras-style callbacks under any engine that drives unified callbacks (a Lightning Trainer, through the bridge).

[`KerasAdapter`][KerasAdapter] is one unified [`Callback`][callbridge.callbacks.base.Callback] that runs every
Keras-style callback of a [`to_lightning`][callbridge.adapters.lightning.api.to_lightning] call with what
``keras.Model.fit`` would show them: ``set_model`` and ``set_params`` first, the Keras hooks in Keras' order, one
``logs`` dict of Python floats per hook call shared by all of them, Lightning metric names mapped to Keras names, a real
``History`` run last, and a ``model`` proxy whose Keras variables and writes (``stop_training``,
``optimizer.learning_rate``, ``set_weights``) change the real run. Importing this package sets ``KERAS_BACKEND=torch``
when Keras is not imported yet (see `backend`).

Keras itself is optional: duck-typed classes with Keras hook signatures run without it. Hook mapping, the model
proxy and the known differences are in ``docs/keras.md``.

The modules: ``detect`` (which objects are Keras callbacks), ``keys`` (metric names and logs), ``variables``,
``optimizer`` and ``model`` (the proxy), ``running`` (summary/predict/evaluate), ``adapter``, ``state``
(checkpointed state), ``source`` and ``inspection`` (what ``callbridge inspect`` reports), ``conformance``
(the differential harness behind ``callbridge verify``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from callbridge.adapters.keras.backend import default_to_torch

default_to_torch()

from callbridge.adapters.keras.adapter import KerasAdapter  # noqa: E402
from callbridge.adapters.keras.detect import KERAS_HOOKS, LIBRARY_PACKAGES, is_instance, looks_like  # noqa: E402
from callbridge.adapters.keras.inspection import inspect_problems  # noqa: E402
from callbridge.adapters.keras.keys import default_key  # noqa: E402
from callbridge.adapters.keras.model import KerasModelProxy, KerasProxyError  # noqa: E402
from callbridge.adapters.keras.optimizer import KerasOptimizerProxy  # noqa: E402
from callbridge.adapters.registry import Style, register  # noqa: E402
from callbridge.callbacks import Callback  # noqa: E402

STYLE = "keras"

#: Each hook of this style and the Lightning hook it runs from (``callbridge inspect`` prints it).
HOOK_MAP: dict[str, str] = {
    "set_model": "on_train_start, and again before evaluate and predict (gets a proxy of the LightningModule)",
    "set_params": "on_train_start, and again before evaluate and predict",
    "on_train_begin": "on_train_start",
    "on_train_end": "on_train_end",
    "on_epoch_begin": "on_train_epoch_start",
    "on_epoch_end": "on_train_epoch_end (logs carry val_* keys)",
    "on_train_batch_begin": "on_train_batch_start",
    "on_train_batch_end": "on_train_batch_end (logs: running means over the epoch)",
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


def adapt(objs: Iterable[Any], **options: Any) -> list[Callback]:
    """One [`KerasAdapter`][KerasAdapter] for all Keras-style callbacks of a ``to_lightning`` call."""
    return [KerasAdapter(list(objs), **options)]


def _verify(make: Any, workdir: Any, label: str = "", epochs: int | None = None) -> Any:
    """``callbridge verify`` for Keras: the [`Report`][callbridge.adapters.conformance.Report] of
    ``keras.Model.fit`` against callbridge."""
    from callbridge.adapters.keras.conformance import Script, as_report, verify

    return as_report(label, verify(make, workdir, Script() if epochs is None else Script(epochs=epochs)))


STYLE_RECORD = Style(
    name=STYLE,
    summary="Keras 3 callbacks (keras.callbacks.Callback) and duck-typed Keras-style classes",
    is_instance=is_instance,
    looks_like=looks_like,
    adapt=adapt,
    hook_map=HOOK_MAP,
    options=OPTIONS,
    library_packages=LIBRARY_PACKAGES,
    inspect_problems=inspect_problems,
    extra="keras",
    docs_page="keras.md",
    verify=_verify,
)
register(STYLE_RECORD, replace=True)  # a re-import of this package (doctest collection) replaces its own record

__all__ = [
    "HOOK_MAP",
    "KERAS_HOOKS",
    "OPTIONS",
    "STYLE",
    "KerasAdapter",
    "KerasModelProxy",
    "KerasOptimizerProxy",
    "KerasProxyError",
    "adapt",
    "default_key",
    "inspect_problems",
    "is_instance",
    "looks_like",
]
