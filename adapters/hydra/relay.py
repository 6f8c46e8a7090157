"""The Hydra callback that lets a live Hydra app deliver its run, job and multirun hooks to callbridge.

List it in the app's ``hydra.callbacks``::

    hydra:
      callbacks:
        callbridge:
          _target_: callbridge.adapters.hydra.HydraRelay

Hydra instantiates it once per run or sweep and calls its hooks at Hydra's own points. Inside the task
function, every [`HydraAdapter`][callbridge.adapters.hydra.adapter.HydraAdapter] that starts hands its callbacks to the
relay (the first time it sees them in a job); the relay then gives them the hooks that Hydra fires from then on, with
Hydra's own arguments:

- ``on_multirun_start`` / ``on_run_start``: delivered when the relay first meets a callback in the sweep or
  run (the callback did not exist, or callbridge did not know it, when Hydra fired the hook), with the config
  and ``config_name`` Hydra passed;
- ``on_job_start``: when the callback first starts in the job, with Hydra's job config and task function;
- ``on_job_end``, ``on_run_end``, ``on_multirun_end``: when Hydra fires them, once per job, run and sweep,
  with Hydra's ``JobReturn`` (the task function's return value, or its exception).

Importing this module imports hydra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from callbridge.adapters.hydra import live
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class HydraRelay(Callback):
    """Relays Hydra's hooks to the callbacks given to callbridge inside a live Hydra app (see the module).

    Examples:
        >>> from omegaconf import OmegaConf
        >>> relay = HydraRelay()
        >>> relay.on_run_start(OmegaConf.create({"hydra": {}}), config_name="config")
        >>> relay.on_run_end(OmegaConf.create({"hydra": {}}), config_name="config")
        >>> relay.job_config is None
        True
    """

    def __init__(self) -> None:
        self.run_config: DictConfig | None = None
        self.sweep_config: DictConfig | None = None
        self.config_name: str | None = None
        self.job_config: DictConfig | None = None
        self.task_function: Any = None
        # (adapter, callback) pairs, in the order the callbacks were first met
        self._run: list[tuple[Any, Any]] = []
        self._sweep: list[tuple[Any, Any]] = []
        self._job: list[tuple[Any, Any]] = []
        #: Hydra callbacks that ``from_hydra_config`` built in this run or sweep, by entry: built once, as Hydra
        #: builds ``hydra.callbacks`` once, so that each gets its run or multirun hooks once.
        self.instances: dict[str, Any] = {}

    # -- Hydra's hooks -------------------------------------------------------------------------------
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.run_config, self.config_name, self._run = config, kwargs.get("config_name"), []
        live.activate(self)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_config, self.config_name, self._sweep = config, kwargs.get("config_name"), []
        live.activate(self)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.job_config, self.task_function, self._job = config, kwargs.get("task_function"), []

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        started, self._job = self._job, []
        self.job_config = self.task_function = None
        _end(started, "on_job_end", config=config, **kwargs)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        started, self._run = self._run, []
        self.run_config = None
        self.instances = {}
        live.deactivate(self)
        _end(started, "on_run_end", config=config, **kwargs)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        started, self._sweep = self._sweep, []
        self.sweep_config = None
        self.instances = {}
        live.deactivate(self)
        _end(started, "on_multirun_end", config=config, **kwargs)

    # -- what adapters call --------------------------------------------------------------------------
    def attach(self, adapter: Any, callbacks: Sequence[Any]) -> None:
        """Starts ``callbacks`` (run by ``adapter``) in the current job: run or multirun start where they
        missed it, then ``on_job_start``; callbacks already started in this job are skipped."""
        if self.job_config is None:
            return
        new = [cb for cb in callbacks if not any(cb is seen for _, seen in self._job)]
        if self.sweep_config is not None:
            missed = [cb for cb in new if not any(cb is seen for _, seen in self._sweep)]
            self._sweep.extend((adapter, cb) for cb in missed)
            with _outside_the_job():
                adapter.notify(missed, "on_multirun_start", config=self.sweep_config, config_name=self.config_name)
        elif self.run_config is not None:
            missed = [cb for cb in new if not any(cb is seen for _, seen in self._run)]
            self._run.extend((adapter, cb) for cb in missed)
            with _outside_the_job():
                adapter.notify(missed, "on_run_start", config=self.run_config, config_name=self.config_name)
        self._job.extend((adapter, cb) for cb in new)
        adapter.notify(new, "on_job_start", config=self.job_config, task_function=self.task_function)


@contextlib.contextmanager
def _outside_the_job() -> Iterator[None]:
    """Hydra fires run and multirun start hooks before any job, when ``HydraConfig`` is not set yet; a late
    delivery inside the job gives them the same view."""
    from hydra.core.hydra_config import HydraConfig

    held = HydraConfig.instance().cfg
    HydraConfig.instance().cfg = None
    try:
        yield
    finally:
        HydraConfig.instance().cfg = held


def _end(started: list[tuple[Any, Any]], hook: str, **kwargs: Any) -> None:
    """``hook`` on every started callback, last started first (Hydra's order for end hooks)."""
    for adapter, cb in reversed(started):
        adapter.notify([cb], hook, **kwargs)
