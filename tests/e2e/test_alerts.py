"""Alert rules and budgets against a running `gensight serve`, driven by real gateway traffic.

A real `openai` client calls the gateway, which calls the fake upstream; rules are
evaluated by the server on a short ``--alert-interval``; a loopback receiver plays the
webhook. Each test checks what a user would: the notifications received (one per
transition), the states in `/api/alerts`, the 429 a client gets from a budget, and that
the provider was not called.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.server import STORES, Server, free_port, store_args
from tests.support.sinks import Receiver

INTERVAL = "0.3s"


def start(tmp_path: Path, store: str, upstream: Any, *args: str) -> Server:
    """A `gensight serve` on ``store`` whose gateway reaches the fake upstream."""
    data = tmp_path / "data"
    return Server(
        data,
        *store_args(store, data),
        "--upstream", f"openai={upstream.state.url}",
        "--retries", "0",
        "--alert-interval", INTERVAL,
        "--allow-private-webhooks",  # the webhook sinks are on loopback
        *args,
    )  # fmt: skip


def client(srv: Server, app: str, user: str | None = None) -> openai.OpenAI:
    headers = {"X-Gensight-App": app}
    if user:
        headers["X-Gensight-User"] = user
    return openai.OpenAI(
        base_url=f"{srv.url}/openai/v1", api_key="sk-test", max_retries=0, default_headers=headers
    )


def chat(c: openai.OpenAI, model: str = "gpt-4o-mini") -> Any:
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])


def add_rule(srv: Server, **rule: Any) -> dict[str, Any]:
    r = srv.client.post("/api/alert-rules", json=rule)
    assert r.status_code == 201, r.text
    return r.json()


def state(srv: Server, rule_id: str) -> dict[str, Any]:
    (s,) = [s for s in srv.client.get("/api/alerts").json() if s["rule_id"] == rule_id]
    return s


def wait_state(srv: Server, rule_id: str, want: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    s: dict[str, Any] = {}
    while time.monotonic() < deadline:
        s = state(srv, rule_id)
        if s["state"] == want:
            return s
        time.sleep(0.1)
    raise AssertionError(f"rule {rule_id} did not become {want}: {s}")


def warm_up(srv: Server, upstream: Any) -> None:
    """One call stored first, so the writer's one-off start-up cost is not in the timings."""
    chat(client(srv, "warm-up"))
    srv.wait_calls(1, timeout=30, app="warm-up")


@pytest.mark.parametrize("store", STORES)
def test_one_notification_per_transition(tmp_path: Path, upstream: Any, store: str) -> None:
    with Receiver() as hook:
        srv = start(tmp_path, store, upstream)
        try:
            warm_up(srv, upstream)
            cost = add_rule(
                srv,
                name="spend",
                measure="cost_usd",
                window="6s",
                filters={"app": "shop"},
                op=">",
                threshold=0,
                webhook=f"{hook.url}/cost",
            )
            errors = add_rule(
                srv,
                name="failing",
                measure="error_rate",
                window="6s",
                filters={"app": "flaky"},
                op=">=",
                threshold=0.5,
                webhook=f"{hook.url}/errors",
                format="slack",
            )
            deadline = time.monotonic() + 10
            while state(srv, cost["id"])["evaluated_at"] is None:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert state(srv, cost["id"])["state"] == "ok"
            assert state(srv, cost["id"])["value"] == 0

            shop, flaky = client(srv, "shop"), client(srv, "flaky")
            for _ in range(3):
                chat(shop)
            chat(flaky)
            for _ in range(2):
                with pytest.raises(openai.InternalServerError):
                    chat(flaky, model="fake-500")

            firing = wait_state(srv, cost["id"], "firing")
            assert firing["value"] > 0
            wait_state(srv, errors["id"], "firing")
            hook.wait(2)
            time.sleep(1.5)  # several more evaluations: none may notify "firing" again
            events = [
                (r["path"], b.get("state") or b["text"].split("]")[0])  # json, or slack's text
                for r, b in zip(hook.requests, hook.json_bodies(), strict=True)
            ]
            assert len(events) == len(set(events)), events
            wait_state(srv, cost["id"], "ok", timeout=20)
            wait_state(srv, errors["id"], "ok", timeout=20)
            hook.wait(4)
            time.sleep(1.0)  # and several more once resolved
        finally:
            srv.stop()

    by_path: dict[str, list[dict[str, Any]]] = {}
    for r, body in zip(hook.requests, hook.json_bodies(), strict=True):
        by_path.setdefault(r["path"], []).append(body)
    assert sorted(by_path) == ["/cost", "/errors"]

    fired, resolved = by_path["/cost"]
    assert fired["rule_id"] == cost["id"] and fired["name"] == "spend"
    assert (fired["event"], fired["state"], resolved["event"], resolved["state"]) == (
        "firing", "firing", "resolved", "ok",
    )  # fmt: skip
    assert fired["value"] > 0 and fired["threshold"] == 0 and fired["measure"] == "cost_usd"
    assert fired["filters"] == {"app": "shop"} and resolved["value"] == 0
    assert "[FIRING] spend" in fired["text"]

    slack_fired, slack_resolved = by_path["/errors"]
    assert list(slack_fired) == ["text"] and list(slack_resolved) == ["text"]
    # the value is whatever the evaluator saw when it crossed (0.5 after one failure of
    # two, 0.67 after two of three): assert the transition, not the instant
    m = re.match(r"\[FIRING\] failing: error_rate = ([0-9.]+)", slack_fired["text"])
    assert m and 0.5 <= float(m.group(1)) <= 1.0, slack_fired["text"]
    assert slack_resolved["text"].startswith("[RESOLVED] failing")


