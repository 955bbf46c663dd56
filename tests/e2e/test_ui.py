"""The web pages against a real `gensight serve`: plain HTTP (no JavaScript) and a real
browser (Playwright driving Debian's chromium).

The store is seeded once over OTLP, with spans made by the real OpenTelemetry SDK, plus
one call through the gateway to the fake upstream (a stream whose upstream ignores
``include_usage``, so its tokens are estimated). Known values:

- ``shop-api``: one RAG trace, 7 spans in 4 levels, 2 LLM calls (gpt-4o-mini, 1200/345
  and 1400/80 tokens), the second one answering a tool call to ``lookup_order``.
- ``support-bot``: 11 calls: 4 gpt-4o (latency = 500 ms + 20 ms per output token: 2.0 s
  per 100 tokens) and 2 gpt-4o failing with 429; 4 deepseek-chat streams (300 ms + 10 ms
  per token: 1.0 s per 100 tokens, TTFT 250 ms) and 1 failing with 500.
- ``xss-app``: one failed call whose prompt, completion, user, attribute and error message
  carry markup that would set ``window.__xss`` if it ever ran.
- ``gateway-app``: one streamed gateway call with estimated tokens.

Screenshots go to ``test-artifacts/`` (gitignored). With ``GENSIGHT_DOCS_SCREENSHOT=1``
the dashboard screenshot is also written to ``docs/dashboard.png`` for the README.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.otlp_payloads import hex_span_id, hex_trace_id, record_spans, traces_protobuf
from tests.support.server import ROOT, Server

PB = {"content-type": "application/x-protobuf"}
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
MS = 1_000_000  # nanoseconds

XSS_PROMPT = (
    "Summarise this page: <script>window.__xss=1</script> and "
    '<img src=x onerror="window.__xss=2"> please'
)
XSS_COMPLETION = '<b>bold</b><img src=x onerror="window.__xss=3">'
XSS_USER = '<img src=x onerror="window.__xss=4">'
XSS_ATTR = "<script>window.__xss=5</script>"
XSS_ERROR = '<img src=x onerror="window.__xss=6"> upstream exploded'


# -- seeding -----------------------------------------------------------------------------


def _messages(*messages: dict[str, Any]) -> str:
    return json.dumps(list(messages))


def _text(role: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}], **extra}


def _llm(
    span: trace.Span,
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    provider: str = "openai",
    user: str | None = None,
    inp: str | None = None,
    out: str | None = None,
    ttft_s: float | None = None,
    error: tuple[str, str] | None = None,
) -> None:
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", provider)
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("gen_ai.request.temperature", 0.2)
    span.set_attribute("gen_ai.request.max_tokens", 800)
    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
    if ttft_s is not None:
        span.set_attribute("gen_ai.request.stream", True)
        span.set_attribute("gen_ai.response.time_to_first_chunk", ttft_s)
    if user:
        span.set_attribute("user.id", user)
    if inp:
        span.set_attribute("gen_ai.input.messages", inp)
    if out:
        span.set_attribute("gen_ai.output.messages", out)
    if error:
        error_type, message = error
        span.set_attribute("error.type", error_type)
        span.set_status(StatusCode.ERROR, message)
    else:
        span.set_attribute("gen_ai.response.model", model)
        span.set_attribute("gen_ai.response.finish_reasons", ["stop"])


def _timed(tracer: trace.Tracer, name: str, start: int, end: int, kind=SpanKind.INTERNAL):
    """A span with explicit start and end times (ns); ``end`` is applied on exit."""

    class _Span:
        def __enter__(self) -> trace.Span:
            self.cm = tracer.start_as_current_span(
                name, kind=kind, start_time=start, end_on_exit=False
            )
            self.span = self.cm.__enter__()
            return self.span

        def __exit__(self, *exc: object) -> None:
            self.span.end(end_time=end)
            self.cm.__exit__(None, None, None)

    return _Span()


def rag_trace(t0: int) -> Callable[[trace.Tracer], None]:
    """The shop-api request: 7 spans in 4 levels, two LLM calls, a tool call between."""
    ask = _text("user", "Where is my order 42?")
    tool_call = {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "call_1",
                "name": "lookup_order",
                "arguments": {"order_id": 42},
            }
        ],
    }
    tool_result = {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": "shipped on Monday"}],
    }
    answer = _text("assistant", "Your order 42 shipped on Monday.", finish_reason="stop")

    def build(tracer: trace.Tracer) -> None:
        def at(name: str, start_ms: int, end_ms: int, kind: SpanKind = SpanKind.INTERNAL):
            return _timed(tracer, name, t0 + start_ms * MS, t0 + end_ms * MS, kind)

        # the nesting is the trace tree, so the with statements stay nested
        with at("POST /ask", 0, 2000, SpanKind.SERVER):  # noqa: SIM117
            with at("rag-pipeline", 20, 1980):
                with at("retrieve", 50, 350):  # noqa: SIM117
                    with at("vector-search", 60, 340, SpanKind.CLIENT) as s:
                        s.set_attribute("db.system", "qdrant")
                with at("chat gpt-4o-mini", 400, 1400, SpanKind.CLIENT) as s:
                    out = _messages({**tool_call, "finish_reason": "tool_calls"})
                    _llm(s, "gpt-4o-mini", 1200, 345, user="alice", inp=_messages(ask), out=out)
                with at("execute_tool lookup_order", 1450, 1550) as s:
                    s.set_attribute("gen_ai.tool.name", "lookup_order")
                with at("chat gpt-4o-mini", 1600, 1950, SpanKind.CLIENT) as s:
                    inp = _messages(ask, tool_call, tool_result)
                    _llm(s, "gpt-4o-mini", 1400, 80, user="alice", inp=inp, out=_messages(answer))

    return build


def support_calls(now: int) -> Callable[[trace.Tracer], None]:
    """support-bot: gpt-4o and deepseek-chat calls with exact latency fits, and failures."""
    rate_limited = ("openai.RateLimitError", "Error code: 429 - rate limited")
    server_error = ("openai.InternalServerError", "Error code: 500 - server error")

    def build(tracer: trace.Tracer) -> None:
        def call(name: str, minutes_ago: int, duration_ms: int):
            start = now - minutes_ago * 60_000 * MS
            return _timed(tracer, name, start, start + duration_ms * MS, SpanKind.CLIENT)

        for i, tokens in enumerate((100, 200, 300, 400)):
            with call("chat gpt-4o", 60 + 50 * i, 500 + 20 * tokens) as s:
                question = _messages(_text("user", f"Question number {i} about refunds"))
                _llm(s, "gpt-4o", 500, tokens, user=f"user-{i % 2}", inp=question)
        for i, tokens in enumerate((50, 150, 250, 350)):
            with call("chat deepseek-chat", 45 + 40 * i, 300 + 10 * tokens) as s:
                _llm(s, "deepseek-chat", 300, tokens, provider="deepseek", user="user-2",
                     ttft_s=0.25)  # fmt: skip
        for i in range(2):
            with call("chat gpt-4o", 30 + 5 * i, 120) as s:
                _llm(s, "gpt-4o", 500, 0, user="user-0", error=rate_limited)
        with call("chat deepseek-chat", 20, 900) as s:
            _llm(s, "deepseek-chat", 300, 0, provider="deepseek", user="user-2",
                 error=server_error)  # fmt: skip

    return build


def xss_call(now: int) -> Callable[[trace.Tracer], None]:
    """One failed call carrying markup everywhere a user-controlled string is shown."""

    def build(tracer: trace.Tracer) -> None:
        start = now - 15 * 60_000 * MS
        with _timed(tracer, "chat gpt-4o-mini", start, start + 700 * MS, SpanKind.CLIENT) as s:
            _llm(s, "gpt-4o-mini", 40, 12, user=XSS_USER,
                 inp=_messages(_text("user", XSS_PROMPT)),
                 out=_messages(_text("assistant", XSS_COMPLETION)),
                 error=("openai.InternalServerError", XSS_ERROR))  # fmt: skip
            s.set_attribute("custom.note", XSS_ATTR)

    return build


class Seeded:
    """The seeded server and the ids tests look for."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self.rag_trace_id = ""
        self.rag_span_names: list[str] = []
        self.tool_answer_id = ""
        self.xss_id = ""
        self.gateway_id = ""


