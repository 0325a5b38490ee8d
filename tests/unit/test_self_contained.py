"""The repository stands on its own: no tracked file points outside it (a user's clone has no siblings)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UP = re.compile(r"(?<![\w.])((?:\.\./)+[\w.\-/]*)")
# Spelled in pieces so that this file itself passes the same grep (the sibling folder, the old variable).
SIBLING = "shared"
FORBIDDEN = re.compile("PERFWATCH_" + SIBLING.upper() + r"|/work/|\b" + SIBLING + r"/data\b")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    out = []
    for name in filter(None, names):
        path = ROOT / name
        if path.is_file() and b"\0" not in path.read_bytes()[:4096]:
            out.append(path)
    return out


def outside(path: Path, ref: str) -> bool:
    """A relative reference is outside when it leaves the repository from the file's folder and from the root."""
    bases = (path.parent, ROOT)
    return all(not (base / ref).resolve().is_relative_to(ROOT) for base in bases)


def test_no_tracked_file_refers_outside_the_repository() -> None:
    bad = []
    for path in tracked_text_files():
        if path.resolve() == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            refs = [r for r in UP.findall(line) if outside(path, r)]
            if refs or FORBIDDEN.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not bad, "references outside the repository:\n" + "\n".join(bad)


def test_the_check_sees_a_reference_outside(tmp_path: Path) -> None:
    assert outside(ROOT / "README.md", "../" + SIBLING + "/DESIGN.md")
    assert not outside(ROOT / "docs" / "architecture.md", "../README.md")
