"""Scores (#20) against a real ``gensight serve``: from the SDK in an app process (both
stores), and from the call page's form in chromium (JavaScript off, as it must work
without it), then found again by the score filter."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gensight.demo.upstream import create_app, serve
from tests.e2e.test_sdk_init import run_app
from tests.support.server import Server

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve(create_app()) as base_url:
        yield base_url


def _wait(fetch: Any, ok: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = fetch()
    return value


def test_sdk_scores_join_their_call(server: Server, upstream: str):
    app = f"scored-{uuid.uuid4().hex[:8]}"
    proc = run_app(
        f"""
        assert gensight.init(endpoint={server.url!r}, app={app!r})
        with gensight.span("turn"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            first = gensight.score(None, "helpful", value=0.25, comment="vague")
        call_id = gensight.last_call_id()
        second = gensight.score(call_id, "thumbs", label="down", source="user", author="u1")
        assert gensight.score(call_id, "helpful") is None  # neither value nor label
        gensight.shutdown()
        print(json.dumps({{"call_id": call_id, "ids": [first, second]}}))
        """,
        upstream,
    )
    sent = json.loads(proc.stdout.strip().splitlines()[-1])
    (call,) = server.wait_calls(1, app=app)
    assert call["id"] == sent["call_id"]

    def scores() -> list[dict[str, Any]]:
        return server.client.get(f"/api/calls/{call['id']}").json()["scores"]

    got = _wait(scores, lambda s: len(s) == 2)
    assert {s["id"] for s in got} == set(sent["ids"])
    by_name = {s["name"]: s for s in got}
    assert (by_name["helpful"]["value"], by_name["helpful"]["comment"]) == (0.25, "vague")
    assert by_name["helpful"]["source"] == "api" and by_name["helpful"]["app"] == app
    assert (by_name["thumbs"]["label"], by_name["thumbs"]["author"]) == ("down", "u1")
    assert by_name["thumbs"]["source"] == "user"
    items = server.client.get("/api/calls", params={"app": app, "score": "helpful:<0.5"})
    assert [c["id"] for c in items.json()["items"]] == [call["id"]]
    items = server.client.get("/api/calls", params={"app": app, "score": "helpful:>=0.5"})
    assert items.json()["items"] == []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium; scripts/test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield b
        b.close()


def test_annotating_a_call_in_the_browser(browser: Any, fresh_server: Server, upstream: str):
    server = fresh_server
    # one call through the gateway-less path: imported, as `gensight export` wrote it
    record = {
        "id": "c-annotate-1",
        "trace_id": "ab" * 16,
        "span_id": "cd" * 8,
        "ts": "2026-12-01T10:00:00+00:00",
        "duration_ms": 420.0,
        "source": "gateway",
        "app": "helpdesk",
        "request_model": "gpt-4o-mini",
        "output_messages": [{"role": "assistant", "content": "Restart it."}],
    }
    r = server.client.post(
        "/api/import",
        content=json.dumps(record) + "\n",
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 202, r.text
    server.wait_calls(1, since="30d")

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(server.url + "/calls/c-annotate-1")
        assert page.locator("#no-scores").is_visible()
        page.fill("#score-form input[name=name]", "helpful")
        page.fill("#score-form input[name=value]", "0.2")
        page.fill("#score-form input[name=comment]", "did not <b>answer</b>")
        page.select_option("#score-form select[name=source]", "human")
        page.fill("#score-form input[name=author]", "reviewer")
        with page.expect_navigation():
            page.click("#score-form button[type=submit]")
        assert page.url.startswith(server.url + "/calls/c-annotate-1")
        row = page.locator("#score-table tr.score")
        assert row.count() == 1
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        assert cells[:6] == ["helpful", "0.2", "–", "did not <b>answer</b>", "human", "reviewer"]
        # a bad value is a 400 page naming it, and nothing is stored
        page.fill("#score-form input[name=name]", "helpful")
        page.fill("#score-form input[name=value]", "lots")
        with page.expect_navigation():
            page.click("#score-form button[type=submit]")
        assert "value" in page.content()
    finally:
        context.close()
    scores = server.client.get("/api/calls/c-annotate-1").json()["scores"]
    assert [(s["name"], s["value"], s["source"]) for s in scores] == [("helpful", 0.2, "human")]
    found = server.client.get("/api/calls", params={"since": "30d", "score": "helpful:<0.5"})
    assert [c["id"] for c in found.json()["items"]] == ["c-annotate-1"]
    # another site's form is refused
    evil = httpx.post(
        server.url + "/calls/c-annotate-1/scores",
        data={"name": "helpful", "value": "1"},
        headers={"origin": "http://evil.example"},
    )
    assert evil.status_code == 403


def test_export_and_import_keep_the_scores(tmp_path: Path):
    from tests.e2e.test_demo import _run

    source = Server(tmp_path / "source")
    targets: list[Server] = []
    try:
        call = {
            "id": "c-export-1",
            "trace_id": "ef" * 16,
            "span_id": "01" * 8,
            "ts": "2026-12-01T10:00:00+00:00",
            "duration_ms": 10.0,
            "source": "otlp",
            "session": "conv-9",
        }
        r = source.client.post("/api/import", content=json.dumps(call) + "\n")
        assert r.status_code == 202, r.text
        sent = [
            {"call_id": "c-export-1", "name": "helpful", "value": 0.75, "source": "human"},
            {"trace_id": "ef" * 16, "name": "resolved", "label": "yes"},
            {"session": "conv-9", "name": "csat", "value": 4, "source": "user"},
        ]
        ids = source.client.post("/api/scores", json=sent).json()["ids"]
        want = _wait(
            lambda: source.client.get("/api/calls/c-export-1").json().get("scores", []),
            lambda s: len(s) == 1,
        )
        assert [s["id"] for s in want] == ids[:1]
        for fmt in ("jsonl", "parquet"):
            out = tmp_path / f"calls.{fmt}"
            proc = _run("export", "--format", fmt, "-o", str(out), "--url", source.url)
            assert proc.returncode == 0, proc.stderr
            target = Server(tmp_path / f"target-{fmt}")
            targets.append(target)
            proc = _run("import", str(out), "--url", target.url)
            assert proc.returncode == 0, proc.stderr
            assert "1 calls and 3 scores" in proc.stderr
            got = _wait(
                lambda t=target: t.client.get("/api/scores").json()["items"],
                lambda s: len(s) == 3,
            )
            assert sorted(s["id"] for s in got) == sorted(ids), fmt
            found = target.client.get("/api/calls", params={"since": "30d", "score": "csat:>3"})
            assert [c["id"] for c in found.json()["items"]] == ["c-export-1"], fmt
    finally:
        source.stop()
        for t in targets:
            t.stop()


ADMIN, REVIEWER, VIEWER = ("admin-key-" + "a" * 16, "reviewer-key-" + "r" * 16,
                           "viewer-key-" + "v" * 16)  # fmt: skip


def _import_call(server: Server, call_id: str, headers: dict[str, str]) -> None:
    record = {
        "id": call_id,
        "trace_id": "ef" * 16,
        "span_id": "12" * 8,
        "ts": "2026-12-01T10:00:00+00:00",
        "duration_ms": 300.0,
        "source": "gateway",
        "app": "helpdesk",
        "request_model": "gpt-4o-mini",
    }
    r = server.client.post(
        "/api/import",
        content=json.dumps(record) + "\n",
        headers={"content-type": "application/x-ndjson", **headers},
    )
    assert r.status_code == 202, r.text


def _evil_site(target: str) -> Any:
    """Another origin on loopback (same site for cookies) whose page posts a score."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from gensight.demo import ServerThread

    page = f"""<!doctype html><form id="f" method="post" action="{target}">
      <input name="name" value="helpful"><input name="value" value="1"></form>
      <script>document.getElementById("f").submit()</script>"""

    async def home(request: Any) -> HTMLResponse:
        return HTMLResponse(page)

    return ServerThread(Starlette(routes=[Route("/", home)]))


def test_annotating_signed_in_with_javascript_and_refused_elsewhere(
    browser: Any, tmp_path: Path
) -> None:
    admin = {"X-Gensight-Key": ADMIN}
    server = Server(
        tmp_path / "data", "--api-keys", f"read+annotate:{REVIEWER},read:{VIEWER},admin:{ADMIN}"
    )
    try:
        _import_call(server, "c-review-1", admin)
        _wait(
            lambda: server.client.get("/api/calls/c-review-1", headers=admin).status_code,
            lambda s: s == 200,
        )

        def stored() -> list[dict[str, Any]]:
            r = server.client.get("/api/calls/c-review-1", headers=admin)
            return r.json()["scores"]

        reviewer = browser.new_context()  # JavaScript on
        page = reviewer.new_page()
        page.goto(server.url + "/login?next=/calls/c-review-1")
        page.fill("input[name=key]", REVIEWER)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url.endswith("/calls/c-review-1")
        page.fill("#score-form input[name=name]", "helpful")
        page.fill("#score-form input[name=value]", "0.9")
        page.fill("#score-form input[name=label]", "good")
        with page.expect_navigation():
            page.click("#score-form button[type=submit]")
        cells = [c.strip() for c in page.locator("#score-table tr.score td").all_inner_texts()]
        assert cells[:5] == ["helpful", "0.9", "good", "", "human"]
        # the dashboard draws the score's chart (Chart.js, in chromium)
        page.goto(server.url + "/?since=30d")
        assert "0.90" in page.locator("#tile-score").inner_text()
        page.wait_for_function("window.gensightCharts && window.gensightCharts.quality")
        drawn = page.evaluate("window.gensightCharts.quality.data.datasets[0].data")
        assert [v for v in drawn if v is not None] == [0.9]

        # another origin's page, in the same signed-in browser: refused, nothing stored
        with _evil_site(server.url + "/calls/c-review-1/scores") as evil:
            attack = reviewer.new_page()
            with attack.expect_response(lambda r: r.url.endswith("/scores")) as answer:
                attack.goto(evil.url + "/")
            assert answer.value.status == 403
            assert "is not this server" in answer.value.text()
        reviewer.close()
        assert [s["value"] for s in stored()] == [0.9]

        # a key that can only read sees the page but cannot annotate
        viewer = browser.new_context(java_script_enabled=False)
        page = viewer.new_page()
        page.goto(server.url + "/login?next=/calls/c-review-1")
        page.fill("input[name=key]", VIEWER)
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.fill("#score-form input[name=name]", "helpful")
        page.fill("#score-form input[name=value]", "0")
        with page.expect_response(lambda r: r.url.endswith("/scores")) as answer:
            page.click("#score-form button[type=submit]")
        assert answer.value.status == 403
        viewer.close()
        assert [s["value"] for s in stored()] == [0.9]
    finally:
        server.stop()
