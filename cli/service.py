"""Commands for the HTTP service: ``serve`` and API tokens."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import click

from cli.main import _emit, _open, _when, cli
from vault.services import tokens

_DURATION = re.compile(r"(\d+)([dhm])")

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "vault": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8400, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    help="Worker processes; use PostgreSQL for more than one.",
)
@click.pass_context
def serve(ctx, host, port, workers) -> None:
    """Run the HTTP API (OpenAPI at /openapi.json, interactive docs at /docs)."""
    import uvicorn

    _open(ctx).close()  # fail here, clearly, if the vault cannot be opened
    os.environ["EVIDENCE_VAULT_HOME"] = str(ctx.obj["home"])
    uvicorn.run(
        "vault.http.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours logs paths without query strings (no PII)
        proxy_headers=False,
        log_config=LOG_CONFIG,  # applied in every worker process, not just the parent
    )


@cli.group()
def token() -> None:
    """API tokens: created here, shown once, stored only as a hash."""


@token.command("create")
@click.option(
    "--role", required=True, type=click.Choice(tokens.ROLES), help="What the token may do."
)
@click.option("--client", "client_id", help="The client (tenant); optional only for admins.")
@click.option("--campaign", help="Dialer tokens: only this campaign.")
@click.option("--expires", help="A lifetime (90d, 12h, 30m) or an ISO-8601 time.")
@click.option("--label", default="", help="A note for `token list` (e.g. the dialer host).")
@click.pass_context
def token_create(ctx, role, client_id, campaign, expires, label) -> None:
    """Create a token and print it once (it cannot be shown again)."""
    vault = _open(ctx)
    expires_at = _expiry(expires, vault.context.clock())
    info, secret = tokens.create_token(
        vault.context,
        role=role,
        client=client_id,
        campaign=campaign,
        expires_at=expires_at,
        label=label,
    )
    _emit(
        ctx,
        {**info.to_dict(), "token": secret},
        f"{secret}\n(token {info.id}, role {role}; store it now: it is not shown again)",
    )


@token.command("list")
@click.option("--client", "client_id", help="Only this client's tokens.")
@click.pass_context
def token_list(ctx, client_id) -> None:
    """List tokens (never their secrets)."""
    rows = tokens.list_tokens(_open(ctx).context, client_id)
    _emit(
        ctx,
        [t.to_dict() for t in rows],
        "\n".join(
            f"{t.id}\t{t.role}\t{t.client or '*'}\t{t.campaign or '-'}\t"
            + ("revoked" if t.revoked_at else "active")
            + (f"\t{t.label}" if t.label else "")
            for t in rows
        )
        or "(no tokens)",
    )


@token.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke(ctx, token_id) -> None:
    """Revoke TOKEN_ID at once, in every server process."""
    info = tokens.revoke_token(_open(ctx).context, token_id)
    _emit(ctx, info.to_dict(), f"revoked {token_id}")


def _expiry(text, now):
    if not text:
        return None
    m = _DURATION.fullmatch(text.strip())
    if m:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m[2]]
        return now + timedelta(**{unit: int(m[1])})
    return _when(text)
