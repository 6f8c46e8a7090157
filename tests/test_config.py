"""from_config: every entry format in one list, built in order, run under a real Trainer; bad entries fail early."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import cfg_callbacks
import pytest
from callbridge.adapters import ConfigError, LightningBridge, from_config, load_class_from_file
from cfg_callbacks import EVENTS
from omegaconf import OmegaConf
from toy import ToyRegression, make_trainer

WARPREC_FILE = '''
from callbridge.callbacks import Callback

class FileRecorder(Callback):
    """A unified callback loaded from a file, WarpRec-config style."""
    def __init__(self, name, suffix="!"):
        self.name = name + suffix
    def on_train_begin(self, ctx):
        import cfg_callbacks
        cfg_callbacks.EVENTS.append((self.name, "on_train_begin"))

class WarpRecStyle:
    def __init__(self, tag="w"):
        self.tag = tag
    def on_training_complete(self, model, *args, **kwargs):
        import cfg_callbacks
        cfg_callbacks.EVENTS.append((self.tag, "warprec.on_training_complete"))

not_a_class = 3
'''


@pytest.fixture
def callback_file(tmp_path: Path) -> Path:
    file = tmp_path / "my_callbacks.py"
    file.write_text(WARPREC_FILE)
    return file


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    EVENTS.clear()


def test_mixed_formats_run_in_declared_order(callback_file: Path) -> None:
    callbacks = from_config(
        [
            {"_target_": "cfg_callbacks.Recorder", "name": "hydra-entry"},
            {"class_path": "cfg_callbacks.NativeRecorder", "init_args": {"name": "native"}},
            {"class_path": "cfg_callbacks.Recorder", "init_args": {"name": "cli-entry", "every": "3"}},
            {"callback_path": str(callback_file), "callback_name": "FileRecorder", "args": ["file"], "kwargs": {}},
            cfg_callbacks.Recorder("built"),
        ]
    )
    assert [type(cb).__name__ for cb in callbacks] == ["LightningBridge", "NativeRecorder"]
    bridge = callbacks[0]
    assert [cb.name for cb in bridge.callbacks] == ["hydra-entry", "cli-entry", "file!", "built"]
    assert bridge.callbacks[1].every == 3  # class_path init_args are typed as LightningCLI types them
    make_trainer(callbacks, max_epochs=1, limit_train_batches=1, limit_val_batches=1).fit(ToyRegression())
    begins = [name for name, hook in EVENTS if hook in ("on_train_begin", "on_train_start")]
    assert begins == ["hydra-entry", "cli-entry", "file!", "built", "native"]
    assert [name for name, hook in EVENTS if hook == "on_epoch_end"] == ["hydra-entry", "cli-entry", "built"]


def test_yaml_file_omegaconf_node_and_named_mapping(tmp_path: Path, callback_file: Path) -> None:
    config = tmp_path / "callbacks.yaml"
    config.write_text(
        textwrap.dedent(
            """
            base: from-yaml
            callbacks:
              first: {_target_: cfg_callbacks.Recorder, name: "${base}"}
              disabled: null
              second: {callback_path: my_callbacks.py, callback_name: FileRecorder, kwargs: {name: rel, suffix: ""}}
            """
        )
    )
    node = OmegaConf.load(config)
    # The node: interpolations resolve; a null entry is skipped, as in a Hydra callbacks group.
    (bridge,) = from_config(node.callbacks, base_dir=tmp_path)
    assert [cb.name for cb in bridge.callbacks] == ["from-yaml", "rel"]
    # A YAML path: relative callback_path values resolve against the file's directory.
    list_file = tmp_path / "list.yaml"
    list_file.write_text("- {callback_path: my_callbacks.py, callback_name: FileRecorder, args: [x]}\n")
    (bridge,) = from_config(str(list_file))
    assert [cb.name for cb in bridge.callbacks] == ["x!"]
    # A single entry is a one-element list; an empty config gives no callbacks.
    (bridge,) = from_config({"class_path": "cfg_callbacks.Recorder"})
    assert isinstance(bridge, LightningBridge) and from_config([]) == []


def test_every_bad_entry_is_named_with_its_cause_before_training(callback_file: Path) -> None:
    with pytest.raises(ConfigError) as info:
        from_config(
            [
                {"class_path": "cfg_callbacks.Recorder"},  # fine
                {"init_args": {"name": "x"}},
                {"class_path": "cfg_callbacks.DoesNotExist"},
                {"class_path": "cfg_callbacks.Recorder", "init_args": {"nmae": "typo"}},
                {"class_path": "cfg_callbacks.Recorder", "init_args": {"every": "often"}},
                {"_target_": "cfg_callbacks.Recorder", "class_path": "cfg_callbacks.Recorder"},
                {"_target_": "cfg_callbacks.NotACallback"},
                {"_target_": "cfg_callbacks.Recorder", "unknown_kwarg": 1},
                {"class_path": "cfg_callbacks.Recorder", "initargs": {}},
            ]
        )
    problems = dict(info.value.problems)
    message = str(info.value)
    assert message.startswith("8 invalid callback config entries")
    assert "entry #0" not in message
    assert "no target" in problems["entry #1"] and "class_path" in problems["entry #1"]
    assert "unknown class" in problems["entry #2"] and "DoesNotExist" in problems["entry #2"]
    assert "wrong arguments" in problems["entry #3"] and "nmae" in problems["entry #3"]
    assert "accepted: name, every" in problems["entry #3"]
    assert "wrong arguments" in problems["entry #4"] and "often" in problems["entry #4"]
    assert "several formats" in problems["entry #5"] and "hydra, lightning" in problems["entry #5"]
    (label,) = [key for key in problems if key.startswith("entry #6")]
    assert "cfg_callbacks.NotACallback" in label and "unknown style" in problems[label]
    assert "wrong arguments" in problems["entry #7"] and "unknown_kwarg" in problems["entry #7"]
    assert "unknown key(s) ['initargs']" in problems["entry #8"]
    assert EVENTS == []  # nothing ran


def test_mapping_entries_are_named_by_key() -> None:
    with pytest.raises(ConfigError, match=r"entry 'broken': no target"):
        from_config({"ok": {"_target_": "cfg_callbacks.Recorder"}, "broken": {"name": "x"}})


def test_warprec_entries_and_the_file_loader(tmp_path: Path, callback_file: Path) -> None:
    assert load_class_from_file(callback_file, "FileRecorder").__name__ == "FileRecorder"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_class_from_file(tmp_path / "missing.py", "X")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"not a \.py file"):
        load_class_from_file(tmp_path / "notes.txt", "X")
    with pytest.raises(AttributeError, match=r"'Missing' is not defined .* FileRecorder, WarpRecStyle"):
        load_class_from_file(callback_file, "Missing")
    with pytest.raises(AttributeError, match="'not_a_class' is not a class"):
        load_class_from_file(callback_file, "not_a_class")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ImportError, match="RuntimeError: boom"):
        load_class_from_file(tmp_path / "broken.py", "X")
    with pytest.raises(ConfigError) as info:
        from_config(
            [
                {"callback_path": "missing.py", "callback_name": "X"},
                {"callback_path": str(callback_file), "callback_name": "Missing"},
                {"callback_path": str(callback_file), "callback_name": "FileRecorder"},  # name is required
                {"callback_path": str(callback_file), "callback_name": "FileRecorder", "args": "x"},
                {"callback_path": str(callback_file)},
            ],
            base_dir=tmp_path,
        )
    problems = dict(info.value.problems)
    assert "does not exist" in problems["entry #0"]
    assert "'Missing' is not defined" in problems["entry #1"]
    assert "wrong arguments" in problems["entry #2"] and "name" in problems["entry #2"]
    assert "args must be a list" in problems["entry #3"]
    assert "callback_name is missing" in problems["entry #4"]


def test_hydra_entries_need_hydra_core(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("hydra", "hydra.utils", "hydra.errors"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"entry #0: _target_ 'cfg_callbacks.Recorder' needs hydra-core"):
        from_config([{"_target_": "cfg_callbacks.Recorder"}])
    (bridge,) = from_config([{"class_path": "cfg_callbacks.Recorder"}])  # other formats still work
    assert len(bridge.callbacks) == 1


def test_options_reach_to_lightning() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) \[.key_map.\]"):
        from_config([{"class_path": "cfg_callbacks.Recorder"}], key_map={})


def test_foreign_styles_from_every_format_run(callback_file: Path) -> None:
    cfg_callbacks.KerasStyle.seen.clear()
    callbacks = from_config(
        [
            {"class_path": "cfg_callbacks.KerasStyle", "init_args": {"tag": "keras"}},
            {"_target_": "cfg_callbacks.HydraStyle", "tag": "hydra"},
            {"callback_path": str(callback_file), "callback_name": "WarpRecStyle", "kwargs": {"tag": "warprec"}},
        ]
    )
    make_trainer(callbacks, max_epochs=2, limit_train_batches=1, limit_val_batches=1).fit(ToyRegression())
    assert cfg_callbacks.KerasStyle.seen == [0, 1]
    assert ("hydra", "hydra.on_job_end") in EVENTS
    assert ("warprec", "warprec.on_training_complete") in EVENTS


def test_real_keras_callback_by_class_path() -> None:
    (bridge,) = from_config([{"class_path": "keras.callbacks.EarlyStopping", "init_args": {"patience": "2"}}])
    make_trainer([bridge], max_epochs=1, limit_train_batches=1, limit_val_batches=1).fit(ToyRegression())
