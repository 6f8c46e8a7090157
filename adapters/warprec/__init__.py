"""WarpRec-style callbacks (with their Ray Tune lifecycle) under a Lightning Trainer and in a Ray Tune sweep.

WarpRec's ``WarpRecCallback`` derives from ``ray.tune.Callback`` and adds four pipeline hooks:
``on_data_reading(data) -> data``, ``on_dataset_creation(main_dataset=, validation_folds=)`` (releases
before also passed ``val_dataset=``), ``on_training_complete(model=)`` and
``on_evaluation_complete(model=, params=, results=)``. Under one Lightning run the adapter fires them at
the matching points, and plays Ray Tune's hooks as for a one-trial experiment, with Ray's own ``Trial``,
results and checkpoints (see ``docs/warprec.md``).

The package, by job:

* `hooks`: the style's hooks and signatures, and detection (an object whose class derives from
  ``warprec.utils.callback.WarpRecCallback`` or ``ray.tune.Callback``, checked by name without importing
  either library, or one that defines a WarpRec hook with a signature WarpRec can call);
* `adapter`: [`WarpRecAdapter`][WarpRecAdapter], the unified callback the bridge runs;
* `run` / `storage`: the Ray Tune side of a run ([`TuneRun`][TuneRun]: a real trial per fit);
* `data`: [`announce_data`][announce_data], the one line a ``LightningDataModule`` calls on the raw data it read;
* `config`: [`load_callback`][load_callback], WarpRec's config entry ``{callback_path, callback_name, args, kwargs}``;
* `conformance`: the differential harness behind ``callbridge verify`` (a one-trial Tuner against callbridge);
* `sweep`: [`tune_sweep`][tune_sweep] / [`lightning_trainable`][lightning_trainable], the same callbacks in a real Ray
  Tune sweep.

Importing the package registers the style; it imports neither WarpRec nor Ray.
"""

from __future__ import annotations

from typing import Any

from callbridge.adapters.registry import Style, register
from callbridge.adapters.warprec.adapter import WarpRecAdapter, adapt
from callbridge.adapters.warprec.config import CONFIG_KEYS, build_from_config, load_callback
from callbridge.adapters.warprec.data import announce_data
from callbridge.adapters.warprec.hooks import (
    HOOK_MAP,
    OPTIONS,
    RAY_HOOKS,
    WARPREC_HOOKS,
    is_instance,
    looks_like,
    overrides,
)
from callbridge.adapters.warprec.run import TuneRun
from callbridge.adapters.warprec.sweep import lightning_trainable, tune_sweep

STYLE = "warprec"

#: The name ``callbridge.adapters`` exports [`load_callback`][load_callback] under.
load_warprec_callback = load_callback

__all__ = [
    "HOOK_MAP",
    "OPTIONS",
    "RAY_HOOKS",
    "STYLE",
    "WARPREC_HOOKS",
    "TuneRun",
    "WarpRecAdapter",
    "adapt",
    "announce_data",
    "build_from_config",
    "is_instance",
    "lightning_trainable",
    "load_callback",
    "load_warprec_callback",
    "looks_like",
    "overrides",
    "tune_sweep",
]


def _verify(make: Any, workdir: Any, label: str = "", epochs: int | None = None) -> Any:
    """``callbridge verify`` for Ray Tune / WarpRec callbacks: the
    [`Report`][callbridge.adapters.conformance.Report] of a one-trial ``ray.tune.Tuner`` against callbridge
    (see `callbridge.adapters.warprec.conformance`)."""
    from callbridge.adapters.warprec.conformance import verify

    return verify(make, workdir, label=label, epochs=epochs)


register(
    Style(
        name=STYLE,
        summary="WarpRec callbacks (WarpRecCallback, a ray.tune.Callback) with the Ray Tune trial hooks",
        is_instance=is_instance,
        looks_like=looks_like,
        adapt=adapt,
        hook_map=HOOK_MAP,
        options=OPTIONS,
        config_keys=("callback_path", "callback_name"),
        config_allowed_keys=CONFIG_KEYS,
        build_from_config=build_from_config,
        library_packages=("warprec", "ray"),
        base_classes=("Callback", "WarpRecCallback"),
        extra="ray",
        docs_page="warprec.md",
        verify=_verify,
    )
)
