"""The configurations, by name: light (no Lightning import), so the orchestrator can plan without importing them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigInfo:
    name: str
    title: str
    #: "overhead": epoch-level callbacks on the cheap model (``--steps``); "stack": loggers, checkpoints, bars
    #: (``--stack-steps``, loggers on).
    group: str


BASELINE = "baseline"

CONFIGS: tuple[ConfigInfo, ...] = (
    ConfigInfo(BASELINE, "1. Lightning, no callbacks (baseline)", "overhead"),
    ConfigInfo("native20", "2. 20 native Lightning callbacks (one epoch-level hook each)", "overhead"),
    ConfigInfo("unified20", "3. the same 20 as unified callbacks, to_lightning", "overhead"),
    ConfigInfo("keras20", "4a. the same 20 as duck-typed Keras callbacks, to_lightning", "overhead"),
    ConfigInfo("hydra20", "4b. the same 20 as Hydra-style callbacks, to_lightning", "overhead"),
    ConfigInfo("native_batch20", "4c. 20 native callbacks reading outputs['loss'].item() every batch", "overhead"),
    ConfigInfo("keras_batch20", "4d. 20 Keras callbacks reading batch logs['loss'], to_lightning", "overhead"),
    ConfigInfo("hf20", "4e. 20 HF TrainerCallbacks (epoch-level events), to_lightning", "overhead"),
    ConfigInfo("native_stack", "5a. Lightning stack: EarlyStopping, ModelCheckpoint, TB+MLflow, bar, LR", "stack"),
    ConfigInfo("callbridge_stack", "5b. callbridge stack: EarlyStopping, Checkpoint, Logging(TB+MLflow), bar", "stack"),
    ConfigInfo("native_mlflow", "6a. MLFlowLogger alone, every step", "stack"),
    ConfigInfo("native_mlflow_async", "6c. MLFlowLogger(synchronous=False) alone, every step", "stack"),
    ConfigInfo("callbridge_mlflow", "6b. LoggingCallback(mlflow) alone, every step", "stack"),
)

BY_NAME = {info.name: info for info in CONFIGS}
