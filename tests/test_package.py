"""The top-level ``callbridge`` package: version, lazy public names, ``callbridge --version``."""

import ast
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import callbridge
import pytest
from callbridge.adapters import cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "pytorch_lightning", "keras", "hydra", "ray", "mlflow", "transformers")


def test_version_is_single_sourced_from_pyproject():
    declared = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert callbridge.__version__ == version("callbridge") == declared


def test_import_is_lazy_and_public_names_resolve_to_their_home_objects():
    code = (
        "import sys, callbridge\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = lambda: sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "print(loaded())\n"
        "callbridge.Callback, callbridge.EarlyStoppingCallback, callbridge.LoggingCallback\n"
        "print(loaded())\n"
        "callbridge.to_lightning, callbridge.from_config\n"
        "print(loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    at_import, after_callbacks, after_bridge = out.stdout.splitlines()
    assert at_import == "[]"
    assert after_callbacks == "[]"  # the unified API and built-ins never import Lightning
    assert "lightning" in after_bridge and not {"keras", "hydra", "ray"} & set(ast.literal_eval(after_bridge))

    from callbridge.adapters.config import ConfigError, from_config
    from callbridge.adapters.lightning import to_lightning
    from callbridge.callbacks import (
        Callback,
        CallbackContext,
        CallbackList,
        CheckpointCallback,
        EarlyStoppingCallback,
        LoggingCallback,
        ProgressCallback,
    )

    expected = [
        Callback,
        CallbackContext,
        CallbackList,
        CheckpointCallback,
        ConfigError,
        EarlyStoppingCallback,
        LoggingCallback,
        ProgressCallback,
        from_config,
        to_lightning,
    ]
    assert [getattr(callbridge, name) for name in callbridge.__all__ if name != "__version__"] == expected
    assert set(callbridge.__all__) <= set(dir(callbridge))


def test_unknown_name_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no attribute 'to_keras'"):
        callbridge.to_keras  # noqa: B018


def test_version_flag(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"callbridge {callbridge.__version__}\n"
    out = subprocess.run(
        [sys.executable, "-m", "callbridge", "--version"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout == f"callbridge {callbridge.__version__}\n"