@pytest.mark.parametrize("store", STORES)
def test_budget_refuses_calls_without_calling_the_upstream(
    tmp_path: Path, upstream: Any, store: str
) -> None:
    srv = start(tmp_path, store, upstream)
    try:
        budget = add_rule(
            srv,
            name="team budget",
            measure="cost_usd",
            window="day",
            filters={"app": "team-a"},
            op=">",
            threshold=0.0,
            action="block",
        )
        team = client(srv, "team-a")
        chat(team)  # under budget: goes through, and costs something
        s = wait_state(srv, budget["id"], "firing")
        assert s["value"] > 0

        before = len(upstream.state.log)
        with pytest.raises(openai.RateLimitError) as refused:
            chat(team)
        assert len(upstream.state.log) == before  # the provider never saw it
        assert refused.value.status_code == 429
        assert refused.value.response.headers["x-should-retry"] == "false"
        error = refused.value.response.json()["error"]
        assert error["type"] == "budget_exceeded" and error["code"] == "budget_exceeded"
        assert error["param"] is None
        assert "team budget" in error["message"]

        chat(client(srv, "team-b"))  # other apps are not affected
        assert len(upstream.state.log) == before + 1

        calls = srv.wait_calls(2, app="team-a")
        blocked = calls[0]
        assert blocked["status"] == "error" and blocked["error_class"] == "rate_limit"
        assert blocked["http_status"] == 429 and blocked["attempts"] == 0
        assert blocked["request_model"] == "gpt-4o-mini" and blocked["cost_usd"] in (None, 0)
        detail = srv.client.get(f"/api/calls/{blocked['id']}").json()
        assert detail["attributes"]["gensight.budget_rule"] == budget["id"]

        # removing the budget lets the app through at once
        assert srv.client.delete(f"/api/alert-rules/{budget['id']}").status_code == 204
        chat(team)
        assert len(upstream.state.log) == before + 2
    finally:
        srv.stop()


def test_user_budget_and_retried_delivery(tmp_path: Path, upstream: Any) -> None:
    """A per-user budget; its webhook fails twice (503) and is delivered on the third try."""
    with Receiver(fail_first=2) as hook:
        srv = start(tmp_path, "duckdb", upstream)
        try:
            rule = add_rule(
                srv,
                name="intern",
                measure="cost_usd",
                window="1h",
                filters={"user": "intern"},
                op=">=",
                threshold=0.000001,
                action="block",
                webhook=hook.url,
            )
            chat(client(srv, "any-app", user="intern"))
            wait_state(srv, rule["id"], "firing")
            with pytest.raises(openai.RateLimitError):
                chat(client(srv, "other-app", user="intern"))
            chat(client(srv, "other-app", user="someone-else"))
            hook.wait(3, timeout=20)
            deadline = time.monotonic() + 10
            while state(srv, rule["id"])["delivery"]["status"] != "delivered":
                assert time.monotonic() < deadline, state(srv, rule["id"])
                time.sleep(0.1)
            delivery = state(srv, rule["id"])["delivery"]
            assert delivery["attempts"] == 3 and delivery["event"] == "firing"
            (body,) = hook.json_bodies()
            assert body["action"] == "block" and "refuses calls of user intern" in body["text"]
            health = srv.client.get("/api/health").json()["alerts"]
            assert health["notifications_sent"] == 1 and health["notification_retries"] == 2
        finally:
            srv.stop()


