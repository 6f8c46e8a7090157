"""HF's training-loss logging window: the batch losses since the last log, summed as HF's ``tr_loss`` is.

Examples:
    >>> import torch
    >>> window = LossWindow(nan_filter=True)
    >>> for step, loss in enumerate([1.0, float("nan"), 3.0]):
    ...     window.add(torch.tensor(loss), 1 + step)
    >>> window.drain()  # 1 + 1/2 (the NaN adds the sum so far over its divisor) + 3
    4.5
"""

from __future__ import annotations

import math

import torch

#: Batch losses a window keeps before it sums them into one tensor.
FOLD_AT = 256


def filtered_sum(values: torch.Tensor, divisors: list[int]) -> torch.Tensor:
    """HF's running ``tr_loss`` over ``values`` with ``logging_nan_inf_filter``, without a loop or a host sync.

    HF adds each finite value and, for a NaN/inf one, ``tr_loss / divisor``: ``s_k = a_k s_(k-1) + b_k``, so
    ``s_n = sum_k b_k prod_(j>k) a_j``.

    Examples:
        >>> import torch
        >>> float(filtered_sum(torch.tensor([1.0, float("nan"), 3.0, float("inf")]), [1, 2, 3, 4]))
        5.625
    """
    bad = ~torch.isfinite(values)
    divisor = torch.tensor(divisors, dtype=values.dtype, device=values.device)
    scale = torch.where(bad, 1 + 1 / divisor, torch.ones_like(values))
    added = torch.where(bad, torch.zeros_like(values), values)
    after = torch.cat([torch.flip(torch.cumprod(torch.flip(scale, [0]), 0), [0])[1:], scale.new_ones(1)])
    return (added * after).sum()


class LossWindow:
    """The batch losses of one logging window, kept on their device (no host sync, no math per step) until
    `drain` sums them; with ``nan_filter`` (HF's ``logging_nan_inf_filter``) a NaN/inf loss adds the sum so far
    over its divisor, as HF adds it. A window longer than `FOLD_AT` losses is folded into one tensor.

    Examples:
        >>> window = LossWindow(nan_filter=False)
        >>> window.add(torch.tensor(0.5), 1); window.add(torch.tensor(1.5), 2)
        >>> len(window), window.drain(), len(window)
        (2, 2.0, 0)
    """

    def __init__(self, nan_filter: bool) -> None:
        self.nan_filter = nan_filter
        self.saw_loss = False
        self._losses: list[torch.Tensor] = []
        self._divisors: list[int] = []  # for each: 1 + the optimizer steps of the window before it (HF's divisor)

    def __len__(self) -> int:
        return len(self._losses)

    def add(self, loss: torch.Tensor, divisor: int) -> None:
        """Keeps one batch loss (detached); ``divisor`` is HF's for it: 1 + the window's optimizer steps so far."""
        self._losses.append(loss.detach())
        self._divisors.append(divisor)
        self.saw_loss = True
        if len(self._losses) >= FOLD_AT:  # a long window (or no logging at all) stays one tensor
            self._losses, self._divisors = [self._sum()], [1]

    def _sum(self) -> torch.Tensor:
        values = torch.stack(self._losses).float().reshape(len(self._losses), -1).sum(dim=1)
        return filtered_sum(values, self._divisors) if self.nan_filter else values.sum()

    def drain(self) -> float:
        """The sum of the window's losses (one host sync), then an empty window."""
        losses, divisors = self._losses, self._divisors
        self._losses, self._divisors = [], []
        if not losses:
            return 0.0
        if len(losses) == 1 and losses[0].dim() == 0:  # logging every step: no stacking
            total = float(losses[0])
            return total if math.isfinite(total) or not self.nan_filter else 0.0  # nothing before it to average
        values = torch.stack(losses).float().reshape(len(losses), -1).sum(dim=1)
        total = float(values.sum())
        if self.nan_filter and not math.isfinite(total):  # the filter's work only when there is something to filter
            total = float(filtered_sum(values, divisors))
        return total
