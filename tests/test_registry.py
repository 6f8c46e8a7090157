"""The style registry: a style from one file is accepted everywhere; the docs' mapping tables are the registry's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import toy_style
from callbridge.adapters import ConfigError, LightningBridge, from_config, to_lightning
from callbridge.adapters.cli import main
from callbridge.adapters.registry import docs_block, find_docs_block, get_style, register, styles, unregister
from toy import ToyRegression, make_trainer

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def toy_registered() -> Iterator[None]:
    register(toy_style.STYLE)
    try:
        yield
    finally:
        unregister("toy")


def test_a_style_from_one_file_works_in_to_lightning_from_config_and_inspect(
    toy_registered: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # to_lightning: by base class and by signature, with the style's own option
    ticks, duck = toy_style.EpochTicks(), toy_style.DuckTicks()
    (bridge,) = to_lightning([ticks, duck], tick_offset=10)
    assert [type(cb).__name__ for cb in bridge.callbacks] == ["TickerAdapter"]
    make_trainer([bridge], limit_train_batches=1, limit_val_batches=1).fit(ToyRegression())
    assert ticks.seen == duck.seen == [10, 11]
    with pytest.raises(TypeError, match="unknown option"):
        to_lightning([ticks], key_map={})  # another style's option

    # from_config: the style's own entry format next to the general ones; bad entries listed together
    built = from_config(
        [
            {"toy_tick": "toy_style.EpochTicks", "toy_args": {"label": "from-config"}},
            {"class_path": "callbridge.callbacks.Callback"},
        ]
    )
    assert isinstance(built[0], LightningBridge)
    assert built[0].callbacks[0].tickers[0].label == "from-config"
    with pytest.raises(ConfigError) as error:
        from_config([{"toy_tick": "toy_style.EpochTicks", "colour": "red"}, {"toy_args": {}}])
    assert [label for label, _ in error.value.problems] == ["entry #0", "entry #1"]
    assert "unknown key(s) ['colour'] in a toy entry" in str(error.value)
    assert "`toy_tick` (toy)" in str(error.value)  # the accepted formats come from the registry

    # callbridge inspect: style, hooks from the record's hook map, the record's problems
    assert main(["inspect", "--json", "toy_style.DuckTicks"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["style"] == "toy"
    assert report["hooks"] == [
        {"hook": "tick", "lightning": "on_train_epoch_end (after that epoch's validation)"},
        {"hook": "validate", "lightning": "- none: toys never validate"},
    ]
    assert "toy tickers never see validation" in report["problems"]
    assert main(["inspect", "--json", "toy_style.Ticker"]) == 0  # the base class itself overrides nothing
    assert json.loads(capsys.readouterr().out)["hooks"] == []


def test_an_unregistered_style_is_rejected_again() -> None:
    register(toy_style.STYLE)
    unregister("toy")
    assert "toy" not in [style.name for style in styles()]
    with pytest.raises(TypeError, match="not a callback of any supported style"):
        to_lightning([toy_style.DuckTicks()])
    with pytest.raises(ValueError, match="no callback style named 'toy'"):
        get_style("toy")


@pytest.mark.parametrize("style", [s for s in styles() if s.docs_page], ids=lambda s: s.name)
def test_each_styles_docs_table_is_its_registry_hook_map(style) -> None:
    page = (DOCS / style.docs_page).read_text()
    span = find_docs_block(page, style.name)
    assert span is not None, f"docs/{style.docs_page} has no generated hook-map block for {style.name!r}"
    assert page[span[0] : span[1]] == docs_block(style), (
        f"docs/{style.docs_page} is out of date with the {style.name!r} style's hook_map: "
        "run `python -m callbridge.adapters.registry docs`"
    )


def test_detection_order_is_the_builtin_order_whatever_was_imported_first() -> None:
    import subprocess
    import sys

    # a fresh process that imports the HF style package before anything else
    code = (
        "import callbridge.adapters.hf\n"
        "from callbridge.adapters.registry import styles\n"
        "print(','.join(s.name for s in styles()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-1] == "keras,hydra,warprec,hf"
    assert [style.name for style in styles()][:4] == ["keras", "hydra", "warprec", "hf"]
