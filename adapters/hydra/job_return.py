"""What Hydra hands to ``on_job_start`` and ``on_job_end``: the task function and the ``JobReturn``.

``JobReturn`` is Hydra's own (``hydra.core.utils.JobReturn``) when hydra-core is installed, built the way
Hydra's ``run_job`` builds it: its ``cfg``, ``hydra_cfg``, ``overrides`` and ``working_dir`` are taken
when the job starts, its ``status``, ``return_value`` and ``task_name`` when it ends.
"""

from __future__ import annotations

import copy
import enum
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class JobStatusStandIn(enum.Enum):
    """Stand-in for ``hydra.core.utils.JobStatus`` when hydra-core is not installed (same members)."""

    UNKNOWN = 0
    COMPLETED = 1
    FAILED = 2


@dataclass
class JobReturnStandIn:
    """Stand-in for ``hydra.core.utils.JobReturn`` when hydra-core is not installed (same fields).

    Examples:
        >>> ret = JobReturnStandIn(overrides=["lr=0.1"])
        >>> ret.status, ret.return_value = JobStatusStandIn.COMPLETED, {"loss": 0.5}
        >>> ret.return_value
        {'loss': 0.5}
    """

    overrides: Sequence[str] | None = None
    cfg: DictConfig | None = None
    hydra_cfg: DictConfig | None = None
    working_dir: str | None = None
    task_name: str | None = None
    status: JobStatusStandIn = JobStatusStandIn.UNKNOWN
    _return_value: Any = None

    @property
    def return_value(self) -> Any:
        """COMPLETED: the job's value; FAILED: re-raises the job's exception (Hydra's behaviour)."""
        assert self.status != JobStatusStandIn.UNKNOWN, "return_value not yet available"
        if self.status == JobStatusStandIn.COMPLETED:
            return self._return_value
        sys.stderr.write(f"Error executing job with overrides: {self.overrides}{os.linesep}")
        raise self._return_value

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


def job_return_types() -> tuple[type, type]:
    """``(JobReturn, JobStatus)``: Hydra's own when hydra-core is installed, else the stand-ins."""
    try:
        from hydra.core.utils import JobReturn, JobStatus
    except ImportError:
        return JobReturnStandIn, JobStatusStandIn
    return JobReturn, JobStatus


class LightningTask:
    """The ``task_function`` of a Hydra job that callbridge runs: a Lightning entry point on a model.

    Hydra passes its task function (the ``@hydra.main`` function) to ``on_job_start``. Outside a Hydra app
    the job's task is the Lightning entry point (``fit``, ``validate``, ``test``, ``predict``) that is
    already running, so this object names it (``__name__``, ``stage``, ``model``) but cannot be called.

    Examples:
        >>> task = LightningTask("fit", "my_project.models.Net")
        >>> task.__name__, task
        ('fit', LightningTask('fit', 'my_project.models.Net'))
    """

    def __init__(self, stage: str, model: str | None) -> None:
        self.stage = stage
        self.model = model
        self.__name__ = self.__qualname__ = stage

    def __call__(self, cfg: Any) -> Any:
        raise RuntimeError(
            f"the task of this job is Lightning's {self.stage}() on {self.model or 'the model'}, which is already "
            "running under callbridge; it cannot be called again from a callback"
        )

    def __repr__(self) -> str:
        return f"LightningTask({self.stage!r}, {self.model!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LightningTask) and (self.stage, self.model) == (other.stage, other.model)

    def __hash__(self) -> int:
        return hash((self.stage, self.model))


def start_job_return(config: DictConfig, hydra_cfg: DictConfig | None) -> Any:
    """A ``JobReturn`` with the fields Hydra's ``run_job`` fills before the task runs.

    ``hydra_cfg`` is what ``HydraConfig`` holds for the job (``{hydra: ...}``); ``None`` takes the ``hydra``
    node of ``config``.
    """
    job_return_cls, _ = job_return_types()
    ret = job_return_cls()
    task_cfg = copy.deepcopy(config)
    with read_write(task_cfg), open_dict(task_cfg):
        if "hydra" in task_cfg:
            del task_cfg["hydra"]
    ret.cfg = task_cfg
    ret.hydra_cfg = copy.deepcopy(hydra_cfg) if hydra_cfg is not None else OmegaConf.masked_copy(config, "hydra")
    overrides = OmegaConf.select(config, "hydra.overrides.task")
    ret.overrides = list(OmegaConf.to_container(overrides)) if overrides is not None else []
    ret.working_dir = os.getcwd()
    return ret


def finish_job_return(ret: Any, config: DictConfig, value: Any, failed: BaseException | None) -> Any:
    """Sets ``status``, ``return_value`` and ``task_name`` when the job ends; returns ``ret``."""
    _, status_cls = job_return_types()
    if failed is None:
        ret.status = status_cls.COMPLETED
        ret.return_value = value
    else:
        ret.status = status_cls.FAILED
        ret.return_value = failed
    ret.task_name = OmegaConf.select(config, "hydra.job.name")
    return ret
