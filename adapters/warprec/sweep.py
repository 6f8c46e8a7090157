"""The same WarpRec-style callbacks in a real Ray Tune sweep whose trials train with Lightning.

Ray fires its trial hooks on the driver (the callbacks are ``RunConfig`` callbacks of a ``tune.Tuner``);
each trial runs the WarpRec data and training hooks under its Lightning Trainer. No hook fires on both
sides. Imports Ray when called.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from callbridge.adapters.warprec.hooks import TRIAL_HOOKS, overrides
from callbridge.callbacks import Callback, CallbackContext

#: The state key under which each trial's checkpoint names its LightningModule class (see `ModelClass`).
MODEL_CLASS_KEY = "tune_sweep[model class]"


class ModelClass(Callback):
    """Keeps the class of the trial's LightningModule in its checkpoints, so that the driver can rebuild the
    best trial's model for ``on_training_complete`` (the class travels by value: it may live in a script)."""

    observes_only = True

    def __init__(self) -> None:
        self.model_class: type | None = None

    @property
    def state_key(self) -> str:
        return MODEL_CLASS_KEY

    def on_stage_begin(self, ctx: CallbackContext) -> None:
        if ctx.model is not None:
            self.model_class = type(ctx.model)

    def state_dict(self) -> dict[str, Any]:
        from ray import cloudpickle

        return {"model_class": cloudpickle.dumps(self.model_class)} if self.model_class is not None else {}


def best_model(result: Any) -> Any:
    """The LightningModule of a trial's checkpoint (a ``ray.tune.Result``), rebuilt on the driver."""
    import torch
    from ray import cloudpickle

    with result.checkpoint.as_directory() as folder:
        path = os.path.join(folder, "checkpoint")
        saved = torch.load(path, map_location="cpu", weights_only=False)
        states = [state for state in (saved.get("callbacks") or {}).values() if isinstance(state, Mapping)]
        classes = [state[MODEL_CLASS_KEY]["model_class"] for state in states if MODEL_CLASS_KEY in state]
        if not classes:
            raise RuntimeError(f"the checkpoint {path} names no LightningModule class: was it written by tune_sweep?")
        cls = cloudpickle.loads(classes[0])
        try:
            return cls.load_from_checkpoint(path, map_location="cpu")
        except Exception as error:
            raise RuntimeError(
                f"tune_sweep rebuilds the best trial's model for on_training_complete (WarpRec passes the best "
                f"model) with {cls.__qualname__}.load_from_checkpoint, which failed: {type(error).__name__}: "
                f"{error}. Call self.save_hyperparameters() in {cls.__qualname__}.__init__."
            ) from error


def _ship_by_value(callbacks: Iterable[Any]) -> None:
    """Classes loaded from files by ``load_callback`` are not importable in Ray workers: send them by value."""
    from callbridge.adapters.loading import is_loaded_from_file

    wanted = {type(cb).__module__ for cb in callbacks if is_loaded_from_file(type(cb).__module__)}
    if wanted:
        from ray import cloudpickle

        for name in wanted:
            cloudpickle.register_pickle_by_value(sys.modules[name])


def ray_callback(obj: Any) -> Any:
    """``obj`` itself when it derives from ``ray.tune.Callback``; else a Ray callback forwarding to its hooks."""
    from ray import tune

    if isinstance(obj, tune.Callback):
        return obj

    class _Forward(tune.Callback):
        def __init__(self, target: Any) -> None:
            self.target = target

        def __getattribute__(self, name: str) -> Any:
            if name in TRIAL_HOOKS:
                target = object.__getattribute__(self, "target")
                if overrides(target, name):
                    return getattr(target, name)
            return object.__getattribute__(self, name)

    return _Forward(obj)


def lightning_trainable(
    train_fn: Callable[[dict[str, Any], list[Any]], Any],
    callbacks: Sequence[Any],
    *,
    metrics: Sequence[str] | Mapping[str, str] | None = None,
    save_checkpoints: bool = True,
    training_complete_on_driver: bool = False,
) -> Callable[[dict[str, Any]], None]:
    """A Ray Tune function trainable that runs ``train_fn(config, lightning_callbacks)`` in each trial.

    ``lightning_callbacks`` runs ``callbacks`` under Lightning with Ray's trial hooks off (Ray fires them on
    the driver), plus Ray's ``TuneReportCheckpointCallback``, which reports the metrics (all of
    ``trainer.callback_metrics``, or ``metrics``) and a checkpoint after each validation. ``train_fn``
    builds the model and a ``lightning.Trainer(callbacks=lightning_callbacks, ...)`` and calls ``fit``.
    Each trial works on its own copy of ``callbacks``. With ``training_complete_on_driver``
    ``on_training_complete`` does not fire in the trials ([`tune_sweep`][tune_sweep] fires it on the driver).

    Example:
        ``tune.Tuner(lightning_trainable(fit_one, [my_warprec_cb]), run_config=RunConfig(callbacks=[my_warprec_cb]))``
    """
    callbacks = list(callbacks)
    _ship_by_value(callbacks)

    def trainable(config: dict[str, Any]) -> None:
        from callbridge.adapters.lightning import to_lightning
        from callbridge.adapters.styles import detect_style
        from callbridge.adapters.warprec.adapter import adapt
        from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

        # Ray fires its hooks on the driver: the trial's adapters must not fire them again.
        warprec = [cb for cb in callbacks if detect_style(cb) == "warprec"]
        adapters = adapt(warprec, ray_hooks=False, training_complete=not training_complete_on_driver)
        unified = [ModelClass()] if training_complete_on_driver else []
        others = [cb for cb in callbacks if detect_style(cb) != "warprec"]
        lightning_callbacks = to_lightning([*others, *adapters, *unified]) if callbacks or unified else []
        lightning_callbacks.append(
            TuneReportCheckpointCallback(
                metrics=dict(metrics) if isinstance(metrics, Mapping) else (list(metrics) if metrics else None),
                save_checkpoints=save_checkpoints,
                on="validation_end",
            )
        )
        train_fn(config, lightning_callbacks)

    trainable.__name__ = getattr(train_fn, "__name__", "lightning_trainable")
    return trainable


