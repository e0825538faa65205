import time
import warnings

import numpy as np
import pytest

from elastic_edu import paths
from elastic_edu.data import build_sequences, leave_one_out, load_interactions, load_sequences
from elastic_edu.data.atomic import atomic_inter_file, read_atomic

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _write(folder, name, inter, item=None):
    """Write ``name.inter`` (and ``name.item``) into `folder`: text as UTF-8, or bytes as given."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, content in ((".inter", inter), (".item", item)):
        path = folder / f"{name}{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content, encoding="utf-8")
    return folder


def test_ml100k_counts(ml100k_dir):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # valid data: no duplicate rows dropped
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


def test_string_ids_in_file_order(tmp_path):
    inter_text = "session:token\tuser_id:token\titem_id:token\ns1\tu1\tA7\ns2\tu2\t3\ns3\tu1\tB\n"
    item_text = "item_id:token\ttitle:token\tgenre:token\nA7\tAlpha\tjazz\nB\tBeta\t\n"
    folder = _write(tmp_path / "odd", "odd", inter_text, item_text)
    inter = read_atomic(folder, order="file")
    assert inter.items.dtype.kind == "U" and inter.users.dtype.kind == "U"
    assert inter.items.tolist() == ["A7", "3", "B"]  # an integer among tokens is a token
    np.testing.assert_array_equal(inter.timestamps, [0, 1, 2])  # file order is time order
    assert inter.item_info["A7"] == {"title": "Alpha", "genres": ["jazz"]}
    assert inter.item_info["B"] == {"title": "Beta", "genres": []}


def test_missing_timestamp_column_is_an_error_unless_file_order(tmp_path):
    # a time column named otherwise used to fall back to file order silently
    text = "user_id:token\titem_id:token\trating:float\ttime:float\n1\t10\t4\t300\n1\t20\t4\t100\n"
    folder = _write(tmp_path / "t", "t", text)
    for load in (read_atomic, load_interactions, load_sequences):
        with pytest.raises(ValueError) as err:
            load(folder)
        message = str(err.value)
        assert str(folder / "t.inter") in message and "no timestamp column" in message
        assert "['user_id', 'item_id', 'rating', 'time']" in message and "order='file'" in message
    data = load_sequences(folder, order="file")  # asked for explicitly: rows are the time order
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[10, 20]]
    np.testing.assert_array_equal(load_interactions(folder, order="file").timestamps, [0, 1])
    with pytest.raises(ValueError, match="order='newest'"):
        read_atomic(folder, order="newest")


def test_file_order_ignores_timestamps(tiny_dir):
    inter = read_atomic(tiny_dir, order="file")
    np.testing.assert_array_equal(inter.timestamps, np.arange(6))
    data = load_sequences(tiny_dir, order="file")
    assert data.item_ids[data.sequences[0]].tolist() == [10, 20, 30]  # user 1 in file order
    by_time = load_sequences(tiny_dir)
    assert by_time.item_ids[by_time.sequences[0]].tolist() == [20, 10, 30]
    log = read_atomic(tiny_dir)
    assert load_sequences(log, order="file").sequences[0].tolist() == data.sequences[0].tolist()
    with pytest.raises(TypeError, match="Interactions log"):
        load_sequences(log, data_dir=tiny_dir)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_non_finite_timestamp_names_file_line_and_value(tmp_path, value):
    # nan used to sort last and become the user's test target
    rows = f"1\t10\t4\t300\n1\t20\t4\t{value}\n1\t30\t4\t400\n"
    folder = _write(tmp_path / "n", "n", HEADER + rows)
    with pytest.raises(ValueError) as err:
        read_atomic(folder)
    message = str(err.value)
    assert f"{folder / 'n.inter'}, line 3: timestamp {value!r} is not a finite number" in message


@pytest.mark.parametrize(
    "column, row", [("item_id", "1\t242.0\t4\t2\n"), ("user_id", "1e0\t7\t4\t2\n")]
)
def test_mixed_id_types_name_file_line_and_value(tmp_path, column, row):
    # one 242.0 among integer ids used to turn every id into a string and add an item
    folder = _write(tmp_path / "m", "m", HEADER + "1\t242\t4\t1\n" + row + "2\t5\t4\t3\n")
    with pytest.raises(ValueError) as err:
        read_atomic(folder)
    value = row.split("\t")[0 if column == "user_id" else 1]
    message = str(err.value)
    assert f"{folder / 'm.inter'}, line 3: {column} {value!r}" in message
    assert "not an integer" in message


def test_exact_duplicate_rows_are_dropped_with_a_warning(tmp_path):
    rows = ["1\t10\t4\t100", "1\t20\t4\t200", "1\t30\t4\t300", "2\t10\t4\t100"]
    rows += ["2\t20\t4\t200", "2\t30\t4\t300"]
    # the whole file twice (a concatenation gone wrong), and user 2 watches item 10 again later
    text = HEADER + "\n".join(rows + rows + ["2\t10\t5\t400"]) + "\n"
    folder = _write(tmp_path / "d", "d", text)
    with pytest.warns(UserWarning) as record:
        inter = read_atomic(folder)
    assert len(record) == 1
    message = str(record[0].message)
    assert str(folder / "d.inter") in message and "dropped 6 exact duplicate" in message
    assert "line 8, a copy of line 2" in message
    assert record[0].filename == __file__  # the warning points at the caller
    assert len(inter) == 7  # six rows once, and the re-consumption at another time
    data = build_sequences(inter)
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[10, 20, 30], [10, 20, 30, 10]]
    split = leave_one_out(data)
    assert (split.test.targets != split.valid.targets).all()


def test_same_pair_at_other_times_or_ratings_is_kept(tmp_path):
    text = HEADER + "1\t10\t4\t100\n1\t10\t4\t200\n1\t10\t5\t100\n1\t10\t4\t100.0\n"
    folder = _write(tmp_path / "r", "r", text)
    with pytest.warns(UserWarning, match="dropped 1 exact duplicate.*line 5, a copy of line 2"):
        inter = read_atomic(folder)  # 100.0 is the same time as 100
    assert inter.timestamps.tolist() == [100, 200, 100]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_atomic(folder, order="file")) == 4  # no time to tell copies apart


@pytest.mark.parametrize("suffix", [".inter", ".item"])
def test_non_utf8_file_names_file_and_line(tmp_path, suffix):
    inter = (HEADER + "1\t10\t4\t300\n").encode()
    item = "item_id:token\tmovie_title:token_seq\n20\tTea\n10\tCaf\u00e9\n".encode()
    if suffix == ".inter":
        inter = HEADER.encode() + "1\t10\t4\t300\n2\t10\t\u00e9\t1\n".encode("latin-1")
    else:
        item = item.decode().encode("latin-1")
    folder = _write(tmp_path / "e", "e", inter, item)
    with pytest.raises(ValueError) as err:
        read_atomic(folder)
    message = str(err.value)
    assert f"{folder / ('e' + suffix)}, line 3: not UTF-8" in message
    assert "byte 0xe9 at byte offset" in message


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    text = "\ufeff" + HEADER + "1\t10\t4\t300\n"
    folder = _write(tmp_path / "bom", "bom", text.encode("utf-8"))
    assert read_atomic(folder).users.tolist() == [1]


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
