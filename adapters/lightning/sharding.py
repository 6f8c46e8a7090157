"""Strategies that shard the model's weights across processes (FSDP, DeepSpeed, model parallel).

Under such a strategy each process holds a shard: weight snapshots and restores go through torch's distributed
state-dict API on every rank (``ctx.model_state()`` / ``ctx.load_model_state()``, see
`callbridge.callbacks.weights`), and a weight change made on rank zero alone cannot be broadcast. This
module tells which strategies shard, and refuses before training what cannot work.
"""

from __future__ import annotations

import lightning.pytorch as pl
from callbridge.callbacks import Callback

#: Lightning strategies whose processes each hold a shard of the weights.
_SHARDING_STRATEGIES = ("FSDPStrategy", "DeepSpeedStrategy", "ModelParallelStrategy")


def sharding_strategy(trainer: pl.Trainer) -> str | None:
    """The class name of ``trainer``'s strategy when it shards the model's weights across processes, else None."""
    names = {cls.__name__ for cls in type(trainer.strategy).__mro__ if cls.__module__.startswith("lightning.")}
    return next((name for name in _SHARDING_STRATEGIES if name in names), None)


def refuse_rank_zero_weight_writers(trainer: pl.Trainer, callbacks: list[Callback]) -> None:
    """Before training: under a strategy that shards the weights, a callback that writes weights on rank zero
    alone (``rank_zero_only`` and ``writes_weights``) cannot work; say so, naming the strategy and the callback."""
    strategy = sharding_strategy(trainer)
    if strategy is None:
        return
    offenders = [cb for cb in callbacks if cb.rank_zero_only and cb.writes_weights]
    if strategy == "DeepSpeedStrategy":  # torch's distributed state-dict API does not cover DeepSpeed's shards
        offenders = [cb for cb in callbacks if cb.writes_weights]
    if offenders:
        names = ", ".join(repr(cb) for cb in offenders)
        raise ValueError(
            f"{names}: writes the model's weights, but {strategy} shards them across processes and "
            + (
                "callbridge cannot snapshot DeepSpeed's shards; turn the weight restore off (restore_best=False, "
                "Keras' restore_best_weights=False) or use FSDP/ModelParallelStrategy"
                if strategy == "DeepSpeedStrategy"
                else "this callback runs on rank zero only; restore weights from a callback that runs on every "
                "rank (EarlyStoppingCallback(restore_best=True) does), or turn the restore off"
            )
        )
