"""Shared fixtures: offline MovieLens 100K, the tiny atomic fixture, a local HTTP server."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest

from elastic_edu.config import MemoryConfig, ModelConfig
from elastic_edu.paths import find_atomic

FIXTURES = Path(__file__).parent / "fixtures"
MEMORY_FIELDS = ("subkeys", "candidates", "key_dim", "context")


def make_tiny_config(model: str = "sasrec", **changes) -> ModelConfig:
    """A small ModelConfig for fast tests: 40 items, N = 16, d = 16, 2 heads, 2 layers, k = 4,
    a 16-slot memory; memory fields (subkeys, candidates, key_dim, context) go to MemoryConfig."""
    memory = {"subkeys": 4, "candidates": 4, "key_dim": 8, "context": 8}
    memory.update({k: changes.pop(k) for k in MEMORY_FIELDS if k in changes})
    values = dict(model=model, num_items=40, max_len=16, dim=16, heads=2, layers=2, dropout=0.0,
                  num_experts=4, memory=MemoryConfig(**memory))  # fmt: skip
    values.update(changes)
    return ModelConfig(**values)


def tiny_sasrec(num_items: int = 40, seed: int = 0):
    """A tiny SASRec (N = 8, one layer) in eval mode: the model the ranking tests score with."""
    import torch

    from elastic_edu.models import build_model

    torch.manual_seed(seed)
    return build_model(make_tiny_config("sasrec", num_items=num_items, max_len=8, layers=1)).eval()


def counted_popularity(train, num_items: int):
    """Popularity counted on `train` (what `fit` does for it)."""
    from elastic_edu.models import build_model

    return build_model(make_tiny_config("popularity", num_items=num_items)).count(train)


def diverged_sasrec():
    """The tiny SASRec with NaN vectors for items 5..8: a history without them scores them NaN
    (and only them)."""
    import torch

    model = tiny_sasrec()
    with torch.no_grad():
        model.item_emb.weight[5:9] = float("nan")
    return model


@pytest.fixture
def tiny_config():
    """`make_tiny_config` as a fixture: tiny_config("elastic-causal", dim=32)."""
    return make_tiny_config


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """MovieLens 100K as RecBole atomic files (``../shared/data`` or $ELASTIC_EDU_ATOMIC)."""
    folder = find_atomic("ml-100k")
    if folder is None:
        pytest.skip(
            "ml-100k atomic files not found: set ELASTIC_EDU_ATOMIC or provide ../shared/data "
            "(CI has ../shared/data/ml-100k)"
        )
    return folder


@pytest.fixture
def tiny_dir() -> Path:
    """A made-up six-event atomic data set with an item file (tests/fixtures/tiny)."""
    return FIXTURES / "tiny"


def write_planted(folder: Path, name: str = "small", **kw) -> Path:
    """Write `planted_interests(**kw)` as RecBole atomic ``folder/name.inter``; returns folder."""
    from elastic_edu.data.synthetic import planted_interests

    inter = planted_interests(**kw)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rows += [f"{u}\t{i}\t{t}" for u, i, t in zip(inter.users, inter.items, inter.timestamps)]
    (folder / f"{name}.inter").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory) -> Path:
    """Planted interests as atomic files: 60 users of 20-30 events over 80 items (8 interests),
    enough batches for two processes and a signal that a tiny model learns in a few epochs."""
    return write_planted(tmp_path_factory.mktemp("data") / "small", num_users=60, num_items=80,
                         seq_len=30, min_len=20, seed=0)  # fmt: skip


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@contextlib.contextmanager
def serve(root: Path, handler=_QuietHandler):
    """A local HTTP server on 127.0.0.1 serving `root` with `handler`: yields its base URL."""
    root.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a fresh folder: yields (base_url, folder)."""
    with serve(tmp_path / "served") as url:
        yield url, tmp_path / "served"


@pytest.fixture
def closed_url() -> str:
    """A URL on a local port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/ml-100k.zip"
