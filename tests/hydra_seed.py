"""The seed's Hydra callbacks, importable by ``_target_`` (tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

RECEIVED: list[tuple[str, Any]] = []


class MyCallback(Callback):
    """Seed 002: uploads a file to a bucket when the job ends (here: records the call)."""

    def __init__(self, bucket: str, file_path: str) -> None:
        self.bucket = bucket
        self.file_path = file_path

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        print("Job ended,uploading...")
        RECEIVED.append((self.bucket, kwargs.get("job_return")))
