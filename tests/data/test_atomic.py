import time

import numpy as np
import pytest

from elastic_edu import paths
from elastic_edu.data import load_interactions
from elastic_edu.data.atomic import atomic_inter_file, read_atomic

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _write(folder, name, inter, item=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(inter)
    if item is not None:
        (folder / f"{name}.item").write_text(item)
    return folder


def test_ml100k_counts(ml100k_dir):
    start = time.perf_counter()
    inter = read_atomic(ml100k_dir)
    seconds = time.perf_counter() - start
    assert inter.summary() == {"users": 943, "items": 1682, "interactions": 100000}
    assert inter.name == "ml-100k"
    assert inter.users.dtype == np.int64 and inter.items.dtype == np.int64
    assert inter.timestamps.dtype == np.float64
    # first row of the file: 196 242 3 881250949
    assert (inter.users[0], inter.items[0], inter.timestamps[0]) == (196, 242, 881250949.0)
    toy_story = {"title": "Toy Story", "genres": ["Animation", "Children's", "Comedy"]}
    assert inter.item_info[1] == toy_story
    assert len(inter.item_info) == 1682
    assert seconds < 3.0  # about 0.3 s on a busy laptop core; the target is < 1 s


def test_find_atomic_and_env(tiny_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ATOMIC_ENV, str(tiny_dir.parent))
    assert paths.find_atomic("tiny") == tiny_dir
    assert paths.find_atomic("no-such-set") is None
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    assert paths.data_dir() == tmp_path
    assert paths.atomic_search_path()[0] == tiny_dir.parent


def test_repo_root_holds_pyproject():
    root = paths.repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert (root / "elastic_edu" / "paths.py").is_file()


def test_tiny_fixture(tiny_dir):
    inter = read_atomic(tiny_dir)
    assert inter.name == "tiny"
    np.testing.assert_array_equal(inter.users, [1, 1, 2, 1, 2, 3])  # file order
    np.testing.assert_array_equal(inter.items, [10, 20, 10, 30, 40, 20])
    np.testing.assert_array_equal(inter.timestamps, [300, 100, 200, 300, 50, 10])
    assert inter.item_info[10] == {"title": "The First Film", "genres": ["Drama", "Comedy"]}
    assert inter.item_info[30] == {"title": "Third One", "genres": []}
    assert inter.item_info[40]["genres"] == ["Sci-Fi", "Horror"]
    assert load_interactions(tiny_dir).summary() == inter.summary()
    expected = {"users": 3, "items": 4, "interactions": 6}
    assert load_interactions(str(tiny_dir)).summary() == expected


def test_string_ids_and_missing_timestamp(tmp_path):
    inter_text = "session:token\tuser_id:token\titem_id:token\ns1\tu1\tA7\ns2\tu2\t3\ns3\tu1\tB\n"
    item_text = "item_id:token\ttitle:token\tgenre:token\nA7\tAlpha\tjazz\nB\tBeta\t\n"
    folder = _write(tmp_path / "odd", "odd", inter_text, item_text)
    inter = read_atomic(folder)
    assert inter.items.dtype.kind == "U" and inter.users.dtype.kind == "U"
    assert inter.items.tolist() == ["A7", "3", "B"]
    np.testing.assert_array_equal(inter.timestamps, [0, 1, 2])  # file order is time order
    assert inter.item_info["A7"] == {"title": "Alpha", "genres": ["jazz"]}
    assert inter.item_info["B"] == {"title": "Beta", "genres": []}


def test_name_defaults_to_the_only_inter_file(tmp_path):
    folder = _write(tmp_path / "folder", "other", HEADER + "1\t2\t3\t4\n")
    assert atomic_inter_file(folder).name == "other.inter"
    assert read_atomic(folder).name == "other"
    _write(folder, "second", HEADER + "1\t2\t3\t4\n")
    with pytest.raises(FileNotFoundError, match="exactly one"):
        read_atomic(folder)
    assert read_atomic(folder, "second").name == "second"


def test_blank_lines_are_skipped_and_counted(tmp_path):
    folder = _write(tmp_path / "b", "b", HEADER + "1\t2\t3\t4\n\n1\t3\t3\t5\n\n1\t4\t3\tsoon\n")
    with pytest.raises(ValueError, match=r"b\.inter, line 6: timestamp 'soon'"):
        read_atomic(folder)


@pytest.mark.parametrize(
    "bad_row, why",
    [
        ("2\t20\t5\n", "expected 4 tab-separated columns, found 3"),
        ("2\t20\t5\tnoon\n", "timestamp 'noon' is not a number"),
        ("\t20\t5\t100\n", "empty user_id"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, bad_row, why):
    folder = _write(tmp_path / "bad", "bad", HEADER + "1\t10\t4\t300\n" + bad_row + "3\t7\t1\t1\n")
    with pytest.raises(ValueError) as err:
        read_atomic(folder)
    assert str(folder / "bad.inter") in str(err.value)
    assert "line 3" in str(err.value) and why in str(err.value)


def test_missing_item_column(tmp_path):
    folder = _write(tmp_path / "x", "x", "user_id:token\ttimestamp:float\n1\t2\n")
    with pytest.raises(ValueError, match="no item_id column"):
        read_atomic(folder)


def test_item_file_with_foreign_ids(tmp_path):
    item_text = "item_id:token\tmovie_title:token_seq\n10\tTen\nx9\tBad\n"
    folder = _write(tmp_path / "y", "y", HEADER + "1\t10\t4\t300\n", item_text)
    with pytest.raises(ValueError, match=r"y\.item, line 3"):
        read_atomic(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_atomic(tmp_path / "nowhere")
