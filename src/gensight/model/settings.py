"""Server settings: one object built by the CLI (flags and ``GENSIGHT_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

DEFAULT_UPSTREAMS = {"openai": "https://api.openai.com/v1"}


@dataclass
class Settings:
    """Everything ``gensight serve`` is configured with."""

    host: str = "127.0.0.1"
    port: int = 4318
    data_dir: Path = field(default_factory=lambda: Path("./gensight-data"))
    store: str | None = None  # duckdb:///path.db; default: DATA_DIR/gensight.duckdb
    prices: Path | None = None  # TOML price overrides
    # loopback/private hosts priced publicly (None: $GENSIGHT_PRICED_HOSTS, see Pricer)
    priced_hosts: tuple[str, ...] | None = None
    max_body: int = 16 * 1024 * 1024  # bytes, also after gunzip
    upstreams: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_UPSTREAMS))
    retries: int = 2  # gateway retries on 429, 5xx and connection failures
    fallback: str | None = None  # upstream tried after the last retry
    upstream_timeout: float = 600.0  # seconds without a byte from the upstream: 504
    connect_timeout: float = 10.0  # seconds to connect to an upstream
    retry_backoff: float = 0.5  # first retry delay (doubles, with jitter)
    retry_max_wait: float = 30.0  # longer Retry-After: answer now instead of waiting
    capture_content: bool = True  # store gateway calls' messages ("--capture content")
    api_key: str | None = None  # full access (admin)
    api_keys: str | None = None  # "ingest:K1,read:K2,admin:K3" (gensight.receive.auth)
    insecure: bool = False  # allow a non-loopback --host without any key
    redact_pii: bool = False  # also mask emails, phone and card numbers, IPs (secrets always)
    retention: timedelta | None = None  # delete calls older than this
    queue_size: int = 50_000  # records held in memory; beyond, batches wait in the journal
    journal: bool = True  # write-ahead journal under DATA_DIR/journal (no loss on crash)
    spill_max: int = 1024**3  # bytes the journal may hold while the store is down
    flush_interval: float = 0.5  # seconds between writer flushes (each store commit costs ~10 ms)
    alert_interval: float = 30.0  # seconds between alert rule evaluations
    alert_rules: Path | None = None  # TOML file of alert rules stored at start
    forward_otlp: str | None = None  # OTLP/HTTP endpoint every recorded call is sent to
    forward_headers: dict[str, str] = field(default_factory=dict)
    grpc: bool = False  # OTLP/gRPC ingest
    grpc_port: int = 4317
    metrics_label_values: int = 50  # distinct values per /metrics label before "other"

    def store_url(self) -> str:
        """The store URL, defaulting to a DuckDB file in the data dir."""
        return self.store or f"duckdb://{(self.data_dir / 'gensight.duckdb').resolve()}"
