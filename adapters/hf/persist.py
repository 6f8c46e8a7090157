"""HF state in Lightning checkpoints, and the ``checkpoint-N`` folders that ``control.should_save`` asks for.

``TrainerState`` (with every ``ExportableState`` callback's ``state()`` under ``stateful_callbacks``, as HF's
``Trainer`` stores it in ``trainer_state.json``) travels in the unified callback state of the adapter, so a
Lightning checkpoint holds it and ``fit(ckpt_path=...)`` restores it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from callbridge.callbacks.serialization import atomic_path, load_checkpoint_file

#: The Lightning checkpoint file inside each ``output_dir/checkpoint-N`` folder.
CHECKPOINT_FILE = "model.ckpt"
#: HF's name for the state file of a checkpoint folder.
STATE_FILE = "trainer_state.json"


def is_stateful(callback: Any) -> bool:
    """HF saves the state of callbacks that are ``ExportableState`` (they implement ``state()``)."""
    from transformers.trainer_callback import ExportableState

    return isinstance(callback, ExportableState)


def stateful_callbacks(callbacks: Sequence[Any], control: Any) -> dict[str, Any]:
    """``{class name: state() or [state(), ...]}`` of the stateful callbacks and ``control``, as HF keeps it."""
    out: dict[str, Any] = {}
    for callback in [*callbacks, control]:
        if not is_stateful(callback):
            continue
        name, state = type(callback).__name__, callback.state()
        if name not in out:
            out[name] = state
        elif isinstance(out[name], list):
            out[name].append(state)
        else:
            out[name] = [out[name], state]
    return out


def state_as_dict(state: Any) -> dict[str, Any]:
    """``TrainerState`` as plain data (what ``trainer_state.json`` holds)."""
    return dataclasses.asdict(state)


def state_from_dict(saved: Mapping[str, Any]) -> Any:
    """A ``TrainerState`` from `state_as_dict`'s output; fields this transformers lacks are ignored."""
    from transformers import TrainerState

    names = {f.name for f in dataclasses.fields(TrainerState)}
    state = TrainerState(**{key: value for key, value in saved.items() if key in names})
    if state.best_model_checkpoint is not None and not os.path.isdir(state.best_model_checkpoint):
        state.best_model_checkpoint = None  # as HF: the best checkpoint of the resumed state is gone
    return state


def restore_callbacks(saved: Mapping[str, Any], callbacks: Sequence[Any], control: Any) -> list[str]:
    """Sets each stateful callback's saved ``attributes`` (in place: the caller's objects stay the ones that run).

    HF rebuilds the callback from the saved ``args`` and sets the ``attributes``; the ``args`` are the ones the
    callback was built with, so setting the attributes on the existing instance restores the same state.
    Returns the saved names that no callback of this run took.
    """
    unused = []
    for name, data in saved.items():
        states = data if isinstance(data, list) else [data]
        owners = [cb for cb in [*callbacks, control] if type(cb).__name__ == name and is_stateful(cb)]
        if not owners:
            unused.append(name)
        for owner, state in zip(owners, states, strict=False):  # HF also pairs them up to the shorter
            if owner is control:
                for key, value in state.get("args", {}).items():
                    setattr(control, key, value)
            for key, value in state.get("attributes", {}).items():
                setattr(owner, key, value)
    return unused


def write_state_file(state: Any, folder: str) -> None:
    """``folder/trainer_state.json`` as HF writes it, atomically."""
    text = json.dumps(state_as_dict(state), indent=2, sort_keys=True) + "\n"
    with atomic_path(os.path.join(folder, STATE_FILE)) as tmp:
        tmp.write_text(text, encoding="utf-8")


def load_best_weights(model: Any, folder: str) -> None:
    """Loads the model weights of ``folder/model.ckpt`` into ``model`` (``load_best_model_at_end``)."""
    path = os.path.join(folder, CHECKPOINT_FILE)
    if not os.path.exists(path):
        warnings.warn(f"HFAdapter: load_best_model_at_end: no {path}; the weights stay as they are", stacklevel=2)
        return
    device = next((p.device for p in model.parameters()), "cpu")
    checkpoint = load_checkpoint_file(path, map_location=device)
    model.load_state_dict(checkpoint["state_dict"])
