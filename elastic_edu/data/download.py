"""Download a file atomically, with an MD5 check, and fail with a message a person can act on.

The file is streamed into a temporary file beside `dest`, checked (against the MD5 when one is
given, else against the length the server announced in ``Content-Length``), and only then
renamed onto `dest` (``os.replace`` is atomic on one file system): an interrupted, truncated or
corrupt download never leaves a file at `dest` that a later run would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

CHUNK = 1 << 16
_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, timeout, checksum or length); nothing was left
    at dest."""


def parse_md5(text: str) -> str:
    """The hex digest in an ``.md5`` file.

    Accepts the BSD form ``MD5 (ml-100k.zip) = 0e33...`` and the GNU form ``0e33...  ml-100k.zip``
    (and a bare digest). Raises ValueError when no 32-digit hex digest is found.
    """
    match = _MD5.search(text.split("=")[-1]) or _MD5.search(text)
    if match is None:
        raise ValueError(f"no MD5 digest found in {text[:200]!r}")
    return match.group(1).lower()


def _offline(url: str, dest: Path, reason: object) -> DownloadError:
    return DownloadError(
        f"could not download {url}: {reason}. If this machine is offline, download the file "
        f"elsewhere and put it by hand at {dest}"
    )


def fetch_md5(url: str, dest: str | os.PathLike, timeout: float = 30.0) -> str:
    """Fetch and parse the ``.md5`` file published for `dest`; failures raise DownloadError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read(4096).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as err:
        raise DownloadError(f"could not download {url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _offline(url, Path(dest), getattr(err, "reason", None) or repr(err)) from err
    try:
        return parse_md5(text)
    except ValueError as err:
        raise DownloadError(f"checksum file {url}: {err}") from err


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    md5_url: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download `url` to `dest` and return `dest`; an existing `dest` is returned untouched.

    md5: the expected hex digest, or md5_url: where the digest is published (fetched first).
    Without either, the body must be as long as the server's ``Content-Length`` says (when it
    sends one): a connection that ends early would otherwise leave a truncated file.
    progress: show a tqdm bar. timeout: seconds for connecting and for each read.
    Raises DownloadError (naming the URL, and for network failures where to put the file by
    hand) on any failure; then neither `dest` nor a temporary file is left behind.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if md5 is None and md5_url is not None:
        md5 = fetch_md5(md5_url, dest, timeout)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size, announced = _stream(url, out, dest, progress, timeout)
        if md5 is not None and digest != md5.lower():
            raise DownloadError(
                f"checksum mismatch for {url}: expected MD5 {md5.lower()}, got {digest} "
                f"({_sizes(size, announced)}); the file was not kept (expected at {dest})"
            )
        if md5 is None and announced is not None and size != announced:
            raise DownloadError(
                f"incomplete download of {url}: {_sizes(size, announced)}; the partial file "
                f"was not kept (expected at {dest}): try again"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _sizes(size: int, announced: int | None) -> str:
    if announced is None:
        return f"received {size} bytes, the server sent no Content-Length"
    return f"received {size} bytes, the server announced {announced} (Content-Length)"


def _content_length(response) -> int | None:
    """The ``Content-Length`` header as an int, None when absent or not a number."""
    try:
        return int(response.headers.get("Content-Length") or "")
    except ValueError:
        return None


def _stream(
    url: str, out: BinaryIO, dest: Path, progress: bool, timeout: float
) -> tuple[str, int, int | None]:
    """Copy the body of `url` into the open file `out`.

    Returns (MD5 hex digest, bytes received, the ``Content-Length`` announced or None).
    """
    digest = hashlib.md5()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            announced = _content_length(response)
            total = announced or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress)
            with bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise DownloadError(
            f"could not download {url}: HTTP {err.code} {err.reason}. If the file is available "
            f"elsewhere, put it by hand at {dest}"
        ) from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _offline(url, dest, getattr(err, "reason", None) or repr(err)) from err
    return digest.hexdigest(), size, announced
