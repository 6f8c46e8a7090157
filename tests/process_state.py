"""What a command may not leave changed in the process that ran it (``callbridge verify`` runs in-process)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def process_state() -> dict[str, Any]:
    """The working dir, environment, SIGINT/SIGTERM handlers, excepthook, torch's deterministic flag and
    MLflow's tracking URI (when MLflow is imported)."""
    import torch

    mlflow = sys.modules.get("mlflow")
    return {
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "handlers": [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)],
        "excepthook": sys.excepthook,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "mlflow_uri_set": mlflow.is_tracking_uri_set() if mlflow is not None else None,
        "argv": list(sys.argv),
    }
