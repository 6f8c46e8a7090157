"""Hugging Face Transformers ``TrainerCallback``\\ s, unchanged, under a Lightning Trainer.

``to_lightning([hf_callback, ...], training_args=TrainingArguments(...))`` runs every HF callback of the call
behind one `HFAdapter`, which gives them what ``transformers.Trainer``
gives them: HF's ``(args, state, control, **kwargs)`` with a real ``TrainingArguments``, ``TrainerState`` and
``TrainerControl``, HF's metric names, HF's logging window and summary, and ``control`` flags that act on the
Lightning run. Classes are accepted as well as instances, as HF's ``Trainer`` accepts both.

Importing this package never imports ``transformers``: detection reads class names, and the adapter module
(which imports it) loads only when HF callbacks are adapted. Hook mapping, derived arguments and the known
differences are in ``docs/hf.md``.

Examples:
    >>> from callbridge.adapters.hf import is_instance, looks_like
    >>> class Duck:
    ...     def on_log(self, args, state, control, logs=None, **kwargs):
    ...         print(logs)
    >>> is_instance(Duck()), looks_like(Duck())
    (False, True)
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from callbridge.adapters.registry import Style, register

STYLE = "hf"

#: Each HF event and the Lightning hook it runs from (``callbridge inspect`` prints it).
#: A value starting with "-" means: no Lightning counterpart (the text says when, if ever, it runs).
HOOK_MAP: dict[str, str] = {
    "on_init_end": "setup (once per Trainer)",
    "on_train_begin": "on_train_start",
    "on_epoch_begin": "on_train_epoch_start",
    "on_step_begin": "on_train_batch_start (first batch of each optimizer step)",
    "on_substep_end": "on_train_batch_end (batches that accumulate gradients without an optimizer step)",
    "on_pre_optimizer_step": "on_train_batch_end (after the step: gradients as they were stepped)",
    "on_optimizer_step": "on_train_batch_end (after the step, before the gradients are zeroed)",
    "on_step_end": "on_train_batch_end (batches that step the optimizer)",
    "on_log": "on_train_batch_end when control.should_log, on_train_epoch_end, after each evaluation, on_train_end",
    "on_evaluate": "on_validation_end (mid-epoch) / on_train_epoch_end (epoch-end validation, after on_epoch_end)"
    " / on_validation_end and on_test_end of validate and test",
    "on_epoch_end": "on_train_epoch_end (after the LightningModule's own on_train_epoch_end)",
    "on_save": "where control.should_save is acted on, after callbridge wrote output_dir/checkpoint-N",
    "on_train_end": "on_train_end",
    "on_prediction_step": "on_validation_batch_end / on_test_batch_end / on_predict_batch_end",
    "on_predict": "on_predict_end",
    "on_push_begin": "- never: callbridge pushes nothing to the Hugging Face Hub",
}
OPTIONS = ("training_args", "key_map", "processing_class")
EVENTS: tuple[str, ...] = tuple(HOOK_MAP)


def _hf_base(cls: type) -> bool:
    return any(c.__name__ == "TrainerCallback" and c.__module__.split(".")[0] == "transformers" for c in cls.__mro__)


def is_instance(obj: Any) -> bool:
    """``obj`` (an instance or a class) derives from ``transformers.TrainerCallback``; never imports transformers."""
    return _hf_base(obj if isinstance(obj, type) else type(obj))


def _hf_signature(method: Any) -> bool:
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names[:3] == ["args", "state", "control"] and any(p.kind is p.VAR_KEYWORD for p in params)


def looks_like(obj: Any) -> bool:
    """``obj`` has at least one HF event with HF's signature ``(args, state, control, **kwargs)``, and no other."""
    found = False
    for event in EVENTS:
        method = getattr(obj, event, None)
        if method is None:
            continue
        if not callable(method) or not _hf_signature(method):
            return False
        found = True
    return found


def adapt(objs: Iterable[Any], **options: Any) -> list[Any]:
    """One `HFAdapter` for every HF callback of a ``to_lightning`` call."""
    try:
        from callbridge.adapters.hf.adapter import HFAdapter
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != "transformers":
            raise
        raise ImportError("HF-style callbacks need Hugging Face Transformers: pip install 'callbridge[hf]'") from error
    return [HFAdapter(list(objs), **options)]


def inspect_problems(cls: type) -> list[str]:
    """What of ``cls`` will not work as under ``transformers.Trainer`` (``callbridge inspect``)."""
    problems = []
    for event, why in (
        ("on_push_begin", "callbridge never pushes to the Hub, so on_push_begin never runs"),
        ("on_pre_optimizer_step", "on_pre_optimizer_step runs after Lightning's optimizer step (see docs/hf.md)"),
    ):
        owner = next((c for c in cls.__mro__ if event in vars(c)), object)
        if owner is not object and not _hf_base_class(owner):
            problems.append(why)
    return problems


def _hf_base_class(owner: type) -> bool:
    return owner.__name__ == "TrainerCallback" and owner.__module__.split(".")[0] == "transformers"


def __getattr__(name: str) -> Any:
    if name in ("HFAdapter", "derive_training_args"):
        module = "adapter" if name == "HFAdapter" else "args"
        return getattr(importlib.import_module(f"callbridge.adapters.hf.{module}"), name)
    raise AttributeError(f"module 'callbridge.adapters.hf' has no attribute {name!r}")


def _verify(make: Any, workdir: Any, label: str = "", epochs: int | None = None) -> Any:
    """``callbridge verify`` for HF: ``transformers.Trainer`` against callbridge (see
    `callbridge.adapters.hf.conformance`)."""
    from callbridge.adapters.hf.conformance import verify

    return verify(make, workdir, label=label, epochs=epochs)


register(
    Style(
        name=STYLE,
        summary="Hugging Face Transformers callbacks (transformers.TrainerCallback, classes or instances)",
        is_instance=is_instance,
        looks_like=looks_like,
        adapt=adapt,
        hook_map=HOOK_MAP,
        options=OPTIONS,
        library_packages=("transformers",),
        base_classes=("TrainerCallback",),
        inspect_problems=inspect_problems,
        extra="hf",
        docs_page="hf.md",
        accepts_classes=True,
        verify=_verify,
    )
)
