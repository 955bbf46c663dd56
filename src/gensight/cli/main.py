"""The ``gensight`` command. Every flag also reads ``GENSIGHT_<FLAG>`` from the environment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

try:
    import typer
except ImportError:  # the SDK-only install: `pip install gensight`
    raise SystemExit(
        "the gensight command runs the server: pip install 'gensight[server]'"
    ) from None

from gensight.model.settings import DEFAULT_UPSTREAMS, Settings
from gensight.query.params import parse_duration

app = typer.Typer(
    name="gensight",
    help="Self-hosted observability for applications that call LLM APIs.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Self-hosted observability for applications that call LLM APIs."""


def _env(flag: str) -> str:
    return "GENSIGHT_" + flag.upper().replace("-", "_")


def _parse_upstreams(values: list[str] | None) -> dict[str, str]:
    upstreams = dict(DEFAULT_UPSTREAMS)
    for value in values or []:
        for item in value.split(","):
            name, sep, url = item.strip().partition("=")
            if not sep or not name or not url.startswith(("http://", "https://")):
                raise typer.BadParameter(
                    f"{item!r} is not NAME=http(s)://URL", param_hint="--upstream"
                )
            upstreams[name] = url.rstrip("/")
    return upstreams


def _parse_headers(values: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values or []:
        for item in value.split(","):
            key, sep, val = item.strip().partition("=")
            if not sep or not key.strip():
                raise typer.BadParameter(f"{item!r} is not K=V", param_hint="--forward-header")
            headers[key.strip()] = val.strip()
    return headers


def _parse_size(text: str, flag: str = "--max-body") -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a size like 16MiB", param_hint="--max-body"
        ) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar=_env("host"), help="Address to bind.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar=_env("port"), help="HTTP port (OTLP/HTTP, API, UI, gateway).")
    ] = 4318,
    data_dir: Annotated[
        Path, typer.Option(envvar=_env("data_dir"), help="Where the DuckDB file lives.")
    ] = Path("./gensight-data"),
    store: Annotated[
        str | None,
        typer.Option(
            envvar=_env("store"), help="duckdb:///path.db (default DATA_DIR/gensight.duckdb)."
        ),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("prices"), help="TOML file of per-model prices (USD per 1M tokens)."
        ),
    ] = None,
    priced_hosts: Annotated[
        str | None,
        typer.Option(
            envvar=_env("priced_hosts"),
            help="Comma list of loopback/private hosts priced from the public price list "
            "(a private proxy in front of a public provider). Others are self-hosted: "
            "unpriced unless --prices names the model.",
        ),
    ] = None,
    max_body: Annotated[
        str,
        typer.Option(
            envvar=_env("max_body"), help="Largest accepted request body, also after gunzip."
        ),
    ] = "16MiB",
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            envvar=_env("upstream"),
            help="NAME=URL of an upstream the gateway may reach (repeatable).",
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            envvar=_env("retries"),
            min=0,
            help="Gateway retries on 429, 5xx and connection failures (before any byte is sent).",
        ),
    ] = 2,
    fallback: Annotated[
        str | None,
        typer.Option(
            envvar=_env("fallback"), help="Upstream NAME the gateway tries after the last retry."
        ),
    ] = None,
    upstream_timeout: Annotated[
        float,
        typer.Option(
            envvar=_env("upstream_timeout"),
            help="Seconds without a byte from an upstream before the gateway answers 504.",
        ),
    ] = 600.0,
    capture: Annotated[
        str | None,
        typer.Option(
            envvar=_env("capture"),
            help="content (default): store gateway calls' messages; metadata: store none.",
        ),
    ] = None,
    capture_content: Annotated[
        bool,
        typer.Option(
            envvar=_env("capture_content"),
            help="Older spelling of --capture content / --capture metadata.",
        ),
    ] = True,
    redact: Annotated[
        str,
        typer.Option(
            envvar=_env("redact"),
            help="secrets (always on): mask keys, tokens, private keys; pii: also emails, "
            "phone and card numbers, IP addresses.",
        ),
    ] = "secrets",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar=_env("api_key"), help="Require this key (full access) on every request."
        ),
    ] = None,
    api_keys: Annotated[
        str | None,
        typer.Option(
            envvar=_env("api_keys"),
            help="Scoped keys: 'ingest:K1,read:K2,admin:K3' (admin implies read and ingest).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(envvar=_env("insecure"), help="Allow a non-loopback --host without any key."),
    ] = False,
    flush_interval: Annotated[
        float,
        typer.Option(
            envvar=_env("flush_interval"),
            help="Seconds between the writer's store writes (larger batches, later visibility).",
        ),
    ] = 0.5,
    spill_max: Annotated[
        str,
        typer.Option(
            envvar=_env("spill_max"),
            help="Disk the write-ahead journal may use while the store is down.",
        ),
    ] = "1GiB",
    retention: Annotated[
        str | None,
        typer.Option(
            envvar=_env("retention"), help="Keep calls this long (30d, 12h); default: forever."
        ),
    ] = None,
    alert_interval: Annotated[
        str,
        typer.Option(envvar=_env("alert_interval"), help="How often alert rules are evaluated."),
    ] = "30s",
    alert_rules: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("alert_rules"), help="TOML file of alert rules ([[rule]]) stored at start."
        ),
    ] = None,
    forward_otlp: Annotated[
        str | None,
        typer.Option(
            envvar=_env("forward_otlp"),
            help="Also export every recorded call as an OTLP/HTTP GenAI span to this endpoint.",
        ),
    ] = None,
    forward_header: Annotated[
        list[str] | None,
        typer.Option(
            envvar=_env("forward_header"),
            help="K=V header sent with forwarded spans (repeatable, or comma-separated).",
        ),
    ] = None,
    grpc: Annotated[
        bool, typer.Option(envvar=_env("grpc"), help="Also receive OTLP over gRPC.")
    ] = False,
    grpc_port: Annotated[
        int, typer.Option(envvar=_env("grpc_port"), help="OTLP/gRPC port (with --grpc).")
    ] = 4317,
    log_level: Annotated[str, typer.Option(envvar=_env("log_level"))] = "info",
) -> None:
    """Run the server: OTLP ingest, gateway, API and UI on one port."""
    import uvicorn

    from gensight.receive.auth import Keyring, bind_refusal
    from gensight.web.app import create_app

    if prices is not None and not prices.is_file():
        raise typer.BadParameter(f"{prices} does not exist", param_hint="--prices")
    keep = None
    if retention:
        try:
            keep = parse_duration(retention)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--retention") from None
    try:
        interval = parse_duration(alert_interval).total_seconds()
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--alert-interval") from None
    if interval < 0.1:
        raise typer.BadParameter("must be at least 0.1s", param_hint="--alert-interval")
    if alert_rules is not None and not alert_rules.is_file():
        raise typer.BadParameter(f"{alert_rules} does not exist", param_hint="--alert-rules")
    if forward_otlp is not None and not forward_otlp.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"{forward_otlp!r} is not an http(s) URL", param_hint="--forward-otlp"
        )
    if capture is not None and capture not in ("content", "metadata"):
        raise typer.BadParameter(f"{capture!r} is not content or metadata", param_hint="--capture")
    redact_set = {r.strip().lower() for r in redact.split(",") if r.strip()}
    if not redact_set <= {"secrets", "pii"}:
        raise typer.BadParameter(f"{redact!r} is not secrets or pii", param_hint="--redact")
    settings = Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        store=store,
        prices=prices,
        priced_hosts=(
            tuple(h.strip() for h in priced_hosts.split(",") if h.strip())
            if priced_hosts is not None
            else None
        ),
        max_body=_parse_size(max_body),
        upstreams=_parse_upstreams(upstream),
        retries=retries,
        fallback=fallback,
        upstream_timeout=upstream_timeout,
        capture_content=capture == "content" if capture is not None else capture_content,
        api_key=api_key,
        api_keys=api_keys,
        insecure=insecure,
        redact_pii="pii" in redact_set,
        retention=keep,
        spill_max=_parse_size(spill_max, "--spill-max"),
        flush_interval=flush_interval,
        alert_interval=interval,
        alert_rules=alert_rules,
        forward_otlp=forward_otlp,
        forward_headers=_parse_headers(forward_header),
        grpc=grpc,
        grpc_port=grpc_port,
    )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        refusal = bind_refusal(host, Keyring(api_key, api_keys), insecure)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--api-keys") from None
    if refusal is not None:
        typer.echo(f"Error: {refusal}", err=True)
        raise typer.Exit(2)
    try:
        asgi = create_app(settings)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(f"Gensight on http://{host}:{port}  (store: {settings.store_url()})")
    if grpc:
        typer.echo(f"OTLP/gRPC on {host}:{grpc_port}")
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        server_header=False,  # gateway answers carry the upstream's own Server header
        timeout_graceful_shutdown=10,
    )


