"""RecBole atomic files (``<name>.inter``, ``<name>.item``) into `Interactions`.

The atomic format (RecBole, Zhao et al. 2021) is a common exchange format for recommendation
data: tab-separated text whose first row names every column as ``field:type``, with type one of
``token``, ``token_seq`` (space-separated tokens), ``float``, ``float_seq``. For example::

    user_id:token   item_id:token   rating:float    timestamp:float
    196             242             3               881250949

``.inter`` must have ``user_id``, ``item_id`` and ``timestamp`` columns; a file without a
``timestamp`` column is read only with ``order="file"`` (its row order is then the time order).
``.item`` may give a title (``movie_title`` or a field starting with ``title``) and genres
(``class`` or a field starting with ``genre``). Files are UTF-8 (a byte-order mark is allowed).

The reader is strict: data it cannot read as meant is an error naming the file, the 1-based line
(the header is line 1) and the value, never a silent guess. Exact duplicate rows are dropped with
a warning (see `read_atomic`).
"""

from __future__ import annotations

import codecs
import warnings
from pathlib import Path

import numpy as np

from elastic_edu.data.interactions import Interactions

ORDERS = ("timestamp", "file")


def check_order(order: str) -> None:
    """Raise ValueError unless `order` is one of `ORDERS` (``"timestamp"`` or ``"file"``)."""
    if order not in ORDERS:
        raise ValueError(
            f"order={order!r}: choose 'timestamp' (sort each user's events by the timestamp "
            "column) or 'file' (the rows are already in time order)"
        )


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


def read_atomic(
    folder: str | Path, name: str | None = None, *, order: str = "timestamp"
) -> Interactions:
    """Read ``<folder>/<name>.inter`` (and ``<name>.item`` when present) into `Interactions`.

    order: ``"timestamp"`` (default): event times come from the ``timestamp`` column, which must
        exist (ValueError naming the file and the columns it has otherwise) and hold finite
        numbers. ``"file"``: the file's row order is the time order (timestamps become
        0, 1, 2, ...; a ``timestamp`` column, if any, is not read): ask for it explicitly when
        the file has no timestamps and its rows are in time order.
    Token ids become int64 when every id of a column is an integer, else stay strings; a
    column mixing integer ids with other numbers (``242`` and ``242.0``) is an error. Rows keep
    file order. With ``order="timestamp"``, exact duplicate rows (every column equal to an
    earlier row's) are dropped with a warning that counts them: they would make a user's test
    target repeat the validation target. The same user and item at different times are kept
    (re-consumption). Malformed rows (wrong column count, empty id, non-numeric or non-finite
    timestamp, mixed id types) and non-UTF-8 bytes raise ValueError naming the file, the
    1-based line and the value.
    """
    check_order(order)
    path = atomic_inter_file(folder, name)
    table = _Table(path)
    user_col = table.column("user_id", required=True)
    item_col = table.column("item_id", required=True)
    time_col = table.column("timestamp") if order == "timestamp" else None
    if order == "timestamp" and time_col is None:
        raise ValueError(
            f"{path}: no timestamp column in header {table.fields}; name the column that holds "
            "the event times 'timestamp' (timestamp:float), or pass order='file' if the rows "
            "are already in time order"
        )
    users = table.ids(user_col)
    items = table.ids(item_col)
    if time_col is None:
        times = np.arange(len(users), dtype=np.float64)  # file order is time order
    else:
        times = table.timestamps(time_col)
        keep = table.first_copies(users, items, times, (user_col, item_col, time_col))
        users, items, times = users[keep], items[keep], times[keep]
    info = {}
    item_path = path.with_suffix(".item")
    if item_path.is_file():
        info = _read_items(item_path, as_int=items.dtype.kind == "i")
    return Interactions(users, items, times, name=path.stem, item_info=info)


class _Table:
    """A tab-separated atomic file: header fields, and rows with their 1-based line numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lines = _read_utf8(path).splitlines()
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
        """Token ids of column `col`, shape (rows,): int64 when all are integers, else str.

        Integer ids mixed with other numbers (``242`` and ``242.0``, ``nan``) raise ValueError
        naming the first such value: read as strings they would split one item into two.
        Integers among other tokens (``A7``, ``3``, ``B``) are tokens like the rest: strings.
        """
        values = np.array([row[col] for row in self.rows])
        empty = np.flatnonzero(values == "")
        if len(empty):
            self.fail(int(empty[0]), f"empty {self.fields[col]}")
        try:
            return values.astype(np.int64)
        except (ValueError, OverflowError):
            pass
        self._check_mixed_numbers(col, values.tolist())
        return values.astype(str)

    def _check_mixed_numbers(self, col: int, values: list[str]) -> None:
        """Raise if `values` holds both integers and other numbers (a number written two ways)."""
        first_int = next((r for r, v in enumerate(values) if _is_int(v)), None)
        if first_int is None:
            return
        for r, value in enumerate(values):
            if not _is_int(value) and _is_number(value):
                self.fail(
                    r,
                    f"{self.fields[col]} {value!r} is a number but not an integer, while other "
                    f"ids are integers (line {self.lineno(first_int)}: {values[first_int]!r}); "
                    "write every id the same way",
                )

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

    def timestamps(self, col: int) -> np.ndarray:
        """Column `col` as float64 (rows,); a non-finite value (nan, inf) raises ValueError."""
        times = self.floats(col)
        bad = np.flatnonzero(~np.isfinite(times))
        if len(bad):
            r = int(bad[0])
            self.fail(r, f"{self.fields[col]} {self.rows[r][col]!r} is not a finite number")
        return times

    def first_copies(self, users, items, times, parsed: tuple[int, ...]) -> np.ndarray:
        """Bool (rows,): False for a row equal in every column to an earlier row (warns).

        `users`, `items`, `times` are the parsed values of the columns `parsed`, so ``5`` and
        ``5.0`` are the same timestamp; other columns compare as text.
        """
        others = [j for j in range(len(self.fields)) if j not in parsed]
        rest = [[row[j] for row in self.rows] for j in others]
        keys = list(zip(users.tolist(), items.tolist(), times.tolist(), *rest))
        first: dict = {}
        keep = np.ones(len(keys), dtype=bool)
        for r, key in enumerate(keys):
            if first.setdefault(key, r) != r:
                keep[r] = False
        dropped = np.flatnonzero(~keep)
        if len(dropped):
            r = int(dropped[0])
            warnings.warn(
                f"{self.path}: dropped {len(dropped)} exact duplicate row(s), equal in every "
                f"column to an earlier row (the first: line {self.lineno(r)}, a copy of line "
                f"{self.lineno(first[keys[r]])}); the same user and item at different times "
                "are kept",
                stacklevel=3,
            )
        return keep


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _read_utf8(path: Path) -> str:
    """The text of `path`, decoded as UTF-8 (a leading byte-order mark is dropped).

    Bytes that are not UTF-8 raise ValueError naming the file, the line and the byte offset.
    """
    data = path.read_bytes()
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = start + err.start
        line = data.count(b"\n", 0, at) + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 text (byte {data[at]:#04x} at byte offset {at}: "
            f"{err.reason}); save the file as UTF-8"
        ) from None


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
