"""Save the full training state every epoch or every N steps; keep the best K (or the newest K)."""

from __future__ import annotations

import math
import os
import pickle
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from callbridge.callbacks.base import Callback
from callbridge.callbacks.context import CallbackContext
from callbridge.callbacks.monitor import MonitorError, find_monitor, missing_monitor_message
from callbridge.callbacks.serialization import FORMATS, atomic_path

_STRATEGIES = ("epoch", "step")
_MODES = ("min", "max")
# The names this callback writes: ranked files, and the temporary files of atomic_path(...) for them and last.
_RANKED = re.compile(r"^epoch=\d+-step=(\d+)(\.pt|\.safetensors)$")
_TEMPORARY = re.compile(r"^\.(?:epoch=\d+-step=\d+|last)(\.pt|\.safetensors)\..+\.tmp$")


class CheckpointCallback(Callback):
    """Saves the full training state through ``ctx.save_checkpoint`` (model, optimizer, scheduler, loops,
    callback states) every epoch or every ``save_steps`` optimizer steps.

    Files are ``<save_dir>/epoch=E-step=S.<ext>`` plus ``<save_dir>/last.<ext>`` (``save_last``), where
    ``ext`` is ``pt`` or ``safetensors``. Every write is atomic (temporary file, then rename), so a run
    killed mid-save keeps its previous checkpoints intact. Under several processes every process calls
    this callback and only global rank zero writes and deletes files.

    Before the first batch (when ``fit`` starts) the callback checks that ``save_dir`` can be written and
    that the callbacks' state and the hyperparameters fit the format (a dry serialisation: safetensors holds
    tensors, numbers, strings and containers of them, never arbitrary objects), and raises naming the
    problem. When training begins it removes the temporary files a process killed mid-save left
    (``.<name>.*.tmp``), and on a resume it deletes the ranked files the interrupted run had already
    evicted but not yet removed, and writes the ranked copy of ``last`` the run had not made yet, so the
    folder holds the recorded ``save_total_limit`` ranked files again.

    Retention (``save_total_limit=K``): with a ``monitor``, the K best checkpoints by ``mode`` are kept
    and the worst is deleted (a new checkpoint worse than all K kept ones is not written at all); without
    a monitor, the newest K are kept. ``last`` is never counted or deleted. ``monitor`` matches keys as
    [`EarlyStoppingCallback`][EarlyStoppingCallback] does (exact key, else the ``eval_`` <-> ``val_`` alias); a key
    still missing once an evaluation ran raises a `MonitorError` (a ``KeyError``) listing the keys that were logged.

    A safetensors checkpoint holds every tensor of the training state, its structure as JSON metadata:
    ``trainer.fit(ckpt_path="....safetensors")`` resumes from it under Lightning (the bridge installs
    [`callbridge.adapters.checkpoint_io.CallbridgeCheckpointIO`][callbridge.adapters.checkpoint_io.CallbridgeCheckpointIO]),
    and loading never unpickles.

    After (or during) training: [`best_path`][best_path] (best by monitor, else the newest), `last_path`,
    [`kept_paths`][kept_paths] (best first with a monitor, else oldest first), [`best_score`][best_score].

    The callback runs after the others at the same hook (``priority = 200``), so the checkpoint holds
    their state for the epoch (an early-stopping counter, say).

    Examples:
        In a plain loop (under Lightning: ``L.Trainer(callbacks=to_lightning([ckpt]))``):
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from callbridge.callbacks import CallbackContext, CallbackList, CheckpointCallback
        >>> ckpt = CheckpointCallback(tempfile.mkdtemp(), save_total_limit=2, monitor="eval_loss", format="safetensors")
        >>> callbacks, ctx = CallbackList([ckpt]), CallbackContext(model=torch.nn.Linear(2, 1))
        >>> for epoch, loss in enumerate([0.9, 0.5, 0.7, 0.6]):
        ...     ctx.epoch, ctx.step, ctx.metrics = epoch, epoch + 1, {"eval_loss": loss}
        ...     callbacks.on_epoch_end(ctx)
        >>> [Path(p).name for p in ckpt.kept_paths], Path(ckpt.last_path).name
        (['epoch=1-step=2.safetensors', 'epoch=3-step=4.safetensors'], 'last.safetensors')

    Args:
        save_dir: folder for the checkpoint files (created on first save).
        strategy: ``"epoch"`` (at each epoch end, after that epoch's validation) or ``"step"``.
        save_steps: with ``strategy="step"``, save every this many optimizer steps (required).
        save_total_limit: how many checkpoints to keep besides ``last`` (None: all).
        monitor: metric ranking the checkpoints (None: rank by age).
        mode: ``"min"`` or ``"max"``: which monitored values are better.
        format: ``"pt"`` (``torch.save``) or ``"safetensors"``.
        save_last: also keep ``last.<ext>``, updated at every save point.
    """

    priority = 200

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        strategy: str = "epoch",
        save_steps: int | None = None,
        save_total_limit: int | None = None,
        monitor: str | None = None,
        mode: str = "min",
        format: str = "pt",
        save_last: bool = True,
    ) -> None:
        name = type(self).__name__
        if save_dir is None or str(save_dir) == "":
            raise ValueError(f"{name}: save_dir must be a folder path, got {save_dir!r}")
        if strategy not in _STRATEGIES:
            raise ValueError(f"{name}: strategy must be one of {_STRATEGIES}, got {strategy!r}")
        if not isinstance(save_dir, (str, os.PathLike)):
            raise TypeError(
                f"{name}: save_dir must be a folder path (str or os.PathLike), got {type(save_dir).__name__}"
            )
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"{name}: monitor must be None or a metric name (str), got {type(monitor).__name__}")
        for option, value in (("save_steps", save_steps), ("save_total_limit", save_total_limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{name}: {option} must be None or an int, got {type(value).__name__}")
        if strategy == "step":
            if isinstance(save_steps, bool) or not isinstance(save_steps, int) or save_steps < 1:
                raise ValueError(f"{name}: strategy='step' needs save_steps, an int >= 1; got {save_steps!r}")
        elif save_steps is not None:
            raise ValueError(f"{name}: save_steps={save_steps!r} applies to strategy='step' only (strategy='epoch')")
        if save_total_limit is not None and (
            isinstance(save_total_limit, bool) or not isinstance(save_total_limit, int) or save_total_limit < 1
        ):
            raise ValueError(
                f"{name}: save_total_limit must be None (keep all) or an int >= 1, got {save_total_limit!r}"
            )
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"{name}: monitor must be None or a non-empty metric name, got {monitor!r}")
        if mode not in _MODES:
            raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}")
        if format not in FORMATS:
            raise ValueError(f"{name}: format must be one of {tuple(FORMATS)}, got {format!r}")
        self.save_dir = Path(save_dir)
        self.strategy = strategy
        self.save_steps = save_steps
        self.save_total_limit = save_total_limit
        self.monitor = monitor
        self.mode = mode
        self.format = format
        self.save_last = save_last
        self.extension = FORMATS[format]
        self._restored = False
        self._reset()

    def _reset(self) -> None:
        # (score or None, order, path); order = the save's global step, breaking ties by age
        self._kept: list[tuple[float | None, int, str]] = []
        self.last_path: str | None = None
        self._last_saved_step: int | None = None
        self._evicting: list[str] = []  # evicted at the last save, deleted once that checkpoint is written
        self._evaluated = False
        self._warned_missing = False

    # -- results -------------------------------------------------------------------------------
    @property
    def kept_paths(self) -> list[str]:
        """The retained checkpoints (not ``last``): best first with a monitor, else oldest first."""
        return [path for _, _, path in self._ranked()]

    @property
    def best_path(self) -> str | None:
        """The best checkpoint by monitor and mode; the newest one when there is no monitor."""
        ranked = self._ranked()
        if not ranked:
            return None
        return ranked[0][2] if self.monitor is not None else ranked[-1][2]

    @property
    def best_score(self) -> float | None:
        """The monitored value of [`best_path`][best_path] (None without a monitor)."""
        ranked = self._ranked()
        return ranked[0][0] if ranked and self.monitor is not None else None

    def _ranked(self) -> list[tuple[float | None, int, str]]:
        if self.monitor is None:
            return sorted(self._kept, key=lambda item: item[1])
        return sorted(self._kept, key=lambda item: (self._badness(item[0]), -item[1]))

    def _badness(self, score: float | None) -> float:
        """Lower is better, whatever the mode; NaN and missing scores are the worst."""
        if score is None or math.isnan(score):
            return math.inf
        return score if self.mode == "min" else -score

    # -- hooks ---------------------------------------------------------------------------------
    def on_stage_begin(self, ctx: CallbackContext) -> None:
        if ctx.stage != "fit":
            return
        problem = self._setup_problem(ctx) if ctx.is_global_zero else None
        if ctx.world_size > 1:
            problem = ctx.broadcast(problem)  # every rank raises together, none waits for the others
        if problem is not None:
            kind, message = problem
            raise (TypeError if kind == "type" else ValueError)(message)

    def on_train_begin(self, ctx: CallbackContext) -> None:
        if not self._restored:
            self._reset()
        self._restored = False
        if ctx.is_global_zero:
            self._reconcile(ctx)

    # -- checks and clean-up -------------------------------------------------------------------
    def _setup_problem(self, ctx: CallbackContext) -> tuple[str, str] | None:
        """``(kind, message)`` of the first reason saving would fail later, or None."""
        name = type(self).__name__
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.save_dir, prefix=".callbridge-write-check.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except (FileExistsError, NotADirectoryError):
            blocking = next((p for p in [self.save_dir, *self.save_dir.parents] if p.exists() and not p.is_dir()), None)
            return "value", (
                f"{name}: save_dir {str(self.save_dir)!r} cannot be a folder: {str(blocking or self.save_dir)!r} "
                "is a file; give a folder path"
            )
        except OSError as error:
            return "value", (
                f"{name}: save_dir {str(self.save_dir)!r} cannot be written ({error.strerror or error}); "
                "give a folder this process may create files in"
            )
        from callbridge.callbacks.serialization import encode

        payload = {"hyper_parameters": dict(ctx.hparams or {})}
        if ctx.callbacks is not None:
            payload["callbacks"] = ctx.callbacks.state_dict()
        try:
            if self.format == "safetensors":
                encode(payload)
            else:
                _DryPickler(_Discard(), protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
        except TypeError as error:
            return "type", f"{name}(format={self.format!r}): the checkpoint could not hold this run's state: {error}"
        except (pickle.PicklingError, AttributeError) as error:
            return "type", (
                f"{name}(format={self.format!r}): the callbacks' state or the hyperparameters cannot be pickled "
                f"({type(error).__name__}: {error}); keep such values out of state_dict() and save_hyperparameters()"
            )
        return None

    def _reconcile(self, ctx: CallbackContext) -> None:
        """Remove what an interrupted run left: temporary files of unfinished saves, and ranked files it had
        evicted but not yet deleted (recorded in the checkpoint this run resumes from)."""
        if not self.save_dir.is_dir():
            return
        for file in self.save_dir.iterdir():
            match = _TEMPORARY.match(file.name)
            if match and match.group(1) == self.extension:
                file.unlink(missing_ok=True)
        kept = {path for _, _, path in self._kept}
        for path in self._evicting:
            if path not in kept and _RANKED.match(Path(path).name) and Path(path).parent == self.save_dir:
                Path(path).unlink(missing_ok=True)
        self._evicting = []
        last = self.save_dir / f"last{self.extension}"
        for _, step, path in self._kept:
            # killed between writing last and copying it to the ranked file of the same step: copy it now
            if step == ctx.step == self._last_saved_step and not Path(path).exists() and last.is_file():
                with atomic_path(path) as tmp:
                    shutil.copyfile(last, tmp)

    def on_evaluate(self, ctx: CallbackContext) -> None:
        if ctx.stage == "fit":
            self._evaluated = True

    def on_epoch_end(self, ctx: CallbackContext) -> None:
        if self.strategy == "epoch":
            self._save(ctx)

    def on_step_end(self, ctx: CallbackContext) -> None:
        if self.strategy == "step" and ctx.step > 0 and ctx.step % self.save_steps == 0:
            self._save(ctx)

    def implemented_hooks(self) -> frozenset[str]:
        # Listen to step ends only when saving by step: epoch-only runs pay nothing per batch.
        hooks = {"on_train_begin", "on_epoch_end"} if self.strategy == "epoch" else {"on_train_begin", "on_step_end"}
        hooks.add("on_stage_begin")
        if self.monitor is not None:
            hooks.add("on_evaluate")
        return frozenset(hooks)

    # -- saving --------------------------------------------------------------------------------
    def _save(self, ctx: CallbackContext) -> None:
        if self._last_saved_step == ctx.step:
            return  # already saved at this step (an epoch end on a save_steps boundary, say)
        self._last_saved_step = ctx.step
        score = None
        write = True
        if self.monitor is not None:
            found = find_monitor(self.monitor, ctx.metrics)
            if found is None:
                if self._evaluated:
                    raise MonitorError(type(self).__name__, self.monitor, ctx.metrics)
                write = False  # no evaluation yet (check_val_every_n_epoch, or a step before the first one)
                if not self._warned_missing:
                    self._warned_missing = True
                    warnings.warn(
                        missing_monitor_message(type(self).__name__, self.monitor, ctx.metrics).replace(
                            "was never logged", f"is not logged yet at epoch {ctx.epoch}, step {ctx.step}"
                        )
                        + "; no ranked checkpoint saved there (last is), it is an error once an evaluation ran",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            else:
                score = float(found[1])
                if ctx.world_size > 1:
                    score = ctx.broadcast(score)  # the same keep/skip decision on every rank
        path = str(self.save_dir / f"epoch={ctx.epoch}-step={ctx.step}{self.extension}")
        evicted: list[str] = []
        if not write:
            pass
        elif self.save_total_limit is not None:
            candidate = (score, ctx.step, path)
            ranked = self._ranked() if self.monitor is not None else sorted(self._kept, key=lambda i: -i[1])
            # ranked: best (or newest) first; the new entry goes in unless it would be the one dropped
            merged = self._rank_with(ranked, candidate)
            dropped = {item[2] for item in merged[self.save_total_limit :]}
            if path in dropped:
                write = False
            else:
                self._kept = [item for item in self._kept if item[2] not in dropped] + [candidate]
                evicted = sorted(dropped)
        else:
            self._kept.append((score, ctx.step, path))
        last = str(self.save_dir / f"last{self.extension}") if self.save_last else None
        if last is not None:
            self.last_path = last
        self._evicting = evicted  # in the checkpoint: a resumed run deletes them if this process dies first
        # last first, then the ranked copy: a process killed in between leaves last (whose record names the ranked
        # file) and no ranked file newer than it; the resumed run restores the copy (see _reconcile).
        if write and last is not None:
            ctx.save_checkpoint(last)  # every rank calls it; global rank zero writes
            if ctx.is_global_zero:
                with atomic_path(path) as tmp:
                    shutil.copyfile(last, tmp)
        elif write:
            ctx.save_checkpoint(path)
        elif last is not None:
            ctx.save_checkpoint(last)
        if ctx.is_global_zero:
            for old in evicted:
                if old != path:
                    Path(old).unlink(missing_ok=True)
        self._evicting = []

    def _rank_with(
        self, ranked: list[tuple[float | None, int, str]], candidate: tuple[float | None, int, str]
    ) -> list[tuple[float | None, int, str]]:
        if self.monitor is None:
            return [candidate, *ranked]  # newest first
        # Best first; among equal scores the newer wins (the older is the one dropped).
        return sorted([*ranked, candidate], key=lambda item: (self._badness(item[0]), -item[1]))

    # -- resumable state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "kept": [[score, order, path] for score, order, path in self._kept],
            "last_path": self.last_path,
            "last_saved_step": self._last_saved_step,
            "evicting": list(self._evicting),
            "save_dir": str(self.save_dir),
            "monitor": self.monitor,
            "mode": self.mode,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._reset()
        self._restored = True
        if state_dict.get("save_dir") != str(self.save_dir) or state_dict.get("monitor") != self.monitor:
            return  # another folder or ranking: start a fresh record, never delete files this run did not write
        self._kept = [(score, int(order), str(path)) for score, order, path in state_dict.get("kept", [])]
        self.last_path = state_dict.get("last_path")
        self._last_saved_step = state_dict.get("last_saved_step")
        self._evicting = [str(path) for path in state_dict.get("evicting", [])]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(save_dir={str(self.save_dir)!r}, strategy={self.strategy!r}, "
            f"save_steps={self.save_steps}, save_total_limit={self.save_total_limit}, monitor={self.monitor!r}, "
            f"mode={self.mode!r}, format={self.format!r}, save_last={self.save_last})"
        )


class _Discard:
    """A file-like sink for a dry ``pickle.dump``."""

    def write(self, data: bytes) -> int:
        return len(data)


class _DryPickler(pickle.Pickler):
    """Pickles everything but tensors (which ``torch.save`` always stores), so that a dry run copies no tensor data."""

    def persistent_id(self, obj: Any) -> str | None:
        import torch

        return "tensor" if isinstance(obj, (torch.Tensor, torch.UntypedStorage, torch.TypedStorage)) else None
