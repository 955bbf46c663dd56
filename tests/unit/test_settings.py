"""Settings declared once: flags, GENSIGHT_* variables, defaults, help, parsers, README."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from gensight.cli.main import app
from gensight.cli.options import build_settings, env_name, settings_table, specs
from gensight.model.settings import DEFAULT_UPSTREAMS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMMAND = typer.main.get_command(app)
SERVE = COMMAND.commands["serve"]  # type: ignore[attr-defined]
SIZE_FLAGS = ["max-body", "spill-max"]
DURATION_FLAGS = [
    "upstream-timeout",
    "connect-timeout",
    "retry-backoff",
    "retry-max-wait",
    "retention",
    "flush-interval",
    "alert-interval",
]


def parse(args: list[str]) -> Settings:
    """What ``gensight serve ARGS`` would run with (options parsed, server not started)."""
    ctx = SERVE.make_context("serve", list(args))
    return build_settings(ctx.params, ctx)


def run(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, args, env={"TERMINAL_WIDTH": "200", **(env or {})})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("GENSIGHT_"):
            monkeypatch.delenv(name)


def test_every_setting_has_flag_env_default_and_help() -> None:
    options = {p.name: p for p in SERVE.params}
    assert [s.name for s in specs()] == list(Settings.model_fields)
    for spec in specs():
        opt = options[spec.name]
        assert f"--{spec.flag}" in opt.opts, spec.name
        assert opt.envvar == spec.env == env_name(spec.flag), spec.name
        assert spec.help.strip() and opt.help, spec.name
        # a default the user can read, or an explicit "none" in the README
        assert spec.shown or spec.default in (None, ""), spec.name
        assert f"`{spec.env}`" in settings_table()


def test_defaults_are_the_declared_ones() -> None:
    s = parse([])
    assert s == Settings()
    assert s.port == 4318 and s.host == "127.0.0.1" and s.grpc_port == 4317
    assert s.max_body == 16 * 1024**2 and s.spill_max == 1024**3
    assert s.upstreams == DEFAULT_UPSTREAMS
    assert s.alert_interval == 30.0 and s.retention is None and s.capture_content is True
    assert s.journal is True and s.forward_headers == {} and s.log_level == "info"


def test_environment_overrides_default_and_flag_overrides_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GENSIGHT_PORT", "5001")
    monkeypatch.setenv("GENSIGHT_SPILL_MAX", "2MiB")
    monkeypatch.setenv("GENSIGHT_RETENTION", "7d")
    monkeypatch.setenv("GENSIGHT_GRPC", "true")
    monkeypatch.setenv("GENSIGHT_JOURNAL", "0")
    monkeypatch.setenv("GENSIGHT_REDACT", "pii")
    s = parse([])
    assert (s.port, s.spill_max, s.retention) == (5001, 2 * 1024**2, timedelta(days=7))
    assert s.grpc is True and s.journal is False and s.redact_pii is True
    s = parse(["--port", "5002", "--spill-max", "3MiB", "--no-grpc", "--redact", "secrets"])
    assert (s.port, s.spill_max, s.grpc, s.redact_pii) == (5002, 3 * 1024**2, False, False)
    assert s.retention == timedelta(days=7)  # not given as a flag: still the variable's


def test_repeatable_flags_and_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse(["--upstream", "a=http://127.0.0.1:1/v1/", "--upstream", "b=http://h:2,c=https://x"])
    assert s.upstreams == {
        **DEFAULT_UPSTREAMS,
        "a": "http://127.0.0.1:1/v1",
        "b": "http://h:2",
        "c": "https://x",
    }
    monkeypatch.setenv("GENSIGHT_UPSTREAM", "d=http://d:1 e=http://e:2")
    monkeypatch.setenv("GENSIGHT_FORWARD_HEADER", "k=v,x-team=llm")
    s = parse([])
    assert set(s.upstreams) == {*DEFAULT_UPSTREAMS, "d", "e"}
    assert s.forward_headers == {"k": "v", "x-team": "llm"}


def test_old_capture_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse(["--no-capture-content"]).capture_content is False
    assert parse(["--capture", "metadata"]).capture_content is False
    # the current spelling wins over the old one
    assert parse(["--capture", "content", "--no-capture-content"]).capture_content is True
    monkeypatch.setenv("GENSIGHT_CAPTURE_CONTENT", "false")
    assert parse([]).capture_content is False
    monkeypatch.setenv("GENSIGHT_CAPTURE", "content")
    assert parse([]).capture_content is True


@pytest.mark.parametrize("flag", SIZE_FLAGS + DURATION_FLAGS)
def test_bad_size_or_duration_names_its_own_flag(flag: str) -> None:
    result = run(["serve", f"--{flag}", "5XB"])
    assert result.exit_code == 2
    assert f"'--{flag}'" in result.output
    others = [f for f in SIZE_FLAGS + DURATION_FLAGS if f != flag]
    assert not any(f"'--{other}'" in result.output for other in others), result.output


@pytest.mark.parametrize("flag", SIZE_FLAGS + DURATION_FLAGS)
def test_bad_environment_value_names_the_flag_and_variable(flag: str) -> None:
    result = run(["serve"], env={env_name(flag): "lots"})
    assert result.exit_code == 2
    assert f"'--{flag}'" in result.output and env_name(flag) in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--port", "70000"], "--port"),
        (["--retries", "-1"], "--retries"),
        (["--upstream", "nourl"], "--upstream"),
        (["--forward-header", "novalue"], "--forward-header"),
        (["--forward-otlp", "ftp://x"], "--forward-otlp"),
        (["--capture", "everything"], "--capture"),
        (["--redact", "nothing"], "--redact"),
        (["--prices", "/nonexistent.toml"], "--prices"),
        (["--alert-rules", "/nonexistent.toml"], "--alert-rules"),
        (["--alert-interval", "0.01"], "--alert-interval"),
        (["--log-level", "loud"], "--log-level"),
        (["--queue-size", "0"], "--queue-size"),
    ],
)
def test_bad_values_name_the_flag(args: list[str], flag: str) -> None:
    result = run(["serve", *args])
    assert result.exit_code == 2 and f"'{flag}'" in result.output, result.output


def test_units_as_people_write_them() -> None:
    s = parse(["--max-body", "64KiB", "--spill-max", "1g", "--flush-interval", "60"])
    assert (s.max_body, s.spill_max, s.flush_interval) == (64 * 1024, 1024**3, 60.0)
    s = parse(["--upstream-timeout", "10m", "--alert-interval", "0.5s", "--retention", "12h"])
    assert (s.upstream_timeout, s.alert_interval) == (600.0, 0.5)
    assert s.retention == timedelta(hours=12)
    assert parse(["--retention", "3600"]).retention == timedelta(hours=1)
    assert parse(["--log-level", "DEBUG"]).log_level == "debug"


def test_settings_in_code_take_plain_values_and_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GENSIGHT_STORE", "clickhouse://prod:8123/db")
    monkeypatch.setenv("GENSIGHT_PORT", "5001")
    s = Settings(
        data_dir=Path("/tmp/x"),
        upstreams={"openai": "http://127.0.0.1:9/v1"},
        max_body=256 * 1024,
        alert_interval=3600,
        spill_max=1,
    )
    assert s.store is None and s.port == 4318
    assert s.upstreams == {"openai": "http://127.0.0.1:9/v1"}  # a dict replaces the default
    assert (s.max_body, s.alert_interval, s.spill_max) == (256 * 1024, 3600.0, 1)
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="spill_max"):
        Settings(spill_max="5XB")


def test_serve_help_renders_rich_markup_literally() -> None:
    result = run(["serve", "--help"])
    assert result.exit_code == 0
    assert "[[rule]]" in result.output
    for spec in specs():
        assert f"--{spec.flag}" in result.output and spec.env in result.output
    assert "--capture-content" not in result.output  # the old spelling works, unadvertised


def test_every_command_flag_reads_its_variable() -> None:
    for name, command in COMMAND.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if param.param_type_name != "option" or param.name in ("help",):
                continue
            flag = max(param.opts, key=len)
            assert param.envvar == env_name(flag), (name, flag)


def test_other_commands_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENSIGHT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("GENSIGHT_SINCE", "2h")
    monkeypatch.setenv("GENSIGHT_GROUP_BY", "app")
    ctx = COMMAND.commands["stats"].make_context("stats", [])  # type: ignore[attr-defined]
    assert ctx.params == {"since": "2h", "group_by": "app", "url": "http://127.0.0.1:1",
                          "api_key": None, "what_if": None}  # fmt: skip
    monkeypatch.setenv("GENSIGHT_RATE", "120/m")
    monkeypatch.setenv("GENSIGHT_DURATION", "1m")
    ctx = COMMAND.commands["demo"].make_context("demo", [])  # type: ignore[attr-defined]
    assert (ctx.params["rate"], ctx.params["duration"]) == (2.0, 60.0)
    assert run(["demo", "--rate", "fast"]).exit_code == 2
    assert "'--rate'" in run(["demo", "--rate", "fast"]).output


def test_readme_table_is_current() -> None:
    path = ROOT / "scripts" / "settings_table.py"
    spec = importlib.util.spec_from_file_location("settings_table", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.render(readme) == readme, "run: python scripts/settings_table.py"
    assert settings_table() in readme
