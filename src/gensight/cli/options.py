"""Command-line options generated from their one declaration.

``serve``'s options come from the fields of :class:`gensight.model.settings.Settings`;
the other commands declare theirs with :func:`option`. Either way a flag ``--x-y`` reads
``GENSIGHT_X_Y`` (click: flag, then variable, then default), its value is parsed by the
declared parser and a bad one is reported under its own flag's name. The README's
configuration table is rendered from the same fields by :func:`settings_table`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from rich.markup import escape

from gensight.model.settings import Settings


def env_name(flag: str) -> str:
    """The environment variable a flag reads: ``--spill-max`` → ``GENSIGHT_SPILL_MAX``."""
    return "GENSIGHT_" + flag.lstrip("-").upper().replace("-", "_")


def option(flag: str, help: str, *decls: str, **kwargs: Any) -> Any:
    """A Typer option ``--flag`` that also reads ``GENSIGHT_<FLAG>``; help shown verbatim."""
    return typer.Option(f"--{flag}", *decls, envvar=env_name(flag), help=escape(help), **kwargs)


@dataclass(frozen=True)
class Spec:
    """One ``Settings`` field seen as a flag."""

    name: str  # the field (and the Python parameter)
    flag: str  # without dashes: "spill-max"
    help: str
    default: Any  # as declared, i.e. as typed on the command line ("16MiB")
    shown: str | None  # the default as documented; None: no default worth showing
    computed: bool  # the default is computed at start ("--store": a file in DATA_DIR)
    metavar: str | None
    is_bool: bool
    repeatable: bool
    old_flag: str | None

    @property
    def env(self) -> str:
        """The ``GENSIGHT_*`` variable."""
        return env_name(self.flag)

    @property
    def decl(self) -> str:
        """The flag as click declares it (``--grpc/--no-grpc`` for a switch)."""
        return f"--{self.flag}/--no-{self.flag}" if self.is_bool else f"--{self.flag}"


def _spec(name: str, field: FieldInfo) -> Spec:
    extra = field.json_schema_extra
    assert isinstance(extra, dict), f"Settings.{name} is not declared with setting()"
    is_bool = field.annotation is bool and extra.get("flag") is None
    default = field.default
    shown = extra.get("shown")
    computed = shown is not None
    if shown is None and default not in (None, ""):
        shown = ("on" if default else "off") if is_bool else str(default)
    return Spec(
        name=name,
        flag=str(extra.get("flag") or name.replace("_", "-")),
        help=field.description or "",
        default=default,
        shown=shown,  # type: ignore[arg-type]
        computed=computed,
        metavar=extra.get("metavar"),  # type: ignore[arg-type]
        is_bool=is_bool,
        repeatable=bool(extra.get("repeatable")),
        old_flag=extra.get("old_flag"),  # type: ignore[arg-type]
    )


def specs() -> list[Spec]:
    """Every setting, in declaration order."""
    return [_spec(name, field) for name, field in Settings.model_fields.items()]


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    field = Settings.model_fields[name]
    if not field.metadata:
        return TypeAdapter(field.annotation)
    return TypeAdapter(Annotated[(field.annotation, *field.metadata)])  # type: ignore[misc]


def _message(error: ValidationError) -> str:
    msg = error.errors()[0]["msg"]
    return msg.removeprefix("Value error, ")


def _parser(spec: Spec) -> Callable[[str], Any]:
    """Click's converter for one flag: the field's own validation, failing as that flag."""

    def parse(text: str) -> Any:
        try:
            if spec.repeatable:  # check each value now; Settings combines them
                _adapter(spec.name).validate_python([text])
                return text
            return _adapter(spec.name).validate_python(text)
        except ValidationError as e:
            raise typer.BadParameter(_message(e)) from None

    return parse


def _parameter(spec: Spec) -> inspect.Parameter:
    kwargs: dict[str, Any] = {"envvar": spec.env, "help": escape(spec.help)}
    default = spec.default
    if spec.is_bool:
        kind: Any = bool
    else:
        kind = list[str] | None if spec.repeatable else str | None
        kwargs["parser"] = _parser(spec)  # the default text goes through it too
        kwargs["metavar"] = spec.metavar
        if spec.repeatable:
            default = [default] if default else []
    # click shows a computed default's description in parentheses, others as they are
    kwargs["show_default"] = spec.shown if spec.computed else spec.shown is not None
    annotation = Annotated[kind, typer.Option(spec.decl, **kwargs)]
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


def _old_parameter(spec: Spec) -> inspect.Parameter:
    assert spec.old_flag is not None
    flag = spec.old_flag
    opt = typer.Option(f"--{flag}/--no-{flag}", envvar=env_name(flag), hidden=True)
    return inspect.Parameter(_old_name(spec), inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[bool | None, opt])  # fmt: skip


def _old_name(spec: Spec) -> str:
    return f"{spec.name}__old"


def _parameters() -> Iterator[inspect.Parameter]:
    for spec in specs():
        yield _parameter(spec)
        if spec.old_flag:
            yield _old_parameter(spec)


def build_settings(values: dict[str, Any], ctx: typer.Context | None = None) -> Settings:
    """``Settings`` from the parsed option values; a bad value's error names its flag."""
    given: dict[str, Any] = {}
    for spec in specs():
        value = values.get(spec.name)
        old = values.get(_old_name(spec)) if spec.old_flag else None
        # the old spelling counts only where the new one was not given (flag or variable)
        if old is not None and (ctx is None or _is_default(ctx, spec.name)):
            value = old
        if value is not None:
            given[spec.name] = value
    try:
        return Settings(**given)
    except ValidationError as e:
        loc = e.errors()[0]["loc"]
        flag = next((s.flag for s in specs() if loc and s.name == loc[0]), None)
        raise typer.BadParameter(_message(e), param_hint=f"--{flag}" if flag else None) from None


def _is_default(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is None or source.name == "DEFAULT"


def settings_command(run: Callable[[Settings], None]) -> Callable[..., None]:
    """Turn ``run(settings)`` into a command taking one option per ``Settings`` field."""

    def command(ctx: typer.Context, **values: Any) -> None:
        run(build_settings(values, ctx))

    command.__name__ = run.__name__
    command.__doc__ = run.__doc__
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=typer.Context)  # fmt: skip
    command.__signature__ = inspect.Signature([context, *_parameters()])  # type: ignore[attr-defined]
    return command


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    """The README's configuration table: one row per ``serve`` flag."""
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for s in specs():
        flag = f"`--{s.flag}` / `--no-{s.flag}`" if s.is_bool else f"`--{s.flag}`"
        if s.metavar:
            flag = f"`--{s.flag} {_cell(s.metavar)}`"
        shown = f"`{_cell(s.shown)}`" if s.shown is not None else "none"
        rows.append(f"| {flag} | `{s.env}` | {shown} | {_cell(s.help)} |")
    return "\n".join(rows) + "\n"
