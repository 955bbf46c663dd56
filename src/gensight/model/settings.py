"""Server settings, declared once: each field is one ``gensight serve`` flag.

A field's default (written as on the command line), help, type and parser live here and
nowhere else: ``gensight.cli.options`` generates the ``serve`` options from these fields
(flag ``--<field-name>`` unless the field says otherwise, environment variable
``GENSIGHT_<FLAG>``), and the README's configuration table is generated from them too
(``scripts/settings_table``; a unit test checks it is current).

Code that builds ``Settings(...)`` directly (the demo, tests) passes keyword arguments
and gets every other value's default; it never reads the environment, so a shell that
exports ``GENSIGHT_STORE`` for a production server cannot redirect the demo's traffic.
The command line reads ``GENSIGHT_*`` (flag, then variable, then default).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from gensight.model.units import parse_seconds, parse_size

#: ``NAME=[WIRE:]URL``: the wire format (``gensight.receive.gateway.upstreams.WIRES``)
#: prefixes a native upstream's URL; ``/anthropic/…`` and ``/gemini/…`` use these two.
DEFAULT_UPSTREAMS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "anthropic:https://api.anthropic.com",
    "gemini": "gemini:https://generativelanguage.googleapis.com",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _items(value: object) -> list[str]:
    """Repeated flag values, each possibly a comma-separated list."""
    values = [value] if isinstance(value, str) else list(value or [])  # type: ignore[call-overload]
    return [item.strip() for v in values for item in str(v).split(",") if item.strip()]


def parse_upstreams(value: object) -> dict[str, str]:
    """``NAME=URL`` items on top of the default upstream; a dict (from code) is used as is."""
    if isinstance(value, dict):
        return {str(k): str(v).rstrip("/") for k, v in value.items()}
    upstreams = dict(DEFAULT_UPSTREAMS)
    for item in _items(value):
        name, sep, url = item.partition("=")
        bare = url.split(":", 1)[1] if url.startswith(("anthropic:", "gemini:")) else url
        if not sep or not name.strip() or not bare.startswith(("http://", "https://")):
            raise ValueError(f"{item!r} is not NAME=http(s)://URL or NAME=anthropic|gemini:URL")
        upstreams[name.strip()] = url.rstrip("/")
    return upstreams


def parse_pairs(value: object, what: str = "NAME=VALUE") -> dict[str, str]:
    """``NAME=VALUE`` items (repeated or comma-separated) as a dict; a dict passes through."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    pairs: dict[str, str] = {}
    for item in _items(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise ValueError(f"{item!r} is not {what}")
        pairs[key.strip()] = val.strip()
    return pairs


def parse_fallbacks(value: object) -> dict[str, str]:
    """``FROM=TO`` pairs: which upstream ``TO`` takes over when upstream ``FROM`` fails.

    A bare name (the old ``--fallback NAME``, which applied to every upstream and sent
    the client's key and prompt to it) is refused: each pair must be said.
    """
    return parse_pairs(
        value, "FROM=TO (say which upstream falls back, e.g. --fallback openai=azure)"
    )


def parse_upstream_keys(value: object) -> dict[str, str]:
    """``NAME=ENV_VAR`` pairs: the environment variable holding upstream NAME's key."""
    return parse_pairs(value, "NAME=ENV_VAR")


def parse_headers(value: object) -> dict[str, str]:
    """``K=V`` items (repeated or comma-separated) as a dict."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    headers: dict[str, str] = {}
    for item in _items(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not K=V")
        headers[key.strip()] = val.strip()
    return headers


def parse_capture(value: object) -> bool:
    """``content`` (store messages) or ``metadata`` (store none); a bool from the old flag."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("content", *_TRUE):
        return True
    if text in ("metadata", *_FALSE):
        return False
    raise ValueError(f"{value!r} is not content or metadata")


def parse_redact(value: object) -> bool:
    """``secrets`` (always on) or ``pii`` (secrets and personal data): whether PII is masked."""
    if isinstance(value, bool):
        return value
    chosen = {r.strip().lower() for r in str(value).split(",") if r.strip()}
    if not chosen <= {"secrets", "pii"}:
        raise ValueError(f"{value!r} is not secrets or pii")
    return "pii" in chosen


def parse_retention(value: object) -> timedelta | None:
    """A duration (``30d``), or nothing / ``forever``: keep calls forever."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = str(value).strip()
    if text.lower() in ("", "forever", "never"):
        return None
    keep = timedelta(seconds=parse_seconds(text))  # "30d", or seconds
    if keep <= timedelta(0):
        raise ValueError("must be more than 0")
    return keep


def _existing_file(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(f"{path} does not exist")
    return path


def _http_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
Seconds = Annotated[float, BeforeValidator(parse_seconds), Field(ge=0)]
Port = Annotated[int, Field(ge=0, le=65535)]
ExistingFile = Annotated[Path | None, AfterValidator(_existing_file)]


def _host_list(value: object) -> object:
    """``a,b`` (a flag or variable) → ``("a", "b")``; tuples and None pass through."""
    if isinstance(value, str):
        return tuple(h.strip() for h in value.split(",") if h.strip())
    return value


HttpUrl = Annotated[str | None, AfterValidator(_http_url)]


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    shown: str | None = None,
    old_flag: str | None = None,
    repeatable: bool = False,
    **constraints: Any,
) -> Any:
    """Declare one setting.

    ``default`` is written as a user would type it (``"16MiB"``) and parsed like a flag
    value, so help and README show exactly what the flag takes. ``flag`` is the flag's
    name when it differs from the field's (``upstreams`` is ``--upstream``); ``shown`` is
    the default as documented when it is computed (``--store``); ``old_flag`` an older
    ``--x/--no-x`` spelling still accepted; ``repeatable`` flags may be given many times.
    """
    extra = {
        "flag": flag,
        "metavar": metavar,
        "shown": shown,
        "old_flag": old_flag,
        "repeatable": repeatable,
    }
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class Settings(BaseModel):
    """Everything ``gensight serve`` is configured with (one field per flag)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)

    host: str = setting("127.0.0.1", "Address to bind.", metavar="HOST")
    port: Port = setting(4318, "HTTP port: OTLP/HTTP, API, UI and gateway.", metavar="PORT")
    data_dir: Path = setting(
        "./gensight-data", "Where the DuckDB file and the journal live.", metavar="DIR"
    )
    store: str | None = setting(
        None,
        "Store URL: duckdb:///path.db or clickhouse://user:pass@host:8123/db.",
        metavar="URL",
        shown="duckdb://DATA_DIR/gensight.duckdb",
    )
    prices: ExistingFile = setting(
        None, "TOML file of per-model prices (USD per 1M tokens).", metavar="FILE"
    )
    priced_hosts: Annotated[tuple[str, ...] | None, BeforeValidator(_host_list)] = setting(
        None,
        "Comma list of loopback/private hosts priced from the public price list (a private"
        " proxy in front of a public provider). Others are self-hosted: unpriced unless"
        " --prices names the model.",
        metavar="HOSTS",
    )
    max_body: Size = setting(
        "16MiB", "Largest accepted request body, also after gunzip.", metavar="SIZE"
    )
    max_upload: Size = setting(
        "512MiB",
        "Largest gateway upload (a body that is not JSON: files, audio, batch input),"
        " streamed to the upstream; JSON bodies stay within --max-body.",
        metavar="SIZE",
    )
    header_timeout: Annotated[float, BeforeValidator(parse_seconds), Field(gt=0)] = setting(
        "10s", "Time a client has to send a request's headers.", metavar="DURATION"
    )
    body_timeout: Annotated[float, BeforeValidator(parse_seconds), Field(gt=0)] = setting(
        "60s", "Time a client has to send a request's whole body.", metavar="DURATION"
    )
    keep_alive_timeout: Annotated[float, BeforeValidator(parse_seconds), Field(gt=0)] = setting(
        "5s", "Idle time after which a keep-alive connection is closed.", metavar="DURATION"
    )
    upstreams: Annotated[dict[str, str], BeforeValidator(parse_upstreams)] = setting(
        "openai=https://api.openai.com/v1",
        "NAME=URL of an upstream the gateway may reach (repeatable, or comma-separated); "
        "NAME=anthropic:URL or NAME=gemini:URL for one speaking that provider's own API.",
        flag="upstream",
        metavar="NAME=URL",
        repeatable=True,
    )
    retries: int = setting(
        2,
        "Gateway retries on 429, 5xx and connection errors, before the first byte "
        "reaches the client.",
        metavar="N",
        ge=0,
    )
    fallback: Annotated[dict[str, str], BeforeValidator(parse_fallbacks)] = setting(
        "",
        "FROM=TO: upstream TO is tried after upstream FROM's last retry (repeatable; only "
        "the pairs given, so no prompt goes where you did not say).",
        metavar="FROM=TO",
        repeatable=True,
    )
    upstream_keys: Annotated[dict[str, str], BeforeValidator(parse_upstream_keys)] = setting(
        "",
        "NAME=ENV_VAR: the gateway sends upstream NAME the key in ENV_VAR in place of the "
        "client's Authorization/api-key (repeatable). The client's key only ever goes to the "
        "upstream it addressed.",
        flag="upstream-key",
        metavar="NAME=ENV_VAR",
        repeatable=True,
    )
    upstreams_file: ExistingFile = setting(
        None,
        "TOML file of upstreams: [upstreams.NAME] with url, and optionally key_env and "
        "fallback (the same as --upstream, --upstream-key and --fallback).",
        metavar="FILE",
    )
    upstream_timeout: Seconds = setting(
        "600s",
        "Time without a byte from an upstream before the gateway answers 504.",
        metavar="DURATION",
    )
    connect_timeout: Seconds = setting(
        "10s", "Time the gateway waits to connect to an upstream.", metavar="DURATION"
    )
    retry_backoff: Seconds = setting(
        "0.5s", "First retry delay (it doubles each retry, with jitter).", metavar="DURATION"
    )
    retry_max_wait: Seconds = setting(
        "10s",
        "Most time one gateway call spends waiting between retries (Retry-After or backoff);"
        " an answer asking for longer goes to the client as it came.",
        metavar="DURATION",
    )
    capture_content: Annotated[bool, BeforeValidator(parse_capture)] = setting(
        "content",
        "content: store gateway calls' messages; metadata: store none "
        "(--no-capture-content is the old spelling).",
        flag="capture",
        metavar="content|metadata",
        old_flag="capture-content",
    )
    redact_pii: Annotated[bool, BeforeValidator(parse_redact)] = setting(
        "secrets",
        "secrets (always on): mask API keys, tokens and private keys in stored content, "
        "errors and attributes; pii: also e-mails, phone and card numbers, IP addresses.",
        flag="redact",
        metavar="secrets|pii",
    )
    api_key: str | None = setting(
        None,
        "Require this key, full access (Authorization: Bearer or X-Gensight-Key).",
        metavar="KEY",
    )
    api_keys: str | None = setting(
        None,
        "Scoped keys ingest:K1,read:K2,admin:K3: ingest = OTLP and gateway, read = UI and "
        "GET /api, admin = API writes and all; ingest@APP:K binds a key to an app; "
        "annotate = scores (POST /api/scores, which ingest keys may also call, and the call "
        "page's form).",
        metavar="KEYS",
    )
    insecure: bool = setting(False, "Allow a non-loopback --host without any key.")
    trusted_proxy: bool = setting(
        False,
        "Behind a reverse proxy: trust its X-Forwarded-Host/Proto for the same-origin check "
        "of browser writes.",
    )
    allow_private_webhooks: bool = setting(
        False,
        "Let alert webhooks reach loopback, private, link-local and CGNAT addresses.",
    )
    retention: Annotated[timedelta | None, BeforeValidator(parse_retention)] = setting(
        "forever",
        "Delete calls older than this (30d): a TTL on ClickHouse, an hourly delete on DuckDB.",
        metavar="DURATION",
    )
    duckdb_memory: Size = setting(
        "512MiB",
        "DuckDB's memory limit (its buffer pool: cached pages, query and insert state);"
        " beyond it DuckDB spills to disk. DuckDB store only.",
        metavar="SIZE",
    )
    duckdb_threads: Annotated[int, Field(ge=0)] = setting(
        0, "DuckDB's worker threads (0: one per core). DuckDB store only.", metavar="N"
    )
    queue_size: int = setting(
        50_000,
        "Records held in memory; beyond, batches wait in the journal.",
        metavar="N",
        ge=1,
    )
    journal: bool = setting(
        True,
        "Write every batch to DATA_DIR/journal before acknowledging it, so a crash or a "
        "store outage loses nothing.",
    )
    spill_max: Size = setting(
        "1GiB",
        "Disk the journal may use while the store is down (beyond it, OTLP gets 503).",
        metavar="SIZE",
    )
    flush_interval: Seconds = setting(
        "0.5s",
        "Time between the writer's store writes (larger batches, later visibility).",
        metavar="DURATION",
    )
    alert_interval: Annotated[float, BeforeValidator(parse_seconds), Field(ge=0.1)] = setting(
        "30s", "How often alert rules are evaluated.", metavar="DURATION"
    )
    alert_rules: ExistingFile = setting(
        None, "TOML file of alert rules ([[rule]] tables) stored at start.", metavar="FILE"
    )
    forward_otlp: HttpUrl = setting(
        None,
        "Also export every recorded call as an OTLP/HTTP GenAI span to this endpoint.",
        metavar="URL",
    )
    forward_headers: Annotated[dict[str, str], BeforeValidator(parse_headers)] = setting(
        "",
        "K=V header sent with forwarded spans (repeatable, or comma-separated).",
        flag="forward-header",
        metavar="K=V",
        repeatable=True,
    )
    grpc: bool = setting(False, "Also receive OTLP over gRPC.")
    grpc_port: Port = setting(4317, "OTLP/gRPC port (with --grpc).", metavar="PORT")
    metrics_label_values: int = setting(
        50,
        "Distinct values per /metrics label before the rest are counted as 'other'.",
        metavar="N",
        ge=1,
    )
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug"], BeforeValidator(_lower)
    ] = setting(
        "info", "Server log level: critical, error, warning, info or debug.", metavar="LEVEL"
    )

    def store_url(self) -> str:
        """The store URL, defaulting to a DuckDB file in the data dir."""
        return self.store or f"duckdb://{(self.data_dir / 'gensight.duckdb').resolve()}"