def _seed(server: Server, upstream: str) -> Seeded:
    seeded = Seeded(server)
    now = time.time_ns()
    rag = record_spans(rag_trace(now - 10 * 60_000 * MS), service="shop-api",
                       **{"deployment.environment": "prod"})  # fmt: skip
    support = record_spans(support_calls(now), service="support-bot",
                           **{"deployment.environment": "prod"})  # fmt: skip
    xss = record_spans(xss_call(now), service="xss-app")
    for spans in (rag, support, xss):
        r = server.client.post("/v1/traces", content=traces_protobuf(spans), headers=PB)
        assert r.status_code == 200, r.text
    seeded.rag_trace_id = hex_trace_id(rag[0])
    seeded.tool_answer_id = hex_span_id(
        max((s for s in rag if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time)
    )
    seeded.xss_id = hex_span_id(xss[0])

    with httpx.stream(
        "POST",
        f"{server.url}/openai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "stream": True,
              "messages": [{"role": "user", "content": "Say hello from the gateway"}]},
        headers={"Authorization": "Bearer sk-test", "X-Gensight-App": "gateway-app",
                 "x-fake-ignore-include-usage": "1"},
        timeout=30,
    ) as r:  # fmt: skip
        assert r.status_code == 200, r.read()
        r.read()
    (gw,) = server.wait_calls(1, app="gateway-app")
    seeded.gateway_id = gw["id"]
    server.wait_calls(15)
    return seeded


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A `gensight serve` of this module's own with the data described above."""
    from gensight.demo.upstream import serve as serve_upstream

    with serve_upstream() as upstream:
        srv = Server(tmp_path_factory.mktemp("ui"), "--upstream", f"openai={upstream}")
        try:
            yield _seed(srv, upstream)
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A `gensight serve` with nothing in it."""
    srv = Server(tmp_path_factory.mktemp("ui-empty"))
    yield srv
    srv.stop()


# -- reading HTML without a browser ------------------------------------------------------


class Page(HTMLParser):
    """Just enough of an HTML page to check what a person with JavaScript off sees."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.ids: dict[str, list[str]] = {}  # element id -> its text
        self.rows: dict[str, list[dict[str, str]]] = {}  # table id -> row attributes
        self.links: list[str] = []
        self.scripts: list[dict[str, str]] = []
        self._open: list[tuple[str, str | None]] = []
        self._table: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "script":
            self.scripts.append(a)
        if tag == "table":
            self._table.append(a.get("id", ""))
            self.rows.setdefault(a.get("id", ""), [])
        if tag == "tr" and self._table and self._open and self._open[-1][0] == "tbody":
            self.rows[self._table[-1]].append(a)
        if tag in ("br", "img", "input", "meta", "link", "line", "rect", "col", "hr"):
            return
        self._open.append((tag, a.get("id")))
        if a.get("id"):
            self.ids.setdefault(a["id"], [])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table:
            self._table.pop()
        if all(t != tag for t, _ in self._open):
            return
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, id_ in self._open:
            if id_:
                self.ids[id_].append(data)

    def link_to(self, path: str) -> dict[str, str]:
        """The query parameters of the first link to ``path``."""
        for href in self.links:
            parts = urlsplit(href)
            if parts.path == path:
                return dict(parse_qsl(parts.query))
        raise AssertionError(f"no link to {path} in {self.links}")

    def text(self, id_: str) -> str:
        """The text inside the element with this id, whitespace collapsed."""
        assert id_ in self.ids, f"no element with id {id_!r}"
        return " ".join(" ".join(self.ids[id_]).split())


