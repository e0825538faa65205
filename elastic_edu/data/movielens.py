"""MovieLens 100K / 1M / 20M (GroupLens): download with checksums, read into `Interactions`.

Every rating is an interaction (implicit feedback); rows keep file order, which later breaks
timestamp ties. The MovieLens terms forbid redistribution: the files stay in the download cache
(`elastic_edu.paths.data_dir`) and are never committed. Cite F. M. Harper and J. A. Konstan,
"The MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015.
"""

from __future__ import annotations

import csv
import itertools
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from elastic_edu import paths
from elastic_edu.data.download import download as _download
from elastic_edu.data.interactions import Interactions

BASE_URL = "https://files.grouplens.org/datasets/movielens"
MOVIELENS = {name: f"{BASE_URL}/{name}.zip" for name in ("ml-100k", "ml-1m", "ml-20m")}

# per data set: ratings file, separator, header lines, items file
_FILES = {
    "ml-100k": ("u.data", "\t", 0, "u.item"),
    "ml-1m": ("ratings.dat", "::", 0, "movies.dat"),
    "ml-20m": ("ratings.csv", ",", 1, "movies.csv"),
}
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_CHUNK_LINES = 1 << 20


def _check_name(name: str) -> None:
    if name not in MOVIELENS:
        raise ValueError(f"unknown MovieLens data set {name!r}; choose one of {sorted(MOVIELENS)}")


def movielens_ready(folder: str | Path, name: str) -> bool:
    """Whether `folder` holds the ratings and items files of MovieLens `name`."""
    _check_name(name)
    ratings, _, _, items = _FILES[name]
    return (Path(folder) / ratings).is_file() and (Path(folder) / items).is_file()


def fetch_movielens(
    name: str, data_dir: str | Path | None = None, download: bool = True, progress: bool = True
) -> Path:
    """Return ``data_dir/name``, downloading and extracting the GroupLens zip when missing.

    The zip is checked against the ``.md5`` GroupLens publishes beside it and kept as
    ``data_dir/name.zip``; extraction goes to a temporary folder renamed into place, so a
    half-extracted folder is never left. With ``download=False`` a missing data set raises
    FileNotFoundError saying where to put the zip by hand.
    """
    _check_name(name)
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    folder = root / name
    if movielens_ready(folder, name):
        return folder
    zip_path = root / f"{name}.zip"
    if not zip_path.is_file():
        if not download:
            raise FileNotFoundError(
                f"MovieLens {name} is not in {root}: download {MOVIELENS[name]} by hand and put "
                f"it at {zip_path} (or its extracted files in {folder})"
            )
        _download(MOVIELENS[name], zip_path, md5_url=MOVIELENS[name] + ".md5", progress=progress)
    _extract(zip_path, folder, name)
    return folder


def _extract(zip_path: Path, folder: Path, name: str) -> None:
    ratings = _FILES[name][0]
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{name}.") as tmp:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(tmp)
        except zipfile.BadZipFile as err:
            raise ValueError(f"{zip_path} is not a valid zip file ({err}); delete it") from err
        found = list(Path(tmp).rglob(ratings))
        if not found:
            raise ValueError(f"{zip_path} holds no {ratings}: is it MovieLens {name}?")
        if folder.exists():  # an incomplete folder from an older run
            shutil.rmtree(folder)
        min(found, key=lambda p: len(p.parts)).parent.rename(folder)


def read_movielens(folder: str | Path, name: str) -> Interactions:
    """Read MovieLens `name` (``ml-100k``, ``ml-1m``, ``ml-20m``) from its extracted `folder`.

    Returns int64 user and item ids, float64 timestamps in file order, and item_info
    {item id: {"title", "genres"}}. Malformed rows raise ValueError naming file and line.
    """
    _check_name(name)
    folder = Path(folder)
    ratings, sep, header, items = _FILES[name]
    users, item_ids, times = _read_ratings(folder / ratings, sep, header)
    reader = {"ml-100k": _read_u_item, "ml-1m": _read_movies_dat, "ml-20m": _read_movies_csv}
    info = reader[name](folder / items)
    return Interactions(users, item_ids, times, name=name, item_info=info)


