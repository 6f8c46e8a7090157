"""A loop of fits as one Hydra MULTIRUN, outside a Hydra app: [`HydraMultirun`][HydraMultirun]."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callbridge.adapters.hydra.adapter import HydraAdapter
from callbridge.adapters.hydra.compose import compose, set_values
from omegaconf import DictConfig, OmegaConf


@dataclass
class SweepJob:
    """One job of a [`HydraMultirun`][HydraMultirun]: its number, task config and overrides (each trainer's own).

    Examples:
        >>> job = SweepJob(sweep=None, num=3, config={"lr": 0.1}, overrides=["lr=0.1"])
        >>> job.num, job.overrides
        (3, ['lr=0.1'])
    """

    sweep: HydraMultirun | None
    num: int
    config: Mapping[str, Any] | DictConfig | None = None
    overrides: list[str] = field(default_factory=list)

    def compose(self, task: Mapping[str, Any] | DictConfig | None) -> DictConfig:
        """The job's config, as Hydra's launcher builds it: composed again with the job's overrides, the
        sweep config's resolver cache copied in (same timestamps), ``hydra.job.id``/``num`` set."""
        sweep = self.sweep
        if sweep is None:
            raise RuntimeError("SweepJob.compose: this job belongs to no sweep")
        settings = sweep.settings
        cfg = compose(
            task,
            multirun=True,
            job_name=settings.job_name,
            config_name=settings.config_name,
            config_dir=settings.config_dir,
            overrides=self.overrides,
        )
        OmegaConf.copy_cache(from_config=sweep.config, to_config=cfg)
        values: dict[str, Any] = {"hydra.job.id": str(self.num), "hydra.job.num": self.num}
        if sweep.sweep_dir is not None:
            values["hydra.sweep.dir"] = sweep.sweep_dir
        set_values(cfg, values)
        return cfg


class HydraMultirun:
    """A loop of fits as one Hydra MULTIRUN: ``on_multirun_start``, one job per trainer, ``on_multirun_end``.

    Enter the ``with`` block to start the sweep; call [`job`][job] for each trainer to get its Lightning
    callbacks. Each call is a job of its own (number, config, overrides), whichever trainer runs first.
    ``on_multirun_end`` fires when the block exits normally; as in Hydra, not when it raises.

    Args:
        callbacks: the Hydra callbacks of the sweep.
        config: the sweep's task config (each job may give its own); default: each run's hyperparameters.
        config_name: as for [`HydraAdapter`][HydraAdapter].
        config_dir: as for [`HydraAdapter`][HydraAdapter]; each job's config is composed with the job's overrides.
        strict: as for [`HydraAdapter`][HydraAdapter].
        job_name: as for [`HydraAdapter`][HydraAdapter].
        sweep_dir: ``hydra.sweep.dir``; each job's output dir is ``<sweep_dir>/<job number>``. Default:
            Hydra's (``multirun/<date>/<time>``), or the one in ``config_dir``'s config.
        overrides: the sweep's overrides as on Hydra's command line (``["lr=0.1,0.01"]``), recorded in the
            sweep config's ``hydra.overrides.task``; each job's own overrides go to [`job`][job].

    Examples:
        >>> import tempfile
        >>> import lightning as L
        >>> from hydra.experimental.callbacks import LogJobReturnCallback
        >>> from callbridge.adapters.hydra import HydraMultirun
        >>> sweep_dir = tempfile.mkdtemp()
        >>> with HydraMultirun([LogJobReturnCallback()], config={"lr": 0.1}, sweep_dir=sweep_dir) as sweep:
        ...     for lr in (0.1, 0.01):
        ...         trainer = L.Trainer(callbacks=sweep.job(config={"lr": lr}, overrides=[f"lr={lr}"]),
        ...                             max_epochs=1, logger=False)
        ...         # trainer.fit(model)
        >>> sweep.job_num
        2
    """

    def __init__(
        self,
        callbacks: Iterable[Any],
        *,
        config: Mapping[str, Any] | DictConfig | None = None,
        config_name: str | None = None,
        config_dir: str | os.PathLike[str] | None = None,
        sweep_dir: str | os.PathLike[str] | None = None,
        overrides: Sequence[str] = (),
        strict: bool = False,
        job_name: str | None = None,
    ) -> None:
        # the sweep's own dispatcher: validates the callbacks and options, fires the multirun hooks
        self.settings = HydraAdapter(
            callbacks, strict=strict, config=config, config_name=config_name, config_dir=config_dir, job_name=job_name
        )
        self.callbacks = self.settings.callbacks
        self.sweep_dir = os.fspath(sweep_dir) if sweep_dir is not None else None
        self.overrides = [str(o) for o in overrides]
        self.job_num = 0
        self._config: DictConfig | None = None
        self._started = False

    @property
    def config(self) -> DictConfig:
        """The sweep's config, passed to ``on_multirun_start``/``on_multirun_end`` (composed on entering)."""
        if self._config is None:
            settings = self.settings
            self._config = compose(
                settings.config if settings.config_dir is None else None,
                multirun=True,
                job_name=settings.job_name,
                config_name=settings.config_name,
                config_dir=settings.config_dir,
            )
            values: dict[str, Any] = {"hydra.overrides.task": self.overrides}
            if self.sweep_dir is not None:
                values["hydra.sweep.dir"] = self.sweep_dir
            set_values(self._config, values)
        return self._config

    def __enter__(self) -> HydraMultirun:
        if self._started:
            raise RuntimeError("HydraMultirun: this sweep already started; build a new one per sweep")
        self._started = True
        config = self.config
        if _is_global_zero():
            self.settings.notify(
                self.callbacks, "on_multirun_start", config=config, config_name=self.settings.config_name
            )
            # Hydra's launcher: the sweep dir is resolved once (its timestamp shared by every job) and created
            os.makedirs(str(config.hydra.sweep.dir), exist_ok=True)
        else:
            _ = config.hydra.sweep.dir
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and _is_global_zero():
            self.settings.notify(
                self.callbacks, "on_multirun_end", config=self.config, config_name=self.settings.config_name
            )

    def job(
        self,
        *,
        config: Mapping[str, Any] | DictConfig | None = None,
        overrides: Sequence[str] = (),
        callbacks: Sequence[Any] = (),
    ) -> list[Any]:
        """Lightning callbacks for the next trainer: this job's adapter plus ``callbacks`` (any style).

        ``config`` is that job's task config (default: the sweep's, else the model's hyperparameters);
        ``overrides`` become ``hydra.overrides.task`` and ``JobReturn.overrides`` (with ``config_dir``, Hydra
        applies them to the composed config). The job's number is the number of earlier calls.
        """
        if not self._started:
            raise RuntimeError("HydraMultirun.job() is called inside 'with HydraMultirun(...) as sweep:'")
        from callbridge.adapters.lightning import to_lightning

        settings = self.settings
        job = SweepJob(
            sweep=self,
            num=self.job_num,
            config=config if config is not None else settings.config,
            overrides=[str(o) for o in overrides],
        )
        self.job_num += 1
        adapter = HydraAdapter(
            self.callbacks,
            strict=settings.strict,
            config_name=settings.config_name,
            config_dir=settings.config_dir,
            job_name=settings.job_name,
            sweep_job=job,
        )
        return to_lightning([adapter, *callbacks])


def _is_global_zero() -> bool:
    """Global rank zero of a multi-process launch (torchrun, Lightning's DDP launcher, SLURM), or a lone process."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