def get_page(url: str, path: str, status: int = 200) -> tuple[httpx.Response, Page]:
    r = httpx.get(url + path, timeout=20)
    assert r.status_code == status, (path, r.status_code, r.text[:2000])
    assert r.headers["content-type"].startswith("text/html")
    return r, Page(r.text)


# -- plain HTTP: every page renders without JavaScript -------------------------------------


def test_dashboard_tiles_show_the_api_totals(seeded: Seeded):
    r, page = get_page(seeded.url, "/")
    totals = seeded.server.client.get("/api/stats/overview").json()["totals"]
    assert totals["calls"] == 15
    assert page.text("tile-calls") == "15"
    assert page.text("tile-error-rate") == f"{totals['error_rate'] * 100:.1f}%"
    from gensight.web.render import fmt_compact, fmt_ms, fmt_usd

    assert page.text("tile-cost") == fmt_usd(totals["cost_usd"])
    assert page.text("tile-p95") == fmt_ms(totals["latency_ms"]["p95"])
    assert page.text("tile-ttft") == fmt_ms(totals["ttft_ms"]["p95"])
    tokens = f"{fmt_compact(totals['input_tokens'])} / {fmt_compact(totals['output_tokens'])}"
    assert page.text("tile-tokens") == tokens == "7,152 / 2,247"
    # tables carry the chart numbers for people without JavaScript
    models = {row["data-group"]: row for row in page.rows["table-models"]}
    assert set(models) >= {"gpt-4o", "deepseek-chat", "gpt-4o-mini"}
    errors = page.text("table-errors")
    assert "rate_limit" in errors and "upstream_error" in errors
    # the JSON twin, the chart data block, and scripts only from /static
    assert "/api/stats/overview" in page.links
    assert any(s.get("id") == "gensight-charts" for s in page.scripts)
    assert all(s.get("src", "").startswith("/static/") or s.get("type") == "application/json"
               for s in page.scripts)  # fmt: skip
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_dashboard_filters_and_group_by(seeded: Seeded):
    _, page = get_page(seeded.url, "/?app=support-bot&group_by=user&since=7d")
    assert page.text("tile-calls") == "11"
    assert page.text("tile-error-rate") == f"{3 / 11 * 100:.1f}%"
    groups = [row["data-group"] for row in page.rows["table-group"]]
    assert groups == ["user-2", "user-0", "user-1"]  # most calls first: 5, 4, 2
    assert page.link_to("/api/stats/overview") == {
        "app": "support-bot",
        "group_by": "user",
        "since": "7d",
    }


