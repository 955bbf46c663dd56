"""``gensight.init()`` in an app calling Claude with the real ``anthropic`` client.

The ``anthropic`` SDK (≥ 2) traces its own calls with OpenTelemetry, on by default;
``gensight.init()`` installs the process's tracer provider, so those native spans
reach Gensight and become the calls (producer ``anthropic-sdk``): Gensight adds no
second span of its own for the same call, and the server counts each call once. With
the SDK's tracing off (``ANTHROPIC_OPEN_TELEMETRY=false``) nothing is recorded: the
Gensight SDK wraps only ``openai`` today (see issue #15's report).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from gensight.demo.anthropic_upstream import create_app, serve
from tests.e2e.test_sdk_init import calls_of, run_app
from tests.support.server import Server


@pytest.fixture(scope="module")
def claude_upstream() -> Iterator[str]:
    with serve(create_app()) as base_url:
        yield base_url


APP = """
import anthropic
claude = anthropic.Anthropic(base_url={url!r}, api_key="sk-ant-test", max_retries=0)
ASK = [{{"role": "user", "content": "Say hello."}}]
assert gensight.init(endpoint={server!r}, app={app!r})
m = claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=ASK,
                           extra_headers={{"x-fake-cache-read-tokens": "3"}})
with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=ASK) as s:
    final = s.get_final_message()
try:
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=ASK,
                           extra_headers={{"x-fake-status": "529"}})
except anthropic.InternalServerError:
    pass
print(json.dumps([m.usage.model_dump(), final.usage.model_dump()]))
gensight.shutdown()
"""


def test_native_anthropic_spans_are_the_calls_counted_once(server: Server, claude_upstream: str):
    app = f"claude-{uuid.uuid4().hex[:8]}"
    proc = run_app(APP.format(url=claude_upstream, server=server.url, app=app), claude_upstream)
    plain_usage, stream_usage = json.loads(proc.stdout.strip().splitlines()[-1])
    plain, streamed, failed = calls_of(server, app, 3)
    for c in (plain, streamed, failed):
        assert c["source"] == "otlp" and c["producer"] == "anthropic-sdk"
        assert c["provider"] == "anthropic" and c["app"] == app
    for c, u in ((plain, plain_usage), (streamed, stream_usage)):
        assert c["input_tokens"] == (
            u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        )
        assert c["output_tokens"] == u["output_tokens"]
        assert c["cache_read_tokens"] == u["cache_read_input_tokens"]
        assert c["cost_source"] == "computed" and c["cost_usd"] > 0
        assert c["finish_reasons"] == ["end_turn"]
    assert streamed["stream"] is True
    assert (failed["status"], failed["error_class"]) == ("error", "upstream_error")
    # nothing else: no second record of any of the three calls
    assert len(server.wait_calls(3, timeout=2, app=app)) == 3
