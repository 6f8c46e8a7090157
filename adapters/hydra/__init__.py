"""Hydra-style callbacks (``hydra.experimental.callback.Callback``) under a Lightning Trainer.

Outside a Hydra app each Lightning entry point (``fit``, ``validate``, ``test``, ``predict``) is one Hydra
RUN with one JOB, its config composed by Hydra's compose API and ``HydraConfig`` set for the job::

    on_run_start(config, config_name=...)
    on_job_start(config, task_function=...)
    <the stage>
    on_job_end(config, job_return=...)
    on_run_end(config, config_name=..., job_return=...)

Start events run in registration order, end events in reverse order, and a callback that raises
becomes a warning (as Hydra does) unless the adapter is ``strict``. ``job_return`` is Hydra's own
``JobReturn`` when hydra-core is installed. [`HydraMultirun`][HydraMultirun] turns a loop of fits into one
MULTIRUN; inside a live Hydra app `HydraRelay` (in ``hydra.callbacks``) delivers Hydra's own hooks
once per job; [`from_hydra_config`][from_hydra_config] builds callbacks from ``_target_`` entries. See
``docs/hydra.md``.

The package layout: ``detection`` (which objects are Hydra callbacks), ``adapter`` ([`HydraAdapter`][HydraAdapter]),
``job_return`` (``JobReturn`` and the task function), ``compose`` (configs composed by Hydra,
``HydraConfig``), ``multirun`` ([`HydraMultirun`][HydraMultirun]), ``live`` and ``relay`` (inside a Hydra app),
``entries`` ([`from_hydra_config`][from_hydra_config]). Importing it does not import hydra (only `HydraRelay` does).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from callbridge.adapters.hydra.adapter import HydraAdapter, hyperparameters
from callbridge.adapters.hydra.compose import HydraConfigScope, build_config, compose
from callbridge.adapters.hydra.detection import HOOK_KWARGS, is_instance, looks_like
from callbridge.adapters.hydra.entries import from_hydra_config
from callbridge.adapters.hydra.job_return import JobReturnStandIn, JobStatusStandIn, LightningTask
from callbridge.adapters.hydra.multirun import HydraMultirun, SweepJob
from callbridge.adapters.registry import Style, register

STYLE = "hydra"

#: Each hook of this style and the Lightning hook it runs from (``callbridge inspect`` prints it).
#: A value starting with "-" means: no Lightning counterpart (the text says when, if ever, it runs).
HOOK_MAP: dict[str, str] = {
    "on_run_start": "on_fit_start / on_validation_start / on_test_start / on_predict_start (one run each)",
    "on_job_start": "on_fit_start / on_validation_start / on_test_start / on_predict_start (one job per run)",
    "on_job_end": "on_fit_end / ... end of the entry point, or on_exception (status FAILED)",
    "on_run_end": "on_fit_end / ... end of the entry point, or on_exception",
    "on_multirun_start": "- none in a single run: fires inside HydraMultirun, or from Hydra through HydraRelay",
    "on_multirun_end": "- none in a single run: fires inside HydraMultirun, or from Hydra through HydraRelay",
}
OPTIONS = ("strict", "config", "config_name", "config_dir", "job_name")

__all__ = [
    "HOOK_KWARGS",
    "HOOK_MAP",
    "OPTIONS",
    "STYLE",
    "HydraAdapter",
    "HydraConfigScope",
    "HydraMultirun",
    "HydraRelay",
    "JobReturnStandIn",
    "JobStatusStandIn",
    "LightningTask",
    "SweepJob",
    "adapt",
    "build_config",
    "compose",
    "from_hydra_config",
    "hyperparameters",
    "is_instance",
    "looks_like",
]


def adapt(objs: Sequence[Any], **options: Any) -> list[HydraAdapter]:
    """One [`HydraAdapter`][HydraAdapter] running all Hydra-style ``objs`` (the registry's ``adapt``)."""
    return [HydraAdapter(objs, **options)]


def _verify(make: Any, workdir: Any, label: str = "", epochs: int | None = None) -> Any:
    """``callbridge verify`` for Hydra: the [`Report`][callbridge.adapters.conformance.Report] of a real
    ``@hydra.main`` app against callbridge outside an app (`callbridge.adapters.hydra.conformance`)."""
    from callbridge.adapters.hydra.conformance import verify

    return verify(make, workdir, label=label, epochs=epochs)


def __getattr__(name: str) -> Any:
    if name == "HydraRelay":  # imports hydra: loaded on first use only
        return importlib.import_module("callbridge.adapters.hydra.relay").HydraRelay
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register(
    Style(
        name=STYLE,
        summary="Hydra callbacks (hydra.experimental.callback.Callback)",
        is_instance=is_instance,
        looks_like=looks_like,
        adapt=adapt,
        hook_map=HOOK_MAP,
        options=OPTIONS,
        library_packages=("hydra",),
        inspect_problems=None,
        extra="hydra",
        docs_page="hydra.md",
        verify=_verify,
    )
)
