"""The multi-device agreement: at fixed sync points every rank takes the same stop, learning-rate and weights
decision, in one small collective, and only where some callback could have acted.

The points and the unified hooks whose effects each one reconciles are `SYNC_GROUPS`; a callback marked
``observes_only`` never acts, so hooks it alone implements add no collective (see ``docs/multi-device.md``).
"""

from __future__ import annotations

from collections.abc import Callable

from callbridge.adapters.lightning.context import LightningContext
from callbridge.callbacks import Callback

#: Each sync point and the unified hooks whose effects (stop, learning rate, weights) it reconciles.
SYNC_GROUPS: dict[str, tuple[str, ...]] = {
    "train_start": ("on_init_end", "on_load", "on_stage_begin", "on_train_begin"),
    "epoch_start": ("on_epoch_begin",),
    "step_end": ("on_step_begin", "on_step_end", "on_log"),
    "evaluate_end": ("on_evaluate_begin", "on_evaluate_batch_begin", "on_evaluate_batch_end", "on_evaluate", "on_log"),
    "epoch_end": ("on_epoch_end", "on_log", "on_save"),
    "train_end": ("on_train_end",),
}


def sync_points(listeners: Callable[[str], tuple[Callback, ...]]) -> dict[str, bool]:
    """For each sync point, whether a callback on any rank may act there (``listeners(hook)``: every rank's
    callbacks at ``hook``)."""
    return {
        point: any(not callback.observes_only for hook in hooks for callback in listeners(hook))
        for point, hooks in SYNC_GROUPS.items()
    }


def agree(ctx: LightningContext, needed: bool) -> None:
    """Apply the callbacks' requests to the run, every rank deciding alike.

    A single process applies its own requests. Several processes (only where ``needed``: some callback could
    have acted since the last sync point; otherwise they decide at the next one) sum ``[stop, lr, weights]``
    flags in one all-reduce: a stop requested on any rank stops every rank; a learning rate or weights changed
    on global rank zero (where rank-zero-only callbacks run) are broadcast from it.
    """
    if ctx.world_size == 1:
        if ctx.take_requests().stop:
            ctx.stop_trainer()
        return
    if not needed:
        return
    requests = ctx.take_requests()
    zero = ctx.is_global_zero
    flags = [float(requests.stop), float(zero and requests.learning_rate), float(zero and requests.weights)]
    stop, learning_rate, weights = (value > 0 for value in ctx.all_reduce_flags(flags))
    if stop:
        ctx.should_stop = True
        ctx.stop_trainer()
    if learning_rate:
        ctx.broadcast_learning_rates()
    if weights:
        ctx.broadcast_weights()
