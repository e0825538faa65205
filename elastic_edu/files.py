"""Writing results safely: outputs checked before any work starts, files replaced atomically.

Every file the package writes (result JSON, bench JSON, checkpoints) goes to a temporary file in
the same folder first and is renamed over its path only when complete, so an interrupted run
never leaves a truncated file behind. When the final write fails all the same (a full disk, a
folder put in the way), `write_or_keep` keeps the content in the temporary folder and says where.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    The parent folder is created if needed; a path that is a folder, or a folder that cannot be
    written, raises ValueError naming the path.
    """
    raw = os.fspath(path)
    path = Path(path)
    if raw.endswith((os.sep, os.altsep or os.sep)) or path.is_dir():  # Path drops a final /
        raise ValueError(f"{what} {raw} is a folder: give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(
            f"{what} {path} cannot be written: its folder {parent} takes no new file "
            f"({err.strerror or err})"
        ) from None
    return path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str | os.PathLike, payload) -> Path:
    """Write `payload` as indented JSON, atomically (values JSON lacks become strings)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, default=str)
    return Path(path)


def write_or_keep(
    write: Callable[[Path], object], path: str | os.PathLike, what: str
) -> tuple[Path | None, str | None]:
    """Call ``write(path)``; if it fails with an OSError, ``write`` a new file in the temporary
    folder instead, so that nothing computed is lost.

    Returns (the file written, None), or (the file kept instead, or None when that failed too,
    and a one-line message naming `what`, `path`, why and where the content is).
    """
    path = Path(path)
    try:
        write(path)
        return path, None
    except OSError as err:
        failed = f"{what} {path} could not be written ({err.strerror or err})"
    folder = tempfile.gettempdir()
    try:
        fd, kept = tempfile.mkstemp(dir=folder, prefix=f"{path.stem}-", suffix=path.suffix)
        os.close(fd)
    except OSError as err:
        return None, f"{failed}, nor kept in {folder} ({err.strerror or err})"
    try:
        write(Path(kept))
    except OSError as err:
        os.remove(kept)
        return None, f"{failed}, nor kept in {folder} ({err.strerror or err})"
    return Path(kept), f"{failed}: kept in {kept} instead"
