"""Commands for the evidence lifecycle: retention, disputes and holds, erasure, keys.

:mod:`cli.main` attaches them: ``client retention``, ``campaign retention``, ``log keys``
and ``log rotate-key`` to its groups, the rest to the command itself.
"""

from __future__ import annotations

from datetime import timedelta

import click

from cli._common import acting, command, emit, group, open_vault, parse_when, retention_rule
from vault.ledger.entry import format_time
from vault.services import orphans

_AS = click.option(
    "--as",
    "principal",
    help="The person acting (a handle; default: the operator, local:<your user name>); "
    "the log names them.",
)


# -- retention rules ----------------------------------------------------------------------
@command("retention")
@click.argument("client_id")
@click.argument("days", type=int)
@click.pass_context
def client_retention(ctx, client_id, days) -> None:
    """Set CLIENT_ID's default retention (DAYS) for campaigns without their own.

    Applies to evidence sealed from now on; sealed evidence keeps its date.
    """
    open_vault(ctx).set_client_retention(client_id, days)
    emit(ctx, {"client": client_id, "retention_days": days}, f"{client_id}: default {days} days")


@command("retention")
@click.argument("name")
@click.option("--client", "client_id", required=True, help="The campaign's client.")
@click.option("--retention-days", type=int, help="Keep evidence this many days.")
@click.option("--client-default", is_flag=True, help="Use the client's default instead.")
@click.option("--basis", type=click.Choice(["recorded", "consent-use"]), help="Count from.")
@click.pass_context
def campaign_retention(ctx, name, client_id, retention_days, client_default, basis) -> None:
    """Change campaign NAME's retention rule (for evidence sealed from now on)."""
    if retention_days is not None and client_default:
        raise click.UsageError("give --retention-days or --client-default, not both")
    if retention_days is None and not client_default and basis is None:
        raise click.UsageError("give --retention-days, --client-default or --basis")
    vault = open_vault(ctx)
    if retention_days is None and not client_default:  # only the basis changes
        current = [c for c in vault.campaigns(client_id) if c.name == name]
        if current and not current[0].client_default:
            retention_days = current[0].retention_days
    info = vault.set_campaign_retention(client_id, name, retention_days, basis=basis)
    emit(ctx, info.to_dict(), f"{client_id}/{name}: {retention_rule(info)}")


@group()
def consent() -> None:
    """Uses of a callee's advertising consent (they extend consent-based retention)."""


@consent.command("used")
@click.option("--client", "client_id", required=True)
@click.option(
    "--phone", required=True, help="The callee's phone number with country code (+49 151 ...)."
)
@click.option("--at", "at", help="When the consent was used (ISO-8601; default now).")
@click.pass_context
def consent_used(ctx, client_id, phone, at) -> None:
    """Record a use of the consent outside the vault (a mailing, a call not recorded)."""
    ids = open_vault(ctx).record_consent_use(client_id, phone, parse_when(at, "--at"))
    emit(ctx, {"extended": ids}, f"extended the retention of {len(ids)} record(s)")


# -- disputes and holds -------------------------------------------------------------------
@group()
def dispute() -> None:
    """Disputes of a client's customers: each places a legal hold on the record."""


@dispute.command("open")
@click.argument("record_id")
@click.option("--case", "case_ref", required=True, help="Your case reference (an identifier).")
@click.option("--reason", required=True, help="Why (kept in the database, never in the log).")
@_AS
@click.pass_context
def dispute_open(ctx, record_id, case_ref, reason, principal) -> None:
    """Open a dispute on RECORD_ID: its evidence is kept until the hold is released."""
    vault = open_vault(ctx)
    who = acting(vault, principal, "client", "admin")
    h = vault.open_dispute(record_id, case_ref=case_ref, reason=reason, principal=who)
    emit(ctx, h.to_dict(), f"dispute {h.id} opened on {record_id} (case {case_ref})")


@group()
def hold() -> None:
    """Legal holds: evidence on hold is never purged nor erased."""


@hold.command("place")
@click.argument("record_id")
@click.option("--case", "case_ref", required=True, help="Case reference (an identifier).")
@click.option("--reason", required=True, help="Why (kept in the database, never in the log).")
@_AS
@click.pass_context
def hold_place(ctx, record_id, case_ref, reason, principal) -> None:
    """Place an admin's legal hold on RECORD_ID."""
    vault = open_vault(ctx)
    who = acting(vault, principal, "admin")
    h = vault.place_hold(record_id, case_ref=case_ref, reason=reason, principal=who)
    emit(ctx, h.to_dict(), f"hold {h.id} placed on {record_id} (case {case_ref})")


