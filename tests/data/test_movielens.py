import hashlib
import zipfile

import numpy as np
import pytest

from elastic_edu.data import (
    DownloadError,
    describe_source,
    load_interactions,
    load_sequences,
    movielens,
)
from elastic_edu.data.movielens import MOVIELENS, fetch_movielens, read_movielens

FLAGS = ["0"] * 19


def _flags(*on):
    flags = list(FLAGS)
    for j in on:
        flags[j] = "1"
    return "|".join(flags)


U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t1\t881250949\n22\t242\t5\t1\n"
U_ITEM = (
    f"242|Kolya (1996)|24-Jan-1997||http://x|{_flags(5)}\n"
    f"302|L.A. Confidential (1997)|01-Jan-1997||http://y|{_flags(6, 10, 13, 16)}\n"
    f"303|Café Flor (1998)|01-Jan-1998||http://z|{_flags(0)}\n"
)
U_GENRE = "\n".join(f"{g}|{j}" for j, g in enumerate(movielens.ML100K_GENRES)) + "\n\n"


def _ml100k(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    (folder / "u.genre").write_text(U_GENRE)
    return folder


def test_read_ml100k(tmp_path):
    inter = read_movielens(_ml100k(tmp_path / "ml-100k"), "ml-100k")
    assert inter.name == "ml-100k"
    np.testing.assert_array_equal(inter.users, [196, 186, 196, 22])  # file order
    np.testing.assert_array_equal(inter.items, [242, 302, 302, 242])
    np.testing.assert_array_equal(inter.timestamps, [881250949, 891717742, 881250949, 1])
    assert inter.items.dtype == np.int64 and inter.timestamps.dtype == np.float64
    assert inter.item_info[242] == {"title": "Kolya (1996)", "genres": ["Comedy"]}
    assert inter.item_info[302]["genres"] == ["Crime", "Film-Noir", "Mystery", "Thriller"]
    assert inter.item_info[303] == {"title": "Café Flor (1998)", "genres": ["unknown"]}


def test_ml100k_without_genre_file_uses_standard_list(tmp_path):
    folder = _ml100k(tmp_path / "ml-100k")
    (folder / "u.genre").unlink()
    assert read_movielens(folder, "ml-100k").item_info[242]["genres"] == ["Comedy"]


def test_read_ml1m(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::7\n"
    )
    movies = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Señor (1996)::Animation|Children's|Musical\n"  # noqa: E501
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    inter = read_movielens(folder, "ml-1m")
    np.testing.assert_array_equal(inter.users, [1, 1, 2])
    np.testing.assert_array_equal(inter.items, [1193, 661, 1193])
    np.testing.assert_array_equal(inter.timestamps, [978300760, 978302109, 7])
    assert inter.item_info[661] == {
        "title": "Señor (1996)",
        "genres": ["Animation", "Children's", "Musical"],
    }


def test_read_ml20m(tmp_path):
    folder = tmp_path / "ml-20m"
    folder.mkdir()
    ratings = "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n"
    (folder / "ratings.csv").write_text(ratings)
    movies = (
        "movieId,title,genres\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        "29,Nobody (2015),(no genres listed)\n"
    )
    (folder / "movies.csv").write_text(movies)
    inter = read_movielens(folder, "ml-20m")
    np.testing.assert_array_equal(inter.items, [2, 29])
    np.testing.assert_array_equal(inter.timestamps, [1112486027, 1112484676])
    assert inter.item_info[2] == {
        "title": "American President, The (1995)",
        "genres": ["Comedy", "Drama", "Romance"],
    }
    assert inter.item_info[29]["genres"] == []


@pytest.mark.parametrize("chunk_lines", [2, 1 << 20])
def test_chunks_join_and_bad_line_is_named(tmp_path, monkeypatch, chunk_lines):
    monkeypatch.setattr(movielens, "_CHUNK_LINES", chunk_lines)
    folder = tmp_path / "ml-20m"
    folder.mkdir()
    rows = [f"{u},{u * 10},4.0,{1000 + u}" for u in range(1, 8)]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    (folder / "movies.csv").write_text("movieId,title,genres\n10,A (1990),Drama\n")
    inter = read_movielens(folder, "ml-20m")
    np.testing.assert_array_equal(inter.users, np.arange(1, 8))
    np.testing.assert_array_equal(inter.timestamps, 1000 + np.arange(1, 8))
    rows[3] = "4,40,4.0,yesterday"  # line 5 of the file (the header is line 1)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    with pytest.raises(ValueError, match=r"ratings\.csv, line 5: expected user, item"):
        read_movielens(folder, "ml-20m")


@pytest.mark.parametrize(
    "u_data, u_item, file, line",
    [
        (U_DATA + "1\t2\t3\n", U_ITEM, "u.data", 5),
        ("1\t2\t3\t4\n1\t2\t3\t4\t5\n", U_ITEM, "u.data", 2),
        (U_DATA, U_ITEM + "304|Short|x\n", "u.item", 4),
        (U_DATA, "x" + U_ITEM, "u.item", 1),
    ],
)
def test_malformed_rows(tmp_path, u_data, u_item, file, line):
    folder = _ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text(u_data)
    (folder / "u.item").write_bytes(u_item.encode("latin-1"))
    with pytest.raises(ValueError) as err:
        read_movielens(folder, "ml-100k")
    assert f"{folder / file}, line {line}:" in str(err.value)


def test_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="ml-100k"):
        read_movielens(tmp_path, "ml-10m")


