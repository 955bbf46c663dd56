"""The ``gensight`` command as users run it: a subprocess, its help, its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gensight.cli.options import specs
from tests.support.server import Server

GENSIGHT = [sys.executable, "-m", "gensight.cli"]
# wide, so rich does not wrap a help line in the middle of what is looked for
ENV = {**os.environ, "TERMINAL_WIDTH": "240", "COLUMNS": "240"}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GENSIGHT, *args], capture_output=True, text=True, timeout=60, check=False,
        env={**ENV, **(env or {})},
    )  # fmt: skip


def test_serve_help_shows_every_flag_and_the_rule_table_name() -> None:
    proc = _run("serve", "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "TOML file of alert rules ([[rule]] tables) stored at start." in out
    assert "([])" not in out
    for spec in specs():
        assert f"--{spec.flag}" in out and spec.env in out, spec.flag
    assert "[default: 16MiB]" in out and "[default: openai=https://api.openai.com/v1]" in out


def test_entry_point_runs_the_same_command() -> None:
    exe = Path(sys.executable).with_name("gensight")
    assert exe.is_file(), "the gensight console script is installed with the package"
    proc = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, timeout=60, check=False, env=ENV
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("serve", "demo", "stats", "export", "import"):
        assert command in proc.stdout


def test_bad_variable_is_refused_naming_its_flag(tmp_path: Path) -> None:
    proc = _run("serve", "--data-dir", str(tmp_path), env={"GENSIGHT_SPILL_MAX": "plenty"})
    assert proc.returncode == 2
    assert "'--spill-max'" in proc.stderr and "GENSIGHT_SPILL_MAX" in proc.stderr
    assert "--max-body" not in proc.stderr


def test_serve_takes_port_and_data_dir_from_the_environment(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", via_env=True, env={"GENSIGHT_MAX_BODY": "1KiB"})
    try:
        assert srv.client.get("/api/health").json()["status"] == "ok"
        assert f":{srv.port} " in srv.log_path.read_text()  # "Gensight on http://…:PORT"
        # GENSIGHT_MAX_BODY reached the server too: a 2 KiB body is refused
        r = srv.client.post("/v1/traces", content=b"x" * 2048,
                            headers={"content-type": "application/x-protobuf"})  # fmt: skip
        assert r.status_code == 413, r.text
    finally:
        srv.stop()
    assert (tmp_path / "data" / "gensight.duckdb").is_file()
