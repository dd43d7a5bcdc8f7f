"""The package list, which pyproject.toml cannot express on its own.

The demo weights and the resources live at the repository's top level (``weights/``, ``resources/``) so
that the trainer and the UI find them in a checkout; a wheel installs them inside the package, as
``glide_studio/weights`` and ``glide_studio/resources`` (``package-dir`` and ``package-data`` in
pyproject.toml). Those two extra packages are appended to the code packages found on disk, so a new
subpackage needs no edit here; a folder that a fresh clone lacks (weights before training) is left out.
"""

from pathlib import Path

from setuptools import find_packages, setup

FOLDERS_INSTALLED_IN_PACKAGE = {"glide_studio.weights": "weights", "glide_studio.resources": "resources"}

here = Path(__file__).resolve().parent
packages = find_packages(include=["glide_studio", "glide_studio.*"])
packages += [name for name, folder in FOLDERS_INSTALLED_IN_PACKAGE.items() if (here / folder).is_dir()]

setup(packages=packages)
