"""Issue #17 item 3: webhook URLs that would turn alerts into a scanner are refused, at
creation and after DNS resolution, without anything being sent."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from gensight.alerts.rules import RuleError, parse_rule
from gensight.alerts.webhooks import WebhookError, check_url, masked, pinned, resolve

REFUSED = [
    ("http://127.0.0.1:8080/x", "loopback"),
    ("http://[::1]/x", "loopback"),
    ("http://localhost:9/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.9/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fd12::1]/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.10.10/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
]


@pytest.mark.parametrize("url, why", REFUSED)
def test_address_classes_are_refused(url: str, why: str) -> None:
    with pytest.raises(WebhookError, match=why):
        check_url(url)
    check_url(url, allow_private=True)  # the flag lets them through


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://hooks.example/x", "http"),
        ("gopher://hooks.example/", "http"),
        ("http://user:pw@hooks.example/", "credentials"),
        ("http://hooks.example/x\r\nX-Injected: 1", "control"),
        ("http://hooks.example/a b", "control"),
        ("http:///nohost", "host"),
        ("http://hooks.example:99999/", "valid"),
    ],
)
def test_malformed_urls_are_refused_even_with_the_flag(url: str, why: str) -> None:
    with pytest.raises(WebhookError, match=why):
        check_url(url, allow_private=True)
    with pytest.raises(RuleError) as e:
        parse_rule({"name": "x", "measure": "calls", "threshold": 1, "webhook": url})
    assert e.value.field == "webhook"


def test_checked_after_dns_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """A public-looking name that resolves to a private address is refused at send time."""
    answers: dict[str, list[str]] = {
        "hooks.example": ["93.184.216.34"],
        "rebind.example": ["93.184.216.34", "10.0.0.7"],
        "meta.example": ["169.254.169.254"],
    }

    def fake_getaddrinfo(host: str, port: Any, *a: Any, **kw: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert resolve("https://hooks.example/x") == "93.184.216.34"
    with pytest.raises(WebhookError, match="private"):
        resolve("https://rebind.example/x")
    with pytest.raises(WebhookError, match="metadata"):
        resolve("http://meta.example/")
    assert resolve("http://meta.example/", allow_private=True) == "169.254.169.254"
    with pytest.raises(WebhookError, match="does not resolve"):
        resolve("http://nowhere.example/")


def test_pinned_and_masked() -> None:
    url, host = pinned("https://hooks.example:8443/services/T0/B0/xyz?a=1", "93.184.216.34")
    assert url == "https://93.184.216.34:8443/services/T0/B0/xyz?a=1"
    assert host == "hooks.example:8443"
    assert pinned("http://h.example/p", "2001:db8::1")[0] == "http://[2001:db8::1]/p"
    assert masked("https://hooks.slack.com/services/T0/B0/secret") == "https://hooks.slack.com/…"
