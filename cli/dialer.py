"""``evidence-vault dialer``: dialer hosts' source-signing keys.

``keygen`` runs on the dialer host (no vault needed); ``register``, ``revoke`` and
``list`` on the vault host, by an admin. Registration and revocation are log entries.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli._common import emit, group, open_vault
from vault.errors import Conflict
from vault.ledger.entry import format_time
from vault.sealing import SourceSigner, encode_public_key

_BY = click.option(
    "--as",
    "by",
    help="The admin person acting (default: the operator, local:<your user name>).",
)


@group()
def dialer() -> None:
    """Dialer hosts' Ed25519 keys: each host signs the clips it hands over."""


@dialer.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def dialer_keygen(ctx, path: Path) -> None:
    """Make this dialer host's key in PATH (PEM, mode 0600); print its public key.

    PATH.pub gets the public key too. An admin registers it on the vault with
    `evidence-vault dialer register CLIENT PUBLIC_KEY`.
    """
    pub_path = path.with_name(path.name + ".pub")
    for existing in (path, pub_path):
        if existing.exists():
            raise Conflict(
                f"{existing} exists; a key is never overwritten",
                hint="choose another path, or remove the old key once it is revoked",
            )
    signer = SourceSigner.generate()
    signer.save(path)
    public_key = encode_public_key(signer.public_key)
    pub_path.write_text(public_key + "\n")
    emit(
        ctx,
        {"key_id": signer.key_id, "public_key": public_key, "path": str(path)},
        f"{public_key}\n(key {signer.key_id}, private key in {path}; register the public key "
        "with `evidence-vault dialer register CLIENT PUBLIC_KEY`)",
    )


@dialer.command("register")
@click.argument("client_id")
@click.argument("public_key")
@click.option("--label", default="", help="A note, e.g. the dialer host's name.")
@_BY
@click.pass_context
def dialer_register(ctx, client_id, public_key, label, by) -> None:
    """Register a dialer host's PUBLIC_KEY (base64) for CLIENT_ID. Logged."""
    info = open_vault(ctx).register_dialer_key(client_id, public_key, label=label, by=by)
    emit(ctx, info.to_dict(), f"registered dialer key {info.key_id} for {client_id}")


@dialer.command("revoke")
@click.argument("client_id")
@click.argument("key_id")
@_BY
@click.pass_context
def dialer_revoke(ctx, client_id, key_id, by) -> None:
    """Revoke KEY_ID of CLIENT_ID at once: its signatures are refused from now on. Logged."""
    info = open_vault(ctx).revoke_dialer_key(client_id, key_id, by=by)
    emit(ctx, info.to_dict(), f"revoked dialer key {key_id} of {client_id}")


@dialer.command("list")
@click.argument("client_id")
@click.pass_context
def dialer_list(ctx, client_id) -> None:
    """List CLIENT_ID's dialer keys, revoked ones included."""
    rows = open_vault(ctx).dialer_keys(client_id)
    emit(
        ctx,
        [k.to_dict() for k in rows],
        "\n".join(
            f"{k.key_id}\t{k.public_key}\tregistered {format_time(k.registered_at)}\t"
            + (f"revoked {format_time(k.revoked_at)}" if k.revoked_at else "active")
            + (f"\t{k.label}" if k.label else "")
            for k in rows
        )
        or "(no dialer keys)",
    )
