"""What every ``evidence-vault`` command shares: opening the vault, printing, errors, input.

Commands are declared with :func:`command` and :func:`group` (not bare ``click``) so that
each checks its text input, accepts ``--json`` after its name, and turns a VaultError (and
a database outage) into a clear message and the error's ``exit_code`` (the table in
:mod:`cli.main`).
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from cli._errors import show_error
from vault import Vault
from vault.errors import FieldError, VaultError
from vault.inputs import InvalidText, text_problem
from vault.services.outages import unavailable

if TYPE_CHECKING:
    from vault.services.people import Principal

EXIT_FINDINGS = 1  # verify, log verify, verify-bundle: something did not check out
EXIT_UNPINNED = 8  # verify-bundle: consistent, but only against the bundle's own key


def _json_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(dict)["json"] = True  # the same dict as the root's: errors too


class VaultCommand(click.Command):
    """Refuses control characters and lone surrogates in every text option and argument.

    A NUL in ``--reason`` cannot be stored on PostgreSQL, an ESC sequence in a label
    rewrites the next operator's terminal, and bytes that are not UTF-8 reach Python as
    lone surrogates (:mod:`vault.inputs`): exit 3, naming the option, never the value.

    ``json_output=False`` leaves out ``--json`` on a command that prints no result.
    """

    def __init__(self, *args, json_output: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if json_output:
            self.params.append(
                click.Option(
                    ["--json"],
                    is_flag=True,
                    expose_value=False,
                    is_eager=True,
                    callback=_json_flag,
                    help="Machine-readable JSON output (same as the global --json).",
                )
            )

    def invoke(self, ctx: click.Context):
        errors = []
        for param in self.params:
            value = ctx.params.get(param.name or "")
            for item in value if isinstance(value, tuple | list) else (value,):
                if isinstance(item, str) and (problem := text_problem(item, multiline=True)):
                    errors.append(FieldError(_param_name(param), problem))
                    break
        if errors:
            raise InvalidText(errors, hint="correct the listed options and run it again")
        return super().invoke(ctx)


def _param_name(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name


class VaultGroup(click.Group):
    """Turns VaultErrors into a clear message (or JSON) and the error's exit code."""

    command_class = VaultCommand
    group_class = type  # subgroups are VaultGroups: their commands are checked too

    def invoke(self, ctx: click.Context):
        try:
            try:
                return super().invoke(ctx)
            except VaultError:
                raise
            except Exception as exc:
                # the database went away: exit 10 (retry later), not a traceback with SQL
                down = unavailable(exc)
                if down is None:
                    raise
                raise down from None
        except VaultError as exc:
            show_error(ctx, exc, wants_json(ctx))


#: ``@command()`` and ``@group()`` for commands attached with ``add_command`` later
command = functools.partial(click.command, cls=VaultCommand)
group = functools.partial(click.group, cls=VaultGroup)


def wants_json(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("json", False))


def open_vault(ctx: click.Context) -> Vault:
    """The vault of ``--vault``, closed when the command ends."""
    vault = Vault.open(ctx.obj["home"])
    ctx.call_on_close(vault.close)
    return vault


def emit(ctx: click.Context, data, human: str) -> None:
    """Print a command's result: ``data`` as JSON under ``--json``, else ``human``."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if wants_json(ctx) else human)


def parse_when(value: str | None, option: str | None = None) -> datetime | None:
    """An ISO-8601 date or time (UTC unless it says otherwise), or None."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO-8601 date or time (e.g. 2027-03-01 or 2027-03-01T12:00:00Z)",
            param_hint=option,
        ) from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def acting(vault: Vault, handle: str | None, *roles: str) -> Principal:
    """The named person (must exist, be enabled and have one of ``roles``), or the operator."""
    return vault.person(handle, *roles) if handle else vault.operator()


def retention_rule(info) -> str:
    """A campaign's retention rule in words."""
    since = "recording" if info.retention_basis == "recorded" else "last consent use"
    default = ", client default" if info.client_default else ""
    return f"retention {info.retention_days} days after {since}{default}"
