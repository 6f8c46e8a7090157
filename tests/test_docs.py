"""Docs that stay true to the code: the hook glossary against the style registry and the hooks."""

from __future__ import annotations

import re
from pathlib import Path

import lightning.pytorch as pl
from callbridge.adapters.registry import styles
from callbridge.callbacks import HOOKS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def glossary_columns() -> dict[str, set[str]]:
    """Column header -> every backticked name in that column of the glossary table."""
    lines = [line for line in (DOCS / "glossary.md").read_text().splitlines() if line.startswith("| ")]
    header, *rows = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    columns: dict[str, set[str]] = {name: set() for name in header}
    for row in rows:
        if set("".join(row)) <= set("-"):
            continue
        assert len(row) == len(header), f"glossary row with {len(row)} cells, expected {len(header)}: {row}"
        for name, cell in zip(header, row, strict=True):
            columns[name] |= set(re.findall(r"`([A-Za-z_*]+)`", cell))
    return columns


def test_glossary_lists_every_hook_of_every_registered_style():
    columns = glossary_columns()
    registered = styles()
    assert registered, "no style registered"
    for style in registered:
        matches = [name for name in columns if style.name in name.lower().replace(" ", "")]
        assert len(matches) == 1, f"docs/glossary.md needs one column for the style {style.name!r}, has {matches}"
        listed = columns[matches[0]]
        missing = set(style.hook_map) - listed
        assert not missing, f"glossary column {matches[0]!r} lacks {sorted(missing)}"
        phantom = {name for name in listed if name.startswith("on_")} - set(style.hook_map)
        assert not phantom, f"glossary column {matches[0]!r} lists hooks the style does not have: {sorted(phantom)}"


def test_glossary_unified_and_lightning_columns_name_real_hooks():
    columns = glossary_columns()
    unified = next(names for header, names in columns.items() if header.startswith("unified"))
    assert {name for name in unified if name.startswith("on_")} == set(HOOKS)
    lightning = columns["Lightning"]
    unknown = {name for name in lightning if name.startswith("on_") and not hasattr(pl.Callback, name)}
    assert not unknown, f"not Lightning Callback hooks: {sorted(unknown)}"
    assert {"setup", "on_fit_start", "on_train_batch_end", "on_save_checkpoint", "on_exception"} <= lightning