def test_dead_webhook_is_visible_and_never_blocks_ingest(tmp_path: Path, upstream: Any) -> None:
    srv = start(tmp_path, "duckdb", upstream)
    try:
        dead = f"http://127.0.0.1:{free_port()}/gone"  # nothing listens there
        rule = add_rule(
            srv, name="any call", measure="calls", window="1h", op=">", threshold=0, webhook=dead
        )
        started = time.monotonic()
        for _ in range(3):
            chat(client(srv, "busy"))
        srv.wait_calls(3, app="busy")
        assert time.monotonic() - started < 10
        wait_state(srv, rule["id"], "firing")
        deadline = time.monotonic() + 10
        while (state(srv, rule["id"])["delivery"] or {}).get("status") != "retrying":
            assert time.monotonic() < deadline, state(srv, rule["id"])
            time.sleep(0.1)
        assert state(srv, rule["id"])["delivery"]["last_error"]
        for _ in range(2):
            chat(client(srv, "busy"))
        srv.wait_calls(5, app="busy")
    finally:
        srv.stop()


def test_rules_from_a_toml_file_survive_restarts_once(tmp_path: Path, upstream: Any) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        """
[[rule]]
name = "Daily spend"
measure = "cost_usd"
window = "1d"
op = ">"
threshold = 25
format = "slack"
webhook = "http://127.0.0.1:9/hook"

[rule.filters]
app = "checkout"

[[rule]]
id = "slow-chat"
name = "Slow chat"
measure = "latency_p95_ms"
threshold = 8000
"""
    )
    for _ in range(2):  # the second start must replace, not duplicate
        srv = start(tmp_path, "duckdb", upstream, "--alert-rules", str(rules))
        try:
            listed = srv.client.get("/api/alert-rules").json()
        finally:
            srv.stop()
        assert [(r["id"], r["source"]) for r in listed] == [
            ("file-daily-spend", "file"),
            ("slow-chat", "file"),
        ]
        daily = listed[0]
        assert daily["filters"] == {"app": "checkout"} and daily["threshold"] == 25
        assert daily["window"] == "1d" and daily["format"] == "slack"
        assert listed[1]["window"] == "5m" and listed[1]["op"] == ">"

    rules.write_text('[[rule]]\nname = "x"\nmeasure = "cost_usd"\nthreshold = "lots"\n')
    with pytest.raises(RuntimeError, match="threshold"):
        start(tmp_path, "duckdb", upstream, "--alert-rules", str(rules))


