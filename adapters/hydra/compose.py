"""The ``config`` handed to Hydra callbacks outside a Hydra app, composed by Hydra itself.

Hydra's compose API (``initialize_config_dir`` + ``compose(return_hydra_config=True)``) builds the whole
``hydra`` node from Hydra's own defaults (``hydra.run.dir``, ``hydra.sweep.dir``, ``hydra.mode`` as
``RunMode``, job logging, launcher, sweeper ...); callbridge then sets what a Lightning run decides (the
run directory, the job's name, number and overrides) and merges the task config in. The global state the
compose API touches (``GlobalHydra``, Hydra's version base, the job name of ``JobRuntime``) is restored
before [`compose`][compose] returns.

[`HydraConfigScope`][HydraConfigScope] sets ``HydraConfig`` for a job and restores what was there before, as Hydra's
``run_job`` does. Without hydra-core a plain ``DictConfig`` with the same keys is built instead
(``hydra.mode`` is then the string ``"RUN"``/``"MULTIRUN"``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, flag_override, open_dict, read_write

#: The directory Hydra's compose API gets as its primary config source when the task config is not composed
#: from files: it holds no YAML, so only Hydra's own defaults are read.
_EMPTY_CONFIG_DIR = str(Path(__file__).resolve().parent)


def hydra_available() -> bool:
    """Whether hydra-core can be imported."""
    try:
        import hydra.core.hydra_config  # noqa: F401
    except ImportError:
        return False
    return True


def script_name() -> str:
    """The job name Hydra would use outside an app: the stem of the script that runs (``train``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    return Path(argv0).stem or "callbridge"


def to_dictconfig(task: Mapping[str, Any] | DictConfig) -> DictConfig:
    """A writable copy of ``task`` as a ``DictConfig`` (objects that OmegaConf cannot type are kept)."""
    if isinstance(task, DictConfig):
        cfg = task.copy()
        OmegaConf.set_readonly(cfg, False)
        OmegaConf.set_struct(cfg, False)
        return cfg
    try:
        return OmegaConf.create(dict(task))
    except Exception:
        return OmegaConf.create(dict(task), flags={"allow_objects": True})


def override_dirname(overrides: Sequence[str]) -> str:
    """``hydra.job.override_dirname`` as Hydra's defaults build it: the overrides sorted, joined with ``,``."""
    return ",".join(sorted(overrides))


@contextlib.contextmanager
def _compose_scope() -> Iterator[None]:
    """Restores the process-wide state Hydra's compose API changes: GlobalHydra, version base, job name."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import JobRuntime
    from hydra.version import VersionBase

    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra if global_hydra.is_initialized() else None
    if outer is not None:
        global_hydra.clear()
    version_base = VersionBase.instance().version_base
    job_name = JobRuntime.instance().get("name")
    try:
        yield
    finally:
        JobRuntime.instance().set("name", job_name)
        VersionBase.instance().version_base = version_base
        if outer is not None:
            GlobalHydra.instance().initialize(outer)


def compose(
    task: Mapping[str, Any] | DictConfig | None,
    *,
    multirun: bool,
    job_name: str,
    config_name: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> DictConfig:
    """The full config of one Hydra run (``multirun=False``) or sweep, ``hydra`` node included.

    With ``config_dir``, Hydra composes the task config from ``config_name`` in that directory with
    ``overrides`` applied, exactly as a ``@hydra.main`` app with that ``config_path`` would; ``task`` must then
    be None. Otherwise the task config is ``task`` and the overrides are only recorded
    (``hydra.overrides.task``, ``hydra.job.override_dirname``). ``hydra.job.config_name`` is ``config_name``.

    Examples:
        >>> cfg = compose({"lr": 0.1}, multirun=False, job_name="train")
        >>> cfg.lr, cfg.hydra.mode, cfg.hydra.job.name, cfg.hydra.output_subdir
        (0.1, <RunMode.RUN: 1>, 'train', '.hydra')
    """
    overrides = [str(o) for o in overrides]
    if config_dir is not None and task is not None:
        raise ValueError("give the task config either as config_dir + config_name or as config, not both")
    if not hydra_available():
        if config_dir is not None:
            raise ImportError("composing from config_dir needs hydra-core: pip install 'callbridge[hydra]'")
        return _plain_config(
            task or {}, multirun=multirun, job_name=job_name, config_name=config_name, overrides=overrides
        )
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    mode = "MULTIRUN" if multirun else "RUN"
    directory = os.path.abspath(config_dir) if config_dir is not None else _EMPTY_CONFIG_DIR
    with _compose_scope(), initialize_config_dir(config_dir=directory, version_base=None, job_name=job_name):
        cfg = hydra_compose(
            config_name=config_name if config_dir is not None else None,
            overrides=[*(overrides if config_dir is not None else ()), f"hydra.mode={mode}"],
            return_hydra_config=True,
        )
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.job.config_name = config_name
        if config_dir is None:
            cfg.hydra.overrides.task = overrides
            cfg.hydra.job.override_dirname = override_dirname(overrides)
            if task:
                _merge_task(cfg, task)
    return cfg


def _merge_task(cfg: DictConfig, task: Mapping[str, Any] | DictConfig) -> None:
    task_cfg = to_dictconfig(task)
    if "hydra" in task_cfg:
        warnings.warn(
            "the task config has a 'hydra' key; callbridge replaces it with the Hydra runtime node", stacklevel=4
        )
        del task_cfg["hydra"]
    with flag_override(cfg, "allow_objects", True):
        cfg.merge_with(task_cfg)


def _plain_config(
    task: Mapping[str, Any] | DictConfig,
    *,
    multirun: bool,
    job_name: str,
    config_name: str | None,
    overrides: list[str],
) -> DictConfig:
    """Without hydra-core: the keys Hydra's callbacks read, as plain values."""
    job: dict[str, Any] = {
        "name": job_name,
        "num": "???",
        "id": "???",
        "config_name": config_name,
        "override_dirname": override_dirname(overrides),
        "chdir": None,
    }
    node = {
        "mode": "MULTIRUN" if multirun else "RUN",
        "output_subdir": ".hydra",
        "run": {"dir": "outputs"},
        "sweep": {"dir": "multirun", "subdir": "${hydra.job.num}"},
        "runtime": {"output_dir": "???", "cwd": os.getcwd()},
        "job": job,
        "overrides": {"task": overrides, "hydra": [f"hydra.mode={'MULTIRUN' if multirun else 'RUN'}"]},
        "callbacks": {},
    }
    cfg = OmegaConf.create({"hydra": node})
    task_cfg = to_dictconfig(task)
    if "hydra" in task_cfg:
        warnings.warn(
            "the task config has a 'hydra' key; callbridge replaces it with the Hydra runtime node", stacklevel=4
        )
        del task_cfg["hydra"]
    return OmegaConf.merge(cfg, task_cfg)


def set_job_dir(config: DictConfig, *, job_dir_key: str, job_subdir_key: str | None) -> str:
    """Sets ``hydra.runtime.output_dir`` from the job's directory keys, as Hydra's ``run_job``; returns it."""
    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        output_dir = os.path.join(output_dir, str(OmegaConf.select(config, job_subdir_key)))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    return output_dir


def set_values(config: DictConfig, values: Mapping[str, Any]) -> None:
    """Sets dotted keys of ``config`` (``{"hydra.run.dir": "out"}``), struct and read-only flags aside."""
    with read_write(config), open_dict(config):
        for key, value in values.items():
            OmegaConf.update(config, key, value, force_add=True)


class HydraConfigScope:
    """Sets ``HydraConfig`` to a job's config and later restores what it held, as Hydra's ``run_job`` does.

    Scopes nest: the value restored when a scope closes is the one it replaced, unless a scope opened later
    is still open (then that one stays). Without hydra-core it does nothing.

    Examples:
        >>> cfg = compose({}, multirun=False, job_name="train")
        >>> scope = HydraConfigScope(cfg)
        >>> from hydra.core.hydra_config import HydraConfig
        >>> HydraConfig.get().job.name
        'train'
        >>> scope.close()
        >>> HydraConfig.initialized()
        False
    """

    _open: list[HydraConfigScope] = []  # the scopes open in this process, oldest first

    def __init__(self, config: DictConfig) -> None:
        self.active = hydra_available() and not isinstance(config.hydra.mode, str)
        self.previous: Any = None
        if not self.active:
            return
        from hydra.core.hydra_config import HydraConfig

        self.previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(config)
        self.current = HydraConfig.instance().cfg
        HydraConfigScope._open.append(self)

    def update(self, config: DictConfig) -> None:
        """Sets ``HydraConfig`` again after the job's config changed (Hydra does so once the output dir is known)."""
        if self.active:
            from hydra.core.hydra_config import HydraConfig

            HydraConfig.instance().set_config(config)
            self.current = HydraConfig.instance().cfg

    @property
    def hydra_cfg(self) -> DictConfig | None:
        """What ``HydraConfig`` holds for this job (``{hydra: ...}``), or None without hydra-core."""
        return self.current if self.active else None

    def close(self) -> None:
        """Restores ``HydraConfig``; idempotent."""
        if not self.active:
            return
        from hydra.core.hydra_config import HydraConfig

        self.active = False
        opened = HydraConfigScope._open
        index = opened.index(self)
        opened.pop(index)
        if index < len(opened):  # a later scope is still open: it restores to what this one replaced
            opened[index].previous = self.previous
        elif HydraConfig.instance().cfg is self.current:
            HydraConfig.instance().cfg = self.previous

    @staticmethod
    def owns_current() -> bool:
        """Whether ``HydraConfig`` holds a config that a callbridge scope set (not a live Hydra app's)."""
        if not HydraConfigScope._open:
            return False
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.instance().cfg is HydraConfigScope._open[-1].current


def build_config(
    task: Mapping[str, Any] | DictConfig,
    *,
    output_dir: str,
    job_name: str,
    job_num: int = 0,
    config_name: str | None = None,
    overrides: Sequence[str] = (),
    multirun: bool = False,
    sweep_dir: str | None = None,
) -> DictConfig:
    """The config a job's ``on_job_start`` gets outside a Hydra app: [`compose`][compose], then the run (or the
    sweep's) directory and ``hydra.runtime.output_dir`` set as Hydra's ``run_job`` sets them.

    In a single run ``output_dir`` is ``hydra.run.dir`` and ``hydra.job.num``/``id`` stay unset, as in Hydra;
    in a sweep the job's output dir is ``<sweep_dir>/<job_num>`` (``output_dir`` is then ignored).

    Examples:
        >>> cfg = build_config({"lr": 0.1}, output_dir="/tmp/run", job_name="train")
        >>> cfg.lr, cfg.hydra.run.dir, cfg.hydra.runtime.output_dir, cfg.hydra.output_subdir
        (0.1, '/tmp/run', '/tmp/run', '.hydra')
        >>> cfg = build_config({}, output_dir="", job_name="train", job_num=2, multirun=True, sweep_dir="/tmp/sw")
        >>> cfg.hydra.mode.name, cfg.hydra.job.num, cfg.hydra.runtime.output_dir
        ('MULTIRUN', 2, '/tmp/sw/2')
    """
    cfg = compose(task, multirun=multirun, job_name=job_name, config_name=config_name, overrides=overrides)
    if multirun:
        values: dict[str, Any] = {"hydra.job.id": str(job_num), "hydra.job.num": job_num}
        if sweep_dir is not None:
            values["hydra.sweep.dir"] = sweep_dir
        set_values(cfg, values)
        set_job_dir(cfg, job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    else:
        set_values(cfg, {"hydra.run.dir": output_dir})
        set_job_dir(cfg, job_dir_key="hydra.run.dir", job_subdir_key=None)
    return cfg
