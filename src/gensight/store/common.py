"""What every SQL store does the same way: run the shared queries, decode their rows.

A backend subclasses ``SQLStore`` with its ``dialect``, ``_rows`` (run a ``Query``,
return dicts) and ``write``; everything the query layer asks goes through here, so
DuckDB and ClickHouse return the same rows. Rows, not answers: the numbers of the
API's answers are computed in ``gensight.query`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gensight.model.records import CALL_FIELD_NAMES, CallRecord, ContentEvent, SpanRecord
from gensight.pipeline.merge import FAILED_WINDOW_S, failed_key
from gensight.store import alert_sql, people_sql, score_sql, sql
from gensight.store.base import CallFilters, Cursor
from gensight.store.dimensions import GROUP_BY
from gensight.store.savings import SavingsQueries


def iso(ts: datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with offset."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat()


def json_text(value: Any) -> str | None:
    """A JSON column value (None stays NULL)."""
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def unique(
    calls: Sequence[CallRecord], spans: Sequence[SpanRecord], events: Sequence[ContentEvent]
) -> tuple[list[CallRecord], list[SpanRecord], list[ContentEvent]]:
    """A batch with one record per natural key: the last call of an id (the latest
    version), the first span or content event of a key (a repeat is a resend)."""
    by_id = {c.id: c for c in calls}
    span_keys: dict[tuple[str, str], SpanRecord] = {}
    for s in spans:
        span_keys.setdefault((s.trace_id, s.span_id), s)
    event_keys: dict[tuple[Any, ...], ContentEvent] = {}
    for e in events:
        event_keys.setdefault((e.trace_id, e.span_id, e.ts, e.seq, e.kind), e)
    return list(by_id.values()), list(span_keys.values()), list(event_keys.values())


def call_record(row: dict[str, Any]) -> CallRecord:
    """A stored call row (all columns, as read) back as a ``CallRecord``."""
    values = dict(row)
    ts = values["ts"]
    values["ts"] = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    for name in sql.JSON_CALL_FIELDS:
        text = values.get(name)
        values[name] = orjson.loads(text) if text is not None else None
    values["attributes"] = values["attributes"] or {}
    values["finish_reasons"] = list(values["finish_reasons"] or [])
    values["tags"] = list(values["tags"] or [])
    values["stream"] = bool(values["stream"])
    values["tokens_estimated"] = bool(values["tokens_estimated"])
    return CallRecord(**values)


def merge_content_events(call: dict[str, Any], events: list[tuple[str, Any]]) -> None:
    """Fill a call's message fields from content events when the span carried none."""
    by_kind: dict[str, list[Any]] = {"system": [], "input": [], "output": []}
    for kind, message in events:
        by_kind.setdefault(kind, []).append(message)
    if not call.get("input_messages") and (by_kind["input"] or by_kind["system"]):
        inputs = by_kind["input"]
        in_system = {m.get("content") for m in inputs if m.get("role") == "system"}
        system = [m for m in by_kind["system"] if m.get("content") not in in_system]
        call["input_messages"] = system + inputs
    if not call.get("output_messages") and by_kind["output"]:
        call["output_messages"] = by_kind["output"]
        if not call.get("finish_reasons"):
            call["finish_reasons"] = [
                m["finish_reason"] for m in by_kind["output"] if m.get("finish_reason")
            ]


#: How far a trace's calls may start outside its spans' time (clocks of producers).
_TRACE_SKEW = timedelta(minutes=5)
#: A trace's window is read up to its last end and this past it (an end rounded down).
TRACE_EDGE = timedelta(milliseconds=1)
#: Reads of one answer run side by side on these (DuckDB reads from several cursors).
_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gensight-read")
#: Calls whose scores one query looks up at most (the statement binds each id).
_LOOKUP_CHUNK = 1000


