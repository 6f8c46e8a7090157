"""Lightning metric names -> Keras names, and the ``logs`` dict of each Keras hook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from numpy import float32 as _float32

_TRAIN_PREFIXES = ("train_", "train/", "training_", "training/")
_VAL_PREFIXES = ("val_", "val/", "valid_", "valid/", "validation_", "validation/")
_TEST_PREFIXES = ("test_", "test/")


def default_key(name: str) -> tuple[str, str]:
    """``(kind, keras_name)`` of a Lightning metric name; ``kind`` is ``"train"``, ``"val"`` or ``"test"``.

    ``train_loss``, ``train/loss``, ``train_loss_epoch``, ``loss`` -> ``("train", "loss")``;
    ``val_loss``, ``val/loss``, ``validation_loss`` -> ``("val", "val_loss")``; ``test_acc`` -> ``("test", "acc")``.
    The ``_step`` / ``_epoch`` suffixes Lightning adds for ``on_step=True, on_epoch=True`` are stripped.

    Examples:
        >>> from callbridge.adapters.keras import default_key
        >>> default_key("train/loss_epoch"), default_key("validation_acc"), default_key("test_mae")
        (('train', 'loss'), ('val', 'val_acc'), ('test', 'mae'))
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


class Keys:
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


class RunningMeans:
    """Keras' batch logs: each value's mean over the batches of the current epoch or pass so far, weighted by
    batch size, rounded to float32 as Keras' ``Mean`` metrics hold them.

    Examples:
        >>> from callbridge.adapters.keras.keys import RunningMeans
        >>> means = RunningMeans()
        >>> means.update({"loss": 1.0}, 8), means.update({"loss": 0.5}, 8), means.update({"loss": 0.0}, 16)
        ({'loss': 1.0}, {'loss': 0.75}, {'loss': 0.375})
    """

    def __init__(self) -> None:
        self._sums: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        self._sums = {}

    def update(self, values: Mapping[str, float], weight: float) -> dict[str, float]:
        """Adds this batch's ``values``; returns every running mean, sorted by name."""
        sums = self._sums
        for key, value in values.items():
            total, count = sums.get(key, (0.0, 0.0))
            sums[key] = (total + value * weight, count + weight)
        return {key: float(_float32(t / c)) if c else 0.0 for key, (t, c) in sorted(sums.items())}


def batch_size(batch: Any) -> int:
    """Samples in ``batch``: the length of its first tensor or array (1 when there is none)."""
    stack = [batch]
    while stack:
        item = stack.pop(0)
        shape = getattr(item, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return 1


def output_logs(outputs: Any) -> dict[str, float]:
    """What a validation/test step returned, as Keras batch logs: a scalar is ``loss``, a dict keeps its scalars."""
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


def to_numpy(value: Any) -> Any:
    """Tensors (also inside lists, tuples and dicts) as numpy arrays, as Keras hands predictions to callbacks."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    if isinstance(value, Mapping):
        return {k: to_numpy(v) for k, v in value.items()}
    return value
