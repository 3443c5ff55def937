"""Safe file writing: atomic replacement that never writes through a symbolic link.

:func:`atomic_path` yields a fresh temporary file in the target's own folder (created with
``O_EXCL``, so it can never be a pre-existing link); on success it is moved over the target
with ``os.replace``. ``os.replace`` renames onto the *name*: when the target is a symbolic
link, the link itself is replaced by the new regular file and the file it pointed to is left
untouched. A failed write leaves the old target as it was and removes the temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

# The process umask, read once at import (reading it means setting it): new files get the
# permissions an ordinary open() would give them, not mkstemp's owner-only 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; replace ``path`` by it when the block ends."""
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        raise OutputError(f"cannot write {target}: a directory is in the way")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:40]}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows has no such modes
            os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` atomically by ``data`` (fsync'ed), never writing through a link."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
