"""The home side of ``callbridge verify`` for a Hydra callback: a real ``@hydra.main`` app, run in this process.

The callback under test is built in Python (``make(dir)``), so the app's config names it by a function of this
module: ``hydra.callbacks.under_test._target_`` is [`built_callback`][built_callback], which returns the instance
[`serving`][serving] holds. Hydra then builds its ``Callbacks`` from the config and calls the instance's hooks as it
calls its own. The config dir is written by [`write_config`][write_config]; the job is named ``app`` (this module).

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> conf = write_config(Path(tempfile.mkdtemp()), epochs=1)
    >>> sorted(p.name for p in conf.iterdir())
    ['verify.yaml']
    >>> with serving("my callback"):
    ...     built_callback()
    'my callback'
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The primary config's name, and the job's (Hydra names a job after its task function's module: this one).
CONFIG_NAME = "verify"
JOB_NAME = "app"
#: The sweep both sides run, as on Hydra's command line.
SWEEP = ("lr", (0.1, 0.01))

_CONFIG = """\
# Written by callbridge verify: the app both sides run (home: @hydra.main; callbridge: to_lightning/HydraMultirun).
# Hydra's logging configs are 'none' on both sides: the callback's log records are captured, not Hydra's console.
defaults:
  - override hydra/job_logging: none
  - override hydra/hydra_logging: none
  - _self_

lr: 0.05
epochs: {epochs}
hydra:
  run:
    dir: outputs/run
  sweep:
    dir: multirun/sweep
  callbacks:
    under_test:
      _target_: callbridge.adapters.hydra.conformance.app.built_callback
"""

_SERVED: list[Any] = []


def built_callback() -> Any:
    """The callback under test (Hydra instantiates ``hydra.callbacks.under_test`` with this function)."""
    if not _SERVED:
        raise RuntimeError(
            "callbridge.adapters.hydra.conformance.app.built_callback: no callback is being verified "
            "(it serves the instance `callbridge verify` built, inside serving(...))"
        )
    return _SERVED[-1]


@contextmanager
def serving(callback: Any) -> Iterator[None]:
    """[`built_callback`][built_callback] returns ``callback`` inside the block."""
    _SERVED.append(callback)
    try:
        yield
    finally:
        _SERVED.remove(callback)


def write_config(workdir: Path, *, epochs: int) -> Path:
    """Writes the app's config dir (``workdir/conf/verify.yaml``) and returns it."""
    conf = Path(workdir) / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / f"{CONFIG_NAME}.yaml").write_text(_CONFIG.format(epochs=epochs))
    return conf.resolve()


def sweep_overrides() -> list[str]:
    """The sweep as one command-line override (``lr=0.1,0.01``)."""
    key, values = SWEEP
    return [f"{key}={','.join(str(v) for v in values)}"]


def main(cfg: Any) -> dict[str, float]:
    """The app's task function: fits the tiny task with the job's ``lr`` into Hydra's output dir."""
    from callbridge.adapters.hydra.conformance.task import train
    from hydra.core.hydra_config import HydraConfig

    return train(cfg.lr, HydraConfig.get().runtime.output_dir, [], epochs=cfg.epochs)


def run_app(conf: Path, args: Sequence[str]) -> None:
    """Runs the app as ``python app.py ARGS`` would: through ``@hydra.main`` reading ``sys.argv`` (the caller
    restores ``sys.argv``, the working dir and Hydra's globals)."""
    import hydra

    app = hydra.main(version_base="1.3", config_path=str(conf), config_name=CONFIG_NAME)(main)
    sys.argv = [f"{JOB_NAME}.py", *args]
    app()
