"""Every page fits a desktop and a phone, keeps its tables readable at 1280 px, and has
no serious accessibility violation (axe-core, vendored under tests/e2e/vendor, run in
Debian's chromium). The server and its data are test_ui's (its fixtures, imported)."""

# ruff: noqa: F811 (pytest's fixtures arrive as the test functions' arguments)

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_ui import (  # noqa: F401 (fixtures)
    Seeded,
    Tab,
    browser,
    needs_chromium,
    seeded,
)

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


def _pages(seeded: Seeded) -> list[str]:
    return [
        "/?since=6h",
        "/?since=6h&group_by=app",
        "/calls",
        f"/calls/{seeded.tool_answer_id}",
        f"/calls/{seeded.xss_id}",
        f"/traces/{seeded.rag_trace_id}",
        "/analysis?since=6h",
        "/alerts",
        "/sessions",
        "/users",
        "/users/alice",
    ]


def _overflow(tab: Tab) -> dict[str, Any]:
    return tab.page.evaluate(
        """() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
            wide: [...document.querySelectorAll('body *')].filter(e => {
                const r = e.getBoundingClientRect();
                return r.right > window.innerWidth + 1 && !e.closest('.table-scroll, table');
            }).slice(0, 5).map(e => e.tagName + '.' + e.className)})"""
    )


@needs_chromium
@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_no_page_scrolls_sideways(browser: Any, seeded: Seeded, width: int, height: int):
    tab = Tab(browser, seeded.url)
    try:
        tab.page.set_viewport_size({"width": width, "height": height})
        for path in [*_pages(seeded), f"/traces/{seeded.rag_trace_id}?span=" + _db_span(seeded)]:
            tab.goto(path)
            o = _overflow(tab)
            assert o["scroll"] <= o["inner"], (path, o)
            # one title and a way past the header on every page
            assert tab.page.locator("h1").count() == 1, path
            assert tab.page.locator("a.skip-link[href='#main']").count() == 1, path
        tab.goto("/calls")
        tab.shot(f"calls-{width}")
        tab.goto("/?since=6h")
        tab.shot(f"dashboard-{width}")
        tab.assert_clean()
    finally:
        tab.close()


def _db_span(seeded: Seeded) -> str:
    import httpx

    trace = httpx.get(f"{seeded.url}/api/traces/{seeded.rag_trace_id}").json()
    return next(s["span_id"] for s in trace["spans"] if s["name"] == "vector-search")


@needs_chromium
def test_every_table_column_is_in_view_at_1280(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url)
    try:
        tab.page.set_viewport_size({"width": 1280, "height": 900})
        for path in ["/?since=6h", "/?since=6h&group_by=app", "/calls", "/sessions", "/users"]:
            tab.goto(path)
            cut = tab.page.evaluate(
                """() => [...document.querySelectorAll('table')].map(t => {
                    const cells = t.querySelectorAll('tr > :last-child');
                    const right = Math.max(...[...cells].map(c => c.getBoundingClientRect().right));
                    return {id: t.id, right: right, inner: window.innerWidth};
                }).filter(t => t.right > t.inner)"""
            )
            assert cut == [], (path, cut)
        # the cost column of the group tables is there, with a value
        tab.goto("/?since=6h")
        cost = tab.page.locator("#table-models tbody tr").first.locator("td").nth(6)
        assert cost.is_visible() and cost.inner_text().startswith("$")
    finally:
        tab.close()


@needs_chromium
def test_axe_finds_no_serious_violations(browser: Any, seeded: Seeded):
    # axe is injected as an inline script, which the pages' CSP forbids: this tab only
    tab = Tab(browser, seeded.url, bypass_csp=True)
    source = AXE.read_text()
    found: dict[str, list[str]] = {}
    try:
        for path in _pages(seeded):
            tab.goto(path)
            tab.page.add_script_tag(content=source)
            result = tab.page.evaluate(
                """async () => (await axe.run(document, {resultTypes: ['violations']}))
                    .violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => v.id + ': '
                         + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))"""
            )
            if result:
                found[path] = result
        assert found == {}
    finally:
        tab.close()


@needs_chromium
def test_focus_ring_is_visible_on_the_header_links(browser: Any, seeded: Seeded):
    tab = Tab(browser, seeded.url)
    try:
        tab.goto("/calls")
        tab.page.keyboard.press("Tab")  # the skip link comes first and shows itself
        skip = tab.page.locator("a.skip-link")
        assert skip.evaluate("e => e === document.activeElement")
        box = skip.bounding_box()
        assert box and box["y"] >= 0
        tab.page.keyboard.press("Enter")
        assert tab.page.evaluate("document.activeElement.id") == "main"
    finally:
        tab.close()
