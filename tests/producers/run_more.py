"""Run the anthropic, openai-agents and Vercel AI SDK producers and capture their OTLP.

    python tests/producers/run_more.py                    # regenerate every fixture
    python tests/producers/run_more.py anthropic          # one producer, all its variants
    python tests/producers/run_more.py vercel-ai-content  # one variant

Each runs in its own environment (envs.py: a uv venv, or ``npm ci`` of tests/producers/node)
against a fake upstream (``gensight.demo.anthropic_upstream`` for anthropic, the fake OpenAI
one for the others). Fixtures go to ``tests/fixtures/otlp/<variant>/traces-N.json``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

from capture import CaptureServer  # noqa: E402
from envs import ensure_env, ensure_node_env  # noqa: E402
from run import _SCRUB  # noqa: E402

from gensight.demo import anthropic_upstream, upstream  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "otlp"


@dataclass(frozen=True)
class MoreVariant:
    name: str
    producer: str  # anthropic | openai-agents | vercel-ai
    content: bool = False
    sdk_spans: bool = True  # anthropic: the SDK's own spans
    openllmetry: bool = False  # anthropic: opentelemetry-instrumentation-anthropic too
    integration: str = "legacy"  # vercel-ai: @ai-sdk/otel's LegacyOpenTelemetry or OpenTelemetry


VARIANTS: tuple[MoreVariant, ...] = (
    MoreVariant("anthropic", "anthropic"),
    MoreVariant("anthropic-content", "anthropic", content=True),
    MoreVariant("anthropic-openllmetry", "anthropic", sdk_spans=False, openllmetry=True),
    MoreVariant("anthropic-openllmetry-content", "anthropic", True, False, True),
    MoreVariant("anthropic-both-content", "anthropic", content=True, openllmetry=True),
    MoreVariant("openai-agents", "openai-agents"),
    MoreVariant("openai-agents-content", "openai-agents", content=True),
    MoreVariant("vercel-ai", "vercel-ai"),
    MoreVariant("vercel-ai-content", "vercel-ai", content=True),
    MoreVariant("vercel-ai-otel-content", "vercel-ai", content=True, integration="otel"),
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith(
        ("TRACELOOP_", "OPENLIT_", "OPENINFERENCE_", "ANTHROPIC_", "OPENAI_AGENTS_"))}  # fmt: skip
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_variant(
    variant: MoreVariant,
    out_dir: Path | None = None,
    timeout: float = 240.0,
    otlp: str | None = None,
) -> tuple[CaptureServer, subprocess.CompletedProcess[str]]:
    """Run ``variant`` once; return the capture (stopped; ``.upstream_log`` set) and the process.

    With ``otlp`` (a running Gensight), the producer exports there instead of to the
    capture receiver, which then stays empty.
    """
    if out_dir is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
    env = _env()
    env["OTEL_SERVICE_NAME"] = f"producer-{variant.producer}"
    env["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment=test"
    env["OTEL_NODE_RESOURCE_DETECTORS"] = "env"  # no host ids or local paths in fixtures
    if variant.producer == "anthropic":
        app = anthropic_upstream.create_app()
        serving = anthropic_upstream.serve(app)
    else:
        app = upstream.create_app()
        serving = upstream.serve(app)
    with serving as base, CaptureServer(out_dir) as capture:
        target = otlp or capture.url
        if variant.producer == "vercel-ai":
            node_env = ensure_node_env()
            cmd = [shutil.which("node") or "node", str(node_env / "drive.mjs"), "--upstream",
                   base, "--otlp", target, "--integration", variant.integration]  # fmt: skip
            cwd: Path | None = node_env
        else:
            python = ensure_env(variant.producer)
            cmd = [str(python), str(HERE / "drive_more.py"), "--producer", variant.producer,
                   "--upstream", base, "--otlp", target,
                   "--sdk-spans", "on" if variant.sdk_spans else "off"]  # fmt: skip
            if variant.openllmetry:
                cmd.append("--openllmetry")
            cwd = None
        if variant.content:
            cmd.append("--capture-content")
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    capture.upstream_log = app.state.log  # type: ignore[attr-defined]
    return capture, proc


def main(argv: list[str]) -> int:
    wanted = set(argv)
    failed = 0
    for variant in VARIANTS:
        if wanted and not wanted & {variant.producer, variant.name}:
            continue
        capture, proc = run_variant(variant, FIXTURES / variant.name)
        status = "ok" if proc.returncode == 0 and not capture.errors else "FAILED"
        print(f"{variant.name:32} {status} spans={len(capture.spans())}")
        if status != "ok":
            failed += 1
            print(proc.stdout[-3000:], proc.stderr[-3000:], capture.errors, sep="\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
