"""Snapshots of a model's weights that hold whether the weights are whole on each process or sharded.

Under DDP every process holds the whole model, and a snapshot is a copy of ``module.state_dict()``. Under a
sharded strategy (FSDP, FSDP2's ``fully_shard``, tensor parallelism) each process holds a shard, and a
``state_dict()`` copy taken on one process alone is not the model. Snapshots and restores then go through
PyTorch's distributed state-dict API (`torch.distributed.checkpoint.state_dict.get_model_state_dict`
and ``set_model_state_dict``), called on every process: each keeps a copy of its own shard, so a snapshot
costs 1/world_size of the model per process, optionally in host memory (``offload=True``).

Nothing here imports Lightning: the engine says whether the weights are sharded
(`callbridge.callbacks.CallbackContext.weights_sharded`) and callbacks call
[`model_state`][callbridge.callbacks.context.CallbackContext.model_state] / ``load_model_state``.

Examples:
    >>> import torch
    >>> from callbridge.callbacks.weights import restore_weights, snapshot_weights
    >>> model = torch.nn.Linear(2, 1)
    >>> saved = snapshot_weights(model)
    >>> with torch.no_grad():
    ...     _ = model.weight.fill_(0.0)
    >>> restore_weights(model, saved)
    >>> bool(torch.equal(model.weight, saved["weight"]))
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def snapshot_weights(
    module: torch.nn.Module,
    *,
    sharded: bool = False,
    offload: bool = False,
    into: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of ``module``'s weights (its ``state_dict``: parameters and buffers).

    Args:
        module: the model.
        sharded: the weights are sharded across processes; then every process must call this (it is a
            collective) and each keeps its own shard.
        offload: keep the copy in host memory instead of on the model's device.
        into: an earlier snapshot of the same model: its tensors are reused (copied into) where shapes,
            dtypes and devices match, so taking a snapshot at every improvement allocates nothing new.
    """
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=False, cpu_offload=offload))
    else:
        state = module.state_dict()
    if into is not None and into.keys() == state.keys():
        for key, value in state.items():
            kept = into[key]
            if _same_layout(kept, value, offload):
                kept.copy_(value.detach())
            else:
                into[key] = _copy(value, offload)
        return into
    return {key: _copy(value, offload) for key, value in state.items()}


def restore_weights(module: torch.nn.Module, state: Mapping[str, Any], *, sharded: bool = False) -> None:
    """Loads a `snapshot_weights` copy back into ``module`` (every process, when ``sharded``)."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(module, dict(state), options=StateDictOptions(full_state_dict=False))
    else:
        module.load_state_dict(state)


def _copy(value: Any, offload: bool) -> Any:
    if not hasattr(value, "detach"):
        return value
    value = value.detach()
    return value.to("cpu", copy=True) if offload else value.clone()


def _same_layout(kept: Any, value: Any, offload: bool) -> bool:
    return (
        hasattr(kept, "copy_")
        and hasattr(value, "detach")
        and type(kept) is type(value)
        and kept.shape == value.shape
        and kept.dtype == value.dtype
        and (offload or kept.device == value.device)
    )
