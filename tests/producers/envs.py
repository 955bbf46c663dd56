"""One virtualenv per OTel GenAI producer, built with uv and cached.

The producers pin conflicting versions (openlit wants openai 2.x, the others
take 3.x; openai-v2 needs a specific opentelemetry-util-genai), so each one gets
its own venv, built from ``requirements-<name>.txt`` beside this file into
``<repo>/.cache/producer-envs/<name>-<sha256 of the requirements>[:12]``.
A rebuilt requirements file gets a new directory; an unchanged one is reused
instantly. Needs PyPI the first time (CI builds them itself).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("GENSIGHT_PRODUCER_ENVS", REPO / ".cache" / "producer-envs"))
PRODUCERS = ("openai-v2", "openlit", "traceloop", "openinference", "mlflow", "logfire", "litellm")
#: every environment: the producers, plus an older traceloop (pre gen_ai.input.messages),
#: plus openai-v2 under ``opentelemetry-instrument`` with the default OTLP/gRPC exporter,
#: plus agent frameworks driven by their own scenario script (pydantic-ai), plus the
#: anthropic producers and openai-agents
ENVS = (
    *PRODUCERS, "traceloop-legacy", "otel-instrument", "pydantic-ai", "anthropic", "openai-agents",
)  # fmt: skip
PYTHON_VERSION = "3.11"

_locks: dict[str, threading.Lock] = {name: threading.Lock() for name in ENVS}


def requirements_file(name: str) -> Path:
    return HERE / f"requirements-{name}.txt"


def env_dir(name: str) -> Path:
    """Where the venv of ``name`` lives (depends on the requirements' content)."""
    digest = hashlib.sha256(requirements_file(name).read_bytes()).hexdigest()[:12]
    return CACHE / f"{name}-{digest}"


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _uv(*args: str) -> None:
    cmd = [sys.executable, "-m", "uv", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def ensure_env(name: str) -> Path:
    """Return the python executable of producer ``name``'s venv, building it if needed."""
    if name not in ENVS:
        raise ValueError(f"unknown producer env {name!r}; expected one of {ENVS}")
    venv = env_dir(name)
    marker = venv / ".complete"
    python = _python_in(venv)
    with _locks[name]:
        if marker.exists() and python.exists():
            return python
        tmp = venv.with_name(venv.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        _uv("venv", "--quiet", "--relocatable", "--python", PYTHON_VERSION, str(tmp))
        _uv(
            "pip",
            "install",
            "--quiet",
            "--python",
            str(_python_in(tmp)),
            "-r",
            str(requirements_file(name)),
        )
        # built in a temporary directory, then renamed: a half-built env is never used
        shutil.rmtree(venv, ignore_errors=True)
        tmp.rename(venv)
        marker.write_text(requirements_file(name).read_text())
        return python


NODE_DIR = HERE / "node"
_node_lock = threading.Lock()


def ensure_node_env() -> Path:
    """Return the directory holding ``node/*.mjs`` with its ``node_modules`` installed.

    ``npm ci`` from the committed ``node/package.json`` + ``package-lock.json`` into
    ``<cache>/node-<sha of both>``; the driver is copied in at every call (it is small
    and may change without the lock file changing).
    """
    digest = hashlib.sha256(
        (NODE_DIR / "package.json").read_bytes() + (NODE_DIR / "package-lock.json").read_bytes()
    ).hexdigest()[:12]
    env = CACHE / f"node-{digest}"
    with _node_lock:
        if not (env / ".complete").exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm not found: install Node.js (20+) to run the Vercel AI SDK")
            tmp = env.with_name(env.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copy(NODE_DIR / name, tmp / name)
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=tmp, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"npm ci failed:\n{proc.stdout}\n{proc.stderr}")
            shutil.rmtree(env, ignore_errors=True)
            tmp.rename(env)
            (env / ".complete").write_text(digest)
        for script in NODE_DIR.glob("*.mjs"):  # the drivers: drive.mjs, openai_stream.mjs
            shutil.copy(script, env / script.name)
    return env


if __name__ == "__main__":
    for producer in sys.argv[1:] or ENVS:
        print(producer, ensure_node_env() if producer == "node" else ensure_env(producer))
