"""The /analysis savings sections (#19) in chromium against a real ``gensight serve``:
what-if prices (and the form that reprices as another model, an unpriced one named in a
note), cache opportunities with the planted repeats, and the prompt templates mined from
imported calls, linked to their calls. The dashboard shows the forecast tiles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import Server

CHROMIUM = "/usr/bin/chromium"
NOW = datetime.now(UTC).replace(microsecond=0)


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


def _records() -> list[dict[str, Any]]:
    out = []
    cities = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Cairo"]
    for i in range(12):
        if i < 4:  # the same request four times: three a response cache would answer
            text = "What is the refund policy for damaged kettles?"
        else:
            text = f"Summarise the delivery delays reported from {cities[i % 6]} in week {i}"
        out.append({
            "id": f"sv-{i:02d}", "trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}",
            "ts": (NOW - timedelta(minutes=30 - i)).isoformat(), "duration_ms": 800.0 + i,
            "source": "gateway", "app": "support", "provider": "openai", "operation": "chat",
            "request_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06",
            "input_tokens": 1200, "output_tokens": 300, "status": "ok",
            "input_messages": [{"role": "user", "content": text}],
            "output_messages": [{"role": "assistant", "content": "ok"}],
        })  # fmt: skip
    return out


def test_analysis_savings_sections_in_the_browser(browser: Any, fresh_server: Server):
    server = fresh_server
    body = "\n".join(json.dumps(r) for r in _records()) + "\n"
    r = server.client.post(
        "/api/import", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 202, r.text
    server.wait_calls(12, since="2h")
    api = server.client.get("/api/analysis/what-if", params={"since": "2h", "as": "gpt-4o-mini"})
    mini = api.json()["totals"]["targets"][0]["cost_usd"]

    page = browser.new_page()
    try:
        page.goto(server.url + "/analysis?since=2h")
        summary = page.locator("#what-if-summary").inner_text()
        assert "12 calls with usage" in summary and "on gpt-4o-mini" in summary
        assert page.locator("#what-if-table tbody tr").count() == 1  # one model: gpt-4o
        # reprice as one model through the form
        page.fill("input[name=as]", "gpt-4o-mini")
        with page.expect_navigation():
            page.locator("input[name=as]").press("Enter")
        headers = page.locator("#what-if-table thead th").all_inner_texts()
        assert headers[-1].strip().lower() == "on gpt-4o-mini"  # CSS upper-cases headers
        assert f"${mini:.2f}" in page.locator("#what-if-summary").inner_text()
        # an unpriced target: a note in the section, never $0
        page.goto(server.url + "/analysis?since=2h&as=no-such-model-xyz")
        note = page.locator("#what-if-error").inner_text()
        assert "no-such-model-xyz" in note and "no price" in note
        assert page.locator("#what-if-table").count() == 0

        page.goto(server.url + "/analysis?since=2h")
        assert "3 repeated requests" in page.locator("#cache-summary").inner_text()
        row = page.locator("#response-cache-table tbody tr").first.locator("td").all_inner_texts()
        assert row[:4] == ["support", "gpt-4o", "4", "3"]

        templates = page.locator("#templates-table tbody tr")
        assert templates.count() == 2
        patterns = page.locator("#templates-table td.pattern").all_inner_texts()
        assert any("<*>" in p and "Summarise the delivery delays" in p for p in patterns)
        first = templates.first.locator("td").all_inner_texts()
        with page.expect_navigation():
            templates.first.locator("td").nth(2).locator("a").click()
        assert "template_id=" in page.url
        assert page.locator("table.calls tbody tr").count() == int(first[2])
        # the template's page: its pattern, measures and latest calls
        page.goto(server.url + "/analysis?since=2h")
        with page.expect_navigation():
            page.locator("#templates-table tbody tr").first.locator("td").first.locator("a").click()
        assert "/templates/" in page.url
        assert page.locator("#template-pattern").inner_text() == first[1]
        assert page.locator("#template-calls").inner_text() == first[2]
        assert page.locator("#template-samples tbody tr").count() == int(first[2])

        page.goto(server.url + "/?since=2h")
        assert page.locator("#tile-mtd").inner_text().startswith("$")
        assert page.locator("#tile-forecast").is_visible()
    finally:
        page.close()