BAD_RULES = [
    ({"measure": "cost_usd", "threshold": 1}, "name"),
    ({"name": "x", "measure": "cost", "threshold": 1}, "measure"),
    ({"name": "x", "measure": "calls"}, "threshold"),
    ({"name": "x", "measure": "calls", "threshold": "10"}, "threshold"),
    ({"name": "x", "measure": "calls", "threshold": True}, "threshold"),
    ({"name": "x", "measure": "calls", "threshold": -1}, "threshold"),
    ({"name": "x", "measure": "error_rate", "threshold": 5}, "threshold"),
    ({"name": "x", "measure": "calls", "threshold": 1, "window": "5 minutes"}, "window"),
    ({"name": "x", "measure": "calls", "threshold": 1, "window": "0s"}, "window"),
    ({"name": "x", "measure": "calls", "threshold": 1, "op": "=="}, "op"),
    ({"name": "x", "measure": "calls", "threshold": 1, "action": "page"}, "action"),
    ({"name": "x", "measure": "calls", "threshold": 1, "format": "xml"}, "format"),
    ({"name": "x", "measure": "calls", "threshold": 1, "webhook": "ftp://x"}, "webhook"),
    ({"name": "x", "measure": "calls", "threshold": 1, "filters": ["app"]}, "filters"),
    ({"name": "x", "measure": "calls", "threshold": 1, "filters": {"team": "a"}}, "filters.team"),
    ({"name": "x", "measure": "calls", "threshold": 1, "filters": {"app": 3}}, "filters.app"),
    (
        {"name": "x", "measure": "calls", "threshold": 1, "filters": {"error_class": "oops"}},
        "filters.error_class",
    ),
    ({"name": "x", "measure": "calls", "threshold": 1, "treshold": 2}, "treshold"),
    ({"name": "x", "measure": "calls", "threshold": 1, "id": "no spaces"}, "id"),
    # budgets: cost_usd only, above a threshold, by app and/or user only
    ({"name": "x", "measure": "calls", "threshold": 1, "action": "block"}, "action"),
    ({"name": "x", "measure": "cost_usd", "threshold": 1, "action": "block"}, "filters"),
    (
        {"name": "x", "measure": "cost_usd", "threshold": 1, "action": "block", "op": "<",
         "filters": {"app": "a"}},
        "op",
    ),
    (
        {"name": "x", "measure": "cost_usd", "threshold": 1, "action": "block",
         "filters": {"app": "a", "model": "gpt-4o"}},
        "filters.model",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD_RULES)
def test_bad_rules_get_400_naming_the_field(server: Server, body: Any, field: str) -> None:
    r = server.client.post("/api/alert-rules", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["param"] == field
    assert repr(field) in r.json()["detail"]


def test_not_json_gets_400(server: Server) -> None:
    r = server.client.post("/api/alert-rules", content=b"{nope", headers={"content-type": "x"})
    assert r.status_code == 400 and r.json()["param"] == "body"


def test_rule_crud(server: Server) -> None:
    name = f"rule-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "measure": "ttft_p95_ms", "window": "15m", "threshold": 1500,
            "filters": {"model": "gpt-4o", "provider": "openai"}}  # fmt: skip
    r = server.client.post("/api/alert-rules", json=body)
    assert r.status_code == 201
    rule = r.json()
    assert rule["id"] and rule["op"] == ">" and rule["action"] == "notify"
    assert rule["webhook"] is None and rule["format"] == "json" and rule["source"] == "api"
    assert server.client.get(f"/api/alert-rules/{rule['id']}").json() == rule
    assert rule in server.client.get("/api/alert-rules").json()
    assert any(s["rule_id"] == rule["id"] for s in server.client.get("/api/alerts").json())

    # posting with an id replaces that rule
    again = server.client.post("/api/alert-rules", json={**body, "id": rule["id"], "threshold": 9})
    assert again.status_code == 201 and again.json()["id"] == rule["id"]
    listed = [r for r in server.client.get("/api/alert-rules").json() if r["id"] == rule["id"]]
    assert [r["threshold"] for r in listed] == [9]

    assert server.client.delete(f"/api/alert-rules/{rule['id']}").status_code == 204
    assert server.client.get(f"/api/alert-rules/{rule['id']}").status_code == 404
    assert server.client.delete(f"/api/alert-rules/{rule['id']}").status_code == 404
    assert all(s["rule_id"] != rule["id"] for s in server.client.get("/api/alerts").json())


def test_alerts_page(server: Server) -> None:
    page = server.client.get("/alerts")
    assert page.status_code == 200 and 'href="/api/alerts"' in page.text
    form = {"name": "page rule", "measure": "errors", "window": "1h", "op": ">=",
            "threshold": "oops", "filter_app": "web", "format": "json"}  # fmt: skip
    bad = server.client.post("/alerts", data=form)
    assert bad.status_code == 400 and 'id="bad-param">threshold<' in bad.text
    assert 'value="web"' in bad.text  # the form keeps what was typed
    ok = server.client.post("/alerts", data={**form, "threshold": "3"})
    assert ok.status_code == 303
    rule_id = ok.headers["location"].split("#rule-")[1]
    rule = server.client.get(f"/api/alert-rules/{rule_id}").json()
    assert rule["filters"] == {"app": "web"} and rule["threshold"] == 3
    assert f'id="rule-{rule_id}"' in server.client.get("/alerts").text
    foreign = server.client.post(
        f"/alerts/{rule_id}/delete", headers={"origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert server.client.post(f"/alerts/{rule_id}/delete").status_code == 303
    assert server.client.get(f"/api/alert-rules/{rule_id}").status_code == 404
