"""A trace's spans as waterfall rows: tree order, depth, and bar positions.

Bars are placed in percent of the trace's time span and drawn as SVG attributes, so the
waterfall needs no JavaScript and no inline styles (the CSP allows neither).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gensight.web.render import parse_ts

MAX_DEPTH = 15  # deeper rows keep this indentation (the stylesheet has classes up to it)
MIN_BAR_PCT = 0.3  # so a 0 ms span still shows


def waterfall(trace: dict[str, Any]) -> dict[str, Any]:
    """Rows (depth-first, children by start time) and the trace's start and end.

    Calls whose span was not stored (a gateway call with no span record) get a row of
    their own; a span whose parent never arrived is shown as a root, marked ``orphan``.
    """
    calls = trace["calls"]
    call_by_id = {c["id"]: c for c in calls}
    call_by_span = {c["span_id"]: c for c in calls}
    nodes: list[dict[str, Any]] = []
    seen_spans: set[str] = set()
    for s in trace["spans"]:
        call = call_by_id.get(s.get("call_id") or "") or call_by_span.get(s["span_id"])
        nodes.append({**s, "call": call})
        seen_spans.add(s["span_id"])
    for c in calls:
        if c["span_id"] not in seen_spans:
            name = " ".join(x for x in (c.get("operation"), _model(c)) if x) or "LLM call"
            nodes.append(
                {
                    "trace_id": c["trace_id"],
                    "span_id": c["span_id"],
                    "parent_span_id": c.get("parent_span_id"),
                    "name": name,
                    "kind": "client",
                    "ts": c["ts"],
                    "duration_ms": c["duration_ms"],
                    "status": c["status"],
                    "app": c.get("app"),
                    "call_id": c["id"],
                    "call": c,
                }
            )
            seen_spans.add(c["span_id"])
    if not nodes:
        return {"rows": [], "duration_ms": 0.0, "start": None}

    for n in nodes:
        n["_start"] = parse_ts(n["ts"])
        n["_end"] = n["_start"] + timedelta(milliseconds=n["duration_ms"] or 0)
    start = min(n["_start"] for n in nodes)
    end = max(n["_end"] for n in nodes)
    total_ms = max((end - start).total_seconds() * 1000, 0.001)

    ids = {n["span_id"] for n in nodes}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for n in nodes:
        parent = n.get("parent_span_id")
        n["orphan"] = bool(parent) and parent not in ids
        children.setdefault(parent if parent in ids else None, []).append(n)
    for kids in children.values():
        kids.sort(key=lambda n: (n["_start"], n["name"] or ""))

    rows: list[dict[str, Any]] = []
    visited: set[str] = set()

    def walk(node: dict[str, Any], depth: int) -> None:
        if node["span_id"] in visited:  # a malformed trace must not loop
            return
        visited.add(node["span_id"])
        rows.append(_row(node, depth, start, total_ms))
        for kid in children.get(node["span_id"], []):
            walk(kid, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    for n in nodes:  # spans in a parent cycle, unreachable from any root
        if n["span_id"] not in visited:
            walk(n, 0)
    return {"rows": rows, "duration_ms": total_ms, "start": start.isoformat()}


def _model(call: dict[str, Any]) -> str | None:
    return call.get("response_model") or call.get("request_model")


def _row(node: dict[str, Any], depth: int, start: Any, total_ms: float) -> dict[str, Any]:
    offset_ms = (node["_start"] - start).total_seconds() * 1000
    duration = node["duration_ms"] or 0.0
    left = min(offset_ms / total_ms * 100, 100 - MIN_BAR_PCT)
    width = max(duration / total_ms * 100, MIN_BAR_PCT)
    width = min(width, 100 - left)
    call = node["call"]
    ttft_width = None
    if call and call.get("ttft_ms"):
        ttft_width = min(max(call["ttft_ms"] / total_ms * 100, 0), width)
    return {
        "span_id": node["span_id"],
        "parent_span_id": node.get("parent_span_id"),
        "name": node.get("name") or "(unnamed)",
        "kind": node.get("kind"),
        "app": node.get("app"),
        "status": node.get("status"),
        "status_message": node.get("status_message"),
        "depth": depth,
        "indent": min(depth, MAX_DEPTH),
        "orphan": node["orphan"],
        "offset_ms": offset_ms,
        "duration_ms": duration,
        "left": round(left, 3),
        "width": round(width, 3),
        "ttft_width": round(ttft_width, 3) if ttft_width is not None else None,
        "call": call,
        "model": _model(call) if call else None,
        "attributes": node.get("attributes") or {},
        "events": node.get("events") or [],
    }


def span_detail(row: dict[str, Any]) -> dict[str, Any]:
    """What the trace page shows of one span: its exceptions (the OpenTelemetry
    ``exception`` events: type, message, stack trace), its other events and attributes."""
    exceptions, others = [], []
    for e in row["events"]:
        attrs = e.get("attributes") or {}
        if e.get("name") == "exception":
            exceptions.append(
                {
                    "type": attrs.get("exception.type"),
                    "message": attrs.get("exception.message"),
                    "stacktrace": attrs.get("exception.stacktrace"),
                    "ts": e.get("ts"),
                }
            )
        else:
            others.append(e)
    attributes = sorted(row["attributes"].items())
    return {**row, "exceptions": exceptions, "other_events": others, "attribute_items": attributes}