@hold.command("release")
@click.argument("hold_id")
@click.option(
    "--as",
    "admin",
    required=True,
    help="The admin person acting, by handle (four-eyes: two different persons).",
)
@click.pass_context
def hold_release(ctx, hold_id, admin) -> None:
    """Request (first admin) or approve (a second, different admin) a hold's release."""
    h = open_vault(ctx).release_hold(hold_id, admin=admin)
    human = (
        f"hold {h.id} released (requested by {h.release_requested_by}, approved by {h.released_by})"
        if h.released_by
        else f"release of hold {h.id} requested by {h.release_requested_by}; a second admin "
        "must approve"
    )
    emit(ctx, h.to_dict(), human)


@hold.command("list")
@click.option("--client", "client_id", help="Only this client's holds.")
@click.option("--record", "record_id", help="Only holds on this record.")
@click.option("--all", "include_released", is_flag=True, help="Include released holds.")
@click.pass_context
def hold_list(ctx, client_id, record_id, include_released) -> None:
    """List holds (active ones unless --all)."""
    rows = open_vault(ctx).holds(
        client=client_id, record_id=record_id, include_released=include_released
    )
    emit(
        ctx,
        [h.to_dict() for h in rows],
        "\n".join(
            f"{h.id}\t{h.record_id}\t{h.kind}\t{h.case_ref}\t"
            + ("active" if h.released_at is None else f"released {format_time(h.released_at)}")
            + (
                f"\trelease requested by {h.release_requested_by}"
                if h.active and h.release_requested_by
                else ""
            )
            for h in rows
        )
        or "(no holds)",
    )


# -- retention runs and erasure -----------------------------------------------------------
@group()
def retention() -> None:
    """Retention: what expired evidence would be shredded, and shredding it."""


@retention.command("plan")
@click.option("--client", "client_id", help="Only this client.")
@click.option(
    "--at",
    "at",
    metavar="DATE",
    help="Look at that time instead (ISO-8601; a date such as 2028-01-31 is its 00:00 "
    "UTC): what would have expired by then, with today's holds. Only a plan: "
    "`retention run` always runs now.",
)
@click.option(
    "--pending-after",
    "pending_after",
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Also list live records still missing required Textform documents DAYS days "
    "after their recording.",
)
@click.pass_context
def retention_plan(ctx, client_id, at, pending_after) -> None:
    """List what `retention run` would do now (or on the day --at), and why."""
    vault = open_vault(ctx)
    items = vault.retention_plan(client_id, at=parse_when(at, "--at"))
    human = (
        "\n".join(f"{i.action:<6} {i.record_id}  {i.why}  [{i.rule}]" for i in items)
        or "nothing is due"
    )
    if pending_after is None:
        emit(ctx, [i.to_dict() for i in items], human)
        return
    pending = vault.pending_textform(pending_after, client_id)
    lines = [
        f"pending Textform {p.record_id}  {p.client}/{p.campaign}  recorded "
        f"{p.recorded_at:%Y-%m-%d}  missing {', '.join(p.missing)}"
        for p in pending
    ]
    emit(
        ctx,
        {"plan": [i.to_dict() for i in items], "pending_textform": [p.to_dict() for p in pending]},
        human
        + "\n"
        + ("\n".join(lines) or f"no record pending Textform after {pending_after} days"),
    )


@retention.command("run")
@click.option("--client", "client_id", help="Only this client.")
@click.pass_context
def retention_run(ctx, client_id) -> None:
    """Shred expired evidence not on hold, delete its objects, destroy spent keys.

    Safe to interrupt and to rerun: every record is either intact or shredded, and the
    next run finishes what is left.
    """
    vault = open_vault(ctx)
    report = vault.run_retention(client_id)
    # and the orphans older than the default grace (see `gc`)
    collected = orphans.collect(vault.context, client=client_id)
    emit(
        ctx,
        {**report.to_dict(), "orphans": collected.to_dict()},
        f"shredded {len(report.shredded)}, objects deleted for {len(report.purged)}, "
        f"kept on hold {len(report.kept)}, objects pending {len(report.pending)}, "
        f"keys destroyed {len(report.keks_destroyed)}, re-wrapped {report.rewrapped}; "
        + _collected_line(collected),
    )


def _collected_line(c: orphans.Collected) -> str:
    verb = "would delete" if c.dry_run else "deleted"
    return (
        f"orphans: {verb} {len(c.deleted)}, recorded as locked {len(c.acknowledged)}, "
        f"still locked {len(c.locked)}, within the grace period {c.within_grace}"
    )


def _grace(_ctx, _param, value: str) -> timedelta:
    try:
        return orphans.parse_grace(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@command(short_help="Collect orphaned objects (no committed record owns them).")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    callback=_grace,
    metavar="DURATION",
    help="Leave objects younger than this (an upload in flight): 90s, 30m, 1h, 2d.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted or recorded.")
