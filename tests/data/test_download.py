import hashlib
import http.server
import socket

import pytest

from elastic_edu.data.download import DownloadError, download, parse_md5
from tests.conftest import serve

PAYLOAD = b"user\titem\n" * 5000  # larger than one read chunk


def _serve(root, name="ml-test.zip", payload=PAYLOAD):
    (root / name).write_bytes(payload)
    return hashlib.md5(payload).hexdigest()


@pytest.mark.parametrize(
    "text",
    [
        "MD5 (ml-100k.zip) = 0e33842e24a9c977be4e0107933c0723\n",
        "0e33842e24a9c977be4e0107933c0723  ml-100k.zip\n",
        "0E33842E24A9C977BE4E0107933C0723",
    ],
)
def test_parse_md5_forms(text):
    assert parse_md5(text) == "0e33842e24a9c977be4e0107933c0723"


def test_parse_md5_rejects_garbage():
    with pytest.raises(ValueError, match="no MD5"):
        parse_md5("<html>not found</html>")


def test_download_with_given_md5(http_root, tmp_path):
    url, root = http_root
    digest = _serve(root)
    dest = tmp_path / "cache" / "ml-test.zip"
    out = download(f"{url}/ml-test.zip", dest, md5=digest, progress=False)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ml-test.zip"]


@pytest.mark.parametrize("style", ["bsd", "gnu"])
def test_download_with_md5_url(http_root, tmp_path, style):
    url, root = http_root
    digest = _serve(root)
    line = f"MD5 (ml-test.zip) = {digest}\n" if style == "bsd" else f"{digest}  ml-test.zip\n"
    (root / "ml-test.zip.md5").write_text(line)
    dest = tmp_path / "ml-test.zip"
    download(f"{url}/ml-test.zip", dest, md5_url=f"{url}/ml-test.zip.md5", progress=True)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_nothing(http_root, tmp_path):
    url, root = http_root
    _serve(root)
    dest_dir = tmp_path / "cache"
    with pytest.raises(DownloadError, match="checksum mismatch") as err:
        download(f"{url}/ml-test.zip", dest_dir / "ml-test.zip", md5="0" * 32, progress=False)
    assert f"{url}/ml-test.zip" in str(err.value)
    assert list(dest_dir.iterdir()) == []  # neither the file nor a temporary file


class _ShortHandler(http.server.SimpleHTTPRequestHandler):
    """Announces `missing` more bytes in Content-Length than it sends: a body cut short."""

    missing = 1000

    def send_header(self, keyword, value):
        if keyword.lower() == "content-length":
            value = str(int(value) + self.missing)
        super().send_header(keyword, value)

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture
def short_http_root(tmp_path):
    """Like `http_root`, but every body is 1000 bytes shorter than its Content-Length."""
    with serve(tmp_path / "served-short", _ShortHandler) as url:
        yield url, tmp_path / "served-short"


def test_truncated_download_without_md5_is_refused(short_http_root, tmp_path):
    # the connection ends 1000 bytes early: without a checksum this used to keep the stub
    url, root = short_http_root
    _serve(root)
    dest_dir = tmp_path / "cache"
    with pytest.raises(DownloadError) as err:
        download(f"{url}/ml-test.zip", dest_dir / "ml-test.zip", progress=False)
    message = str(err.value)
    assert f"{url}/ml-test.zip" in message and "incomplete download" in message
    assert f"received {len(PAYLOAD)} bytes" in message
    assert f"announced {len(PAYLOAD) + 1000}" in message
    assert list(dest_dir.iterdir()) == []  # neither the file nor the partial temporary file


def test_truncated_download_with_md5_reports_sizes(short_http_root, tmp_path):
    url, root = short_http_root
    digest = _serve(root)
    with pytest.raises(DownloadError, match=f"checksum mismatch.*announced {len(PAYLOAD) + 1000}"):
        download(f"{url}/ml-test.zip", tmp_path / "ml-test.zip", md5="0" * 32, progress=False)
    # the checksum decides when there is one: the whole body arrived, the header lied
    download(f"{url}/ml-test.zip", tmp_path / "ml-test.zip", md5=digest, progress=False)
    assert (tmp_path / "ml-test.zip").read_bytes() == PAYLOAD


def test_server_down_names_url_and_dest(closed_url, tmp_path):
    dest = tmp_path / "ml-100k.zip"
    with pytest.raises(DownloadError) as err:
        download(closed_url, dest, progress=False, timeout=5)
    message = str(err.value)
    assert closed_url in message and str(dest) in message and "by hand" in message
    assert list(tmp_path.iterdir()) == []


def test_md5_url_down_fails_before_download(closed_url, tmp_path):
    dest = tmp_path / "ml-100k.zip"
    with pytest.raises(DownloadError, match="by hand"):
        download(closed_url, dest, md5_url=closed_url + ".md5", progress=False, timeout=5)
    assert not dest.exists()


def test_http_404(http_root, tmp_path):
    url, _ = http_root
    dest_dir = tmp_path / "cache"
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download(f"{url}/missing.zip", dest_dir / "missing.zip", progress=False)
    assert f"{url}/missing.zip" in str(err.value)
    assert list(dest_dir.iterdir()) == []


def test_timeout(tmp_path):
    # a server that accepts connections but never answers
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.zip"
        with pytest.raises(DownloadError, match="by hand"):
            download(url, tmp_path / "slow.zip", progress=False, timeout=0.3)
    assert list(tmp_path.iterdir()) == []


def test_existing_dest_is_returned_without_network(closed_url, tmp_path):
    dest = tmp_path / "ml-100k.zip"
    dest.write_bytes(b"already here")
    assert download(closed_url, dest, md5="0" * 32, progress=False) == dest
    assert dest.read_bytes() == b"already here"


def test_download_error_is_runtime_error():
    assert issubclass(DownloadError, RuntimeError)
