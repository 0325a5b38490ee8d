"""Mirror the installed layout (pyproject's [tool.perfwatch.layout]) as symlinks, so that mypy reads
``perfwatch.consumer`` from ``consumer/``: mypy cannot follow setuptools' editable import hook.

    python -m perfwatch.tooling.typecheck DIR   # then: MYPYPATH=DIR mypy -p perfwatch
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path


def link_tree(root: Path, out: Path) -> Path:
    layout: dict[str, str] = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["perfwatch"]["layout"]
    shutil.rmtree(out, ignore_errors=True)
    top = out / "perfwatch"
    top.mkdir(parents=True)
    for entry in (root / layout["perfwatch"]).iterdir():  # the contract's own files
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry.resolve())
    for name, folder in layout.items():
        if name != "perfwatch" and (root / folder / "__init__.py").is_file():
            (top / name.split(".", 1)[1]).symlink_to((root / folder).resolve())
    return out


if __name__ == "__main__":
    print(link_tree(Path.cwd(), Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/typecheck")))
