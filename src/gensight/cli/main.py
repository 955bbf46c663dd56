"""The ``gensight`` command. Every flag also reads ``GENSIGHT_<FLAG>`` from the environment.

``serve``'s options are generated from :class:`gensight.model.settings.Settings` (see
``gensight.cli.options``); ``stats``, ``export`` and ``import`` talk to a running server
(``gensight.cli.client``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

try:
    import typer
except ImportError:  # the SDK-only install: `pip install gensight`
    raise SystemExit(
        "the gensight command runs the server: pip install 'gensight[server]'"
    ) from None

from gensight.cli import client, maintenance
from gensight.cli.options import option, settings_command
from gensight.model.settings import Settings
from gensight.model.units import parse_duration

app = typer.Typer(
    name="gensight",
    help="Self-hosted observability for applications that call LLM APIs.",
    no_args_is_help=True,
    add_completion=False,
    # help texts are escaped for rich (gensight.cli.options): "[[rule]]" shows as written
    rich_markup_mode="rich",
)


@app.callback()
def _root() -> None:
    """Self-hosted observability for applications that call LLM APIs."""


@app.command()
@settings_command
def serve(settings: Settings) -> None:
    """Run the server: OTLP ingest, gateway, API and UI on one port."""
    import duckdb
    import uvicorn

    from gensight.pipeline.lock import DataDirLocked
    from gensight.receive.auth import Keyring, bind_refusal
    from gensight.receive.limits import server_options
    from gensight.web.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.umask(0o077)  # every file the server (and its store) creates is its owner's only
    try:
        refusal = bind_refusal(
            settings.host, Keyring(settings.api_key, settings.api_keys), settings.insecure
        )
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--api-keys") from None
    if refusal is not None:
        typer.echo(f"Error: {refusal}", err=True)
        raise typer.Exit(2)
    try:
        asgi = create_app(settings)
    except DataDirLocked as e:  # another server runs on this dir: one line, no traceback
        raise SystemExit(f"Error: {e}") from None
    except (OSError, duckdb.Error) as e:  # read-only or full disk, unreadable store file
        where = getattr(e, "filename", None) or settings.data_dir
        raise SystemExit(
            f"Error: cannot use {where}: {getattr(e, 'strerror', None) or e}"
        ) from None
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(
        f"Gensight on http://{settings.host}:{settings.port}  (store: {settings.store_url()})"
    )
    if settings.grpc:
        typer.echo(f"OTLP/gRPC on {settings.host}:{settings.grpc_port}")
    uvicorn.run(
        asgi,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,  # gateway answers carry the upstream's own Server header
        timeout_graceful_shutdown=10,
        **server_options(settings.header_timeout, settings.keep_alive_timeout),
    )


def parse_rate(text: str) -> float:
    """``20/s``, ``300/m`` or ``5`` (per second)."""
    value, _, unit = text.strip().partition("/")
    try:
        rate = float(value) / {"": 1, "s": 1, "m": 60, "h": 3600}[unit.strip().lower()]
    except (ValueError, KeyError):
        raise typer.BadParameter(f"{text!r} is not a rate like 20/s") from None
    if rate <= 0:
        raise typer.BadParameter("must be more than 0")
    return rate


def parse_demo_duration(text: str) -> float | None:
    """Seconds, or None for ``forever``."""
    if text.strip().lower() == "forever":
        return None
    try:
        return parse_duration(text).total_seconds()
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


@app.command()
def demo(
    duration: Annotated[
        float | None,
        option(
            "duration",
            "How long to drive traffic: 60s, 10m, or forever.",
            parser=parse_demo_duration,
            metavar="DURATION",
        ),
    ] = "forever",  # type: ignore[assignment]  # click parses the default text too
    rate: Annotated[
        float,
        option(
            "rate", "Requests started per second, e.g. 20/s.", parser=parse_rate, metavar="RATE"
        ),
    ] = "10/s",  # type: ignore[assignment]
    host: Annotated[str, option("host", "Address to bind.")] = "127.0.0.1",
    port: Annotated[int, option("port", "HTTP port of the server.")] = 4318,
    data_dir: Annotated[
        Path | None, option("data-dir", "Keep the demo's data here (default: a temp dir).")
    ] = None,
    quiet: Annotated[bool, option("quiet", "No live progress display.")] = False,
) -> None:
    """Run Gensight with a simulated upstream and realistic traffic: a live dashboard in seconds."""
    from gensight.demo import run as demo_mod

    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    code = demo_mod.run(
        duration=duration, rate=rate, port=port, host=host, data_dir=data_dir, quiet=quiet
    )
    raise typer.Exit(code)


app.command()(client.stats)
app.command()(client.export)
app.command("import")(client.import_)
app.command()(maintenance.rebuild)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