def test_calls_log_filters_pages_and_searches(seeded: Seeded):
    api = seeded.server.client.get("/api/calls", params={"limit": 100}).json()["items"]
    _, page = get_page(seeded.url, "/calls")
    rows = page.rows["calls-table"]
    assert [r["data-id"] for r in rows] == [c["id"] for c in api]
    assert all(f"/calls/{c['id']}" in page.links for c in api)
    assert "/api/calls" in page.links

    _, page = get_page(seeded.url, "/calls?app=support-bot&status=error")
    assert len(page.rows["calls-table"]) == 3

    _, page = get_page(seeded.url, "/calls?q=SHIPPED+on+monday")
    assert [r["data-id"] for r in page.rows["calls-table"]] == [seeded.tool_answer_id]

    # paging: the "older" link carries the filters and the API's cursor
    _, first = get_page(seeded.url, "/calls?app=support-bot&limit=4")
    older = next(href for href in first.links if "cursor=" in href)
    assert "app=support-bot" in older and "limit=4" in older
    _, second = get_page(seeded.url, older)
    ids = [r["data-id"] for r in first.rows["calls-table"] + second.rows["calls-table"]]
    expected = [c["id"] for c in api if c["app"] == "support-bot"][:8]
    assert ids == expected


def test_call_detail_shows_the_conversation_as_text(seeded: Seeded):
    r, page = get_page(seeded.url, f"/calls/{seeded.tool_answer_id}")
    convo = page.text("conversation")
    assert "Where is my order 42?" in convo
    assert "lookup_order" in convo and '"order_id": 42' in convo
    assert "shipped on Monday" in convo and "result of tool call call_1" in convo
    assert "Your order 42 shipped on Monday." in convo
    assert page.text("input-tokens") == "1,400"
    assert page.text("output-tokens") == "80"
    assert page.text("cost-source") == "computed"
    assert page.text("cost").startswith("$")
    assert page.text("duration") == "350 ms"
    assert f"/traces/{seeded.rag_trace_id}" in page.links
    assert f"/api/calls/{seeded.tool_answer_id}" in page.links
    assert "gen_ai.request.temperature 0.2" in page.text("attributes")


def test_call_detail_marks_estimated_tokens(seeded: Seeded):
    _, page = get_page(seeded.url, f"/calls/{seeded.gateway_id}")
    assert page.text("tokens-estimated") == "estimated"
    assert page.text("input-tokens").startswith("≈")
    assert "Say hello from the gateway" in page.text("conversation")
    # the gateway's own trace: the call is an LLM row of the waterfall
    trace_id = next(h.rsplit("/", 1)[1] for h in page.links if h.startswith("/traces/"))
    _, trace_page = get_page(seeded.url, f"/traces/{trace_id}")
    llm_rows = [r for r in trace_page.rows["waterfall"] if "llm" in r["class"].split()]
    assert len(llm_rows) == 1
    assert f"/calls/{seeded.gateway_id}" in trace_page.links