def _read_ratings(path: Path, sep: str, header: int):
    """user, item, timestamp columns of a 4-field ratings file, read in chunks of lines."""
    users, items, times = [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for _ in range(header):
            f.readline()
        lineno = header + 1  # 1-based number of the chunk's first line
        while chunk := list(itertools.islice(f, _CHUNK_LINES)):
            rows = [line for line in chunk if not line.isspace()]
            try:
                if any(line.count(sep) != 3 for line in rows):
                    raise ValueError
                # one separator between all fields, so field j of row r is token 4 r + j
                text = "".join(rows).replace("\r", "").replace("\n", sep)
                table = np.array(text.split(sep)[: 4 * len(rows)]).reshape(len(rows), 4)
                users.append(table[:, 0].astype(np.int64))
                items.append(table[:, 1].astype(np.int64))
                table[:, 2].astype(np.float64)  # ratings are not kept, but must be numbers
                times.append(table[:, 3].astype(np.float64))
            except ValueError:
                _raise_bad_row(path, chunk, lineno, sep)
            lineno += len(chunk)
    if sum(len(u) for u in users) == 0:
        raise ValueError(f"{path}: no ratings found")
    return np.concatenate(users), np.concatenate(items), np.concatenate(times)


def _raise_bad_row(path: Path, chunk: list[str], lineno: int, sep: str) -> None:
    """Find the first malformed line of `chunk` and raise ValueError naming it."""
    for offset, line in enumerate(chunk):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split(sep)
        where = f"{path}, line {lineno + offset}"
        if len(fields) != 4:
            raise ValueError(f"{where}: expected 4 fields, found {len(fields)}: {line.strip()!r}")
        try:
            int(fields[0]), int(fields[1]), float(fields[2]), float(fields[3])
        except ValueError:
            raise ValueError(
                f"{where}: expected user, item, rating, timestamp numbers: {line.strip()!r}"
            ) from None
    raise ValueError(f"{path}: malformed ratings near line {lineno}")


def _item_id(value: str, path: Path, lineno: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{path}, line {lineno}: item id {value!r} is not an integer") from None


def _read_u_item(path: Path) -> dict:
    """ML-100K ``u.item``: id|title|release date|video date|IMDb URL|19 genre flags (latin-1)."""
    genres = ML100K_GENRES
    genre_file = path.with_name("u.genre")
    if genre_file.is_file():
        pairs = [ln.split("|") for ln in genre_file.read_text(encoding="latin-1").splitlines()]
        names = [p[0] for p in pairs if len(p) == 2 and p[0]]
        genres = names or genres
    info = {}
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 + len(genres):
            raise ValueError(
                f"{path}, line {lineno}: expected id|title|...|{len(genres)} genre "
                f"flags, found {len(fields)} fields"
            )
        flags = fields[-len(genres) :]
        if any(flag not in ("0", "1") for flag in flags):
            raise ValueError(f"{path}, line {lineno}: genre flags must be 0 or 1: {flags}")
        chosen = [g for g, flag in zip(genres, flags) if flag == "1"]
        info[_item_id(fields[0], path, lineno)] = {"title": fields[1], "genres": chosen}
    return info


def _read_movies_dat(path: Path) -> dict:
    """ML-1M ``movies.dat``: ``id::Title (year)::Genre|Genre`` (latin-1)."""
    info = {}
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) < 3:
            raise ValueError(f"{path}, line {lineno}: expected id::title::genres: {line!r}")
        title, genres = "::".join(fields[1:-1]), fields[-1]
        info[_item_id(fields[0], path, lineno)] = {"title": title, "genres": _genres(genres)}
    return info


def _read_movies_csv(path: Path) -> dict:
    """ML-20M ``movies.csv``: header ``movieId,title,genres``; titles may be quoted."""
    info = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        next(rows, None)
        for row in rows:
            if not row:
                continue
            if len(row) != 3:
                raise ValueError(
                    f"{path}, line {rows.line_num}: expected movieId,title,genres, "
                    f"found {len(row)} fields"
                )
            info[_item_id(row[0], path, rows.line_num)] = {
                "title": row[1],
                "genres": _genres(row[2]),
            }
    return info


def _genres(text: str) -> list[str]:
    return [g for g in text.split("|") if g and g != "(no genres listed)"]
