"""Keys and scopes (ingest, read, admin) on every surface, the browser login, the refusal
to listen on a non-loopback address without a key, and the constant-time comparison."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from gensight.demo import ServerThread, UpstreamConfig
from gensight.demo import create_app as upstream_app
from gensight.demo.serve import free_port
from gensight.model.settings import Settings
from gensight.receive import auth
from gensight.receive.auth import COOKIE, Keyring, bind_refusal, is_loopback, parse_api_keys
from gensight.web.app import create_app

INGEST, READ, ADMIN, FULL = (f"{p}-0123456789abcdef" for p in ("ik", "rk", "ak", "fk"))
KEYS = f"ingest:{INGEST},read:{READ},admin:{ADMIN}"

# ---------------------------------------------------------------------------- units


def test_parse_scopes_admin_implies_read_and_ingest() -> None:
    parsed = dict(parse_api_keys("ingest:a1, read:b2,admin:c3,read+ingest:d4"))
    assert parsed == {
        "a1": {"ingest"},
        "b2": {"read"},
        "c3": {"ingest", "read", "admin", "annotate"},
        "d4": {"read", "ingest"},
    }
    for bad in ("nokey", "writer:x", "read:"):
        with pytest.raises(ValueError) as e:
            parse_api_keys(bad)
        assert "x" not in str(e.value).split(":")[-1] or bad != "writer:x"


def test_bad_key_config_never_echoes_the_key() -> None:
    with pytest.raises(ValueError) as e:
        parse_api_keys("read:good-key,root:s3cr3t-value")
    assert "s3cr3t-value" not in str(e.value)


def test_match_compares_every_key_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = Keyring(FULL, KEYS)
    seen: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for offered, expected in ((FULL, "api-key"), (READ, "api-keys[2]"), ("wrong", None)):
        seen.clear()
        entry = ring.match(offered)
        assert (entry.label if entry else None) == expected
        # every configured key was compared, the first match did not stop the loop
        assert len(seen) == len(ring.entries) == 4
        # digests of equal length: the comparison time does not depend on the key's length
        assert all(len(a) == len(b) == 32 for a, b in seen)
    token = ring.make_session(ring.match(READ))
    seen.clear()
    assert ring.check_session(token).scopes == {"read"}
    assert len(seen) == 4


def test_sessions_expire_die_with_their_key_and_can_be_revoked() -> None:
    ring = Keyring(None, KEYS)
    token = ring.make_session(ring.match(READ), now=1000.0)
    assert READ not in token
    assert ring.check_session(token, now=1001.0) is not None
    assert ring.check_session(token, now=1000.0 + auth.SESSION_SECONDS + 1) is None
    assert ring.check_session(token[:-2] + "00", now=1001.0) is None
    assert (
        Keyring(None, f"read:other-key-0123456789,admin:{ADMIN}").check_session(token, 1001.0)
        is None
    )
    fresh = ring.make_session(ring.match(READ))
    ring.revoke_session(fresh)
    assert ring.check_session(fresh) is None


def test_loopback_and_bind_refusal() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("example")
    assert bind_refusal("127.0.0.1", Keyring(), False) is None
    assert bind_refusal("0.0.0.0", Keyring(), True) is None
    assert bind_refusal("0.0.0.0", Keyring(None, KEYS), False) is None
    assert "--insecure" in (bind_refusal("0.0.0.0", Keyring(), False) or "")


# ---------------------------------------------------------------------------- CLI


def test_serve_refuses_non_loopback_without_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gensight.cli", "serve", "--host", "0.0.0.0",
         "--port", str(free_port()), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "refusing to listen on 0.0.0.0 without a key" in proc.stderr
    assert "--insecure" in proc.stderr


def test_serve_non_loopback_with_insecure_or_keys_starts(tmp_path: Path) -> None:
    from tests.support.server import Server

    srv = Server(tmp_path / "a", "--host", "0.0.0.0", "--insecure")
    try:
        assert srv.client.get("/api/calls").status_code == 200
    finally:
        srv.stop()
    srv = Server(tmp_path / "b", "--host", "0.0.0.0", env={"GENSIGHT_API_KEYS": KEYS})
    try:
        assert srv.client.get("/api/health").json() == {"status": "ok"}
        assert srv.client.get("/api/calls").status_code == 401
        assert srv.client.get("/api/calls", headers={"X-Gensight-Key": READ}).status_code == 200
    finally:
        srv.stop()
    log = srv.log_path.read_bytes()
    for key in (INGEST, READ, ADMIN):
        assert key.encode() not in log


# ---------------------------------------------------------------------------- every surface


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    up = upstream_app(UpstreamConfig(retry_after_s=0))
    with ServerThread(up) as upstream:
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("auth"),
            upstreams={"openai": upstream.url + "/v1"},
            api_key=FULL,
            api_keys=KEYS,
            grpc=True,
            grpc_port=free_port(),
            flush_interval=0.02,
        )
        app = create_app(settings)
        srv = ServerThread(app, server_header=False).start()
        try:
            yield srv.url, app
        finally:
            srv.stop()


SURFACES = {
    "otlp": ("POST", "/v1/traces"),
    "gateway": ("GET", "/openai/v1/models"),
    "api_read": ("GET", "/api/calls"),
    "api_write": ("POST", "/api/alert-rules"),
    "ui_page": ("GET", "/calls"),
    "metrics": ("GET", "/metrics"),
}
OK = {
    INGEST: {"otlp", "gateway"},
    READ: {"api_read", "ui_page", "metrics"},
    ADMIN: set(SURFACES),
    FULL: set(SURFACES),
}


def _request(url: str, surface: str, key: str | None, how: str = "header") -> httpx.Response:
    method, path = SURFACES[surface]
    headers: dict[str, str] = {}
    if key is not None:
        if how == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        else:
            headers["X-Gensight-Key"] = key
    kwargs: dict[str, Any] = {}
    if surface == "otlp":
        headers["Content-Type"] = "application/x-protobuf"
        kwargs["content"] = trace_service_pb2.ExportTraceServiceRequest().SerializeToString()
    elif surface == "api_write":
        kwargs["json"] = {"name": "r", "measure": "calls", "window": "5m", "op": ">",
                          "threshold": 1e9}  # fmt: skip
    return httpx.request(method, url + path, headers=headers, timeout=10, **kwargs)


@pytest.mark.parametrize(
    "key", [INGEST, READ, ADMIN, FULL], ids=["ingest", "read", "admin", "full"]
)
@pytest.mark.parametrize("surface", list(SURFACES))
def test_each_scope_on_each_surface(app_url: tuple[str, Any], key: str, surface: str) -> None:
    url, _ = app_url
    r = _request(url, surface, key)
    if surface in OK[key]:
        assert r.status_code < 300, (surface, r.status_code, r.text)
    else:
        assert r.status_code == 403, (surface, r.status_code, r.text)
        if surface == "gateway":
            err = r.json()["error"]
            assert err["code"] == "insufficient_scope" and err["type"] == "permission_error"
    if surface != "gateway":  # the same with Authorization: Bearer
        assert (_request(url, surface, key, "bearer").status_code < 300) == (surface in OK[key])


@pytest.mark.parametrize("surface", list(SURFACES))
def test_missing_or_wrong_key_is_401(app_url: tuple[str, Any], surface: str) -> None:
    url, _ = app_url
    for key in (None, "wrong-key"):
        r = _request(url, surface, key)
        if surface == "ui_page" and key is None:
            assert r.status_code == 303
            assert r.headers["location"] == "/login?next=%2Fcalls"
            continue
        assert r.status_code == 401, (surface, key, r.status_code)
        if surface == "gateway":
            assert r.json()["error"]["code"] == "invalid_api_key"


def test_gateway_takes_only_x_gensight_key(app_url: tuple[str, Any]) -> None:
    url, _ = app_url
    r = httpx.get(url + "/openai/v1/models", headers={"Authorization": f"Bearer {INGEST}"})
    assert r.status_code == 401  # Authorization belongs to the upstream


def test_health_without_key_shows_only_status(app_url: tuple[str, Any]) -> None:
    url, _ = app_url
    assert httpx.get(url + "/api/health").json() == {"status": "ok"}
    assert httpx.get(url + "/api/health", headers={"X-Gensight-Key": INGEST}).json() == {
        "status": "ok"
    }
    full = httpx.get(url + "/api/health", headers={"X-Gensight-Key": READ}).json()
    assert "queue" in full and "store" in full


def test_static_files_and_login_page_are_open(app_url: tuple[str, Any]) -> None:
    url, _ = app_url
    assert httpx.get(url + "/static/gensight.css").status_code == 200
    page = httpx.get(url + "/login?next=/calls")
    assert page.status_code == 200 and 'name="key"' in page.text


def test_grpc_scopes(app_url: tuple[str, Any]) -> None:
    _, app = app_url
    with grpc.insecure_channel(f"127.0.0.1:{app.state.grpc.port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        req = trace_service_pb2.ExportTraceServiceRequest()
        stub.Export(req, metadata=[("x-gensight-key", INGEST)], timeout=10)
        stub.Export(req, metadata=[("authorization", f"Bearer {ADMIN}")], timeout=10)
        for metadata, code in (
            ([("x-gensight-key", READ)], grpc.StatusCode.PERMISSION_DENIED),
            ([("x-gensight-key", "nope")], grpc.StatusCode.UNAUTHENTICATED),
            ([], grpc.StatusCode.UNAUTHENTICATED),
        ):
            with pytest.raises(grpc.RpcError) as e:
                stub.Export(req, metadata=metadata, timeout=10)
            assert e.value.code() == code


# ---------------------------------------------------------------------------- browser login


def _login(url: str, key: str, next_: str = "/calls") -> httpx.Response:
    return httpx.post(url + "/login", data={"key": key, "next": next_}, timeout=10)


def test_login_cookie_flow(app_url: tuple[str, Any]) -> None:
    url, _ = app_url
    assert _login(url, "wrong").status_code == 401
    assert _login(url, INGEST).status_code == 403  # cannot read
    r = _login(url, READ)
    assert r.status_code == 303 and r.headers["location"] == "/calls"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=")
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/" in low
    assert READ not in cookie  # a signed token, never the key
    token = r.cookies[COOKIE]
    with httpx.Client(base_url=url, cookies={COOKIE: token}) as browser:
        page = browser.get("/calls")
        assert page.status_code == 200 and 'href="/logout"' in page.text
        assert browser.get("/api/calls").status_code == 200  # the page's JSON twin
        # a read session cannot change rules
        form = browser.post("/alerts", data={"name": "x", "measure": "calls", "threshold": "1"})
        assert form.status_code == 403
        out = browser.get("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert COOKIE in out.headers["set-cookie"]
    # the token is revoked, even if a copy was kept
    again = httpx.get(url + "/calls", cookies={COOKIE: token})
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
    assert httpx.get(url + "/api/calls", cookies={COOKIE: token}).status_code == 401


def test_admin_session_can_add_rules_from_the_page(app_url: tuple[str, Any]) -> None:
    url, _ = app_url
    token = _login(url, ADMIN, "/alerts").cookies[COOKIE]
    with httpx.Client(base_url=url, cookies={COOKIE: token}) as browser:
        r = browser.post(
            "/alerts",
            data={"name": "from-ui", "measure": "calls", "window": "5m", "op": ">",
                  "threshold": "1000000", "action": "notify", "format": "json"},
            headers={"Origin": url},  # as a browser sends it with a form post
        )  # fmt: skip
        assert r.status_code == 303
        names = [s["name"] for s in browser.get("/api/alerts").json()]
        assert "from-ui" in names


def test_login_next_is_local_only(app_url: tuple[str, Any]) -> None:
    url, _ = app_url
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        assert _login(url, READ, evil).headers["location"] == "/"


def test_forged_or_foreign_cookie_is_refused(app_url: tuple[str, Any]) -> None:
    url, _ = app_url
    other = Keyring(None, "read:some-other-server-key")
    forged = other.make_session(other.match("some-other-server-key"))
    for cookie in (forged, "9999999999.x.y", "garbage", READ):
        r = httpx.get(url + "/api/calls", cookies={COOKIE: cookie})
        assert r.status_code == 401