@click.option("--client", "client_id", help="Only this client.")
@click.pass_context
def gc(ctx, grace, dry_run, client_id) -> None:
    """Delete stored objects no committed record owns, older than --grace.

    Under Object Lock an orphan cannot be deleted yet: it is recorded in its client's log
    (`object.orphaned`), so `verify` stops reporting it, and deleted by a later `gc` once
    its lock has run out. Objects a record owns are never touched.
    """
    collected = orphans.collect(
        open_vault(ctx).context, grace=grace, dry_run=dry_run, client=client_id
    )
    emit(ctx, collected.to_dict(), _collected_line(collected))


@command(short_help="Erase a data subject's evidence (GDPR Art 17).")
@click.option("--phone", help="The data subject's phone number.")
@click.option("--record", "record_id", help="One record id.")
@click.option("--client", "client_id", help="Only this client's records.")
@click.option(
    "--request",
    "request_ref",
    default="art17",
    show_default=True,
    help="Your reference of the erasure request (logged).",
)
@click.pass_context
def erase(ctx, phone, record_id, client_id, request_ref) -> None:
    """Erase a data subject's evidence (GDPR Art. 17) unless a hold keeps it.

    Shreds every matching record at once; records under an open dispute or legal hold
    are kept (Art. 17(3)(e)) and the report says which hold keeps them.
    """
    if bool(phone) == bool(record_id):
        raise click.UsageError("give exactly one of --phone or --record")
    r = open_vault(ctx).erase(
        phone=phone, record_id=record_id, client=client_id, request_ref=request_ref
    )
    lines = [f"erased {len(r.erased)} record(s)"] + [f"  erased {i}" for i in r.erased]
    lines += [f"  kept   {k['record_id']}: {k['why']}" for k in r.kept]
    lines += [f"  already shredded {i}" for i in r.already_shredded]
    if r.objects_pending:
        lines.append(
            f"  {len(r.objects_pending)} record(s) keep their (unreadable) ciphertext until the "
            "store's Object Lock lapses; `retention run` deletes it then"
        )
    emit(ctx, r.to_dict(), "\n".join(lines))


# -- keys ---------------------------------------------------------------------------------
@group()
def keys() -> None:
    """Key-encryption keys: status, rotation, destruction."""


@keys.command("list")
@click.option("--client", "client_id", required=True)
@click.pass_context
def keys_list(ctx, client_id) -> None:
    """The client's live KEKs and how many live records each protects."""
    rows = open_vault(ctx).key_status(client_id)
    emit(
        ctx,
        rows,
        "\n".join(f"{r['kek']}\t{r['live_records']} live record(s)" for r in rows)
        or "(no keys yet)",
    )


@keys.command("rotate")
@click.option("--client", "client_id", required=True)
@click.option("--kek", "kek_id", help="Only this KEK (default: all of the client's).")
@click.pass_context
def keys_rotate(ctx, client_id, kek_id) -> None:
    """New KEK generation; re-wrap the data keys under it (stored objects untouched)."""
    r = open_vault(ctx).rotate_kek(client_id, kek_id)
    lines = [f"{a} -> {b}" for a, b in r.rotated] + [f"re-wrapped {r.records} data key(s)"]
    emit(ctx, r.to_dict(), "\n".join(lines))


@keys.command("destroy")
@click.argument("kek_id")
@click.pass_context
def keys_destroy(ctx, kek_id) -> None:
    """Destroy KEK_ID for good (refused while a live record needs it)."""
    open_vault(ctx).destroy_kek(kek_id)
    emit(ctx, {"destroyed": kek_id}, f"destroyed {kek_id}")


@command("keys")
@click.pass_context
def log_keys(ctx) -> None:
    """Every generation of the log signing key; the active one signs new checkpoints."""
    gens = open_vault(ctx).log_keys()
    emit(
        ctx,
        [g.to_dict() for g in gens],
        "\n".join(
            f"{g.generation}\t{'active ' if g.active else 'retired'}\t{g.verifier_key}"
            for g in gens
        ),
    )


@command("rotate-key")
@click.pass_context
def log_rotate_key(ctx) -> None:
    """Hand every client's log over to a new signing key.

    Each log gets a `log.key_rotated` entry and a checkpoint signed by both keys, so
    auditors who pinned the old key can follow; the old private key is destroyed.
    """
    r = open_vault(ctx).rotate_log_key()
    emit(
        ctx,
        r,
        f"old key: {r['old']}\nnew key: {r['new']}\nhanded over {len(r['clients'])} log(s); "
        "give auditors the new key (they can also follow the hand-over from the old one)",
    )
