"""Every closed list of the system, defined once.

The API's ``Literal`` types and enums, the query layer's validation and its error
messages, the UI's choice lists and labels, the alert rules' fields, the CLI's help and
the Prometheus help text are all built from these tuples, so a value one part accepts
is a value every part accepts, and each field is called one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``error_class`` values (DESIGN.md, "The record").
ERROR_CLASSES = (
    "invalid_request",
    "auth",
    "rate_limit",
    "upstream_error",
    "timeout",
    "connection",
    "cancelled",
    "unknown",
)

#: ``cost_source`` values: our price data, the producer's own figure, the user's price,
#: or not priced (cost null, never 0).
COST_SOURCES = ("computed", "reported", "override", "unknown")

#: ``status`` values.
STATUSES = ("ok", "error")

#: ``source`` values: how a call reached Gensight.
SOURCES = ("gateway", "otlp")

#: Operations that are calls (inference and embeddings); every other span is a span.
CALL_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings", "responses")

#: Token types: the name Prometheus labels use, and the record field holding the count.
TOKEN_TYPES = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("reasoning", "reasoning_tokens"),
)

#: Dimensions ``group_by`` takes (the API, the dashboard, the CLI); the store keys its
#: SQL expression for each by these names.
GROUP_BY = (
    "app",
    "model",
    "provider",
    "user",
    "error_class",
    "environment",
    "operation",
    "source",
    "template",
)

#: How many groups of an overview keep their name; the rest are summed as ``(other)``.
MAX_GROUPS = 10
OTHER_GROUP = "(other)"

#: ``target`` of ``/api/analysis/correlations``.
CORRELATION_TARGETS = ("slow", "error")

#: ``sort`` keys of the call log (DESIGN.md) and its ``order``.
CALL_SORT_KEYS = ("ts", "duration_ms", "ttft_ms", "cost_usd", "input_tokens", "output_tokens")
SORT_ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class Filter:
    """One call filter: its query parameter, its label, its help, its closed choices."""

    name: str
    label: str
    help: str
    choices: tuple[str, ...] | None = None
    #: whether an alert rule may filter by it (time and content search are the rule's own)
    in_rules: bool = True


#: The call filters of ``/api/calls``, the overview, the analysis endpoints, the pages'
#: filter forms, alert rules and the CLI, in the order forms show them.
CALL_FILTERS = (
    Filter("since", "Since", "start: ISO 8601 or relative (15m, 1h, 7d)", in_rules=False),
    Filter("until", "Until", "end: ISO 8601 or relative", in_rules=False),
    Filter("app", "App", "the calling application (service.name)"),
    Filter("model", "Model", "the request model, or the response model when none was asked"),
    Filter("provider", "Provider", "gen_ai.provider.name: openai, anthropic, …"),
    Filter("status", "Status", "ok or error", STATUSES),
    Filter("error_class", "Error class", "why a call failed", ERROR_CLASSES),
    Filter("user", "User", "end-user id"),
    Filter("session", "Session", "conversation id"),
    Filter("environment", "Environment", "deployment.environment"),
    Filter("operation", "Operation", "chat, embeddings, responses, …"),
    Filter("source", "Source", "gateway or otlp", SOURCES),
    Filter("deployment", "Deployment", "Azure OpenAI deployment"),
    Filter("api_version", "API version", "Azure OpenAI api-version"),
    Filter("template_id", "Template", "prompt template: gen_ai.prompt.name or a mined id"),
    Filter("q", "Search messages", "substring of message content", in_rules=False),
    Filter(
        "score",
        "Score",
        "NAME, NAME:<0.5 (<, <=, >, >=, =, != a value) or NAME:=LABEL: calls with such a score",
        in_rules=False,
    ),
)
FILTERS = {f.name: f for f in CALL_FILTERS}
FILTER_NAMES = tuple(FILTERS)
#: The filters an alert rule takes.
RULE_FILTERS = tuple(f.name for f in CALL_FILTERS if f.in_rules)
#: The filters a budget (``"action": "block"``) takes: what the gateway knows of a call.
BUDGET_FILTERS = ("app", "user")

#: Where a score comes from (#20): an end user's feedback, a human annotator, an automated
#: evaluation, or the API without more said.
SCORE_SOURCES = ("user", "human", "eval", "api")
#: What a score is about: one call, a whole trace, or a session (conversation).
SCORE_TARGETS = ("call", "trace", "session")
#: Comparisons of a ``score`` filter (``helpful:<0.5``), longest first for parsing.
SCORE_OPS = ("<=", ">=", "!=", "<", ">", "=")

#: Alert rule measures, each a path into the overview's totals.
ALERT_MEASURES = {
    "cost_usd": ("cost_usd",),
    "calls": ("calls",),
    "errors": ("errors",),
    "error_rate": ("error_rate",),
    "latency_p95_ms": ("latency_ms", "p95"),
    "ttft_p95_ms": ("ttft_ms", "p95"),
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    #: the mean value of the rule's ``score`` (#20) over the window's calls
    "score_mean": ("score_mean",),
    #: the projected spend of the current UTC month (#19, ``query.forecast``); the
    #: rule's window is not used
    "forecast_month_usd": ("forecast_month_usd",),
}
#: The unit of each measure's threshold, as forms and tables show it.
MEASURE_UNITS = {
    "cost_usd": "$", "calls": "calls", "errors": "calls", "error_rate": "ratio 0–1",
    "latency_p95_ms": "ms", "ttft_p95_ms": "ms", "input_tokens": "tokens",
    "output_tokens": "tokens", "score_mean": "score value",
    "forecast_month_usd": "$",
}  # fmt: skip
ALERT_OPS = (">", ">=", "<", "<=")
ALERT_ACTIONS = ("notify", "block")
ALERT_FORMATS = ("json", "slack")
ALERT_STATES = ("ok", "firing")
#: Windows that are calendar periods (UTC) rather than durations ending now.
CALENDAR_WINDOWS = ("day", "month")

#: One term per field, used by the UI, the API docs, the CLI and Prometheus help.
#: ``duration_ms`` is "latency"; ``ttft_ms`` is "TTFT", short for "time to first token";
#: the calling application is the "app", never the "service".
LABELS = {
    "duration_ms": "latency",
    "ttft_ms": "TTFT",
    "app": "app",
    "model": "model",
    "provider": "provider",
    "user": "user",
    "session": "session",
    "environment": "environment",
    "operation": "operation",
    "source": "source",
    "template": "template",
    "template_id": "template",
    "error_class": "error class",
    "status": "status",
    "calls": "calls",
    "errors": "errors",
    "error_rate": "error rate",
    "input_tokens": "tokens in",
    "output_tokens": "tokens out",
    "cost_usd": "cost",
    "unpriced_calls": "unpriced calls",
}
#: Long forms, for tooltips and help text.
LONG_LABELS = {
    "duration_ms": "latency (start to last byte)",
    "ttft_ms": "time to first token",
}


def label(name: str) -> str:
    """The one short term for a field or dimension (the name itself when it has none)."""
    return LABELS.get(name, name.replace("_", " "))


def one_of(values: tuple[str, ...] | list[str]) -> str:
    """``must be one of a, b, c``: every validator's message for a closed list."""
    return f"must be one of {', '.join(values)}"


#: Models ``/analysis`` reprices the range as when none are asked (``as=``).
WHAT_IF_DEFAULTS = ("gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash")