def _parse_rate(text: str) -> float:
    """``20/s``, ``300/m`` or ``5`` (per second)."""
    value, _, unit = text.strip().partition("/")
    try:
        rate = float(value) / {"": 1, "s": 1, "m": 60, "h": 3600}[unit.strip().lower()]
    except (ValueError, KeyError):
        raise typer.BadParameter(f"{text!r} is not a rate like 20/s", param_hint="--rate") from None
    if rate <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--rate")
    return rate


@app.command()
def demo(
    duration: Annotated[
        str,
        typer.Option(
            envvar=_env("duration"), help="How long to drive traffic: 60s, 10m, or forever."
        ),
    ] = "forever",
    rate: Annotated[
        str, typer.Option(envvar=_env("rate"), help="Requests started per second, e.g. 20/s.")
    ] = "10/s",
    host: Annotated[str, typer.Option(envvar=_env("host"), help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar=_env("port"), help="HTTP port of the server.")] = 4318,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("data_dir"), help="Keep the demo's data here (default: a temp dir)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No live progress display.")] = False,
) -> None:
    """Run Gensight with a simulated upstream and realistic traffic: a live dashboard in seconds."""
    from gensight.demo import run as demo_mod

    seconds = None
    if duration.strip().lower() != "forever":
        try:
            seconds = parse_duration(duration).total_seconds()
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--duration") from None
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    code = demo_mod.run(
        duration=seconds,
        rate=_parse_rate(rate),
        port=port,
        host=host,
        data_dir=data_dir,
        quiet=quiet,
    )
    raise typer.Exit(code)


