"""Doctests of the package: ``pytest --doctest-modules callbacks adapters callbridge``.

Only the package's modules are searched for docstring examples (pyproject.toml turns ``--doctest-modules`` on
for the whole suite): searching test modules would import and inspect every object they hold at collection.

The source folders install under other names (``callbacks/`` is ``callbridge.callbacks``), so pytest's
own import by file path would load a second copy of every module under a wrong name (``callbacks.base``),
with classes that are not the installed ones. Here each doctest module is imported by its installed name.
A module or an example that needs an optional extra that is not installed (Keras, Hydra, Ray,
Transformers, ...) is skipped with the name of the missing package; any other error fails.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from _pytest.doctest import DoctestItem, DoctestModule, MultipleDoctestFailures
from _pytest.python import Package

os.environ.setdefault("KERAS_BACKEND", "torch")

ROOT = Path(__file__).resolve().parent
PACKAGES = {
    "callbridge": ROOT / "callbridge",
    "callbridge.callbacks": ROOT / "callbacks",
    "callbridge.adapters": ROOT / "adapters",
}


def installed_name(path: Path) -> str | None:
    """``adapters/keras/proxy.py`` -> ``callbridge.adapters.keras.proxy``; None outside the package."""
    for package, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join((package, *parts))
    return None


def optional_modules() -> set[str]:
    """Top-level modules of the packages that callbridge's optional extras install (``hydra-core`` -> ``hydra``)."""
    modules = set()
    for requirement in metadata.requires("callbridge") or []:
        name, _, marker = requirement.partition(";")
        if "extra ==" in marker:
            dist = re.split(r"[\s\[<>=!~]", name.strip(), maxsplit=1)[0].lower()
            modules.add(MODULE_OF_DIST.get(dist, dist.replace("-", "_")))
    return modules


MODULE_OF_DIST = {"hydra-core": "hydra", "scikit-learn": "sklearn", "mkdocs-material": "material"}
OPTIONAL = optional_modules()


def missing_extra(error: BaseException | None) -> str | None:
    """The package an optional extra would provide, when ``error`` (or its cause) is its absence."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name:
            top = error.name.partition(".")[0]
            if top in OPTIONAL and top != "callbridge":
                try:
                    importlib.import_module(top)
                except ImportError:
                    return top
        error = error.__cause__ or error.__context__
    return None


class OptionalExtraDoctestItem(DoctestItem):
    """A docstring example; skipped, not failed, when it needs an optional extra that is not installed."""

    def runtest(self) -> None:
        try:
            super().runtest()
        except (doctest.UnexpectedException, MultipleDoctestFailures) as failure:
            failures = failure.failures if isinstance(failure, MultipleDoctestFailures) else [failure]
            errors = [f.exc_info[1] for f in failures if isinstance(f, doctest.UnexpectedException)]
            missing = {missing_extra(error) for error in errors}
            if len(errors) == len(failures) and None not in missing:
                pytest.skip(f"{self.name} needs {', '.join(sorted(missing))}: an optional extra that is not installed")
            raise


class InstalledDoctestModule(DoctestModule):
    """A doctest module imported by its installed name."""

    installed_name: str

    def _getobj(self) -> Any:
        return import_installed(self.installed_name)

    def collect(self) -> Iterator[DoctestItem]:
        for item in super().collect():
            yield OptionalExtraDoctestItem.from_parent(self, name=item.name, runner=item.runner, dtest=item.dtest)


def import_installed(name: str) -> Any:
    """The module ``name``; skips (not fails) when it needs an optional extra that is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = missing_extra(error)
        if missing:
            pytest.skip(f"{name} needs {missing!r}: an optional extra that is not installed")
        raise


class InstalledPackage(Package):
    """A package folder whose ``__init__`` is imported by its installed name (pytest would import it again under
    a name of its own, running its side effects, such as registering a style, twice)."""

    def setup(self) -> None:
        module = import_installed(installed_name(self.path / "__init__.py") or "")
        for name in ("setUpModule", "setup_module"):
            if callable(getattr(module, name, None)):
                getattr(module, name)()
                break


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if (path / "__init__.py").is_file() and installed_name((path / "__init__.py").resolve()) is not None:
        return InstalledPackage.from_parent(parent, path=path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    collectors = yield
    name = installed_name(file_path.resolve()) if file_path.suffix == ".py" else None
    replaced = []
    for collector in collectors:
        if type(collector) is DoctestModule:
            if name is None:  # the docstring examples are the package's; test modules are not searched for them
                continue
            collector = InstalledDoctestModule.from_parent(parent, path=file_path)
            collector.installed_name = name
        replaced.append(collector)
    return replaced
