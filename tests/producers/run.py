"""Run a real producer (in its own venv) against the fake upstream and capture its OTLP.

    python tests/producers/run.py                 # regenerate every fixture
    python tests/producers/run.py openlit         # one producer, all its variants

Fixtures go to ``tests/fixtures/otlp/<variant>/{traces,logs,metrics}-N.json``,
where ``<variant>`` is ``<producer>[-latest][-content]``.
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
from envs import ensure_env  # noqa: E402

from gensight.demo.upstream import create_app, serve  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "otlp"


@dataclass(frozen=True)
class Variant:
    producer: str
    mode: str = "default"  # "latest": OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental
    content: bool = False
    env: str = ""  # venv to run in (default: the producer's own)
    driver: str = "drive.py"  # the scenario script (agent frameworks have their own)

    @property
    def name(self) -> str:
        return (
            (self.env or self.producer)
            + ("-latest" if self.mode == "latest" else "")
            + ("-content" if self.content else "")
        )


VARIANTS: tuple[Variant, ...] = (
    Variant("openai-v2"),
    Variant("openai-v2", content=True),
    Variant("openai-v2", "latest"),
    Variant("openai-v2", "latest", content=True),
    Variant("openlit"),
    Variant("openlit", content=True),
    Variant("traceloop"),
    Variant("traceloop", content=True),
    Variant("traceloop", env="traceloop-legacy"),
    Variant("traceloop", content=True, env="traceloop-legacy"),
    Variant("openinference"),
    Variant("openinference", content=True),
    # these three always send content (mlflow's spanInputs, logfire's request_data) or do
    # unless told not to (litellm)
    Variant("mlflow", content=True),
    Variant("logfire", content=True),
    Variant("logfire", "latest", content=True),
    Variant("litellm"),
    Variant("litellm", content=True),
)

#: Agent frameworks, each with its own scenario (see its driver's docstring): not the
#: six-call scenario of drive.py, so tests/e2e/test_producers_e2e.py does not run them.
AGENT_VARIANTS: tuple[Variant, ...] = (
    Variant("pydantic-ai", driver="drive_pydantic_ai.py"),
    Variant("pydantic-ai", content=True, driver="drive_pydantic_ai.py"),
)

_PREFIXES = ("TRACELOOP_", "OPENLIT_", "OPENINFERENCE_", "MLFLOW_", "LOGFIRE_", "LITELLM_", "OTEL_")
#: producers driven through the extended scenario (8 calls: + a tool round trip)
EXTENDED = frozenset({"mlflow", "logfire", "litellm"})
# variables of the calling environment that would change what a producer does
_SCRUB = (
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
)


def run_variant(
    variant: Variant,
    out_dir: Path | None = None,
    timeout: float = 180.0,
    otlp: str | None = None,
) -> tuple[CaptureServer, subprocess.CompletedProcess[str]]:
    """Run ``variant`` once; return the capture (already stopped) and the process result.

    With ``otlp`` (a running Gensight), the producer exports there instead of to the
    capture receiver, which then stays empty.
    """
    python = ensure_env(variant.env or variant.producer)
    if out_dir is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith(_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    app = create_app()
    with serve(app) as upstream, CaptureServer(out_dir) as capture:
        cmd = [
            str(python),
            str(HERE / variant.driver),
            "--producer",
            variant.producer,
            "--upstream",
            upstream,
            "--otlp",
            otlp or capture.url,
            "--mode",
            variant.mode,
        ]
        if variant.content:
            cmd.append("--capture-content")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    capture.upstream_log = app.state.log  # type: ignore[attr-defined]
    return capture, proc


def main(argv: list[str]) -> int:
    wanted = set(argv)
    failed = 0
    for variant in VARIANTS + AGENT_VARIANTS:
        if wanted and not wanted & {variant.producer, variant.env, variant.name}:
            continue
        capture, proc = run_variant(variant, FIXTURES / variant.name)
        counts = {k: len(v) for k, v in capture.requests.items()}
        status = "ok" if proc.returncode == 0 and not capture.errors else "FAILED"
        print(f"{variant.name:32} {status} spans={len(capture.spans())} "
              f"logs={len(capture.log_records())} requests={counts}")  # fmt: skip
        if status != "ok":
            failed += 1
            print(proc.stdout[-3000:], proc.stderr[-3000:], capture.errors, sep="\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
