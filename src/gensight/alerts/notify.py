"""Webhook notifications of alert transitions: bodies, and their delivery with retries.

Deliveries run on their own thread, are retried with exponential backoff, and their
failures show in ``/api/alerts`` and ``/api/health``; they never touch the ingest path.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from gensight.alerts.rules import Rule, fmt_value
from gensight.alerts.webhooks import WebhookError, pinned, resolve
from gensight.pipeline.worker import Worker

log = logging.getLogger("gensight.alerts.notify")


@dataclass
class Delivery:
    """How the last notification of a rule went."""

    event: str  # "firing" | "resolved"
    status: str = "pending"  # pending | retrying | delivered | failed | dropped
    attempts: int = 0
    last_error: str | None = None
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "at": self.at,
        }


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    rule_id: str = field(compare=False)
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    delivery: Delivery = field(compare=False)


class Notifier(Worker):
    """Delivers webhook bodies on its own thread; retries with exponential backoff.

    A failed attempt (connection error, timeout, 408, 429, 5xx) is tried again after
    ``backoff``, doubling up to 60 s, ``attempts`` times in all; other answers fail
    at once. Jobs wait in a time-ordered heap, so one slow webhook delays no other.
    """

    def __init__(
        self,
        *,
        attempts: int = 6,
        backoff: float = 1.0,
        timeout: float = 5.0,
        max_pending: int = 1000,
        allow_private: bool = False,
    ) -> None:
        self.allow_private = allow_private
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.max_pending = max_pending
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        super().__init__()
        self.deliveries: dict[str, Delivery] = {}
        self.sent = 0
        self.failed = 0
        self.retries = 0
        self.dropped = 0

    thread_name = "gensight-notify"

    def send(self, rule_id: str, url: str, body: bytes, event: str) -> None:
        """Queue one notification (never blocks; counted as dropped when the queue is full)."""
        delivery = Delivery(event)
        self.deliveries[rule_id] = delivery
        with self._cond:
            if len(self._heap) >= self.max_pending:
                delivery.status = "dropped"
                self.dropped += 1
                return
            heapq.heappush(
                self._heap, _Job(time.monotonic(), next(self._seq), rule_id, url, body, delivery)
            )
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        # no proxies from the environment: the checked address is the one connected to
        with httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as client:
            while True:
                with self._cond:
                    while not self._stopping and (
                        not self._heap or self._heap[0].due > time.monotonic()
                    ):
                        wait = self._heap[0].due - time.monotonic() if self._heap else None
                        self._cond.wait(wait)
                    if self._stopping:
                        return
                    job = heapq.heappop(self._heap)
                self._attempt(client, job)

    def _attempt(self, client: httpx.Client, job: _Job) -> None:
        d = job.delivery
        d.attempts += 1
        error: str | None = None
        retry = False
        try:
            address = resolve(job.url, self.allow_private)
        except WebhookError as e:  # refused before sending anything: not retried
            d.status, d.last_error = "failed", f"refused: webhook {e}"
            d.at = datetime.now(UTC).isoformat()
            self.failed += 1
            log.warning("alert webhook for rule %s refused: %s", job.rule_id, e)
            return
        url, host = pinned(job.url, address)
        try:
            resp = client.post(
                url,
                content=job.body,
                headers={
                    "host": host,
                    "content-type": "application/json",
                    "user-agent": "gensight-alerts",
                },
                extensions={"sni_hostname": urlsplit(job.url).hostname or ""},
            )
            if resp.status_code < 300:
                d.status, d.last_error = "delivered", None
                d.at = datetime.now(UTC).isoformat()
                self.sent += 1
                return
            # the status and its reason only: the target's reply is not ours to show
            error = f"HTTP {resp.status_code} {resp.reason_phrase}".strip()
            if 300 <= resp.status_code < 400:
                error += " (redirects are not followed)"
            retry = resp.status_code in (408, 429) or resp.status_code >= 500
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {str(e)[:200]}"
            retry = True
        d.last_error = error
        d.at = datetime.now(UTC).isoformat()
        if retry and d.attempts < self.attempts:
            d.status = "retrying"
            self.retries += 1
            delay = min(self.backoff * 2 ** (d.attempts - 1), 60.0)
            job.due = time.monotonic() + delay
            with self._cond:
                heapq.heappush(self._heap, job)
            return
        d.status = "failed"
        self.failed += 1
        log.warning(
            "alert webhook for rule %s failed after %d attempts: %s", job.rule_id, d.attempts, error
        )


def notification_body(rule: Rule, event: dict[str, Any]) -> bytes:
    """The webhook body of one transition, in the rule's format."""
    firing = event["state"] == "firing"
    head = "[FIRING]" if firing else "[RESOLVED]"
    baseline = event["detail"].get("baseline")
    if baseline is not None:  # an anomaly rule (#19): the window, its usual and the spread
        text = f"{head} {rule.name}: {anomaly_text(rule.measure, baseline)}"
    else:
        text = (
            f"{head} {rule.name}: {rule.measure} = {fmt_value(event['value'])}"
            f" ({'rule' if firing else 'was'}: {rule.describe()})"
        )
    if rule.action == "block":
        who = ", ".join(f"{k} {v}" for k, v in rule.filters.items())
        text += (
            f". The gateway refuses calls of {who}."
            if firing
            else f". Calls of {who} are allowed again."
        )
    if rule.format == "slack":
        return orjson.dumps({"text": text})
    return orjson.dumps(
        {
            "rule_id": rule.id,
            "name": rule.name,
            "event": "firing" if firing else "resolved",
            "state": event["state"],
            "previous": event["detail"].get("previous"),
            "value": event["value"],
            "measure": rule.measure,
            "op": rule.op,
            "threshold": rule.threshold,
            "window": rule.window,
            "filters": rule.filters,
            "action": rule.action,
            "since": event["ts"].isoformat(),
            "text": text,
            **({"kind": "anomaly", "baseline": baseline} if baseline is not None else {}),
        }
    )


def _in_unit(measure: str, value: float | None) -> str:
    if value is None:
        return "no data"
    if measure.endswith("_usd"):
        return f"${value:,.2f}" if abs(value) >= 0.1 else f"${value:.4g}"
    if measure == "error_rate":
        return f"{value * 100:.1f}%"
    if measure.endswith("_ms"):
        return f"{value:,.0f} ms"
    return f"{value:,.0f}"


def anomaly_text(measure: str, verdict: dict[str, Any]) -> str:
    """``cost_usd 14:00–15:00 UTC $38.00, usual $6.00 ± $2.00 (+$32.00, 16.0x the spread)``."""
    since = datetime.fromisoformat(verdict["since"])
    until = datetime.fromisoformat(verdict["until"])
    span = f"{since:%H:%M}–{until:%H:%M} UTC" if until - since <= timedelta(days=1) else ""
    text = (
        f"{measure} {since:%a %Y-%m-%d} {span} {_in_unit(measure, verdict['value'])},"
        f" usual {_in_unit(measure, verdict['usual'])} ± {_in_unit(measure, verdict['spread'])}"
    )
    deviation = verdict.get("deviation")
    if deviation is not None:
        sign = "+" if deviation >= 0 else "-"
        text += f" ({sign}{_in_unit(measure, abs(deviation))}"
        spread = verdict.get("spread") or 0.0
        text += f", {abs(deviation) / spread:.1f}x the spread)" if spread > 0 else ")"
    return text
