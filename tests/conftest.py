"""Shared fixtures, and the lanes: tests under ``tests/e2e`` are marked ``e2e``
(subprocess servers, producer venvs, the browser); ``scripts/test --fast`` runs the rest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gensight.demo import ModelProfile, UpstreamConfig
from gensight.demo import create_app as upstream_app
from tests.support.server import STORES, Server, served, store_args

HERE = Path(__file__).resolve().parent

# The fake upstreams on 127.0.0.1 stand for public providers: price their calls from the
# public list (loopback calls are otherwise self-hosted and unpriced). Read by every
# Pricer (in-process apps, `gensight serve` subprocesses, the SDK); the self-hosted
# tests build their Pricer without it.
os.environ.setdefault("GENSIGHT_PRICED_HOSTS", "127.0.0.1,localhost")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test by its lane folder: ``unit``, ``integration`` or ``e2e``."""
    for item in items:
        lane = Path(str(item.fspath)).resolve().relative_to(HERE).parts[0]
        if lane in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, lane))


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB data path this pytest process may use (chDB allows one per process)."""
    return tmp_path_factory.mktemp("chdb") / "data"


@pytest.fixture(scope="session", params=STORES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One `gensight serve` per store, shared by tests that filter by their own ids."""
    data = tmp_path_factory.mktemp(f"gensight-shared-{request.param}")
    srv = Server(data, *store_args(request.param, data))
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A `gensight serve` of the test's own, on an empty store."""
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    """The simulated OpenAI-compatible upstream in a server thread: its app, with
    ``app.state.url`` (the ``/v1`` base URL) and ``app.state.log`` (what it received).
    ``slow-model`` streams at 40 ms per token."""
    app = upstream_app(
        UpstreamConfig(retry_after_s=0, profiles={"slow-model": ModelProfile(ms_per_token=40)})
    )
    yield from served(app, "/v1")
