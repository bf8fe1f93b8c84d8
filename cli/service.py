"""Commands for the HTTP service: ``serve``, persons and their API tokens.

``--as HANDLE`` names the admin person acting; without it the operator at this shell
(``local:<user>``) acts: a global admin whose new admins need no second approval, since
whoever holds the vault host and its keyring could change the database anyway.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

import click

from cli._common import command, emit, group, open_vault, parse_when
from vault.services.people import ROLES

#: the units of a token lifetime: 90d, 12h, 30m
LIFETIME_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_LIFETIME = re.compile(r"(\d+)([a-zA-Z]*)")

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


#: see serve(): a slow start is not a hang
WORKER_HEALTHCHECK_SECONDS = 30


@command(json_output=False)
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

    open_vault(ctx).close()  # fail here, clearly, if the vault cannot be opened
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
        # uvicorn kills a worker that does not answer its health check within this many
        # seconds (default 5); a worker still importing the app on a loaded machine can
        # take longer, and was killed over and over without ever serving
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


_BY = click.option(
    "--as",
    "by",
    help="The admin person acting (default: the operator, local:<your user name>).",
)


@group()
def person() -> None:
    """Persons: who acts on the vault. Tokens belong to persons; logs and holds name them."""


@person.command("add")
@click.argument("handle")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What they may do.")
@click.option("--client", "client_id", help="Their client (tenant); optional only for admins.")
@click.option("--name", "display_name", default="", help="A display name (kept off the logs).")
@_BY
@click.pass_context
def person_add(ctx, handle, role, client_id, display_name, by) -> None:
    """Create person HANDLE (a staff id or initials: the logs name it). Logged.

    An admin created by another admin person is pending until a second admin approves.
    """
    info = open_vault(ctx).add_person(
        handle, role=role, client=client_id, display_name=display_name, by=by
    )
    state = "" if info.status == "active" else "; pending: a second admin must approve"
    emit(ctx, info.to_dict(), f"added person {handle} ({role}, {client_id or '*'}){state}")


@person.command("approve")
@click.argument("handle")
@_BY
@click.pass_context
def person_approve(ctx, handle, by) -> None:
    """Approve pending admin HANDLE (not by its creator, nor by itself). Logged."""
    info = open_vault(ctx).approve_person(handle, by=by)
    emit(ctx, info.to_dict(), f"approved person {handle} (by {info.approved_by})")


@person.command("disable")
@click.argument("handle")
@_BY
@click.pass_context
def person_disable(ctx, handle, by) -> None:
    """Disable HANDLE at once: every token of theirs stops working. Logged."""
    info = open_vault(ctx).disable_person(handle, by=by)
    emit(ctx, info.to_dict(), f"disabled person {handle}")


@person.command("set-password")
@click.argument("handle")
@_BY
@click.pass_context
def person_set_password(ctx, handle, by) -> None:
    """Set the desk password of HANDLE (asked twice, hidden). Ends their sessions. Logged."""
    vault = open_vault(ctx)
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    vault.set_password(handle, password, by=by)
    emit(ctx, {"person": handle, "password": "set"}, f"password of {handle} set")


@person.command("enrol-totp")
@click.argument("handle")
@_BY
@click.pass_context
def person_enrol_totp(ctx, handle, by) -> None:
    """Give HANDLE a new TOTP secret; prints the otpauth:// URI once. Logged."""
    uri = open_vault(ctx).enrol_totp(handle, by=by)
    emit(ctx, {"person": handle, "otpauth_uri": uri}, uri)


@person.command("reset-factor")
@click.argument("handle")
@_BY
@click.pass_context
def person_reset_factor(ctx, handle, by) -> None:
    """Remove HANDLE's TOTP (they enrol again) and end their desk sessions. Logged."""
    open_vault(ctx).reset_factor(handle, by=by)
    emit(ctx, {"person": handle, "totp": "reset"}, f"second factor of {handle} reset")


@person.command("link-oidc")
@click.argument("handle")
@click.option("--issuer", required=True, help="The OpenID provider's issuer URL, exactly.")
@click.option("--subject", required=True, help="The person's `sub` claim at that provider.")
@_BY
@click.pass_context
def person_link_oidc(ctx, handle, issuer, subject, by) -> None:
    """Let HANDLE sign in at the escalation desk with an OpenID Connect identity. Logged.

    Replaces any earlier link of HANDLE; an identity linked to another person is refused.
    """
    info = open_vault(ctx).link_oidc(handle, issuer=issuer, subject=subject, by=by)
    emit(ctx, info.to_dict(), f"linked person {handle} to an identity at {issuer}")