def _zip_ml100k(served, tmp_path):
    """Serve ml-100k.zip (fake contents, GroupLens layout) and its BSD-style .md5."""
    src = _ml100k(tmp_path / "src" / "ml-100k")
    zip_path = served / "ml-100k.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for f in sorted(src.iterdir()):
            archive.write(f, f"ml-100k/{f.name}")
    digest = hashlib.md5(zip_path.read_bytes()).hexdigest()
    (served / "ml-100k.zip.md5").write_text(f"MD5 (ml-100k.zip) = {digest}\n")


def test_fetch_movielens_over_http(http_root, tmp_path, monkeypatch, closed_url):
    url, served = http_root
    _zip_ml100k(served, tmp_path)
    monkeypatch.setitem(MOVIELENS, "ml-100k", f"{url}/ml-100k.zip")
    cache = tmp_path / "cache"
    folder = fetch_movielens("ml-100k", cache, progress=False)
    assert folder == cache / "ml-100k"
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k", "ml-100k.zip"]  # no temp left
    assert read_movielens(folder, "ml-100k").summary() == {
        "users": 3,
        "items": 2,
        "interactions": 4,
    }
    # the downloaded copy wins over the shared atomic one, and needs no network any more
    monkeypatch.setitem(MOVIELENS, "ml-100k", closed_url)
    assert "GroupLens" in describe_source("ml-100k", data_dir=cache)
    assert len(load_interactions("ml-100k", data_dir=cache, download=False)) == 4
    # a lost folder is extracted again from the kept zip, without download
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    assert fetch_movielens("ml-100k", cache, download=False) == folder
    assert (folder / "u.data").read_text() == U_DATA


def test_fetch_movielens_bad_checksum(http_root, tmp_path, monkeypatch):
    url, served = http_root
    _zip_ml100k(served, tmp_path)
    (served / "ml-100k.zip.md5").write_text("0" * 32 + "  ml-100k.zip\n")
    monkeypatch.setitem(MOVIELENS, "ml-100k", f"{url}/ml-100k.zip")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_movielens("ml-100k", cache, progress=False)
    assert list(cache.iterdir()) == []


def test_fetch_without_download_says_where_to_put_the_zip(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        fetch_movielens("ml-1m", tmp_path, download=False)
    assert str(tmp_path / "ml-1m.zip") in str(err.value)
    assert "files.grouplens.org" in str(err.value)


def test_load_sequences_default_kcore(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    rows = [f"{u}::{i}::5::{u * 100 + i}" for u in range(1, 6) for i in range(1, 6)]
    rows += ["9::1::5::1", "9::2::5::2"]  # user 9 has two ratings: dropped by the 5-core
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n")
    (folder / "movies.dat").write_text("".join(f"{i}::M{i} (2000)::Drama\n" for i in range(1, 6)))
    data = load_sequences("ml-1m", data_dir=tmp_path, download=False)
    assert data.summary() == {"users": 5, "items": 5, "interactions": 25}
    assert load_sequences("ml-1m", kcore=0, data_dir=tmp_path, download=False).num_users == 6
    assert data.item_titles[1] == "M1 (2000)"


def test_load_interactions_rejects_unknown_and_misplaced_kwargs(tmp_path):
    with pytest.raises(ValueError, match="ml-1m"):
        load_interactions("netflix")
    with pytest.raises(TypeError, match="synthetic"):
        load_interactions("ml-1m", data_dir=tmp_path, num_users=3)


def test_load_interactions_from_extracted_folder_path(tmp_path):
    folder = _ml100k(tmp_path / "ml-100k")
    assert "GroupLens" in describe_source(folder)
    inter = load_interactions(folder)
    assert inter.name == "ml-100k" and len(inter) == 4
