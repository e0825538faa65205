"""Where data lives: the download cache and the folders that may hold RecBole atomic data sets.

Notebooks and scripts find files through these helpers, never through relative paths such as
``../..``.

- ``ELASTIC_EDU_DATA``: the download cache (default ``<repo>/data``, or ``~/.cache/elastic_edu``
  when the package is installed outside its repository).
- ``ELASTIC_EDU_ATOMIC``: extra folders (``os.pathsep``-separated) that hold RecBole atomic
  data set folders such as ``ml-100k/ml-100k.inter``.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ELASTIC_EDU_DATA"
ATOMIC_ENV = "ELASTIC_EDU_ATOMIC"


def repo_root() -> Path | None:
    """The repository folder (the one holding ``pyproject.toml`` above this package), or None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def data_dir() -> Path:
    """The download cache: ``$ELASTIC_EDU_DATA``, else ``<repo>/data``, else the user cache.

    The user cache is ``~/.cache/elastic_edu`` (used when the package is installed elsewhere).

    The folder is not created here; the downloaders create it when they write.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    root = repo_root()
    if root is not None:
        return root / "data"
    return Path.home() / ".cache" / "elastic_edu"


def atomic_search_path() -> list[Path]:
    """Folders that may hold RecBole atomic data set folders, in search order.

    ``$ELASTIC_EDU_ATOMIC`` entries first, then a ``shared/data`` folder beside the repository
    when it exists (the offline copy used by CI's tests and benchmarks), then the download cache.
    """
    folders = [Path(p).expanduser() for p in os.environ.get(ATOMIC_ENV, "").split(os.pathsep) if p]
    root = repo_root()
    if root is not None and (root.parent / "shared" / "data").is_dir():
        folders.append(root.parent / "shared" / "data")
    folders.append(data_dir())
    return folders


def find_atomic(name: str) -> Path | None:
    """The first ``<folder>/<name>`` on `atomic_search_path` holding ``<name>.inter``, or None."""
    for folder in atomic_search_path():
        candidate = folder / name
        if (candidate / f"{name}.inter").is_file():
            return candidate
    return None