def test_untrusted_text_is_escaped(seeded: Seeded):
    for path in (f"/calls/{seeded.xss_id}", "/calls", "/?group_by=user"):
        r, _ = get_page(seeded.url, path)
        assert "<script>window.__xss" not in r.text, path
        assert "<img src=x" not in r.text, path
    r, page = get_page(seeded.url, f"/calls/{seeded.xss_id}")
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in r.text
    assert XSS_PROMPT in page.text("conversation")
    assert XSS_COMPLETION in page.text("conversation")
    assert XSS_ERROR in page.text("error")
    assert XSS_ATTR in page.text("attributes")


def test_trace_waterfall_without_javascript(seeded: Seeded):
    _, page = get_page(seeded.url, f"/traces/{seeded.rag_trace_id}")
    rows = page.rows["waterfall"]
    names_depths = [(r["data-name"], int(r["data-depth"])) for r in rows]
    assert names_depths == [
        ("POST /ask", 0),
        ("rag-pipeline", 1),
        ("retrieve", 2),
        ("vector-search", 3),
        ("chat gpt-4o-mini", 2),
        ("execute_tool lookup_order", 2),
        ("chat gpt-4o-mini", 2),
    ]
    by_id = {r["data-span-id"]: r for r in rows}
    for r in rows[1:]:
        assert r["data-parent-id"] in by_id
    assert [("llm" in r["class"].split()) for r in rows] == [False] * 4 + [True, False, True]
    assert page.text("total-tokens") == "2,600 / 425"
    assert page.text("trace-duration") == "2.00 s"
    assert f"/calls/{seeded.tool_answer_id}" in page.links
    assert f"/api/traces/{seeded.rag_trace_id}" in page.links


def test_analysis_tables(seeded: Seeded):
    _, page = get_page(seeded.url, "/analysis?since=7d")
    fits = page.text("fits")
    assert re.search(r"gpt-4o 4 2\.000 ", fits), fits
    assert re.search(r"deepseek-chat 4 1\.000 ", fits), fits
    deps = page.text("dependencies-table")
    assert "db:qdrant" in deps and "openai/gpt-4o" in deps
    assert page.rows["correlations-table"]
    _, page = get_page(seeded.url, "/analysis?since=7d&target=error")
    assert page.link_to("/api/analysis/correlations") == {"since": "7d", "target": "error"}


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/calls?since=yesterday", "since"),
        ("/calls?until=soon", "until"),
        ("/calls?status=maybe", "status"),
        ("/calls?error_class=oops", "error_class"),
        ("/calls?limit=0", "limit"),
        ("/calls?limit=many", "limit"),
        ("/calls?cursor=not-a-cursor", "cursor"),
        ("/?group_by=colour", "group_by"),
        ("/?since=30d&interval=1s", "interval"),
        ("/?interval=fast", "interval"),
        ("/analysis?target=fast", "target"),
        ("/analysis?since=1h&until=2h", "since"),
    ],
)
def test_bad_parameters_get_a_400_page_naming_them(seeded: Seeded, path: str, param: str):
    r, page = get_page(seeded.url, path, status=400)
    assert page.text("bad-param") == param
    assert param in r.text


def test_missing_things_get_404_pages(seeded: Seeded):
    _, page = get_page(seeded.url, "/calls/does-not-exist", status=404)
    assert "does-not-exist" in page.html
    get_page(seeded.url, "/traces/" + "0" * 32, status=404)


