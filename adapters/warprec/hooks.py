"""What a WarpRec-style callback is: its hooks, their signatures, and how callbridge recognises one.

Nothing here imports WarpRec or Ray: a class is recognised by the names and modules of its bases, or by
hooks whose signatures WarpRec can call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

#: Each hook of this style and the Lightning hook it runs from (``callbridge inspect`` prints it).
#: A value starting with "-" means: no Lightning counterpart (the text says when, if ever, it runs).
HOOK_MAP: dict[str, str] = {
    "on_data_reading": "your LightningDataModule's setup/prepare_data, through announce_data(self, data)",
    "on_dataset_creation": "on_fit_start, after the LightningDataModule's setup('fit')",
    "on_training_complete": "on_fit_end (successful fit)",
    "on_evaluation_complete": "on_validation_end / on_test_end (validate and test)",
    "setup": "on_fit_start (the run seen as a one-trial Ray Tune experiment)",
    "on_trial_start": "on_train_start (trial status PENDING)",
    "on_trial_restore": "on_train_start of a fit resumed from a checkpoint",
    "on_step_begin": "on_train_batch_start (each training batch)",
    "on_step_end": "on_train_batch_end (each training batch)",
    "on_trial_result": "on_validation_end (each validation result; delivered before the next epoch starts)",
    "on_checkpoint": "on_save_checkpoint (delivered once the checkpoint file is written)",
    "on_trial_save": "on_save_checkpoint (after on_checkpoint)",
    "on_trial_complete": "on_train_end (trial status RUNNING)",
    "on_trial_error": "on_exception (trial status ERROR); not when a callback's own Ray Tune hook raised",
    "on_trial_recover": "- none: Lightning does not retry a failed run",
    "on_experiment_end": "on_fit_end, or on_exception (after on_trial_error, if that fires)",
    "get_state": "state saved in the Lightning checkpoint",
    "set_state": "state restored from the Lightning checkpoint",
}

#: The keyword options of ``to_lightning`` this style accepts.
OPTIONS: tuple[str, ...] = ("ray_hooks", "run_config")

#: WarpRec's own hooks and the calls WarpRec makes (positional arguments, keyword arguments). A hook with
#: several calls is accepted when any of them binds: ``on_dataset_creation`` lost ``val_dataset`` in a
#: later WarpRec release, and callbacks written for either release must work.
WARPREC_HOOKS: dict[str, tuple[tuple[tuple[Any, ...], dict[str, Any]], ...]] = {
    "on_data_reading": (((None,), {}),),
    "on_dataset_creation": (
        ((), {"main_dataset": None, "validation_folds": []}),
        ((), {"main_dataset": None, "val_dataset": None, "validation_folds": []}),
    ),
    "on_training_complete": (((), {"model": None}),),
    "on_evaluation_complete": (((), {"model": None, "params": {}, "results": {}}),),
}

#: Ray Tune's ``Callback`` hooks (Tune calls all of them with keyword arguments).
RAY_HOOKS: tuple[str, ...] = (
    "setup",
    "on_step_begin",
    "on_step_end",
    "on_trial_start",
    "on_trial_restore",
    "on_trial_save",
    "on_trial_result",
    "on_trial_complete",
    "on_trial_recover",
    "on_trial_error",
    "on_checkpoint",
    "on_experiment_end",
    "get_state",
    "set_state",
)

#: The Ray Tune hooks that need a trial (every hook but the state pair).
TRIAL_HOOKS: frozenset[str] = frozenset(RAY_HOOKS) - {"get_state", "set_state"}


def _is_warprec_base(cls: type) -> bool:
    return cls.__name__ == "WarpRecCallback" and cls.__module__.startswith("warprec.")


def _is_ray_base(cls: type) -> bool:
    return cls.__name__ == "Callback" and cls.__module__.startswith("ray.tune")


def _is_base(cls: type) -> bool:
    return _is_warprec_base(cls) or _is_ray_base(cls) or cls is object


def is_instance(obj: Any) -> bool:
    """``obj`` derives from WarpRec's ``WarpRecCallback`` or from Ray Tune's ``Callback``.

    Examples:
        >>> is_instance(object())
        False
    """
    return any(_is_warprec_base(c) or _is_ray_base(c) for c in type(obj).__mro__)


def overrides(obj: Any, hook: str) -> bool:
    """``obj`` defines ``hook`` itself (not only through WarpRec's or Ray's no-op base class).

    Examples:
        >>> class Filter:
        ...     def on_data_reading(self, data):
        ...         return data
        >>> overrides(Filter(), "on_data_reading"), overrides(Filter(), "on_trial_result")
        (True, False)
    """
    instance_attributes = vars(obj) if hasattr(obj, "__dict__") else {}
    if hook in instance_attributes:
        return callable(instance_attributes[hook])
    for cls in type(obj).__mro__:
        if hook in vars(cls):
            return not _is_base(cls) and callable(vars(cls)[hook])
    return False


def signature_problem(obj: Any, hook: str) -> str | None:
    """Why WarpRec could not call ``obj.hook`` as it does, or None when it can."""
    try:
        signature = inspect.signature(getattr(obj, hook))
    except (TypeError, ValueError):
        return None
    errors = []
    for args, kwargs in WARPREC_HOOKS[hook]:
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            errors.append(f"{hook}({', '.join([*(['data'] if args else []), *kwargs])}): {error}")
        else:
            return None
    return f"{hook}{signature} cannot be called as WarpRec calls it ({'; or '.join(errors)})"


def looks_like(obj: Any) -> bool:
    """``obj`` defines at least one WarpRec hook, each with a signature WarpRec can call.

    Examples:
        >>> class Plot:
        ...     def on_training_complete(self, model, *args, **kwargs):
        ...         pass
        >>> looks_like(Plot())
        True
    """
    hooks = [hook for hook in WARPREC_HOOKS if overrides(obj, hook)]
    return bool(hooks) and all(signature_problem(obj, hook) is None for hook in hooks)


def dataset_creation_call(method: Callable[..., Any]) -> Callable[[Any, Any, list[Any]], Any]:
    """Calls ``on_dataset_creation`` the way the WarpRec release it was written for calls it.

    WarpRec passes ``main_dataset=`` and ``validation_folds=``; releases before that also passed
    ``val_dataset=``. A callback that names ``val_dataset`` in its signature gets it; any other gets the
    current call.

    Examples:
        >>> class Old:
        ...     def on_dataset_creation(self, main_dataset, val_dataset, validation_folds, *args, **kwargs):
        ...         return main_dataset, val_dataset, validation_folds
        >>> dataset_creation_call(Old().on_dataset_creation)("main", "val", [])
        ('main', 'val', [])
    """
    try:
        names = inspect.signature(method).parameters
    except (TypeError, ValueError):
        names = {}

    if "val_dataset" in names:
        return lambda main, val, folds: method(main_dataset=main, val_dataset=val, validation_folds=folds)
    return lambda main, val, folds: method(main_dataset=main, validation_folds=folds)