def _client(url: str, api_key: str | None) -> Any:
    import httpx

    headers = {"X-Gensight-Key": api_key} if api_key else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60)


def _fail(r: Any) -> None:
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        typer.echo(f"error: {r.status_code} {detail}", err=True)
        raise typer.Exit(1)


URL = Annotated[str, typer.Option(envvar=_env("url"), help="The running Gensight server.")]
KEY = Annotated[str | None, typer.Option(envvar=_env("api_key"), help="Its key, if it needs one.")]


@app.command()
def stats(
    since: Annotated[str, typer.Option(help="Time range start: 1h, 7d or ISO 8601.")] = "1h",
    group_by: Annotated[
        str, typer.Option(help="app, model, provider, user, error_class, environment")
    ] = "model",
    url: URL = "http://127.0.0.1:4318",
    api_key: KEY = None,
) -> None:
    """A terminal summary of calls, errors, tokens, cost and latency."""
    import httpx
    from rich.console import Console
    from rich.table import Table

    try:
        with _client(url, api_key) as c:
            r = c.get("/api/stats/overview", params={"since": since, "group_by": group_by})
    except httpx.HTTPError as e:
        typer.echo(f"error: cannot reach {url}: {e}", err=True)
        raise typer.Exit(1) from None
    _fail(r)
    body = r.json()
    console = Console()
    t = body["totals"]
    lat = t["latency_ms"]
    console.print(
        f"[bold]{t['calls']:,}[/] calls since {body['since'][:19]}Z · "
        f"[bold]{t['error_rate']:.1%}[/] errors · [bold]${t['cost_usd']:.4f}[/] · "
        f"{t['input_tokens']:,} in / {t['output_tokens']:,} out tokens · "
        f"p95 {_ms(lat['p95'])}"
    )
    table = Table(title=f"by {group_by}")
    for col in ("", "calls", "errors", "error rate", "tokens in", "tokens out", "cost"):
        table.add_column(col, justify="left" if not col else "right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    for g in body["groups"]:
        table.add_row(
            str(g["group"] if g["group"] is not None else "(none)"),
            f"{g['calls']:,}",
            f"{g['errors']:,}",
            f"{g['error_rate']:.1%}",
            f"{g['input_tokens']:,}",
            f"{g['output_tokens']:,}",
            f"${g['cost_usd']:.4f}",
            _ms(g["latency_ms"]["p50"]),
            _ms(g["latency_ms"]["p95"]),
        )
    console.print(table)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


@app.command()
def export(
    format: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    since: Annotated[str | None, typer.Option(help="Only calls since: 1h, 30d, ISO 8601.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
    url: URL = "http://127.0.0.1:4318",
    api_key: KEY = None,
) -> None:
    """Write every call (with its messages), newest first, as JSON lines or Parquet."""
    import sys

    from rich.progress import Progress

    from gensight.export.files import ParquetSink, iter_export, to_jsonl

    if format not in ("jsonl", "parquet"):
        raise typer.BadParameter("use jsonl or parquet", param_hint="--format")
    params = {"since": since} if since else {}
    with _client(url, api_key) as c:
        r = c.get("/api/stats/overview", params={"since": since or "36500d"})
        _fail(r)
        total = r.json()["totals"]["calls"]
        out = output.open("wb") if output else sys.stdout.buffer
        sink = ParquetSink(out) if format == "parquet" else None
        n = 0
        try:
            with Progress(transient=True, console=_stderr_console()) as progress:
                task = progress.add_task("exporting", total=total)
                for row in iter_export(c, params):
                    if sink is not None:
                        sink.write(row)
                    else:
                        out.write(to_jsonl(row))
                    n += 1
                    progress.advance(task)
            if sink is not None:
                sink.close()
        finally:
            if output:
                out.close()
    typer.echo(f"exported {n:,} calls", err=True)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A .jsonl or .parquet file from gensight export.")],
    url: URL = "http://127.0.0.1:4318",
    api_key: KEY = None,
) -> None:
    """Send exported calls to a running server."""
    from rich.progress import Progress

    from gensight.export.files import BadRecord, calls_from_jsonl, read_parquet, to_jsonl

    if not file.is_file():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    try:
        if file.suffix == ".parquet":
            calls = list(read_parquet(file))
        else:
            calls = calls_from_jsonl(file.read_bytes())
    except (BadRecord, OSError, ValueError) as e:
        typer.echo(f"error: {file}: {e}", err=True)
        raise typer.Exit(1) from None
    with _client(url, api_key) as c, Progress(transient=True, console=_stderr_console()) as p:
        task = p.add_task("importing", total=len(calls))
        for i in range(0, len(calls), 1000):
            chunk = calls[i : i + 1000]
            body = b"".join(to_jsonl(call) for call in chunk)
            r = c.post(
                "/api/import", content=body, headers={"content-type": "application/x-ndjson"}
            )
            _fail(r)
            p.advance(task, len(chunk))
    typer.echo(f"imported {len(calls):,} calls", err=True)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
