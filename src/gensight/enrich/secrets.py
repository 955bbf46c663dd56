"""Keep credentials (always) and personal data (``--redact pii``) out of stored text.

Producers record request headers (OpenLLMetry's ``gen_ai.headers``) or client settings,
users paste keys into prompts, and providers quote the key in their error messages
("Incorrect API key provided: sk-…"): none of it may reach the store. ``scrub_text``
masks, in any text:

- private key blocks (``-----BEGIN … PRIVATE KEY-----`` … ``-----END …-----``, also
  JSON-escaped as in GCP service account files): ``[REDACTED PRIVATE KEY]``;
- ``Bearer TOKEN`` and ``authorization`` / ``api-key`` / ``x-api-key`` / ``password`` /
  ``client_secret`` / ``access_token`` / ``aws_secret_access_key``… ``: value`` or
  ``= value`` pairs (the name is kept, the value masked);
- key shapes: OpenAI and Anthropic (``sk-…``, ``sk-proj-…``, ``sk-ant-…``), AWS access
  key ids (``AKIA…``/``ASIA…``), GCP API keys (``AIza…``) and OAuth tokens (``ya29.…``),
  GitHub, Slack and Stripe tokens, JWTs, and passwords in URLs (``://user:pass@``).

Cost matters (ingest handles tens of thousands of spans per second): the patterns are
split into families, and a family's pattern runs on a string only when the lowered
string contains one of the literal fragments all its matches need (``_FAMILIES``);
text without any costs ~16 substring scans (about 8 µs per KB).

``scrub_pii`` (only with ``--redact pii``) masks e-mail addresses (``[EMAIL]``), card
numbers of the major networks that pass the Luhn check (``[CARD]``), phone numbers in
international (``+44 20 7946 0958``), ``(555) 123-4567`` or ``555-123-4567`` shapes
(``[PHONE]``), and IPv4/IPv6 addresses (``[IP]``; IPv6 validated by ``ipaddress``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

MASK = "[REDACTED]"

_KV_NAMES = re.compile(
    r"(?i:authorization|x-api-key|api[-_]?key|apikey|x-goog-api-key|access[-_]?token"
    r"|refresh[-_]?token|id[-_]?token|client[-_]?secret|secret[-_]?access[-_]?key"
    r"|secret[-_]?key|private[-_]?key[-_]?id|password|passwd)[\"']?\s{0,3}\Z"
)
# Each family: the lowercase fragments one of which its matches must contain (checked
# with ``in`` on the lowered text, ~0.5 ns a character each) and its pattern. Only the
# families whose fragment is present run their (slower) pattern.
_PEM = re.compile(
    r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----"
    r"(?s:.*?)(?:-----END[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
# name: value / name=value, found from the separator (a rare character, so the scan is
# fast); the name before it is checked in ``_mask_kv``. The value may start with Bearer.
_KV = re.compile(
    r"(?P<sep>[:=]\s{0,3}[\"']?)(?!(?:(?i:bearer|basic|token)\s+)?\[REDACTED)"
    r"(?P<auth>(?i:bearer|basic|token)\s+)?[^\"'\s,;}&<>]{3,}"
)
_BEARER = re.compile(
    r"(?P<p>\b(?i:bearer)\s+)(?!\[REDACTED)(?=[A-Za-z._~+/\-]*\d)[A-Za-z0-9._~+/\-]{8,}=*"
)
_URL = re.compile(r"(?P<p>://[^/\s:@\"']{1,64}:)[^/\s@\"']{1,128}(?=@)")
# literal first, boundary checked after it: the engine then finds candidates by fast search
_SHAPES = re.compile(
    r"sk-(?<![\w\-]sk-)(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{16,}"
)  # OpenAI, Anthropic
_STRIPE = re.compile(r"(?<![\w\-])[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")  # Stripe
_AWS = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")  # AWS access key ids
_GCP = re.compile(r"\bAIza[0-9A-Za-z_\-]{35}|\bya29\.[0-9A-Za-z_\-]{20,}")  # API keys, OAuth
_TOKENS = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"  # GitHub
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWT
)


def _mask_kv(m: re.Match[str]) -> str:
    start = m.start()
    if _KV_NAMES.search(m.string, max(0, start - 40), start) is None:
        return m.group(0)
    return m.group("sep") + (m.group("auth") or "") + MASK


def _mask_prefixed(m: re.Match[str]) -> str:
    return m.group("p") + MASK


# A query parameter (``?key=…``, ``&sig=…``): its name is checked in ``_mask_query``.
_QUERY = re.compile(r"(?P<p>[?&](?P<n>[A-Za-z][\w.\-]{0,63})=)(?!\[REDACTED)[^&#\s\"'<>\\]+")


class _AllOf:
    """A needle that holds when every one of its fragments is in the text (two ``in``
    scans: much cheaper than a regex whose first character is a class)."""

    def __init__(self, *fragments: str) -> None:
        self.fragments = fragments

    def search(self, low: str) -> bool | None:
        """True when every fragment is in ``low``, else None (as ``re.search``)."""
        return True if all(f in low for f in self.fragments) else None


_QUERY_HINT = _AllOf("?", "=")
# A bare AWS secret access key (in text that mentions AWS): 40 characters of base64's
# alphabet, mixed case with a digit, standing alone (a longer run is some other blob; hex
# digests have one case only).
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[A-Z])"
    r"(?=[A-Za-z0-9/+]{0,39}\d)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)


def _mask_query(m: re.Match[str]) -> str:
    return m.group("p") + MASK if is_secret_param(m.group("n")) else m.group(0)


# (fragments, pattern, replacement): a family's pattern runs only on text whose lowered
# form contains one of its fragments; every match of the pattern contains one.
_GH = re.compile("gh[pousr]_|github_pat")  # one scan ('g' found by the engine's fast path)
_FAMILIES: tuple[tuple[tuple[str | re.Pattern[str], ...], re.Pattern[str], Any], ...] = (
    (("key",), _PEM, "[REDACTED PRIVATE KEY]"),  # first: its body must go whole
    (("key", "authoriz", "token", "secret", "passw"), _KV, _mask_kv),
    (("bearer",), _BEARER, _mask_prefixed),
    (("://",), _URL, _mask_prefixed),
    (("sk-",), _SHAPES, MASK),
    (("k_",), _STRIPE, MASK),
    (("akia", "asia"), _AWS, MASK),
    (("aiza", "ya29."), _GCP, MASK),
    ((_GH, "xox", "eyj"), _TOKENS, MASK),
    ((_QUERY_HINT,), _QUERY, _mask_query),
    # looked for where AWS is mentioned (a key id, "aws"): a scan of every text for 40-char
    # runs would triple the cost of clean records
    (("akia", "asia", "aws"), _AWS_SECRET, MASK),
)
_NEEDLES = tuple(dict.fromkeys(n for needles, _, _ in _FAMILIES for n in needles))
_NEEDLE_FAMILIES = {
    n: frozenset(i for i, (needles, _, _) in enumerate(_FAMILIES) if n in needles) for n in _NEEDLES
}
NONE: frozenset[int] = frozenset()
#: The families worth running on names (attribute keys, span names): key shapes only, not
#: ``name=value`` pairs or query strings, which ``input_tokens``-like names would trigger.
NAME_FAMILIES = frozenset(
    i for i, (_, p, _) in enumerate(_FAMILIES) if p not in (_PEM, _KV, _QUERY)
)


def families(text: str) -> frozenset[int]:
    """Which pattern families may match in ``text`` (the cheap pre-check: substring scans
    of the lowered text, no regex). Empty for text that cannot hold a secret."""
    low = text.lower()
    found = NONE
    for n in _NEEDLES:
        if (n in low) if type(n) is str else (n.search(low) is not None):  # type: ignore[union-attr]
            found = found | _NEEDLE_FAMILIES[n]
    return found


def has_hint(text: str) -> bool:
    """Whether ``text`` may hold a secret (the cheap pre-check alone)."""
    return bool(families(text))


def scrub_with(text: str, fams: frozenset[int]) -> str:
    """``text`` with the matches of the families ``fams`` masked (see ``families``)."""
    for i, (_, pattern, repl) in enumerate(_FAMILIES):
        if i in fams:
            text = pattern.sub(repl, text)
    return text


def scrub_text(text: str) -> str:
    """``text`` with credentials masked (unchanged, and fast, when it has none)."""
    fams = families(text)
    return scrub_with(text, fams) if fams else text


# -- personal data (--redact pii) --------------------------------------------------------

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}"
)
_NUMBERS = re.compile(
    # One leading character class (so the engine skips letters fast), then the branches,
    # each checking that first character and the one before it by lookbehind.
    r"[\d+(](?:"
    # cards of the major networks (Visa, Mastercard, Amex, Discover, JCB, Diners), 13-19 digits
    r"(?<![\d.+][2-6])(?<=[2-6])(?P<card>)(?:(?<=4)|(?<=5)[1-5]|(?<=2)[2-7]|(?<=[36])\d)"
    r"(?:[ \-]?\d){11,17}(?!\d)"
    # IPv4 (not part of a longer dotted number)
    r"|(?<![\d.]\d)(?<=\d)(?P<ip4>)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\.?\d)"
    # phones: international, (area) local, or 555-123-4567
    r"|(?<![\w+]\+)(?<=\+)\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?)(?:[ .\-]?\d{2,4}){2,4}(?!\w)"
    r"|(?<!\w\()(?<=\()\d{2,4}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}(?!\w)"
    r"|(?<![\w.\-]\d)(?<=\d)\d{2}[\-. ]\d{3}[\-. ]\d{4}(?![\w\-])"
    r")"
)
# IPv6 candidates, validated by ``ipaddress`` (only scanned for in text with "::" or hex:hex)
_IP6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_IP6_HINT = re.compile(r"::|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:")


def luhn(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum (card numbers do)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask_number(m: re.Match[str]) -> str:
    text = m.group(0)
    if m.group("card") is not None:
        digits = text.replace(" ", "").replace("-", "")
        return "[CARD]" if 13 <= len(digits) <= 19 and luhn(digits) else text
    if m.group("ip4") is not None:
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            return text
        return "[IP]"
    n = sum(c.isdigit() for c in text)
    return "[PHONE]" if 7 <= n <= 15 else text


def _mask_ip6(m: re.Match[str]) -> str:
    text = m.group(0)
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text
    return "[IP]" if sum(1 for g in text.split(":") if g) >= 2 else text


def scrub_pii(text: str) -> str:
    """``text`` with e-mail addresses, card and phone numbers and IP addresses masked."""
    if "@" in text:
        text = _EMAIL.sub("[EMAIL]", text)
    if ":" in text and _IP6_HINT.search(text) is not None:
        text = _IP6.sub(_mask_ip6, text)
    return _NUMBERS.sub(_mask_number, text)


# Names whose values are secrets whatever they look like (issue #17 item 1). Compared
# after lower-casing and dropping separators, so "X-Api-Key", "api_key" and "apiKey" match;
# a name whose last words form one of them ("openai_api_key", "db_password") matches too.
_SECRET_NAMES = frozenset(
    n.replace("_", "").replace("-", "")
    for n in (
        "password", "passwd", "pwd", "secret", "client_secret", "api_key", "apikey",
        "x-api-key", "api-key", "token", "access_token", "refresh_token", "id_token",
        "auth_token", "authorization", "proxy-authorization", "cookie", "set-cookie",
        "aws_secret_access_key", "aws_session_token", "private_key", "x-goog-api-key",
        "secret_key", "session_token", "credentials",
    )
)  # fmt: skip
# In URLs' query strings these short names carry keys too (Gemini's ?key=, Azure's ?sig=).
_QUERY_NAMES = frozenset({"key", "sig", "signature", "code", "auth"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")


@functools.lru_cache(maxsize=8192)
def is_secret_name(name: str) -> bool:
    """True when an attribute key, header name or JSON key names a secret.

    Only the last dotted segment counts (``http.request.header.authorization``), so
    ``gen_ai.usage.input_tokens`` is not a secret while ``auth.token`` is.
    """
    last = name.rsplit(".", 1)[-1]
    if last.lower().replace("_", "").replace("-", "") in _SECRET_NAMES:
        return True
    words = [w.lower() for w in _WORDS.findall(last)]
    tail = ""
    for w in reversed(words):
        tail = w + tail
        if tail in _SECRET_NAMES:
            return True
    return False


def is_secret_param(name: str) -> bool:
    """True when a URL query parameter's name says its value is a secret."""
    return name.lower() in _QUERY_NAMES or is_secret_name(name)


def mask_value(value: Any) -> Any:
    """The value of a secret-named field, masked whatever its type (None, bools and empty
    strings kept: they hold nothing)."""
    if value is None or value == "" or type(value) is bool:
        return value
    if type(value) is list or type(value) is tuple:
        return [mask_value(v) for v in value]
    return MASK
