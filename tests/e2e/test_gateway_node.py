"""The official `openai` Node client streams through the gateway as it does directly
(issue 14: stream fidelity): same chunks with the same members, no usage chunk or
``"usage": null`` it did not ask for (the README's ``chunk.choices[0].delta`` loop would
throw on a choices-less chunk), usage when it asked; Responses events alike.

The client runs in tests/producers/node (``npm ci``, cached under GENSIGHT_PRODUCER_ENVS);
the fake upstream and the gateway run in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gensight.model.settings import Settings
from tests.integration.test_gateway import Gateway

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "producers"))

from envs import ensure_node_env  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("GENSIGHT_SKIP_PRODUCERS") == "1" or shutil.which("node") is None,
    reason="GENSIGHT_SKIP_PRODUCERS=1 or no node",
)

#: Members that differ between any two answers (ids, times, the fake's fingerprint).
_VOLATILE = {
    "id",
    "created",
    "created_at",
    "completed_at",
    "item_id",
    "response_id",
    "system_fingerprint",
}


@pytest.fixture(scope="module")
def gw(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Settings(
            data_dir=tmp_path_factory.mktemp("gw-node"),
            upstreams={"openai": upstream.state.url},
            flush_interval=0.02,
        )
    )
    yield g
    g.stop()


def _node(base: str, mode: str) -> dict[str, Any]:
    env = ensure_node_env()
    proc = subprocess.run(
        ["node", str(env / "openai_stream.mjs"), base, mode],
        cwd=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _shape(value: Any) -> Any:
    """``value`` with volatile members blanked (structure and content kept)."""
    if isinstance(value, dict):
        return {k: ("…" if k in _VOLATILE else _shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return value


@pytest.mark.parametrize("mode", ["chat", "chat-usage", "responses"])
def test_node_client_streams_through_the_gateway_as_directly(
    gw: Gateway, upstream: Any, mode: str
) -> None:
    direct = _node(upstream.state.url, mode)
    via = _node(f"{gw.url}/openai/v1", mode)
    assert via["text"] == direct["text"] and via["text"]
    assert [_shape(c) for c in via["chunks"]] == [_shape(c) for c in direct["chunks"]]
    if mode == "chat":
        assert all("usage" not in c for c in via["chunks"])  # not even "usage": null
        assert all(c["choices"] for c in via["chunks"])
    if mode == "chat-usage":
        assert via["chunks"][-1]["choices"] == [] and via["chunks"][-1]["usage"]
    # and the gateway recorded the usage it asked for
    gw.app.state.pipeline.flush()
    calls = gw.api.get("/api/calls", params={"limit": 1}).json()["items"]
    assert calls and calls[0]["tokens_estimated"] is False
    assert calls[0]["output_tokens"] == upstream.state.log.last().usage.get(
        "completion_tokens", upstream.state.log.last().usage.get("output_tokens")
    )
