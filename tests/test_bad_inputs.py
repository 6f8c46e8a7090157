"""Bad input, table-driven: each case asserts the error type, that the message names the offending thing, and
whether it is raised before the first training batch.

``python tests/test_bad_inputs.py`` prints the table (case, when raised, error, message) as Markdown.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from callbridge.adapters import from_config, to_lightning
from callbridge.adapters.config import ConfigError
from callbridge.callbacks import Callback, CallbackContext, CallbackList, CheckpointCallback, EarlyStoppingCallback
from callbridge.callbacks.serialization import CheckpointFileError, load_checkpoint_file, save_checkpoint_file

sys.path.insert(0, str(Path(__file__).parent))
from toy import ToyRegression, make_trainer

BEFORE = "before the first batch"
AFTER = "after the first batch"


class Counting(ToyRegression):
    """Counts training batches: a case raised before the first batch leaves ``batches == 0``."""

    def __init__(self, ns: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.batches += 1
        return super().training_step(batch, batch_idx)


@dataclass
class Case:
    id: str
    error: type[BaseException] | type[Warning]
    names: str  # the message must contain this (the callback, hook, entry, key or file it is about)
    run: Callable[[Path, list[Counting]], Any]
    when: str = BEFORE  # what the case asserts about the first batch
    stage: str = "construction"  # where it is raised, for the table


def _fit(models: list[Counting], callbacks: list[Any], ckpt_path: Any = None, model: Counting | None = None) -> None:
    model = model or Counting()
    models.append(model)
    make_trainer(callbacks, max_epochs=2, limit_val_batches=1).fit(model, ckpt_path=ckpt_path)


# -- unified callbacks ---------------------------------------------------------------------------------
def _misspelt_hook(tmp: Path, models: list) -> None:
    class Report(Callback):
        def on_epoc_end(self, ctx: CallbackContext) -> None: ...


def _foreign_hook_name(tmp: Path, models: list) -> None:
    class Report(Callback):
        def on_batch_end(self, ctx: CallbackContext) -> None: ...


def _lightning_hook_name(tmp: Path, models: list) -> None:
    class Report(Callback):
        def on_train_epoch_end(self, ctx: CallbackContext) -> None: ...


def _keras_signature(tmp: Path, models: list) -> None:
    class KerasLike(Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...


def _keras_required_args(tmp: Path, models: list) -> None:
    class KerasLike(Callback):
        def on_step_end(self, batch, logs) -> None: ...


def _hook_without_ctx(tmp: Path, models: list) -> None:
    class NoContext(Callback):
        def on_train_end(self) -> None: ...


class Report(Callback):
    def on_epoch_end(self, ctx: CallbackContext) -> None: ...


def _unwrapped(tmp: Path, models: list) -> None:
    _fit(models, [Report()])


# -- to_lightning --------------------------------------------------------------------------------------
def _class_not_instance(tmp: Path, models: list) -> None:
    to_lightning([Report])


def _no_style(tmp: Path, models: list) -> None:
    to_lightning([Report(), {"class_path": "x"}])


def _twice(tmp: Path, models: list) -> None:
    report = Report()
    to_lightning([report, report])


def _unknown_option(tmp: Path, models: list) -> None:
    to_lightning([Report()], key_map={"a": "b"})


# -- config files --------------------------------------------------------------------------------------
def _config_file(text: str) -> Callable[[Path, list], Any]:
    def run(tmp: Path, models: list) -> None:
        file = tmp / "callbacks.yaml"
        file.write_text(text)
        from_config(file)

    return run


def _none_config(tmp: Path, models: list) -> None:
    from_config(None)


def _list_entry_is_a_string(tmp: Path, models: list) -> None:
    from_config([{"class_path": "callbridge.callbacks.Callback"}, "callbridge.callbacks.Callback"])


def _list_entry_is_none(tmp: Path, models: list) -> None:
    from_config([None])


def _list_entry_is_a_number(tmp: Path, models: list) -> None:
    from_config([3])


# -- CheckpointCallback: arguments, folders, formats -----------------------------------------------------
def _ckpt(**kwargs: Any) -> Callable[[Path, list], Any]:
    def run(tmp: Path, models: list) -> None:
        CheckpointCallback(tmp / "ckpt", **kwargs)

    return run


def _save_dir_under_a_file(tmp: Path, models: list) -> None:
    (tmp / "taken").write_text("a file, not a folder")
    _fit(models, to_lightning([CheckpointCallback(tmp / "taken" / "ckpts")]))


def _save_dir_is_a_file(tmp: Path, models: list) -> None:
    (tmp / "taken.pt").write_text("a file, not a folder")
    _fit(models, to_lightning([CheckpointCallback(tmp / "taken.pt")]))


def _save_dir_cannot_be_created(tmp: Path, models: list) -> None:
    _fit(models, to_lightning([CheckpointCallback("/proc/callbridge-no-such-dir/ckpts")]))


class ObjectState(Callback):
    def on_epoch_end(self, ctx: CallbackContext) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {"started": object()}


class LambdaState(Callback):
    def on_epoch_end(self, ctx: CallbackContext) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {"rule": lambda x: x}


def _safetensors_cannot_hold_state(tmp: Path, models: list) -> None:
    _fit(models, to_lightning([ObjectState(), CheckpointCallback(tmp, format="safetensors")]))


def _pt_cannot_pickle_state(tmp: Path, models: list) -> None:
    _fit(models, to_lightning([LambdaState(), CheckpointCallback(tmp, format="pt")]))


def _safetensors_cannot_hold_hparams(tmp: Path, models: list) -> None:
    # In a plain loop the engine fills ctx.hparams; the check runs when fit starts (on_stage_begin).
    ctx = CallbackContext(model=torch.nn.Linear(2, 1))
    ctx.hparams = {"lr": 0.1, "parser_args": argparse.Namespace(depth=3)}
    CallbackList([CheckpointCallback(tmp, format="safetensors")]).on_stage_begin(ctx)


# -- checkpoint files given to fit(ckpt_path=...) ----------------------------------------------------------
def _good_checkpoint(tmp: Path, fmt: str) -> Path:
    path = tmp / f"good.{fmt}"
    trainer = make_trainer(to_lightning([Report()]), max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(ToyRegression())  # not counted: this run is the setup, not the case
    trainer.save_checkpoint(path)  # through callbridge's CheckpointIO, which the bridge installed
    return path


def _flip_tensor_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    if path.suffix == ".pt":
        with zipfile.ZipFile(path) as archive:
            info = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
        offset = info.header_offset + 30 + name_len + extra_len  # the first tensor's bytes
    else:
        offset = len(raw) - 3  # the end of the tensor buffer
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def _resume_from(prepare: Callable[[Path], Path]) -> Callable[[Path, list], Any]:
    def run(tmp: Path, models: list) -> None:
        path = prepare(tmp)
        _fit(models, to_lightning([CheckpointCallback(tmp / "ckpt")]), ckpt_path=path)

    return run


def _bit_flipped(fmt: str) -> Callable[[Path], Path]:
    def prepare(tmp: Path) -> Path:
        path = _good_checkpoint(tmp, fmt)
        _flip_tensor_byte(path)
        return path

    return prepare


def _truncated(fmt: str) -> Callable[[Path], Path]:
    def prepare(tmp: Path) -> Path:
        path = _good_checkpoint(tmp, fmt)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path

    return prepare


def _plain_safetensors(tmp: Path) -> Path:
    from safetensors.torch import save_file

    path = tmp / "weights.safetensors"
    save_file(Counting().state_dict(), str(path))
    return path


def _plain_state_dict_pt(tmp: Path) -> Path:
    path = tmp / "weights.pt"
    torch.save(Counting().state_dict(), path)
    return path


def _text_file_pt(tmp: Path) -> Path:
    path = tmp / "notes.pt"
    path.write_text("not a checkpoint\n")
    return path


def _missing_file(tmp: Path) -> Path:
    return tmp / "no-such.ckpt"


def _flipped_plain_load(tmp: Path, models: list) -> None:
    path = tmp / "state.safetensors"
    save_checkpoint_file({"w": torch.arange(64.0)}, path)
    _flip_tensor_byte(path)
    load_checkpoint_file(path)


def _foreign_pickle_is_not_unpickled(tmp: Path, models: list) -> None:
    path = tmp / "foreign.pt"
    torch.save({"state_dict": {}, "extra": argparse.Namespace(a=1)}, path)  # not written by callbridge
    load_checkpoint_file(path)  # torch's default weights_only=True refuses the Namespace


# -- early stopping --------------------------------------------------------------------------------------
def _monitor_never_logged(tmp: Path, models: list) -> None:
    _fit(models, to_lightning([EarlyStoppingCallback(monitor="val_acc")]))


CASES: list[Case] = [
    # unified callbacks
    Case(
        "misspelt hook on_epoc_end", UserWarning, "did you mean on_epoch_end", _misspelt_hook, stage="class definition"
    ),
    Case(
        "Keras hook name on_batch_end",
        UserWarning,
        "did you mean on_step_end",
        _foreign_hook_name,
        stage="class definition",
    ),
    Case(
        "Lightning hook name on_train_epoch_end",
        UserWarning,
        "Report.on_train_epoch_end",
        _lightning_hook_name,
        stage="class definition",
    ),
    Case(
        "Keras signature on_epoch_end(self, epoch, logs=None)",
        TypeError,
        "on_epoch_end(self, ctx)",
        _keras_signature,
        stage="class definition",
    ),
    Case(
        "Keras signature on_step_end(self, batch, logs)",
        TypeError,
        "KerasLike.on_step_end(self, batch, logs)",
        _keras_required_args,
        stage="class definition",
    ),
    Case(
        "hook without ctx: on_train_end(self)",
        TypeError,
        "NoContext.on_train_end(self)",
        _hook_without_ctx,
        stage="class definition",
    ),
    Case(
        "unified callback passed to Trainer unwrapped",
        TypeError,
        "Report is a callbridge unified callback",
        _unwrapped,
        stage="fit start (setup)",
    ),
    # to_lightning
    Case("to_lightning: a class, not an instance", TypeError, "Report(...)", _class_not_instance, stage="to_lightning"),
    Case("to_lightning: a dict", TypeError, "callback #1", _no_style, stage="to_lightning"),
    Case("to_lightning: same instance twice", ValueError, "registered twice", _twice, stage="to_lightning"),
    Case("to_lightning: option no style takes", TypeError, "key_map", _unknown_option, stage="to_lightning"),
    # config files and objects
    Case(
        "config: empty file",
        ConfigError,
        "callbacks.yaml': declares no callbacks",
        _config_file(""),
        stage="from_config",
    ),
    Case("config: comments only", ConfigError, "declares no callbacks", _config_file("# TODO\n"), stage="from_config"),
    Case("config: empty list", ConfigError, "declares no callbacks", _config_file("[]\n"), stage="from_config"),
    Case(
        "config: bare class name",
        ConfigError,
        "class_path: train.HaltOnNan",
        _config_file("train.HaltOnNan\n"),
        stage="from_config",
    ),
    Case("config: a number", ConfigError, "holds a single int (42)", _config_file("42\n"), stage="from_config"),
    Case("config: a boolean", ConfigError, "holds a single bool", _config_file("true\n"), stage="from_config"),
    Case(
        "config: nested list",
        ConfigError,
        "entry #0: a list nested",
        _config_file("- - class_path: callbridge.callbacks.Callback\n"),
        stage="from_config",
    ),
    Case(
        "config: `callbacks:` with nothing under it",
        ConfigError,
        "every key ['callbacks'] is null",
        _config_file("callbacks:\n"),
        stage="from_config",
    ),
    Case(
        "config: `callbacks:` key holding the list",
        ConfigError,
        "entry 'callbacks': a list nested",
        _config_file("callbacks:\n  - class_path: callbridge.callbacks.Callback\n"),
        stage="from_config",
    ),
    Case(
        "config: list of bare names",
        ConfigError,
        "entry #0: a bare class name",
        _config_file("- callbridge.callbacks.Callback\n"),
        stage="from_config",
    ),
    Case(
        "config: null list entry",
        ConfigError,
        "entry #1: a NoneType",
        _config_file("- class_path: callbridge.callbacks.Callback\n-\n"),
        stage="from_config",
    ),
    Case("from_config(None)", ConfigError, "config: is None", _none_config, stage="from_config"),
    Case(
        "from_config: string entry in a list",
        ConfigError,
        "entry #1: a bare class name",
        _list_entry_is_a_string,
        stage="from_config",
    ),
    Case("from_config: None entry", ConfigError, "entry #0: a NoneType", _list_entry_is_none, stage="from_config"),
    Case("from_config: number entry", ConfigError, "entry #0: a int (3)", _list_entry_is_a_number, stage="from_config"),
    # CheckpointCallback
    Case(
        "CheckpointCallback(save_dir='')",
        ValueError,
        "save_dir must be a folder path",
        lambda tmp, m: CheckpointCallback(""),
    ),
    Case(
        "CheckpointCallback(save_total_limit=True)",
        TypeError,
        "save_total_limit must be None or an int, got bool",
        _ckpt(save_total_limit=True),
    ),
    Case(
        "CheckpointCallback(save_steps='3')",
        TypeError,
        "save_steps must be None or an int, got str",
        _ckpt(strategy="step", save_steps="3"),
    ),
    Case(
        "CheckpointCallback(monitor=3)",
        TypeError,
        "monitor must be None or a metric name (str), got int",
        _ckpt(monitor=3),
    ),
    Case("CheckpointCallback(format='ckpt')", ValueError, "format must be one of", _ckpt(format="ckpt")),
    Case("save_dir under a file", ValueError, "/taken' is a file", _save_dir_under_a_file, stage="fit start"),
    Case("save_dir is a file", ValueError, "taken.pt' is a file", _save_dir_is_a_file, stage="fit start"),
    Case(
        "save_dir cannot be created",
        ValueError,
        "callbridge-no-such-dir/ckpts' cannot be written",
        _save_dir_cannot_be_created,
        stage="fit start",
    ),
    Case(
        "safetensors: callback state holds an object",
        TypeError,
        "checkpoint['callbacks']['ObjectState']['started']",
        _safetensors_cannot_hold_state,
        stage="fit start",
    ),
    Case(
        "safetensors: hparams hold a Namespace",
        TypeError,
        "['hyper_parameters']['parser_args'] is a argparse.Namespace",
        _safetensors_cannot_hold_hparams,
        stage="fit start",
    ),
    Case(
        "pt: callback state holds a lambda", TypeError, "cannot be pickled", _pt_cannot_pickle_state, stage="fit start"
    ),
    # checkpoint files
    Case(
        "resume: bit-flipped .pt",
        CheckpointFileError,
        "good.pt'",
        _resume_from(_bit_flipped("pt")),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "resume: bit-flipped .safetensors",
        CheckpointFileError,
        "good.safetensors': content hash mismatch",
        _resume_from(_bit_flipped("safetensors")),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "resume: truncated .pt",
        CheckpointFileError,
        "good.pt': damaged",
        _resume_from(_truncated("pt")),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "resume: truncated .safetensors",
        CheckpointFileError,
        "good.safetensors': not a readable safetensors file",
        _resume_from(_truncated("safetensors")),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "resume: plain safetensors state dict",
        CheckpointFileError,
        "weights.safetensors': not a Lightning training checkpoint",
        _resume_from(_plain_safetensors),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "resume: torch.save(state_dict) file",
        CheckpointFileError,
        "weights.pt': not a Lightning training checkpoint",
        _resume_from(_plain_state_dict_pt),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "resume: a text file named .pt",
        CheckpointFileError,
        "notes.pt'",
        _resume_from(_text_file_pt),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "resume: missing file",
        FileNotFoundError,
        "no-such.ckpt",
        _resume_from(_missing_file),
        stage="fit(ckpt_path) load",
    ),
    Case(
        "load: bit-flipped safetensors (plain loop)",
        CheckpointFileError,
        "state.safetensors': content hash mismatch",
        _flipped_plain_load,
        stage="load_checkpoint_file",
    ),
    Case(
        "load: foreign .pt with pickled objects",
        pickle.UnpicklingError,
        "Weights only load failed",
        _foreign_pickle_is_not_unpickled,
        stage="load_checkpoint_file",
    ),
    # known only once metrics exist
    Case(
        "EarlyStopping monitor never logged",
        KeyError,
        "'val_acc'",
        _monitor_never_logged,
        when=AFTER,
        stage="first epoch end",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    models: list[Counting] = []
    message = _raise(case, tmp_path, models)
    assert case.names in message, message
    batches = sum(model.batches for model in models)
    assert (batches == 0) == (case.when == BEFORE), f"{batches} training batches ran"


def _raise(case: Case, tmp_path: Path, models: list[Counting]) -> str:
    if issubclass(case.error, Warning):
        with pytest.warns(case.error) as record:
            case.run(tmp_path, models)
        return " | ".join(str(w.message) for w in record if issubclass(w.category, case.error))
    with pytest.raises(case.error) as info:
        case.run(tmp_path, models)
    return str(info.value)


def _table() -> str:
    import tempfile

    rows = ["| case | raised | when | error | message |", "| --- | --- | --- | --- | --- |"]
    for case in CASES:
        models: list[Counting] = []
        with tempfile.TemporaryDirectory() as tmp:
            try:
                with warnings.catch_warnings(record=True) as record:
                    warnings.simplefilter("always")
                    case.run(Path(tmp), models)
                found = [w for w in record if issubclass(w.category, case.error)]
                message = str(found[0].message) if found else "(nothing: silent)"
                error = case.error.__name__ if found else "-"
            except BaseException as exc:
                message, error = str(exc), type(exc).__name__
        when = BEFORE if sum(m.batches for m in models) == 0 else AFTER
        message = " ".join(message.split()).replace("|", "\\|")
        rows.append(f"| {case.id} | {case.stage} | {when} | {error} | {message[:300]} |")
    return "\n".join(rows)


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    print(_table())
