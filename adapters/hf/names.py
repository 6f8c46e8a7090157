"""Lightning metric names -> the names HF's ``Trainer`` gives the same values (``val_loss`` -> ``eval_loss``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Prefixes that mark a Lightning metric as a validation or a test value.
PREFIXES: dict[str, tuple[str, ...]] = {
    "eval": ("val_", "val/", "valid_", "valid/", "validation_", "validation/"),
    "test": ("test_", "test/"),
}


def check_key_map(key_map: Any) -> dict[str, str | None]:
    """``key_map`` as a dict ``{lightning_name: hf_name or None}``; a ``TypeError`` for anything else."""
    if key_map is None:
        return {}
    if not isinstance(key_map, Mapping):
        raise TypeError(f"HFAdapter: key_map must be a mapping {{lightning_name: hf_name}}, got {key_map!r}")
    for key, value in key_map.items():
        if not isinstance(key, str) or (value is not None and not isinstance(value, str)):
            raise TypeError(
                f"HFAdapter: key_map[{key!r}] = {value!r}: keys are Lightning metric names and values HF names "
                "(str), or None to drop the metric"
            )
    return dict(key_map)


def default_name(name: str, prefix: str) -> str | None:
    """The HF name of Lightning metric ``name`` in a pass whose keys HF prefixes with ``prefix``, or None.

    ``val_loss``, ``val/loss`` and ``val_loss_epoch`` -> ``eval_loss``; ``test/acc`` -> ``test_acc`` (with
    ``prefix="test"``). Per-step variants (``*_step``) and names without the pass's prefix give None.

    Examples:
        >>> default_name("val/loss", "eval"), default_name("val_acc_epoch", "eval"), default_name("train_loss", "eval")
        ('eval_loss', 'eval_acc', None)
    """
    if name.endswith("_step"):
        return None
    base = name[: -len("_epoch")] if name.endswith("_epoch") else name
    for start in PREFIXES[prefix]:
        if base.startswith(start) and len(base) > len(start):
            return f"{prefix}_{base[len(start) :].replace('/', '_')}"
    return None


def evaluation_metrics(metrics: Mapping[str, float], prefix: str, key_map: Mapping[str, str | None]) -> dict[str, Any]:
    """The results of an evaluation pass as HF names them: ``<prefix>_loss`` first, then the others in order.

    ``key_map`` wins over `default_name`: a mapped name is kept when it starts with ``<prefix>_``.

    Examples:
        >>> evaluation_metrics({"train_loss": 0.5, "val_acc": 0.75, "val_loss": 0.25}, "eval", {})
        {'eval_loss': 0.25, 'eval_acc': 0.75}
    """
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        target = key_map[name] if name in key_map else default_name(name, prefix)
        if target is None or not target.startswith(f"{prefix}_"):
            continue
        if target not in out or name.endswith("_epoch"):
            out[target] = value
    loss = f"{prefix}_loss"
    if loss in out:
        out = {loss: out.pop(loss), **out}
    return out


def training_extras(key_map: Mapping[str, str | None]) -> dict[str, str]:
    """The ``key_map`` entries that add a Lightning training metric to HF's training logs (no eval_/test_ name)."""
    return {
        source: target
        for source, target in key_map.items()
        if target is not None and not target.startswith(("eval_", "test_"))
    }