class SQLStore(SavingsQueries):
    """The query half of a store, shared by the backends."""

    name = "?"
    dialect: sql.Dialect

    def _rows(self, q: sql.Query) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _exec(self, q: sql.Query) -> None:
        """Run a statement that changes the store (alert rules and their history)."""
        raise NotImplementedError

    @staticmethod
    def _call_row(row: dict[str, Any]) -> dict[str, Any]:
        row["ts"] = iso(row["ts"])
        for name in sql.JSON_CALL_FIELDS:
            if name in row and row[name] is not None:
                row[name] = orjson.loads(row[name])
        for name in ("finish_reasons", "tags"):
            if name in row:
                row[name] = list(row[name] or [])
        for name in ("stream", "tokens_estimated"):
            if name in row:
                row[name] = bool(row[name])
        return row

    # -- calls and traces -----------------------------------------------------
    def stored_calls(self, calls: Sequence[CallRecord]) -> list[CallRecord]:
        """The stored calls that ``calls`` may repeat: the same id, or the same response
        or request id (another producer's report of the same call). The writer merges a
        batch with these before writing it (``gensight.pipeline.merge`` decides which
        candidates are the same call)."""
        found: dict[str, CallRecord] = {}
        size = self.dialect.lookup_chunk
        for i in range(0, len(calls), size):
            chunk = calls[i : i + size]
            responses = [c.response_id for c in chunk if c.response_id]
            requests = [c.upstream_request_id for c in chunk if c.upstream_request_id]
            since = min(c.ts for c in chunk) - timedelta(hours=1)
            until = max(c.ts for c in chunk) + timedelta(hours=1)
            failed = [c for c in chunk if failed_key(c) is not None]
            window = None
            if failed:
                near = timedelta(seconds=FAILED_WINDOW_S)
                window = (min(c.ts for c in failed) - near, max(c.ts for c in failed) + near)
            # a call's own id, its parent's (span ids are OTLP records' ids) and children
            ids = [c.id for c in chunk] + [c.parent_span_id for c in chunk if c.parent_span_id]
            q = sql.stored_calls(
                self.dialect, ids, responses, requests, since, until,
                [c.request_model or "" for c in failed], window,
                parents=[c.span_id for c in chunk if c.source != "gateway"],
            )  # fmt: skip
            for row in self._rows(q):
                found[row["id"]] = call_record(row)
        return list(found.values())

    def list_calls(
        self,
        filters: CallFilters,
        limit: int,
        cursor: Cursor | None,
        full: bool = False,
        sort: str = "ts",
        order: str = "desc",
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of calls in ``sort`` order (newest first by default); messages and
        attributes only when ``full``."""
        rows = self._list_rows(filters, limit, cursor, full, sort, order)
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1]
            value = None if sort == "ts" else last[sort]
            if isinstance(value, float) and value != value:  # ClickHouse NaN for NULL
                value = None
            nxt = Cursor(last["ts"].replace(tzinfo=UTC), last["id"], sort, value, order)
        calls = [self._call_row(r) for r in rows[:limit]]
        if full and calls:
            events = self._rows(sql.content_events_of(self.dialect, [c["span_id"] for c in calls]))
            by_call: dict[tuple[str, str], list[tuple[str, Any]]] = {}
            for e in events:
                key = (e["trace_id"], e["span_id"])
                by_call.setdefault(key, []).append((e["kind"], orjson.loads(e["message"])))
            for c in calls:
                if (c["trace_id"], c["span_id"]) in by_call:
                    merge_content_events(c, by_call[(c["trace_id"], c["span_id"])])
            self._attach_scores(calls)
        return calls, nxt

    def _list_rows(
        self,
        filters: CallFilters,
        limit: int,
        cursor: Cursor | None,
        full: bool,
        sort: str = "ts",
        order: str = "desc",
    ) -> list[dict[str, Any]]:
        """Up to ``limit + 1`` call rows in ``sort`` order (a store with a search index
        answers ``q`` from it)."""
        return self._rows(sql.list_calls(self.dialect, filters, limit, cursor, full, sort, order))

    def _attach_scores(self, calls: list[dict[str, Any]]) -> None:
        """Each call's ``scores``: its own, its trace's and its session's (an export
        repeats a trace's score on each of its calls; an import stores it once, by id)."""
        traces = sorted({c["trace_id"] for c in calls})
        sessions = sorted({c["session"] for c in calls if c.get("session")})
        rows = self.scores_of([c["id"] for c in calls], traces)
        if sessions and self._may_have_scores():
            for r in self._rows(score_sql.scores_of_sessions(self.dialect, sessions)):
                r["ts"] = iso(r["ts"])
                rows.append(r)
        for c in calls:
            mine = {("call", c["id"]), ("trace", c["trace_id"]), ("session", c.get("session"))}
            c["scores"] = [r for r in rows if (r["target"], r["target_id"]) in mine]

    def known_values(self, name: str, filters: CallFilters, limit: int = 50) -> list[str]:
        """The commonest values of ``app``, ``model``, ``user`` or ``session``."""
        return [r["v"] for r in self._rows(sql.known_values(self.dialect, name, filters, limit))]

    def time_bounds(self, filters: CallFilters) -> tuple[datetime | None, datetime | None]:
        """The first and last start time of the matching calls (None when none match)."""
        (row,) = self._rows(sql.time_bounds(self.dialect, filters))
        if not row["n"]:
            return None, None
        return (row["first"].replace(tzinfo=UTC), row["last"].replace(tzinfo=UTC))

    def people_rows(self, filters: CallFilters, column: str, limit: int) -> list[dict[str, Any]]:
        """Per ``session`` or ``user``: measure rows with ``first_ts``/``last_ts`` (ISO),
        ``app`` and ``who``; the most recently active first, ``limit`` + 1 rows at most."""
        rows = self._rows(people_sql.people_rows(self.dialect, filters, column, limit))
        for r in rows:
            r["first_ts"], r["last_ts"] = iso(r["first_ts"]), iso(r["last_ts"])
        return rows

    def count_calls(self, filters: CallFilters) -> int:
        """How many calls match the filters."""
        (row,) = self._rows(sql.count_calls(self.dialect, filters))
        return int(row["n"])

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its messages, merging content that arrived as log events."""
        rows = self._rows(sql.get_call(self.dialect, call_id))
        if not rows:
            return None
        call = self._call_row(rows[0])
        events = self._rows(sql.content_events(self.dialect, call["trace_id"], call["span_id"]))
        if events:
            merge_content_events(call, [(e["kind"], orjson.loads(e["message"])) for e in events])
        call["scores"] = self.scores_of([call["id"]], [])
        return call

    def trace_window(self, trace_id: str) -> tuple[datetime, datetime] | None:
        """From the first start to the last end of everything stored of a trace, when a
        backend keeps it (the DuckDB store's search index); None: unknown."""
        return None

    def get_trace(
        self, trace_id: str, window: tuple[datetime, datetime] | None = None
    ) -> dict[str, Any] | None:
        """Spans (oldest first) and calls of a trace; ``window``: its ``trace_window``,
        when the caller has it already."""
        window = window or self.trace_window(trace_id)
        if window is not None:
            # every span and call of it starts within its window: both reads skip all but
            # that time's blocks, side by side (the spans on another thread)
            bounds = (window[0], window[1] + TRACE_EDGE)
            spans = _READS.submit(self._rows, sql.trace_spans(self.dialect, trace_id, bounds))
            calls, _ = self.list_calls(CallFilters(trace_id=trace_id, since=bounds[0],
                                                   until=bounds[1]), 10_000, None)  # fmt: skip
            return self._trace_answer(trace_id, spans.result(), calls)
        spans = self._rows(sql.trace_spans(self.dialect, trace_id))
        filters = CallFilters(trace_id=trace_id)
        if spans:
            # a trace's calls lie within its spans' time (from the first start to the last
            # end, beyond the last start: a gateway's call inside a long root span has no
            # span row of its own), give or take producers' clock skew: bounding by time
            # lets both engines skip all but a few blocks
            start = min(s["ts"] for s in spans).replace(tzinfo=UTC)
            end = max(s["ts"] + timedelta(milliseconds=s["duration_ms"] or 0) for s in spans)
            filters = CallFilters(
                trace_id=trace_id,
                since=start - _TRACE_SKEW,
                until=end.replace(tzinfo=UTC) + _TRACE_SKEW,
            )
        calls, _ = self.list_calls(filters, 10_000, None)
        return self._trace_answer(trace_id, spans, calls)

    def _trace_answer(
        self, trace_id: str, spans: list[dict[str, Any]], calls: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        if not spans and not calls:
            return None
        for s in spans:
            s["ts"] = iso(s["ts"])
            s["attributes"] = orjson.loads(s["attributes"]) if s["attributes"] else {}
            s["events"] = orjson.loads(s["events"]) if s["events"] else []
        calls.sort(key=lambda c: (c["ts"], c["id"]))
        scores = self.scores_of([c["id"] for c in calls], [trace_id])
        for c in calls:
            c["scores"] = [s for s in scores if s["target"] == "call" and s["target_id"] == c["id"]]
        return {"trace_id": trace_id, "spans": spans, "calls": calls, "scores": scores}

    # -- scores (#20) ---------------------------------------------------------------
    def _may_have_scores(self) -> bool:
        """False when the store knows it holds no score (its lookups are skipped)."""
        return True

    def scores_of(self, call_ids: list[str], trace_ids: list[str]) -> list[dict[str, Any]]:
        """The scores of these calls and traces, oldest first."""
        out: list[dict[str, Any]] = []
        if not self._may_have_scores():
            return out
        for i in range(0, max(len(call_ids), 1), _LOOKUP_CHUNK):
            chunk = call_ids[i : i + _LOOKUP_CHUNK]
            if not chunk and not trace_ids:
                break
            out += self._rows(score_sql.scores_of(self.dialect, chunk, trace_ids))
            trace_ids = []  # asked once, with the first chunk
        seen: set[str] = set()
        unique_rows = []
        for row in sorted(out, key=lambda r: (r["ts"], r["id"])):
            if row["id"] not in seen:
                seen.add(row["id"])
                row["ts"] = iso(row["ts"])
                unique_rows.append(row)
        return unique_rows

    def call_contexts(self, call_ids: Sequence[str]) -> dict[str, tuple[str, str, str | None]]:
        """``{call id: (trace id, span id, app)}`` of the stored calls among ``call_ids``."""
        ids = list(dict.fromkeys(call_ids))
        out: dict[str, tuple[str, str, str | None]] = {}
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            for row in self._rows(
                score_sql.call_contexts(self.dialect, ids[i : i + _LOOKUP_CHUNK])
            ):
                out[row["id"]] = (row["trace_id"] or "", row["span_id"] or "", row["app"] or None)
        return out

    def list_scores(
        self, filters: CallFilters, name: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Scores newest first (by their own time), optionally of one name."""
        rows = self._rows(score_sql.list_scores(self.dialect, filters, name, limit))
        for row in rows:
            row["ts"] = iso(row["ts"])
        return rows

    def score_rows(self, filters: CallFilters, group_by: str | None) -> list[dict[str, Any]]:
        """Per ``grp`` (when grouped) and score ``name``: ``mean``, ``n``, ``scored_calls``."""
        grp = GROUP_BY[group_by] if group_by else None
        return self._rows(score_sql.score_means(self.dialect, filters, grp, sql.where))

    def score_series_rows(
        self, filters: CallFilters, interval: int, name: str
    ) -> list[dict[str, Any]]:
        """Per ``bucket`` of the calls' start: ``mean``, ``n``, ``valued``, ``scored_calls``
        of their ``name`` scores (buckets without any absent)."""
        q = score_sql.score_series(self.dialect, filters, interval, name, sql.where)
        return self._rows(q)

    def good_answer_rows(
        self, filters: CallFilters, group_by: str, name: str, threshold: float
    ) -> list[dict[str, Any]]:
        """Per ``grp``: ``calls``, ``cost_usd``, ``priced``, ``scored``, ``good``."""
        q = score_sql.good_answers(
            self.dialect, filters, GROUP_BY[group_by], name, threshold, sql.where
        )
        return self._rows(q)

    # -- stats and analysis: rows only; ``gensight.query.answers`` shapes them ----------
    def aggregate(self, filters: CallFilters) -> dict[str, Any]:
        """One row of the overview's measures over the matching calls (``sql.measures``)."""
        (row,) = self._rows(sql.overview_totals(self.dialect, filters))
        return row

    def series_rows(
        self, filters: CallFilters, interval: int, group_by: str | None
    ) -> list[dict[str, Any]]:
        """Measure rows per ``bucket`` (and ``grp`` when grouped); empty buckets absent."""
        return self._rows(sql.overview_series(self.dialect, filters, interval, group_by))

    def group_rows(self, filters: CallFilters, group_by: str) -> list[dict[str, Any]]:
        """Measure rows per ``grp`` over the whole range (exact percentiles per group)."""
        return self._rows(sql.overview_groups(self.dialect, filters, group_by))

    def latency_rows(
        self, filters: CallFilters, max_points: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Successful calls' (output tokens, latency) points, and per-model fit rows."""
        points = self._rows(sql.latency_points(self.dialect, filters, max_points))
        return points, self._rows(sql.latency_fits(self.dialect, filters))

    def correlation_base(self, filters: CallFilters) -> dict[str, Any]:
        """``total``, latency ``p95`` and ``errors`` of the matching calls."""
        (row,) = self._rows(sql.correlation_base(self.dialect, filters))
        return row

    def correlation_rows(
        self, filters: CallFilters, target: str, threshold: float | None
    ) -> list[dict[str, Any]]:
        """Per dimension and value: ``tcount`` target calls, ``n`` calls."""
        return self._rows(sql.correlation_counts(self.dialect, filters, target, threshold))

    def dependency_rows(self, filters: CallFilters) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Per downstream (LLM and non-LLM spans) measure rows, and the root spans' sums."""
        d = self.dialect
        items = self._rows(sql.dependencies_llm(d, filters))
        items += self._rows(sql.dependencies_spans(d, filters))
        (roots,) = self._rows(sql.dependencies_roots(d, filters))
        return items, roots

    # -- alert rules ----------------------------------------------------------
    def alert_rules(self) -> list[dict[str, Any]]:
        """Stored rules: ``{"id", "created_at", "source", "rule": {...}}``, oldest first."""
        rows = self._rows(alert_sql.alert_rules(self.dialect))
        for r in rows:
            r["created_at"] = iso(r["created_at"])
            r["rule"] = orjson.loads(r["rule"])
        return rows

    def save_alert_rule(
        self, rule_id: str, rule: dict[str, Any], source: str, created_at: datetime
    ) -> None:
        """Store a rule, replacing one with the same id."""
        self._exec(alert_sql.delete_alert_rule(self.dialect, rule_id))
        text = orjson.dumps(rule).decode()
        self._exec(alert_sql.insert_alert_rule(self.dialect, rule_id, created_at, source, text))

    def delete_alert_rule(self, rule_id: str) -> None:
        """Remove a rule (its history stays)."""
        self._exec(alert_sql.delete_alert_rule(self.dialect, rule_id))

    def add_alert_event(self, event: dict[str, Any]) -> None:
        """Append one transition (``alert_sql.ALERT_EVENT_COLUMNS``; ``detail`` is JSON text)."""
        self._exec(alert_sql.insert_alert_event(self.dialect, event))

    def alert_events(self, rule_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Transitions, newest first."""
        return [
            self._event_row(r)
            for r in self._rows(alert_sql.alert_events(self.dialect, rule_id, limit))
        ]

    def latest_alert_events(self) -> dict[str, dict[str, Any]]:
        """Each rule's last transition, by rule id."""
        rows = self._rows(alert_sql.latest_alert_events(self.dialect))
        return {r["rule_id"]: self._event_row(r) for r in rows}

    def hold_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Claim or renew the lease ``name`` for ``holder``; True while this holder has it.

        Without transactions across replicas two may claim at once; both then read the
        same winning row (latest expiry, then lowest holder), so they agree at once.
        """
        now = datetime.now(UTC)
        current = self._rows(alert_sql.current_lease(self.dialect, name, now))
        if current and current[0]["holder"] != holder:
            return False
        self._exec(alert_sql.claim_lease(self.dialect, name, holder, now + ttl))
        if self.dialect.name == "duckdb":  # ClickHouse expires old claims by TTL
            self._exec(alert_sql.prune_leases(self.dialect, now - timedelta(hours=1)))
        winner = self._rows(alert_sql.current_lease(self.dialect, name, now))
        return bool(winner) and winner[0]["holder"] == holder

    @staticmethod
    def _event_row(row: dict[str, Any]) -> dict[str, Any]:
        row["ts"] = iso(row["ts"])
        row["detail"] = orjson.loads(row["detail"]) if row.get("detail") else {}
        return row


__all__ = [
    "CALL_FIELD_NAMES",
    "SQLStore",
    "call_record",
    "iso",
    "json_text",
    "merge_content_events",
    "unique",
]
