"""Commands for Textform documents: ``attach``, ``documents`` and ``campaign documents``.

:mod:`cli.main` attaches them. A document is sealed beside its record (an e-mail
``.eml``, a ``.pdf`` or an SMS text ``.txt``/``.sms``); reading one back is logged like
reading audio.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli._common import acting, command, emit, open_vault
from vault.services.documents import KINDS, PRESETS
from vault.services.retrieve import ACCESS_REASONS
from vault.storage.files import atomic_output


@command("attach")
@click.argument("record_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, type=click.Choice(KINDS), help="What the document is.")
@click.option(
    "--media-type",
    help="message/rfc822, application/pdf or text/plain (default: from the extension).",
)
@click.pass_context
def attach(ctx, record_id, file: Path, kind, media_type) -> None:
    """Seal the Textform document FILE with record RECORD_ID (e-mail, PDF or SMS text)."""
    info = open_vault(ctx).attach(record_id, file, kind=kind, media_type=media_type)
    verb = "already sealed" if info.duplicate else "sealed"
    emit(
        ctx,
        info.to_dict(),
        f"{verb} document {info.document_id} ({info.kind}, {info.media_type}, "
        f"{info.size} bytes) with record {info.record_id}\n"
        f"  log entry: #{info.seq}  {info.entry_hash}",
    )


@command("documents")
@click.argument("record_id")
@click.option("--get", "document_id", help="Write this document (by id) to --output.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --get writes the document (byte-identical to what was attached).",
)
@click.option("--reason", type=click.Choice(ACCESS_REASONS), help="Why it is opened (logged).")
@click.option("--case", help="A case reference (logged; no personal data).")
@click.option("--as", "reader", help="The person reading, by handle (default: the operator).")
@click.pass_context
def documents(ctx, record_id, document_id, output, reason, case, reader) -> None:
    """List record RECORD_ID's Textform documents and its Textform state, or --get one.

    Listing shows no content and is no access; --get is logged in the client's log.
    """
    vault = open_vault(ctx)
    principal = acting(vault, reader, "client", "admin")
    if document_id:
        if output is None:
            raise click.UsageError("--get needs --output FILE")
        info, data = vault.read_document(
            record_id, document_id, principal=principal, reason=reason, case=case
        )
        with atomic_output(output, "wb") as fh:
            fh.write(data)
        emit(ctx, {**info.to_dict(), "output": str(output)}, f"wrote {output}")
        return
    facts = vault.textform(record_id, principal=principal)
    lines = [
        f"{d.document_id}  #{d.seq}  {d.kind:<27} {d.media_type:<16} {d.size:>8} bytes  "
        f"{d.sealed_at:%Y-%m-%d %H:%M}  {d.verdict}"
        for d in facts.documents
    ]
    state = (
        f"pending Textform: missing {', '.join(facts.missing)}"
        if facts.pending
        else "Textform complete"
        if facts.required
        else "no Textform documents required"
    )
    emit(ctx, facts.to_dict(), "\n".join([*lines, state]) if lines else f"(no documents)\n{state}")


@command("documents")
@click.argument("name")
@click.option("--client", "client_id", required=True, help="The campaign's client.")
@click.option(
    "--require",
    "required",
    help="Kinds each record needs, comma-separated, or a preset: "
    + ", ".join(f"{p} ({'+'.join(k)})" for p, k in PRESETS.items()),
)
@click.option("--none", "none_", is_flag=True, help="Require no documents.")
@click.pass_context
def campaign_documents(ctx, name, client_id, required, none_) -> None:
    """Set the Textform documents each record of campaign NAME needs."""
    if bool(required) == none_:
        raise click.UsageError("give --require KINDS or --none")
    info = open_vault(ctx).set_campaign_documents(client_id, name, None if none_ else required)
    emit(
        ctx,
        info.to_dict(),
        f"{client_id}/{name}: requires "
        + (", ".join(info.required_documents) or "no Textform documents"),
    )
