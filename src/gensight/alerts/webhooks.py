"""Webhook targets: which URLs an alert may post to, so rules cannot make a port scanner.

A webhook URL is checked when the rule is created (``check_url``) and again at every
delivery after its host name is resolved (``resolve``): http(s) only, no credentials in
the URL, no control characters (CR/LF), and, unless ``--allow-private-webhooks``, none of
its addresses loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
(169.254/16, fe80::/10, which holds the clouds' metadata service), CGNAT (100.64/10),
multicast, unspecified or reserved. The delivery then connects to the address that was
checked (not a second lookup, so DNS rebinding cannot swap it) and never follows
redirects. Slack and similar URLs are secrets: ``masked`` shows only scheme and host.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class WebhookError(ValueError):
    """A webhook URL that may not be used (the message says why)."""


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not receive webhooks without ``--allow-private-webhooks``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a CGNAT (shared) address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or ip.is_reserved:
        return "an unspecified or reserved address"
    if ip.is_private:
        return "a private address"
    return None


def check_url(url: str, allow_private: bool = False) -> str:
    """The URL's host when it may be a webhook target; ``WebhookError`` saying why not.
    (Host names are resolved at send time; an address literal is checked here.)"""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise WebhookError("must not contain spaces or control characters (CR/LF)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise WebhookError(f"is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError("must be an http(s) URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookError("must not carry credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise WebhookError("has no host")
    if port == 0:
        raise WebhookError("has port 0")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not allow_private and (host == "localhost" or host.endswith(".localhost")):
            raise WebhookError(
                "points to a loopback address (use --allow-private-webhooks to allow it)"
            ) from None
        return host
    why = None if allow_private else address_refusal(ip)
    if why:
        raise WebhookError(f"points to {why} (use --allow-private-webhooks to allow it)")
    return host


def resolve(url: str, allow_private: bool = False) -> str:
    """The one address a delivery to ``url`` connects to, after checking every address the
    host resolves to (``WebhookError`` when one may not be used or none resolve)."""
    host = check_url(url, allow_private)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise WebhookError(f"host {host!r} does not resolve ({e})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise WebhookError(f"host {host!r} does not resolve")
    if not allow_private:
        for ip in addresses:
            why = address_refusal(ip)
            if why:
                raise WebhookError(
                    f"host {host!r} resolves to {why} ({ip}); use --allow-private-webhooks"
                )
    return str(addresses[0])


def pinned(url: str, address: str) -> tuple[str, str]:
    """``url`` with its host replaced by ``address``, and the Host header to send."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    netloc = literal + (f":{parts.port}" if parts.port else "")
    host_header = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl(), host_header


def masked(url: str | None) -> str | None:
    """A webhook URL as read-only users see it: scheme and host only."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}/…"
    except ValueError:
        return "…"