@person.command("list")
@click.option("--client", "client_id", help="Only this client's persons.")
@click.pass_context
def person_list(ctx, client_id) -> None:
    """List persons and their state (active, pending, disabled)."""
    rows = open_vault(ctx).persons(client_id)
    emit(
        ctx,
        [p.to_dict() for p in rows],
        "\n".join(
            f"{p.handle}\t{p.role}\t{p.client or '*'}\t{p.status}\tcreated by {p.created_by}"
            for p in rows
        )
        or "(no persons)",
    )


@group()
def token() -> None:
    """API tokens of persons: created here, shown once, stored only as a hash."""


@token.command("create")
@click.option("--person", "handle", required=True, help="Whose token (role and client are theirs).")
@click.option("--campaign", help="Dialer tokens: only this campaign.")
@click.option(
    "--expires",
    help="A lifetime: a number of days, hours or minutes (90d, 12h, 30m), or an ISO-8601 "
    "time (2027-03-01T12:00:00Z). Default: never.",
)
@click.option("--label", default="", help="A note for `token list` (e.g. the dialer host).")
@_BY
@click.pass_context
def token_create(ctx, handle, campaign, expires, label, by) -> None:
    """Create a token of a person and print it once (it cannot be shown again). Logged."""
    vault = open_vault(ctx)
    expires_at = _expiry(expires, vault.now())
    info, secret = vault.create_token(
        handle, by=by, campaign=campaign, expires_at=expires_at, label=label
    )
    emit(
        ctx,
        {**info.to_dict(), "token": secret},
        f"{secret}\n(token {info.id} of {handle}, role {info.role}; store it now: it is not "
        "shown again)",
    )


@token.command("list")
@click.option("--client", "client_id", help="Only this client's tokens.")
@click.pass_context
def token_list(ctx, client_id) -> None:
    """List tokens (never their secrets)."""
    rows = open_vault(ctx).tokens(client_id)
    emit(
        ctx,
        [t.to_dict() for t in rows],
        "\n".join(
            f"{t.id}\t{t.person}\t{t.role}\t{t.client or '*'}\t{t.campaign or '-'}\t"
            + ("revoked" if t.revoked_at else "active")
            + (f"\t{t.label}" if t.label else "")
            for t in rows
        )
        or "(no tokens)",
    )


@token.command("revoke")
@click.argument("token_id")
@_BY
@click.pass_context
def token_revoke(ctx, token_id, by) -> None:
    """Revoke TOKEN_ID at once, in every server process. Logged."""
    info = open_vault(ctx).revoke_token(token_id, by=by)
    emit(ctx, info.to_dict(), f"revoked {token_id}")


def _expiry(text: str | None, now: datetime) -> datetime | None:
    """``--expires``: a lifetime from now, or a time; either must lie in the future."""
    if not text:
        return None
    units = ", ".join(f"{unit} ({name})" for unit, name in LIFETIME_UNITS.items())
    m = _LIFETIME.fullmatch(text.strip())
    if m and m[2] not in LIFETIME_UNITS:
        raise click.BadParameter(
            f"{text!r} has no known unit: give a number with one of {units}, e.g. 90d, 12h, "
            "30m, or an ISO-8601 time",
            param_hint="--expires",
        )
    if m:
        try:
            expires_at: datetime | None = now + timedelta(**{LIFETIME_UNITS[m[2]]: int(m[1])})
        except OverflowError:
            raise click.BadParameter(
                f"{text!r} is too long a lifetime", param_hint="--expires"
            ) from None
    else:
        try:
            expires_at = parse_when(text, "--expires")
        except click.BadParameter:
            raise click.BadParameter(
                f"{text!r} is neither a lifetime (a number with one of {units}, e.g. 90d) "
                "nor an ISO-8601 time (e.g. 2027-03-01T12:00:00Z)",
                param_hint="--expires",
            ) from None
    assert expires_at is not None
    if expires_at <= now:
        raise click.BadParameter(
            f"{text!r} is not in the future: a token must expire later than now",
            param_hint="--expires",
        )
    return expires_at
