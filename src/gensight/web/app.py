"""Builds the one ASGI app: OTLP ingest, gateway, JSON API and web UI on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import duckdb
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gensight.alerts import AlertEngine, load_rules_file
from gensight.enrich.pricing import Pricer
from gensight.enrich.redaction import Redactor
from gensight.enrich.templates import Templater
from gensight.export.otlp import Forwarder
from gensight.export.prometheus import Metrics, metrics_route, server_collector
from gensight.model.settings import Settings
from gensight.pipeline.files import private_file, private_tree
from gensight.pipeline.journal import Journal
from gensight.pipeline.lock import DataDirLock
from gensight.pipeline.setaside import SetAside
from gensight.pipeline.writer import Pipeline
from gensight.query.params import ParamError
from gensight.receive.auth import AuthMiddleware, Keyring
from gensight.receive.gateway import GatewayMiddleware
from gensight.receive.gateway import from_settings as gateway_from_settings
from gensight.receive.limits import BodyLimit
from gensight.receive.origin import OriginGuard
from gensight.receive.otlp.decode import LOGS, TRACES, replay_logs, replay_traces
from gensight.receive.otlp.http import otlp_routes
from gensight.store import open_store
from gensight.web.api import router as api_router
from gensight.web.api_people import router as people_api_router
from gensight.web.savings_api import router as savings_router
from gensight.web.scores import api_router as scores_api_router
from gensight.web.scores import form_router as scores_form_router
from gensight.web.ui import mount_ui

log = logging.getLogger("gensight.web.app")


def create_app(settings: Settings, store: Any | None = None) -> FastAPI:
    """The whole server as one FastAPI app (the store is opened here unless given).

    Takes the data dir's lock first (``DataDirLocked`` when another server holds it),
    before the journal or the store is opened, and lets it go when the app shuts down."""
    lock = DataDirLock(settings.data_dir).acquire()
    try:
        return _build_app(settings, store, lock)
    except BaseException:
        lock.release()
        raise


def _build_app(settings: Settings, store: Any | None, lock: DataDirLock) -> FastAPI:
    keyring = Keyring(settings.api_key, settings.api_keys)  # ValueError when malformed
    store = (
        store
        if store is not None
        else open_store(
            settings.store_url(),
            settings.retention,
            settings.duckdb_memory,
            settings.duckdb_threads,
        )
    )
    private_tree(settings.data_dir)  # prompts and unredacted payloads: owner only
    url = settings.store_url()
    if url.startswith("duckdb://"):  # a store file kept elsewhere
        for suffix in ("", ".wal"):
            private_file(Path(url.removeprefix("duckdb://") + suffix))
    pricer = Pricer(settings.prices, settings.priced_hosts, cache_dir=settings.data_dir / "cache")
    journal = (
        Journal(settings.data_dir / "journal", settings.spill_max) if settings.journal else None
    )
    pipeline = Pipeline(
        store,
        pricer,
        queue_size=settings.queue_size,
        flush_interval=settings.flush_interval,
        journal=journal,
        redactor=Redactor(pii=settings.redact_pii),
        set_aside=SetAside(settings.data_dir / "set-aside"),
        templater=Templater(
            getattr(store, "load_template_state", None), getattr(store, "save_template_state", None)
        ),
    )
    pipeline.register_decoder(TRACES, replay_traces)
    pipeline.register_decoder(LOGS, replay_logs)
    counters: dict[str, int] = {}
    gateway = gateway_from_settings(settings, pipeline.submit, counters)
    file_rules = load_rules_file(settings.alert_rules) if settings.alert_rules else []
    alerts = AlertEngine(
        store,
        interval=settings.alert_interval,
        file_rules=file_rules,
        allow_private_webhooks=settings.allow_private_webhooks,
    )
    gateway.budget = alerts.budget
    forwarder = (
        Forwarder(
            settings.forward_otlp,
            settings.forward_headers,
            call_contexts=getattr(store, "call_contexts", None),
        )
        if settings.forward_otlp
        else None
    )
    metrics = Metrics(settings.metrics_label_values)
    metrics.add_collector(server_collector(pipeline, counters, alerts, forwarder))
    pipeline.add_observer(metrics.observe)
    pipeline.add_observer(alerts.observe)
    if forwarder is not None:
        pipeline.add_observer(forwarder.observe)
        pipeline.add_score_observer(forwarder.observe_scores)
    grpc: Any = None
    if settings.grpc:  # grpcio (~10 MB) only when asked for
        from gensight.receive.otlp.grpc import GrpcReceiver

        grpc = GrpcReceiver(
            pipeline.submit,
            counters,
            host=settings.host,
            port=settings.grpc_port,
            max_body=settings.max_body,
            keyring=keyring,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # genai-prices loads its data on first use: do it before the first request, off
        # the event loop, so the writer never waits for it (a data dir's first start also
        # compiles it, ~1 s: accepted calls must still be queryable within a second)
        await asyncio.to_thread(_warm_prices, pricer)
        pipeline.start()
        if forwarder is not None:
            forwarder.start()
        alerts.start()
        await gateway.start()
        if grpc is not None:
            grpc.start()
        try:
            yield
        finally:
            if grpc is not None:
                grpc.stop()
            await gateway.close()
            pipeline.stop()
            if forwarder is not None:
                forwarder.stop()
            alerts.stop()
            store.close()
            if journal is not None:
                journal.close()
            lock.release()

    app = FastAPI(
        title="Gensight",
        version="0.1.0",
        description="Observability for applications that call LLM APIs.",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: the server stays
        # offline and under its own CSP, so they are off (the schema is /openapi.json)
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.pipeline = pipeline
    app.state.pricer = pricer
    app.state.counters = counters
    app.state.gateway = gateway
    app.state.alerts = alerts
    app.state.metrics = metrics
    app.state.forwarder = forwarder
    app.state.grpc = grpc
    app.state.keyring = keyring
    app.state.data_dir_lock = lock

    @app.exception_handler(ParamError)
    async def _param_error(request: Request, exc: ParamError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "param": exc.param}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        param = ".".join(loc) or "request"
        message = f"invalid parameter {param!r}: {first.get('msg', 'invalid value')}"
        return JSONResponse({"detail": message, "param": param}, status_code=400)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # numbers from a request beyond what a date or an integer column can hold
        log.info("out-of-range input on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": f"a value in the request is out of range ({exc})", "param": "request"},
            status_code=400,
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(duckdb.OutOfMemoryException)
    async def _store_memory(request: Request, exc: Exception) -> JSONResponse:
        # a question too big for the store's memory limit: say so, and how to narrow it
        log.warning("query over the store's memory limit: %s %s", request.url.path, exc)
        return JSONResponse(
            {
                "detail": "this query needs more memory than the store may use;"
                " narrow the time range (since/until) or add filters"
            },
            status_code=503,
        )

    app.include_router(api_router)
    app.include_router(scores_api_router)
    app.include_router(scores_form_router)
    app.include_router(people_api_router)
    app.include_router(savings_router)
    app.router.routes.append(metrics_route(metrics))
    mount_ui(app)
    routes = otlp_routes(
        pipeline.submit, settings.max_body, app.state.counters, pipeline.conditions.reason
    )
    for route in routes:
        app.router.routes.append(route)
    app.add_middleware(GatewayMiddleware, gateway=gateway)
    app.add_middleware(OriginGuard, trusted_proxy=settings.trusted_proxy)
    if keyring:
        app.add_middleware(AuthMiddleware, keyring=keyring, refuse=gateway.refuse)
    app.add_middleware(BodyLimit, max_body=settings.max_body, body_timeout=settings.body_timeout)
    return app


def _warm_prices(pricer: Pricer) -> None:
    try:
        pricer.cost(provider="openai", model="gpt-4o-mini", input_tokens=1, output_tokens=1)
    except Exception as e:  # never fatal: calls are priced later or marked unknown
        log.warning("price data failed to load: %s", e)
