"""Redaction: secrets masked always and PII with ``--redact pii``, on the gateway and the
OTLP paths, in what the API returns and in the DuckDB file's bytes; ``--capture
metadata`` stores no message content."""

from __future__ import annotations

import secrets as rnd
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry import trace

from gensight.enrich.redaction import Redactor
from gensight.enrich.secrets import luhn, scrub_pii, scrub_text
from gensight.model.records import CallRecord, ContentEvent, SpanRecord
from tests.support.otlp_payloads import record_spans, traces_protobuf

PB = {"content-type": "application/x-protobuf"}


def _secrets() -> dict[str, str]:
    """Fresh secrets of every shape (unique, so finding one in a file means it leaked)."""
    h = rnd.token_hex(16)
    return {
        "openai": f"sk-proj-{h}Ab12",
        "anthropic": f"sk-ant-api03-{h}-Zz9",
        "aws": "AKIA" + rnd.token_hex(8).upper(),
        "gcp": "AIza" + rnd.token_hex(18)[:35],
        "bearer": f"tok{h}9",
        "pem_body": f"MIIEvQIBADANBg{h}kqhkiG9w0BAQEFAASC",
    }


# ---------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    "text, gone",
    [
        ("key sk-proj-abc123DEF456ghi789JKL012 here", "sk-proj-abc123"),
        ("sk-ant-api03-AbCdEf1234567890_xyzXYZ-abcdefgh", "AbCdEf1234"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUt"),
        ("gcp AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA123"),
        ("token ya29.a0AfH6SMBx1234567890abcdefghijk", "ya29.a0Af"),
        ("Authorization: Bearer abc.def123456", "abc.def123456"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', "dXNlcjpwYXNz"),
        ("{'api-key': 'abcdef0123456789'}", "abcdef0123456789"),
        ("password=hunter2!", "hunter2"),
        ("postgres://admin:hunter2pass@db:5432/app", "hunter2pass"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAK\n-----END RSA PRIVATE KEY-----", "MIIEow"),
        (
            '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIB\\n'
            '-----END PRIVATE KEY-----\\n"',
            "MIIEvQIB",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE (cut off", "b3BlbnNz"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdef"),
        ("xoxb-1234567890-abcdefghij", "xoxb-1234"),
        ("sk_live_abcdefghijklmnop1234", "sk_live_abc"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "dozjgNry"),
    ],
)
def test_secret_shapes_are_masked(text: str, gone: str) -> None:
    out = scrub_text(text)
    assert gone not in out and "[REDACTED" in out
    assert scrub_text(out) == out  # idempotent (a retried write masks nothing twice)


@pytest.mark.parametrize(
    "text",
    [
        "gen_ai.usage.input_tokens",
        "the bearer of this letter; key points: tokens, secrets of success",
        "a task-management system at https://example.com/path?x=1",
        "time: 10:30, ratio 3:4, see https://docs.example.com",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert scrub_text(text) == text


def test_pii_masking() -> None:
    text = (
        "mail alice.smith+x@example.co.uk, card 4111 1111 1111 1111 (not 4111 1111 1111 1112),"
        " amex 378282246310005, call +44 20 7946 0958 or (555) 123-4567 or 555-123-4567,"
        " from 192.168.1.10 and 2001:db8::8a2e:370:7334"
    )
    out = scrub_pii(text)
    assert out == (
        "mail [EMAIL], card [CARD] (not 4111 1111 1111 1112), amex [CARD], call [PHONE] or"
        " [PHONE] or [PHONE], from [IP] and [IP]"
    )
    keep = "on 2024-01-15, v1.2.3, 10:30:00, a[::2], id 1700000000123, 3.14159, 10 000 units"
    assert scrub_pii(keep) == keep
    assert luhn("4111111111111111") and not luhn("4111111111111112")


def _call(**kw: Any) -> CallRecord:
    base: dict[str, Any] = dict(
        id="c1", trace_id="t" * 32, span_id="s" * 16, ts=datetime.now(UTC), duration_ms=1.0,
        source="gateway",
    )  # fmt: skip
    return CallRecord(**(base | kw))


def test_redactor_masks_every_content_field_and_keeps_ids() -> None:
    key = "sk-proj-abc123DEF456ghi789JKL012"
    call = _call(
        user="bob@example.com",
        input_messages=[
            {"role": "user", "content": [{"type": "text", "text": f"use {key}"}]},
            {"role": "assistant", "tool_calls": [{"arguments": f'{{"k": "{key}"}}'}]},
        ],
        output_messages=[{"role": "assistant", "content": "mail bob@example.com"}],
        system_instructions=[{"role": "system", "content": f"key={key}"}],
        error_message=f"Incorrect API key provided: {key}.",
        attributes={"gen_ai.headers": f"{{'authorization': 'Bearer {key}'}}", "n": 3},
    )
    span = SpanRecord(
        trace_id="t" * 32, span_id="s" * 16, name="x", ts=call.ts, duration_ms=1,
        status_message=f"failed with {key}", attributes={"list": [f"x {key}"]},
        events=[{"name": "exception", "attributes": {"exception.message": key}}],
    )  # fmt: skip
    event = ContentEvent("t" * 32, "s" * 16, call.ts, 0, "input", {"content": f"k {key}"})
    Redactor().apply([call], [span], [event])
    assert key not in repr((call.to_dict(), span.to_dict(), event))
    assert "bob@example.com" in call.output_messages[0]["content"]  # PII kept by default
    assert call.attributes["n"] == 3
    Redactor(pii=True).apply([call], [], [])
    assert call.output_messages[0]["content"] == "mail [EMAIL]"
    assert call.user == "bob@example.com"  # identifiers are the UI's grouping keys


def test_redactor_fails_closed() -> None:
    call = _call(input_messages=[{"role": "user", "content": "x"}], error_message="e")
    redactor = Redactor()
    redactor.call = lambda c: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
    redactor.apply([call])
    assert call.input_messages is None and call.error_message is None


# ---------------------------------------------------------------------------- end to end


def _server(tmp_path: Path, upstream: Any, *args: str) -> Any:
    from tests.support.server import Server

    return Server(tmp_path / "data", "--upstream", f"openai={upstream.state.url}",
                  "--flush-interval", "0.05", *args)  # fmt: skip


def _db_bytes(data_dir: Path) -> bytes:
    files = [p for p in data_dir.rglob("*.duckdb*") if p.is_file()]
    assert files
    return b"".join(p.read_bytes() for p in files)


def _otlp_call(app: str, s: dict[str, str], extra: str = "") -> bytes:
    def build(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as sp:
            sp.set_attribute("gen_ai.operation.name", "chat")
            sp.set_attribute("gen_ai.provider.name", "openai")
            sp.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            sp.set_attribute("gen_ai.usage.input_tokens", 10)
            sp.set_attribute("gen_ai.usage.output_tokens", 5)
            sp.set_attribute(
                "gen_ai.input.messages",
                '[{"role":"user","parts":[{"type":"text","content":"my keys: '
                f"{s['openai']} {s['aws']} {s['gcp']} {extra}" + '"}]}]',
            )
            sp.set_attribute(
                "gen_ai.output.messages",
                '[{"role":"assistant","parts":[{"type":"text","content":"-----BEGIN PRIVATE '
                f'KEY-----\\\\n{s["pem_body"]}\\\\n-----END PRIVATE KEY-----"}}],'
                '"finish_reason":"stop"}]',
            )
            sp.set_attribute("gen_ai.headers", f"{{'Authorization': 'Bearer {s['bearer']}'}}")
            sp.set_attribute("control.marker", f"visible-{s['bearer'][::-1]}")
            sp.record_exception(RuntimeError(f"Incorrect API key provided: {s['anthropic']}"))
            sp.set_status(trace.StatusCode.ERROR, f"Incorrect API key provided: {s['anthropic']}")

    return traces_protobuf(record_spans(build, service=app))


def test_secrets_masked_on_otlp_and_gateway_in_api_and_file(tmp_path: Path, upstream: Any) -> None:
    s = _secrets()
    srv = _server(tmp_path, upstream)
    try:
        # OTLP
        r = srv.client.post("/v1/traces", content=_otlp_call("otlp-app", s), headers=PB)
        assert r.status_code == 200
        # gateway: secrets in the messages
        client = openai.OpenAI(base_url=f"{srv.url}/openai/v1", api_key=s["openai"], max_retries=0,
                               default_headers={"X-Gensight-App": "gw-app"})  # fmt: skip
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": f"Authorization: Bearer {s['bearer']}"},
                {"role": "user", "content": f"store {s['anthropic']} and {s['aws']}"},
            ],
        )
        (otlp,) = srv.wait_calls(1, app="otlp-app")
        (gw,) = srv.wait_calls(1, app="gw-app")
        shown = ""
        for call in (otlp, gw):
            detail = srv.client.get(f"/api/calls/{call['id']}").json()
            shown += str(detail)
            trace_ = srv.client.get(f"/api/traces/{call['trace_id']}").json()
            shown += str(trace_)
        assert "[REDACTED]" in shown and "[REDACTED PRIVATE KEY]" in shown
        assert f"visible-{s['bearer'][::-1]}" in shown
        for name, value in s.items():
            assert value not in shown, f"{name} secret returned by the API"
        page = srv.client.get(f"/calls/{otlp['id']}").text
        assert s["openai"] not in page and "[REDACTED]" in page
    finally:
        srv.stop()
    data = _db_bytes(srv.data_dir)
    # the control string (not a secret) is stored as plain bytes: the grep below can see
    assert f"visible-{s['bearer'][::-1]}".encode() in data
    for name, value in s.items():
        assert value.encode() not in data, f"{name} secret found in the DuckDB file"


def test_pii_only_with_redact_pii(tmp_path: Path, upstream: Any) -> None:
    s = _secrets()
    pii = "write to carol.jones@example.org or +44 20 7946 0958, card 4111 1111 1111 1111"
    for mode, args in (("off", ()), ("on", ("--redact", "pii"))):
        srv = _server(tmp_path / mode, upstream, *args)
        try:
            srv.client.post("/v1/traces", content=_otlp_call(f"pii-{mode}", s, pii), headers=PB)
            (call,) = srv.wait_calls(1, app=f"pii-{mode}")
            detail = srv.client.get(f"/api/calls/{call['id']}").json()
            text = str(detail["input_messages"])
            assert s["openai"] not in text  # secrets: always
            if mode == "off":
                assert "carol.jones@example.org" in text and "4111 1111 1111 1111" in text
            else:
                assert "carol.jones@example.org" not in text
                assert "[EMAIL]" in text and "[PHONE]" in text and "[CARD]" in text
        finally:
            srv.stop()
        if mode == "on":
            assert b"carol.jones@example.org" not in _db_bytes(srv.data_dir)


def test_capture_metadata_stores_no_content(tmp_path: Path, upstream: Any) -> None:
    marker = "capture-marker-" + rnd.token_hex(8)
    srv = _server(tmp_path, upstream, "--capture", "metadata")
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/openai/v1", api_key="sk-test", max_retries=0,
                               default_headers={"X-Gensight-App": "meta-app"})  # fmt: skip
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello {marker}"}]
        )
        list(client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": marker}], stream=True
        ))  # fmt: skip
        calls = srv.wait_calls(2, app="meta-app")
        for call in calls:
            detail = srv.client.get(f"/api/calls/{call['id']}").json()
            assert detail["input_messages"] is None and detail["output_messages"] is None
            assert detail["input_tokens"] and detail["output_tokens"]  # metadata is kept
            assert marker not in str(detail)
    finally:
        srv.stop()
    assert marker.encode() not in _db_bytes(srv.data_dir)


def test_capture_content_old_flag_still_works(tmp_path: Path, upstream: Any) -> None:
    srv = _server(tmp_path, upstream, "--no-capture-content")
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/openai/v1", api_key="sk-test", max_retries=0,
                               default_headers={"X-Gensight-App": "old-flag"})  # fmt: skip
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
        (call,) = srv.wait_calls(1, app="old-flag")
        assert srv.client.get(f"/api/calls/{call['id']}").json()["input_messages"] is None
    finally:
        srv.stop()


def test_bad_capture_or_redact_value_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    for args in (["--capture", "everything"], ["--redact", "nothing"]):
        proc = subprocess.run(
            [sys.executable, "-m", "gensight.cli", "serve", "--data-dir", str(tmp_path), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 2 and args[0] in proc.stderr


def test_redaction_cost_is_small() -> None:
    """A smoke bound (bench/redaction.py measures properly): a clean ~2 KB chat call."""
    text = "Our refund policy allows returns within 30 days of delivery. " * 30
    calls = [
        _call(id=str(i), input_messages=[{"role": "user", "content": text}],
              output_messages=[{"role": "assistant", "content": text}])
        for i in range(300)
    ]  # fmt: skip
    t = time.perf_counter()
    Redactor().apply(calls)
    per_call = (time.perf_counter() - t) / len(calls)
    assert per_call < 2e-3, f"{per_call * 1e6:.0f} µs per call"
    assert httpx  # keep the import for the e2e helpers' clients
