"""Package discovery; everything else is in pyproject.toml.

``callbacks/`` and ``adapters/`` install as ``callbridge.callbacks`` and ``callbridge.adapters`` (package-dir in
pyproject.toml); every subpackage found under them ships too, so a new style package needs no packaging line.
"""

from setuptools import find_packages, setup

setup(packages=["callbridge", *(f"callbridge.{name}" for name in find_packages(include=["callbacks*", "adapters*"]))])