def test_static_files_are_served_from_the_package(seeded: Seeded):
    r = httpx.get(seeded.url + "/static/vendor/chart.umd.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert r.text.startswith("/*!\n * Chart.js v4.")
    r = httpx.get(seeded.url + "/static/vendor/chart.js.LICENSE.md")
    assert r.status_code == 200 and "MIT License" in r.text
    assert httpx.get(seeded.url + "/static/gensight.js").status_code == 200
    assert httpx.get(seeded.url + "/static/../server.py").status_code == 404


def test_empty_state_tells_how_to_send_calls(empty_server: Server):
    for path in ("/", "/calls", "/analysis"):
        _, page = get_page(empty_server.url, path)
        text = page.text("empty-state")
        assert f'base_url="{empty_server.url}/openai/v1"' in text, path
        assert "import gensight gensight.init()" in text
        assert f"OTEL_EXPORTER_OTLP_ENDPOINT={empty_server.url}" in text


# -- a real browser ------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} not installed (apt-get install chromium; scripts/test does it)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (no downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium; scripts/test does it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield b
        b.close()


class Tab:
    """A page that records console errors, CSP violations and requests off this server."""

    def __init__(self, browser: Any, base: str, **context: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context)
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "request",
            lambda r: None if r.url.startswith(base) else self.foreign.append(r.url),
        )

    def goto(self, path: str) -> Any:
        r = self.page.goto(self.base + path, wait_until="load")
        self.page.wait_for_load_state("networkidle")
        return r

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.foreign == [], self.foreign
        assert self.page.evaluate("typeof window.__xss") == "undefined"


# Counts the canvas's drawn (non-transparent) pixels.
INK = """(c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;
}"""


@needs_chromium
def test_browser_dashboard_draws_every_chart(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url)
    try:
        tab.goto("/?since=6h")
        charts = tab.page.evaluate("Object.keys(window.gensightCharts || {}).sort()")
        assert charts == ["calls", "cost", "errors", "latency", "models", "tokens"]
        for name in charts:
            canvas = tab.page.locator(f"canvas[data-chart={name}]")
            assert canvas.evaluate(INK) > 500, f"chart {name} is blank"
        datasets = tab.page.evaluate(
            "window.gensightCharts.cost.data.datasets.map(d => d.label).sort()"
        )
        assert datasets == ["deepseek-chat", "gpt-4o", "gpt-4o-mini"]
        assert tab.page.locator("#tile-calls").inner_text() == "15"
        tab.shot("dashboard")
        if os.environ.get("GENSIGHT_DOCS_SCREENSHOT"):
            (ROOT / "docs").mkdir(exist_ok=True)
            tab.page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)

        # group by app: the calls chart stacks one dataset per app
        tab.page.select_option("select[name=group_by]", "app")
        tab.page.click("form.toolbar button[type=submit]")
        tab.page.wait_for_load_state("networkidle")
        assert "group_by=app" in tab.page.url
        labels = tab.page.evaluate("window.gensightCharts.calls.data.datasets.map(d => d.label)")
        assert labels == ["support-bot", "shop-api", "gateway-app", "xss-app", "error rate"]
        # the group drives every time chart, each app in one colour on all of them
        colours = tab.page.evaluate(
            """Object.fromEntries(['calls', 'cost', 'tokens', 'latency'].map(n => [n,
                Object.fromEntries(window.gensightCharts[n].data.datasets.map(
                    d => [d.label.replace(/ p95$/, ''), d.borderColor]))]))"""
        )
        apps = labels[:-1]
        assert len({colours["calls"][a] for a in apps}) == len(apps)  # distinct
        for name in ("cost", "tokens", "latency"):
            assert {a: colours[name][a] for a in apps} == {a: colours["calls"][a] for a in apps}
        tab.shot("dashboard-by-app")

        # auto-refresh is a plain link that adds a meta refresh
        tab.page.click("a.refresh")
        assert "refresh=on" in tab.page.url
        assert tab.page.locator("meta[http-equiv=refresh]").count() == 1
        tab.assert_clean()
    finally:
        tab.close()


@needs_chromium
def test_browser_calls_filter_changes_the_table(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url)
    try:
        tab.goto("/calls")
        rows = tab.page.locator("#calls-table tbody tr")
        assert rows.count() == 15
        tab.shot("calls")
        tab.page.fill("input[name=app]", "support-bot")
        tab.page.select_option("select[name=status]", "error")
        tab.page.click("#calls-filters button[type=submit]")
        tab.page.wait_for_load_state("networkidle")
        assert rows.count() == 3
        assert set(tab.page.locator("#calls-table tbody td:nth-child(2)").all_inner_texts()) == {
            "support-bot"
        }
        # the row links to the call
        tab.page.locator("#calls-table tbody tr").first.locator("a").first.click()
        tab.page.wait_for_load_state("networkidle")
        assert re.search(r"/calls/[0-9a-f]{16}$", tab.page.url)
        assert tab.page.locator("#status").inner_text() == "error"
        tab.assert_clean()
    finally:
        tab.close()


@needs_chromium
def test_browser_markup_in_prompts_never_runs(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url)
    try:
        tab.goto(f"/calls/{seeded.xss_id}")
        convo = tab.page.locator("#conversation")
        assert XSS_PROMPT in convo.inner_text()
        assert XSS_COMPLETION in convo.inner_text()
        assert convo.locator("script, img, b").count() == 0
        assert XSS_ERROR in tab.page.locator("#error").inner_text()
        assert XSS_ATTR in tab.page.locator("#attributes").inner_text()
        tab.shot("call-xss")
        for path in ("/calls", "/?group_by=user", "/analysis?target=error",
                     f"/calls?user={XSS_USER}"):  # fmt: skip
            tab.goto(path)
            assert tab.page.evaluate("typeof window.__xss") == "undefined", path
        tab.assert_clean()
    finally:
        tab.close()


@needs_chromium
def test_browser_call_detail_and_trace_waterfall(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url)
    try:
        tab.goto(f"/calls/{seeded.tool_answer_id}")
        assert "lookup_order" in tab.page.locator(".tool-call").first.inner_text()
        tab.shot("call")
        tab.page.click("#trace-link")
        tab.page.wait_for_load_state("networkidle")
        assert tab.page.url.endswith(f"/traces/{seeded.rag_trace_id}")
        rows = tab.page.locator("#waterfall tbody tr")
        names = rows.evaluate_all("rs => rs.map(r => [r.dataset.name, +r.dataset.depth])")
        assert names == [
            ["POST /ask", 0], ["rag-pipeline", 1], ["retrieve", 2], ["vector-search", 3],
            ["chat gpt-4o-mini", 2], ["execute_tool lookup_order", 2], ["chat gpt-4o-mini", 2],
        ]  # fmt: skip
        # bars: children start after and end before their parents, drawn left to right
        boxes = rows.locator("rect.span-bar").evaluate_all(
            "rs => rs.map(r => { const b = r.getBoundingClientRect(); return [b.left, b.right]; })"
        )
        root, pipeline, retrieve, search, chat1, tool, chat2 = boxes
        assert root[0] <= pipeline[0] <= retrieve[0] <= search[0] < chat1[0] < tool[0] < chat2[0]
        assert search[1] <= retrieve[1] <= pipeline[1] <= root[1]
        assert chat2[1] - chat2[0] > 0
        # indentation follows depth
        xs = rows.locator("td.name .indent").evaluate_all(
            "es => es.map(e => e.getBoundingClientRect().left)"
        )
        assert xs[0] < xs[1] < xs[2] < xs[3] and xs[4] == xs[2]
        assert tab.page.locator("#waterfall tr.llm").count() == 2
        tab.shot("trace")
        tab.page.locator("#waterfall tr.llm a.llm-link").first.click()
        tab.page.wait_for_load_state("networkidle")
        assert re.search(r"/calls/[0-9a-f]{16}$", tab.page.url)
        tab.assert_clean()
    finally:
        tab.close()


@needs_chromium
def test_browser_analysis_scatter_with_fits(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url)
    try:
        tab.goto("/analysis?since=7d")
        chart = tab.page.locator("canvas[data-chart=scatter]")
        assert chart.evaluate(INK) > 500
        labels = tab.page.evaluate(
            "window.gensightCharts.scatter.data.datasets.map(d => d.label).sort()"
        )
        assert labels == ["deepseek-chat", "deepseek-chat fit", "gpt-4o", "gpt-4o fit",
                          "gpt-4o-mini", "gpt-4o-mini fit"]  # fmt: skip
        fit = tab.page.evaluate(
            "window.gensightCharts.scatter.data.datasets.find(d => d.label === 'gpt-4o fit').data"
        )
        assert fit[0] == {"x": 0, "y": pytest.approx(0.5)}
        assert fit[1] == {"x": 400, "y": pytest.approx(8.5)}
        tab.shot("analysis")
        tab.page.click("text=failed")
        tab.page.wait_for_load_state("networkidle")
        assert "target=error" in tab.page.url
        tab.assert_clean()
    finally:
        tab.close()


@needs_chromium
def test_browser_pages_work_with_javascript_off(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url, java_script_enabled=False)
    try:
        tab.goto("/")
        assert tab.page.locator("#tile-calls").inner_text() == "15"
        assert tab.page.locator("#table-models tbody tr").count() == 3
        tab.shot("dashboard-nojs")
        tab.goto("/calls")
        tab.page.fill("input[name=q]", "refunds")
        tab.page.click("#calls-filters button[type=submit]")
        tab.page.wait_for_load_state("networkidle")
        assert tab.page.locator("#calls-table tbody tr").count() == 4
        tab.goto(f"/traces/{seeded.rag_trace_id}")
        assert tab.page.locator("#waterfall rect.span-bar").count() == 7
        tab.shot("trace-nojs")
    finally:
        tab.close()


@needs_chromium
def test_browser_empty_state(browser: Any, empty_server: Server):
    tab = Tab(browser, empty_server.url)
    try:
        tab.goto("/")
        text = tab.page.locator("#empty-state").inner_text()
        assert f'base_url="{empty_server.url}/openai/v1"' in text
        assert "import gensight\ngensight.init()" in text
        tab.shot("dashboard-empty")
        tab.assert_clean()
    finally:
        tab.close()


def demo_traffic(now: int, n: int, seed: int) -> Callable[[trace.Tracer], None]:
    """A day of one app's plausible traffic (several models, streams, a few failures)."""
    rng = random.Random(seed)
    # model, provider, share, ms per output token, TTFT ms
    models = [
        ("gpt-4o-mini", "openai", 0.45, 9, 300),
        ("gpt-4o", "openai", 0.2, 16, 450),
        ("deepseek-chat", "deepseek", 0.2, 22, 700),
        ("o3-mini", "openai", 0.15, 11, 1800),
    ]
    failures = [("openai.RateLimitError", "Error code: 429", 0.04),
                ("openai.InternalServerError", "Error code: 503", 0.012),
                ("openai.APITimeoutError", "Request timed out.", 0.006)]  # fmt: skip

    def build(tracer: trace.Tracer) -> None:
        for _ in range(n):
            hours_ago = rng.triangular(0, 24, 8)  # busier in the (UTC) working day
            model, provider, _, per_token, ttft = rng.choices(models, [m[2] for m in models])[0]
            out_tokens = int(rng.lognormvariate(5.2, 0.6))
            in_tokens = int(rng.lognormvariate(6.5, 0.8))
            duration = ttft + per_token * out_tokens * rng.uniform(0.85, 1.2)
            error = None
            roll = rng.random()
            for error_type, message, p in failures:
                if roll < p:
                    error = (error_type, message)
                    duration = 30_000 if "Timeout" in error_type else rng.uniform(80, 400)
                    out_tokens = 0
                    break
                roll -= p
            start = now - int(hours_ago * 3_600_000) * MS
            end = start + int(duration) * MS
            with _timed(tracer, f"chat {model}", start, end, SpanKind.CLIENT) as s:
                stream = rng.random() < 0.5 and not error
                _llm(s, model, in_tokens, out_tokens, provider=provider,
                     user=f"user-{rng.randrange(40)}", ttft_s=ttft / 1000 if stream else None,
                     error=error)  # fmt: skip

    return build


@needs_chromium
def test_docs_dashboard_screenshot(browser: Any, tmp_path: Path):
    """``GENSIGHT_DOCS_SCREENSHOT=1`` makes docs/dashboard.png for the README."""
    if not os.environ.get("GENSIGHT_DOCS_SCREENSHOT"):
        pytest.skip("set GENSIGHT_DOCS_SCREENSHOT=1 to refresh docs/dashboard.png")
    srv = Server(tmp_path / "docs")
    try:
        now = time.time_ns()
        apps = {"support-bot": 230, "shop-api": 150, "docs-search": 80, "digest": 40}
        for seed, (app, n) in enumerate(apps.items()):
            spans = record_spans(demo_traffic(now, n, seed), service=app)
            r = srv.client.post("/v1/traces", content=traces_protobuf(spans), headers=PB)
            assert r.status_code == 200
        srv.wait_calls(sum(apps.values()), timeout=30)
        tab = Tab(browser, srv.url)
        try:
            tab.goto("/?group_by=app")
            (ROOT / "docs").mkdir(exist_ok=True)
            tab.page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
            # the call log sorted by cost, and the dashboard on a phone
            tab.goto("/calls?sort=cost_usd&limit=20")
            tab.page.screenshot(path=str(ROOT / "docs" / "calls.png"), full_page=False)
            tab.page.set_viewport_size({"width": 390, "height": 844})
            tab.goto("/")
            tab.page.screenshot(path=str(ROOT / "docs" / "dashboard-phone.png"), full_page=False)
            tab.assert_clean()
        finally:
            tab.close()
    finally:
        srv.stop()
