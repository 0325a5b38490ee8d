"""Put a finished bundle in place without ever destroying what export did not write.

The new bundle is built in a fresh staging directory beside ``--out`` and exchanged with the old one
in one atomic ``renameat2(RENAME_EXCHANGE)`` (Linux ≥ 3.15): at every instant ``--out`` is either the
whole old bundle or the whole new one. Where the kernel or file system cannot exchange, the old bundle
is renamed aside and the new one renamed in; a crash between those two renames leaves the old bundle
in the hidden ``.NAME.staging-*`` directory beside ``--out``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import tempfile
from pathlib import Path

from perfwatch.bundle import is_bundle_dir
from perfwatch.errors import PerfwatchError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class ExportError(PerfwatchError, RuntimeError):
    pass


def check_out(out: Path) -> None:
    """Refuse an existing ``--out`` that export may not replace: anything but an empty dir or a bundle."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise ExportError(f"{out}: exists and is not a model bundle directory; refusing to replace it "
                          "(choose another --out)")
    if any(out.iterdir()) and not is_bundle_dir(out):
        raise ExportError(f"{out}: exists and is not a model bundle (it holds files other than a bundle's); "
                          "refusing to replace it (choose another --out, e.g. artifacts/bundle)")


def staging_dir(out: Path) -> Path:
    """A new, uniquely named directory beside ``out`` (same file system, so the swap is a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    path.chmod(0o755)  # mkdtemp's 0700 would hide the bundle from a consumer running as another user
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the system cannot (then nothing has changed)."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_into_place(staged: Path, out: Path) -> None:
    """``staged`` becomes ``out``; an old ``out`` ends up at ``staged`` for the caller to delete."""
    check_out(out)  # again: something may have appeared there during the export
    if not out.exists():
        os.rename(staged, out)
        return
    if _exchange(staged, out):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    os.rename(out, aside / "old")
    os.rename(staged, out)
    os.rename(aside, staged)
