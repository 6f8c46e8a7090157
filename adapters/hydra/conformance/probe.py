"""What a Hydra hook call carried, as comparable data: [`summarize`][summarize] and the [`EventProbe`][EventProbe]
that writes it per hook (``events.jsonl``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

#: Hydra's callback hooks, in the order Hydra may call them (``on_compose_config`` exists from Hydra 1.4 on).
HOOKS = (
    "on_compose_config",
    "on_multirun_start",
    "on_run_start",
    "on_job_start",
    "on_job_end",
    "on_run_end",
    "on_multirun_end",
)


def _raw(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, throw_on_missing=True)
    except (MissingMandatoryValue, InterpolationResolutionError):
        return "???"


def _value(config: DictConfig, key: str) -> Any:
    value = _raw(config, key)
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def _task_values(config: DictConfig) -> dict[str, Any]:
    """The task config's top-level keys: scalars as they are, nodes as their type name."""
    out: dict[str, Any] = {}
    for key in config:
        if key == "hydra":
            continue
        value = _raw(config, str(key))
        out[str(key)] = value if value is None or isinstance(value, (int, float, str, bool)) else type(value).__name__
    return out


def _returned(value: Any) -> Any:
    """A task's return value: a dict as its sorted keys with numbers as floats (others as their type name)."""
    if isinstance(value, Mapping):
        return {str(k): _number(value[k]) for k in sorted(value, key=str)}
    return _number(value)


def _number(value: Any) -> Any:
    if isinstance(value, (bool, str)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return type(value).__name__


def summarize(hook: str, config: DictConfig, kwargs: Mapping[str, Any], rel: Callable[[Any], Any]) -> dict[str, Any]:
    """One hook call as data: the hook, its keyword argument names, the config's Hydra keys (``hydra.mode`` as
    ``RunMode:RUN``, run/sweep dirs, job name/num/id, output dir and overrides), the task config's top-level values,
    what ``HydraConfig`` holds, the working dir, the task function's type and the ``JobReturn``'s fields (a dict
    return value with its numbers).
    ``rel`` turns absolute paths into relative ones.

    Examples:
        >>> from omegaconf import OmegaConf
        >>> line = summarize("on_job_start", OmegaConf.create({"lr": 0.1}), {"task_function": print}, str)
        >>> line["hook"], line["config"], line["task_function"], line["mode"]
        ('on_job_start', {'lr': 0.1}, 'builtin_function_or_method', 'NoneType:None')
    """
    mode = _raw(config, "hydra.mode")
    line: dict[str, Any] = {
        "hook": hook,
        "kwargs": sorted(kwargs),
        "config_name": kwargs.get("config_name"),
        "mode": f"{type(mode).__name__}:{getattr(mode, 'name', mode)}",
        "run_dir": _value(config, "hydra.run.dir"),
        "sweep_dir": _value(config, "hydra.sweep.dir"),
        "sweep_subdir": _value(config, "hydra.sweep.subdir"),
        "job_name": _value(config, "hydra.job.name"),
        "job_num": _value(config, "hydra.job.num"),
        "job_id": _value(config, "hydra.job.id"),
        "output_dir": rel(_value(config, "hydra.runtime.output_dir")),
        "overrides": list(_raw(config, "hydra.overrides.task") or []),
        "config": _task_values(config),
        "hydra_config": rel(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None,
        "cwd": rel(os.getcwd()),
    }
    if "task_function" in kwargs:
        line["task_function"] = type(kwargs["task_function"]).__name__
    job_return = kwargs.get("job_return")
    if job_return is not None:
        completed = job_return.status.name == "COMPLETED"
        value = job_return.return_value if completed else None
        line["job_return"] = {
            "type": f"{type(job_return).__module__}.{type(job_return).__name__}",
            "status": job_return.status.name,
            "return_value": _returned(value),
            "overrides": list(job_return.overrides or []),
            "task_name": job_return.task_name,
            "working_dir": rel(job_return.working_dir),
            "cfg": sorted(job_return.cfg) if job_return.cfg is not None else None,
            "hydra_cfg": sorted(job_return.hydra_cfg) if job_return.hydra_cfg is not None else None,
        }
    return line


def relative_to(base: str) -> Callable[[Any], Any]:
    """A ``rel`` for [`summarize`][summarize]: absolute path strings relative to ``base``, anything else as is."""

    def rel(path: Any) -> Any:
        if isinstance(path, str) and os.path.isabs(path):
            return os.path.relpath(path, base)
        return path

    return rel


class EventProbe(Callback):
    """A Hydra callback that appends one JSON line per hook (see [`summarize`][summarize]) to ``path``; paths in
    it are relative to the working dir it was built in.

    Examples:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from omegaconf import OmegaConf
        >>> path = Path(tempfile.mkdtemp()) / "events.jsonl"
        >>> EventProbe(str(path)).on_run_start(OmegaConf.create({"lr": 0.1}), config_name="app")
        >>> json.loads(path.read_text())["config_name"]
        'app'
    """

    def __init__(self, path: str) -> None:
        self.path = Path(os.path.abspath(path))  # MultiRunGatherer changes the working dir before the last hook
        self.rel = relative_to(os.getcwd())

    def _record(self, hook: str, config: DictConfig, **kwargs: Any) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(summarize(hook, config, kwargs, self.rel)) + "\n")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_multirun_start", config, **kwargs)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_multirun_end", config, **kwargs)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_run_start", config, **kwargs)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_run_end", config, **kwargs)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_job_start", config, **kwargs)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._record("on_job_end", config, **kwargs)
