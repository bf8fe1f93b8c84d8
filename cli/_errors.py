"""How a refused command is shown: the message, each field's rule, the hint (or the error
as JSON), then the error's exit code. Light on purpose: the agent's slim command tree
(:func:`cli.main_entry`) shows errors with it without loading the vault's database layer."""

from __future__ import annotations

import json

import click

from vault.errors import VaultError


def show_error(ctx: click.Context, exc: VaultError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": exc.to_dict()}, indent=2))
    else:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        for fe in getattr(exc, "errors", []):
            click.echo(f"  - {fe.field}: {fe.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
    ctx.exit(exc.exit_code)
