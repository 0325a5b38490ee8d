"""The README's demo command, end to end, from a copy of the repository that has no sibling folders:
what a user gets from `git clone` into an empty directory (data, docs and configs all inside)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def clone_alone(into: Path) -> Path:
    """Copy the files git tracks (and new ones it does not ignore) into INTO/perfwatch; INTO holds nothing else."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    clone = into / "perfwatch"
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    return clone


@pytest.mark.slow
def test_demo_end_to_end_from_a_clone_with_no_siblings(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    clone = clone_alone(empty)
    assert [p.name for p in empty.iterdir()] == ["perfwatch"]
    # A venv of its own with an editable install of the copy; the packages come from this test's venv.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    (site / "_base_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = env_dir / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(clone)],
                             capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    workdir = tmp_path / "demo"
    res = subprocess.run([str(env_dir / "bin" / "perfwatch"), "demo", "--workdir", str(workdir), "--train-steps",
                          "300"], cwd=clone, capture_output=True, text=True, timeout=900, check=False,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    assert "ALERT" in res.stdout and "[firing]" in res.stdout
    assert list(workdir.glob("report-*.png"))
    assert not list((workdir / "broker").glob("node-1/*.pid"))
    # It ran the copy's code and data, not this checkout's.
    where = subprocess.run([str(py), "-c", "import perfwatch.app.demo as d; print(d.locust_recording())"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert where == str(clone / "examples" / "locust-bitcoin-api" / "results_stats_history.csv"), sys.executable
