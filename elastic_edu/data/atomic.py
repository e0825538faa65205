"""RecBole atomic files (``<name>.inter``, ``<name>.item``) into `Interactions`.

The atomic format (RecBole, Zhao et al. 2021) is a common exchange format for recommendation
data: tab-separated text whose first row names every column as ``field:type``, with type one of
``token``, ``token_seq`` (space-separated tokens), ``float``, ``float_seq``. For example::

    user_id:token   item_id:token   rating:float    timestamp:float
    196             242             3               881250949

``.inter`` must have ``user_id`` and ``item_id``; ``timestamp`` is optional (without it, file
order is the time order). ``.item`` may give a title (``movie_title`` or a field starting with
``title``) and genres (``class`` or a field starting with ``genre``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elastic_edu.data.interactions import Interactions


def atomic_inter_file(folder: str | Path, name: str | None = None) -> Path:
    """The ``.inter`` file of an atomic data set folder (or the file itself when given one).

    `name` defaults to the folder name, else the only ``*.inter`` in the folder.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".inter":
        return folder
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of RecBole atomic files")
    if name is not None:
        path = folder / f"{name}.inter"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return path
    path = folder / f"{folder.name}.inter"
    if path.is_file():
        return path
    found = sorted(folder.glob("*.inter"))
    if len(found) != 1:
        names = [p.name for p in found] or "none"
        raise FileNotFoundError(
            f"{folder}: expected {folder.name}.inter or exactly one *.inter file, found {names}; "
            "pass name="
        )
    return found[0]


def read_atomic(folder: str | Path, name: str | None = None) -> Interactions:
    """Read ``<folder>/<name>.inter`` (and ``<name>.item`` when present) into `Interactions`.

    Token ids become int64 when every id is an integer, else stay strings. Rows keep file order.
    Malformed rows (wrong column count, empty id, non-numeric timestamp) raise ValueError naming
    the file and the 1-based line number.
    """
    path = atomic_inter_file(folder, name)
    table = _Table(path)
    user_col = table.column("user_id", required=True)
    item_col = table.column("item_id", required=True)
    time_col = table.column("timestamp")
    users = table.ids(user_col)
    items = table.ids(item_col)
    if time_col is None:
        times = np.arange(len(users), dtype=np.float64)  # file order is time order
    else:
        times = table.floats(time_col)
    info = {}
    item_path = path.with_suffix(".item")
    if item_path.is_file():
        info = _read_items(item_path, as_int=items.dtype.kind == "i")
    return Interactions(users, items, times, name=path.stem, item_info=info)


class _Table:
    """A tab-separated atomic file: header fields, and rows with their 1-based line numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines:
            raise ValueError(f"{path}: empty file, expected a header row of field:type columns")
        self.fields = [f.split(":")[0].strip() for f in lines[0].split("\t")]
        self.types = [
            f.split(":")[1].strip() if ":" in f else "token" for f in lines[0].split("\t")
        ]
        body = lines[1:]
        if all(body):
            self.linenos = None  # row r is line r + 2
        else:  # skip blank lines, remember where the others came from
            keep = [i for i, line in enumerate(body) if line.strip()]
            body = [body[i] for i in keep]
            self.linenos = np.array(keep, dtype=np.int64) + 2
        self.rows = [line.split("\t") for line in body]
        width = len(self.fields)
        for r, row in enumerate(self.rows):
            if len(row) != width:
                self.fail(r, f"expected {width} tab-separated columns, found {len(row)}")

    def lineno(self, row: int) -> int:
        return int(self.linenos[row]) if self.linenos is not None else row + 2

    def fail(self, row: int, why: str):
        raise ValueError(f"{self.path}, line {self.lineno(row)}: {why}")

    def column(self, field: str, required: bool = False) -> int | None:
        if field in self.fields:
            return self.fields.index(field)
        if required:
            raise ValueError(f"{self.path}: no {field} column in header {self.fields}")
        return None

    def ids(self, col: int) -> np.ndarray:
        """Token ids as int64 when all are integers, else as strings."""
        values = np.array([row[col] for row in self.rows])
        empty = np.flatnonzero(values == "")
        if len(empty):
            self.fail(int(empty[0]), f"empty {self.fields[col]}")
        try:
            return values.astype(np.int64)
        except (ValueError, OverflowError):
            return values.astype(str)

    def floats(self, col: int) -> np.ndarray:
        values = [row[col] for row in self.rows]
        try:
            return np.array(values).astype(np.float64)
        except ValueError:
            for r, value in enumerate(values):
                try:
                    float(value)
                except ValueError:
                    self.fail(r, f"{self.fields[col]} {value!r} is not a number")
            raise


def _read_items(path: Path, as_int: bool) -> dict:
    """``.item``: item id -> {"title", "genres"} from the title and genre columns it has."""
    table = _Table(path)
    item_col = table.column("item_id", required=True)
    title_col = _first(table.fields, lambda f: f.startswith(("title", "movie_title")))
    genre_col = _first(table.fields, lambda f: f == "class" or f.startswith("genre"))
    info = {}
    for r, row in enumerate(table.rows):
        key = row[item_col]
        if as_int:
            try:
                key = int(key)
            except ValueError:
                table.fail(
                    r, f"item_id {key!r} is not an integer, unlike the ids in the .inter file"
                )
        entry = {"title": "", "genres": []}
        if title_col is not None:
            entry["title"] = " ".join(row[title_col].split())
        if genre_col is not None:
            value = row[genre_col]
            seq = table.types[genre_col].endswith("_seq")
            entry["genres"] = value.split() if seq else [value.strip()] if value.strip() else []
        info[key] = entry
    return info


def _first(fields: list[str], wanted) -> int | None:
    return next((j for j, f in enumerate(fields) if wanted(f)), None)
