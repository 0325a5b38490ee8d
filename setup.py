"""Install each top-level folder under the perfwatch namespace, as pyproject.toml's [tool.perfwatch.layout]
says. A folder that is absent is skipped: the Docker images leave bench/ out on purpose."""

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
LAYOUT: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["perfwatch"]["layout"]

package_dir: dict[str, str] = {}
packages: list[str] = []
for name, folder in LAYOUT.items():
    if not (ROOT / folder / "__init__.py").is_file():
        continue
    package_dir[name] = folder
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(str(ROOT / folder)))]

setup(package_dir=package_dir, packages=packages)
