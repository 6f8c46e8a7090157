"""Multi-process scenarios, all run by one ``torchrun --nproc_per_node=2`` launch (see ``tests/ddp_runner.py``).

A scenario is a function ``name(workdir: Path) -> dict`` registered with `scenario`; it runs on
every rank and returns what that rank saw (JSON-able). Add scenarios in a module
``tests/ddp_scenarios/<topic>.py``; tests read the results through the ``ddp_results`` fixture.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

Scenario = Callable[[Path], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    if fn.__name__ in SCENARIOS:
        raise ValueError(f"DDP scenario {fn.__name__!r} is defined twice")
    SCENARIOS[fn.__name__] = fn
    return fn


def load_all() -> dict[str, Scenario]:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return SCENARIOS


def ddp_trainer(callbacks: Any = (), **overrides: Any):
    """A 2-process CPU DDP trainer (gloo), quiet, for use inside a scenario."""
    from toy import make_trainer

    options = {"strategy": "ddp", "devices": 2, "accelerator": "cpu"}
    options.update(overrides)
    return make_trainer(callbacks, **options)
