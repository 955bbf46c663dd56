"""``gensight stats``, ``export`` and ``import``: commands that talk to a running server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gensight.cli.options import option
from gensight.model import vocab

URL = Annotated[str, option("url", "The running Gensight server.")]
KEY = Annotated[str | None, option("api-key", "Its key, if it needs one.")]
DEFAULT_URL = "http://127.0.0.1:4318"


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


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def stats(
    since: Annotated[str, option("since", "Time range start: 1h, 7d or ISO 8601.")] = "1h",
    group_by: Annotated[str, option("group-by", ", ".join(vocab.GROUP_BY))] = "model",
    what_if: Annotated[
        str | None,
        option(
            "what-if",
            "Reprice the range's usage as these models (comma list; provider:model to pin).",
        ),
    ] = None,
    url: URL = DEFAULT_URL,
    api_key: KEY = None,
) -> None:
    """A terminal summary of calls, errors, tokens, cost and latency."""
    import httpx
    from rich.console import Console
    from rich.table import Table

    if what_if:
        _what_if(since, group_by, what_if, url, api_key)
        return
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


def _what_if(since: str, group_by: str, targets: str, url: str, api_key: str | None) -> None:
    """``stats --what-if``: the real cost next to each target's, per group."""
    import httpx
    from rich.console import Console
    from rich.table import Table

    params = {"since": since, "group_by": group_by, "as": targets}
    try:
        with _client(url, api_key) as c:
            r = c.get("/api/analysis/what-if", params=params)
    except httpx.HTTPError as e:
        typer.echo(f"error: cannot reach {url}: {e}", err=True)
        raise typer.Exit(1) from None
    _fail(r)
    body = r.json()
    console = Console()
    t = body["totals"]
    parts = [f"[bold]{t['calls']:,}[/] calls since {since}: ${t['cost_usd']:.4f}"]
    for x in t["targets"]:
        parts.append(f"on {x['model']}: ${x['cost_usd']:.4f}" + (" *" if x["estimate"] else ""))
    console.print("; ".join(parts))
    table = Table(title=f"what if, by {group_by}")
    table.add_column("")
    table.add_column("calls", justify="right")
    table.add_column("cost", justify="right")
    for name in body["targets"]:
        table.add_column(f"on {name}", justify="right")
    for g in body["groups"]:
        table.add_row(
            str(g["group"] if g["group"] is not None else "(none)"),
            f"{g['calls']:,}",
            f"${g['cost_usd']:.4f}",
            *(f"${x['cost_usd']:.4f}" + (" *" if x["estimate"] else "") for x in g["targets"]),
        )
    console.print(table)
    if body.get("note"):
        console.print(f"* {body['note']}")


def export(
    format: Annotated[str, option("format", "jsonl or parquet")] = "jsonl",
    since: Annotated[str | None, option("since", "Only calls since: 1h, 30d, ISO 8601.")] = None,
    output: Annotated[
        Path | None, option("output", "File to write (default stdout).", "-o")
    ] = None,
    url: URL = DEFAULT_URL,
    api_key: KEY = None,
) -> None:
    """Write every call (with its messages), newest first, as JSON lines or Parquet."""
    from rich.progress import Progress

    from gensight.export.files import ParquetSink, iter_export, to_jsonl

    if format not in ("jsonl", "parquet"):
        raise typer.BadParameter("use jsonl or parquet", param_hint="--format")
    params = {"since": since} if since else {}
    with _client(url, api_key) as c:
        r = c.get("/api/stats/overview", params={"since": since or "1970-01-01T00:00:00Z"})
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


def import_(
    file: Annotated[Path, typer.Argument(help="A .jsonl or .parquet file from gensight export.")],
    url: URL = DEFAULT_URL,
    api_key: KEY = None,
) -> None:
    """Send exported calls, and their scores, to a running server."""
    from rich.progress import Progress

    from gensight.export.files import BadRecord, read_parquet, records_from_jsonl, to_jsonl

    if not file.is_file():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    try:
        if file.suffix == ".parquet":
            calls, scores = [], {}
            for call, of_call in read_parquet(file):
                calls.append(call)
                scores.update((s.id, s) for s in of_call)
        else:
            found, listed = records_from_jsonl(file.read_bytes())
            calls, scores = found, {s.id: s for s in listed}
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
        kept = list(scores.values())
        for i in range(0, len(kept), 1000):
            r = c.post("/api/scores", json=[s.to_dict() for s in kept[i : i + 1000]])
            _fail(r)
    typer.echo(f"imported {len(calls):,} calls and {len(kept):,} scores", err=True)
