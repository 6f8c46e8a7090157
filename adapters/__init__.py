"""Adapters: the Lightning bridge (``lightning/``), the style registry, and one package per foreign style.

``from callbridge.adapters import to_lightning`` is the entry point. Attributes load lazily, so
importing this package never imports Keras, Hydra or Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CallbridgeCheckpointIO": "callbridge.adapters.checkpoint_io",
    "to_lightning": "callbridge.adapters.lightning",
    "LightningBridge": "callbridge.adapters.lightning",
    "LightningContext": "callbridge.adapters.lightning",
    "detect_style": "callbridge.adapters.styles",
    "KerasAdapter": "callbridge.adapters.keras",
    "HydraAdapter": "callbridge.adapters.hydra",
    "HydraMultirun": "callbridge.adapters.hydra",
    "from_hydra_config": "callbridge.adapters.hydra",
    "from_config": "callbridge.adapters.config",
    "ConfigError": "callbridge.adapters.config",
    "load_class_from_file": "callbridge.adapters.loading",
    "WarpRecAdapter": "callbridge.adapters.warprec",
    "announce_data": "callbridge.adapters.warprec",
    "load_warprec_callback": "callbridge.adapters.warprec",
    "tune_sweep": "callbridge.adapters.warprec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'callbridge.adapters' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