def tune_sweep(
    train_fn: Callable[[dict[str, Any], list[Any]], Any],
    param_space: dict[str, Any],
    callbacks: Sequence[Any],
    *,
    tune_config: Any = None,
    run_config: Any = None,
    metrics: Sequence[str] | Mapping[str, str] | None = None,
    save_checkpoints: bool = True,
    resources: Mapping[str, float] | None = None,
) -> Any:
    """Run a Ray Tune sweep whose trials train with Lightning; returns Ray's ``ResultGrid``.

    The same ``callbacks`` serve both sides, with no hook fired twice: on the driver they are Ray Tune
    callbacks of ``tune.Tuner(..., run_config=RunConfig(callbacks=...))``, so Ray fires its real lifecycle
    hooks (``setup``, ``on_trial_result``, ``on_trial_save`` ...) with its real trials, results and
    checkpoints; in each trial they run under the Lightning Trainer (see [`lightning_trainable`][lightning_trainable]),
    which fires the WarpRec data hooks. As in WarpRec, ``on_training_complete`` fires once, on the driver,
    after the sweep, with the best trial's model (rebuilt from its checkpoint with the LightningModule's
    ``load_from_checkpoint``). Callbacks that do not derive from ``ray.tune.Callback`` get a forwarding
    wrapper on the driver.

    Args:
        train_fn: ``train_fn(config, lightning_callbacks)`` fits one trial.
        param_space: Ray Tune's search space.
        callbacks: WarpRec-style / Ray Tune callbacks.
        tune_config: ``ray.tune.TuneConfig``.
        run_config: ``ray.tune.RunConfig``; the Tuner gets a copy whose callbacks are its own followed by
            ``callbacks`` (yours is left as it is).
        metrics: what each trial reports after each validation (default: every logged metric).
        save_checkpoints: whether each trial reports a checkpoint with each result.
        resources: per-trial resources, e.g. ``{"cpu": 1}``.

    Raises:
        ValueError: a callback defines ``on_training_complete`` but there is no best trial to take the model
            from (``tune_config`` without ``metric`` and ``mode``, or ``save_checkpoints=False``).

    Example:
        ``results = tune_sweep(fit_one, {"lr": tune.grid_search([0.01, 0.1])}, [my_warprec_cb])``
        (see ``examples/ray_sweep.py``).
    """
    from ray import tune

    callbacks = list(callbacks)
    completes = [cb for cb in callbacks if overrides(cb, "on_training_complete")]
    if completes:
        metric, mode = getattr(tune_config, "metric", None), getattr(tune_config, "mode", None)
        if not (metric and mode and save_checkpoints):
            raise ValueError(
                f"tune_sweep: {type(completes[0]).__name__}.on_training_complete gets the best trial's model, as "
                "WarpRec passes it: give tune_config=tune.TuneConfig(metric=..., mode=...) and keep "
                f"save_checkpoints=True (got metric={metric!r}, mode={mode!r}, save_checkpoints={save_checkpoints})"
            )
    trainable: Any = lightning_trainable(
        train_fn, callbacks, metrics=metrics, save_checkpoints=save_checkpoints, training_complete_on_driver=True
    )
    if resources:
        trainable = tune.with_resources(trainable, dict(resources))
    base = run_config if run_config is not None else tune.RunConfig()
    driver_callbacks = [*(base.callbacks or []), *(ray_callback(cb) for cb in callbacks)]
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config if tune_config is not None else tune.TuneConfig(),
        run_config=dataclasses.replace(base, callbacks=driver_callbacks),
    )
    results = tuner.fit()
    if completes:  # as WarpRec: on the driver, after the sweep, with the best trial's model
        model = best_model(results.get_best_result())
        for callback in completes:
            callback.on_training_complete(model=model)
    return results
