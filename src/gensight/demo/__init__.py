"""Simulated infrastructure: a fake OpenAI-compatible upstream and a helper to serve
ASGI apps in a background thread (used by tests and ``gensight demo``)."""

from gensight.demo.serve import ServerThread, serve_in_thread
from gensight.demo.upstream import (
    DEMO_PROFILES,
    ModelProfile,
    RequestLog,
    UpstreamConfig,
    create_app,
    serve,
)

__all__ = [
    "DEMO_PROFILES",
    "ModelProfile",
    "RequestLog",
    "ServerThread",
    "UpstreamConfig",
    "create_app",
    "serve",
    "serve_in_thread",
]
