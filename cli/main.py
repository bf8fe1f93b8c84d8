"""The ``evidence-vault`` command. Thin: parse, call a use case, print.

Exit codes scripts can rely on:

==  ===========================================================
0   success (for ``verify``: everything checked out)
1   ``verify`` found problems (details in the output)
2   usage error (bad option or argument)
3   invalid input: the evidence metadata, the audio or a Textform document was refused
4   not found (record, client, campaign), or the record was crypto-shredded
5   conflict (e.g. a different clip under an existing call/segment)
6   configuration problem (no vault, bad vault.toml, missing master key)
7   integrity, key or storage failure while reading or writing
8   ``verify-bundle``: consistent, but checked only against the key inside the bundle
9   refused: not allowed (e.g. the four-eyes rule of a hold release)
10  unavailable: the database or the object store is down or busy; retry later
==  ===========================================================

An error's code (3-7, 9, 10) is the ``exit_code`` of its class in :mod:`vault.errors`, the
same table the HTTP API takes its statuses from. ``--json`` goes before the command or
after it (``evidence-vault ingest CLIP --meta M --json``); errors are JSON then, too.

The lifecycle commands live in :mod:`cli.lifecycle`, ``serve``, ``person`` and ``token``
in :mod:`cli.service`, what they share in :mod:`cli._common`; all are attached below.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import click

from cli import agent as agent_commands
from cli import dialer as dialer_commands
from cli import dialers, documents, lifecycle, service
from cli._common import (
    EXIT_FINDINGS,
    EXIT_UNPINNED,
    VaultGroup,
    acting,
    emit,
    open_vault,
    parse_when,
    retention_rule,
    wants_json,
)
from cli.witness import witness as witness_commands
from vault import Vault
from vault.config import (
    PASSWORD_FILE,
    S3Settings,
    Settings,
    apply_env,
    database_password,
    load_settings,
    resolve_home,
    shown_url,
)


@click.group(cls=VaultGroup)
@click.option(
    "--vault",
    "vault_dir",
    type=click.Path(file_okay=False),
    envvar="EVIDENCE_VAULT_HOME",
    help="Vault directory [env EVIDENCE_VAULT_HOME; default ./.evidence-vault].",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable JSON output (also after a command)."
)
@click.version_option(package_name="evidence-vault")
@click.pass_context
def cli(ctx: click.Context, vault_dir: str | None, as_json: bool) -> None:
    """Sealed, hash-chained evidence of recorded order segments.

    Start with `evidence-vault demo` to see the whole job on a throw-away vault.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(home=resolve_home(vault_dir), json=as_json)


# -- init ------------------------------------------------------------------------------
@cli.command()
@click.option("--database-url", help="SQLAlchemy URL (default: SQLite in the vault directory).")
@click.option("--s3-bucket", help="Use this S3 bucket instead of the local object directory.")
@click.option("--s3-endpoint", help="S3 endpoint URL (MinIO, SeaweedFS, Ceph; omit for AWS).")
@click.option("--s3-region", help="S3 region.")
@click.option(
    "--name",
    default="evidence-vault",
    show_default=True,
    help="The vault's name, used in log origins.",
)
@click.pass_context
def init(ctx, database_url, s3_bucket, s3_endpoint, s3_region, name) -> None:
    """Create a new vault: config, metadata database, object store, keyring.

    The keyring's master key is written to MASTER.KEY in the vault directory (mode 0600)
    unless EVIDENCE_VAULT_MASTER_KEY is set; keep a copy offline — without it no
    evidence can be opened.

    A database password is never written into vault.toml: better give the URL in
    EVIDENCE_VAULT_DATABASE_URL (a command line shows in `ps`); one given with
    --database-url goes to DATABASE.PASSWORD in the vault directory (mode 0600).
    """
    settings: Settings = load_settings(ctx.obj["home"])
    settings = replace(settings, name=name, database_url=database_url or settings.database_url)
    if database_url and database_password(database_url) is not None:
        # a password typed here goes to a 0600 file, never into vault.toml
        settings = replace(settings, database_password_file=settings.home / PASSWORD_FILE)
    if s3_bucket:
        s3 = S3Settings(bucket=s3_bucket, endpoint_url=s3_endpoint, region=s3_region)
        settings = replace(settings, storage="s3", s3=s3)
        settings = apply_env(settings, os.environ)

    Vault.create_with(settings).close()
    where = settings.home
    emit(
        ctx,
        {"home": str(where), "storage": settings.storage},
        f"created vault in {where}\n"
        f"  storage:  {settings.storage}\n"
        f"  database: {shown_url(settings.resolved_database_url)}\n"
        f"  next:     evidence-vault --vault {where} client add CLIENT",
    )


# -- clients and campaigns -------------------------------------------------------------
@cli.group()
def client() -> None:
    """Manage clients (tenants)."""


@client.command("add")
@click.argument("client_id")
@click.option("--name", "display_name", help="Display name.")
@click.option(
    "--retention-days",
    type=int,
    help="Default retention of the client's campaigns that set none of their own.",
)
@click.pass_context
def client_add(ctx, client_id, display_name, retention_days) -> None:
    """Add client CLIENT_ID (a slug such as telco-de) with its own log and keys."""
    open_vault(ctx).add_client(client_id, display_name, retention_days=retention_days)
    emit(ctx, {"client": client_id}, f"added client {client_id}")


@client.command("list")
@click.pass_context
def client_list(ctx) -> None:
    """List clients."""
    rows = open_vault(ctx).clients()
    emit(
        ctx,
        [{"client": c.id, "name": c.display_name} for c in rows],
        "\n".join(f"{c.id}\t{c.display_name}" for c in rows) or "(no clients)",
    )


@cli.group()
def campaign() -> None:
    """Manage campaigns and their retention."""


@campaign.command("add")
@click.argument("name")
@click.option("--client", "client_id", required=True, help="The client the campaign runs for.")
@click.option(
    "--retention-days",
    type=int,
    help="Keep evidence this many days (default: the client's default retention).",
)
@click.option(
    "--basis",
    type=click.Choice(["recorded", "consent-use"]),
    default="recorded",
    show_default=True,
    help="Count the days from the recording, or from the last use of the advertising "
    "consent the evidence documents (UWG §7a).",
)
@click.option(
    "--require",
    "required",
    help="Textform documents each record needs: kinds, comma-separated, or a preset "
    "(tkg-54, enwg-41b, bgb-312h).",
)
@click.option(
    "--require-signature",
    is_flag=True,
    help="Refuse uploads without a valid source signature of a registered dialer key.",
)
@click.pass_context
def campaign_add(
    ctx, name, client_id, retention_days, basis, required, require_signature
) -> None:
    """Add campaign NAME for a client."""
    info = open_vault(ctx).add_campaign(
        client_id,
        name,
        retention_days,
        retention_basis=basis,
        required_documents=required,
        require_source_signature=require_signature,
    )
    emit(ctx, info.to_dict(), f"added campaign {name} for {client_id} ({retention_rule(info)})")


@campaign.command("list")
@click.option("--client", "client_id", help="Only this client's campaigns.")
@click.pass_context
def campaign_list(ctx, client_id) -> None:
    """List campaigns."""
    rows = open_vault(ctx).campaigns(client_id)
    emit(
        ctx,
        [r.to_dict() for r in rows],
        "\n".join(f"{r.client}\t{r.name}\t{retention_rule(r)}" for r in rows) or "(no campaigns)",
    )


@campaign.command("signatures")
@click.argument("name")
@click.option("--client", "client_id", required=True, help="The campaign's client.")
@click.option(
    "--required/--optional",
    default=True,
    show_default=True,
    help="Refuse uploads without a valid source signature, or only check those sent.",
)
@click.pass_context
def campaign_signatures(ctx, name, client_id, required) -> None:
    """Require (or stop requiring) dialer source signatures on campaign NAME's uploads."""
    info = open_vault(ctx).require_source_signature(client_id, name, required)
    state = "required" if required else "checked when sent"
    emit(ctx, info.to_dict(), f"{client_id}/{name}: source signatures {state}")


# -- evidence --------------------------------------------------------------------------
@cli.command()
@click.argument("clip", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--meta",
    "meta_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The evidence metadata (JSON, see docs/formats.md).",
)
@click.option("--type", "media_type", help="Declared media type (default: from the extension).")
@click.pass_context
def ingest(ctx, clip: Path, meta_path: Path, media_type) -> None:
    """Seal one recorded order segment CLIP with its metadata and print the receipt."""
    receipt = open_vault(ctx).ingest(clip, meta_path.read_bytes(), media_type=media_type)
    r = receipt.to_dict()
    verb = "already sealed" if receipt.duplicate else "sealed"
    emit(
        ctx,
        r,
        f"{verb} record {r['record_id']}\n"
        f"  client/campaign: {r['client']}/{r['campaign']}\n"
        f"  log entry:       #{r['seq']}  {r['entry_hash']}",
    )


@cli.command()
@click.option("--client", "client_id", help="Only this client.")
@click.option("--campaign", help="Only this campaign.")
@click.option("--order-ref", help="The order reference.")
@click.option("--phone", help="The callee's phone number (E.164, e.g. +4915112345678).")
@click.option("--agent", help="The agent id.")
@click.option("--since", help="Recorded at or after (ISO-8601).")
@click.option("--until", help="Recorded before (ISO-8601).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_context
def find(ctx, client_id, campaign, order_ref, phone, agent, since, until, limit) -> None:
    """Find records; the phone is matched by keyed hash, never stored in clear."""
    hits = open_vault(ctx).find(
        client=client_id,
        campaign=campaign,
        order_ref=order_ref,
        phone=phone,
        agent=agent,
        since=parse_when(since, "--since"),
        until=parse_when(until, "--until"),
        limit=limit,
    )
    lines = [
        f"{h.record_id}  {h.recorded_at:%Y-%m-%d %H:%M}  {h.client}/{h.campaign}  "
        f"{h.order_ref}  {h.agent_id}  {h.duration_ms / 1000:.1f}s"
        for h in hits
    ]
    emit(
        ctx,
        [h.to_dict() for h in hits],
        "\n".join(lines) + f"\n{len(hits)} record(s)" if hits else "no matching records",
    )


_READER = click.option(
    "--as",
    "reader",
    help="The person reading, by handle (default: the operator, local:<your user name>); "
    "the log names them.",
)


def _reader(vault: Vault, handle: str | None):
    """A named person (a client or admin, within their client), or the operator."""
    return acting(vault, handle, "client", "admin")


@cli.command()
@click.argument("record_id")
@_READER
@click.pass_context
def show(ctx, record_id, reader) -> None:
    """Print a record's decrypted evidence (identity, intent, consent, spans).

    The access is recorded in the client's log (chain of custody).
    """
    vault = open_vault(ctx)
    doc = vault.show(record_id, principal=_reader(vault, reader))
    emit(ctx, doc, _render_document(record_id, doc))


def _render_document(record_id: str, doc: dict) -> str:
    ev, au = doc["evidence"], doc["audio"]
    ident, intent, consent = ev["identity"], ev["intent"], ev["consent"]
    lines = [
        f"record {record_id}",
        f"  order:     {ev['order_ref']}  ({ev['client']}/{ev['campaign']}, "
        f"call {ev['call_id']} segment {ev['segment']})",
        f"  recorded:  {ev['recorded_at']} by agent {ev['agent_id']}",
        f"  audio:     {au['media_type']} {au['codec']}, {au['duration_ms'] / 1000:.1f}s",
        f"  callee:    {ev['callee']['phone']}",
        f"  consent:   recording consent at {consent['recording_at_ms'] / 1000:.1f}s",
        f"  identity:  {ident['method']} at {_span(ident['span_ms'])}",
    ]
    lines += [f"             {k}: {v}" for k, v in ident["confirmed"].items()]
    lines += [
        f"  intent:    {intent['product']}, {intent['price']}, {intent['term']} "
        f"at {_span(intent['span_ms'])}",
        f'             "{intent["statement"]}"',
    ]
    if ev.get("withdrawal_notice_span_ms"):
        lines.append(f"  withdrawal notice at {_span(ev['withdrawal_notice_span_ms'])}")
    return "\n".join(lines)


def _span(span) -> str:
    return f"{span[0] / 1000:.1f}-{span[1] / 1000:.1f}s"


@cli.command()
@click.argument("record_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the clip (byte-identical to the upload).",
)
@_READER
@click.pass_context
def audio(ctx, record_id, output: Path, reader) -> None:
    """Write a record's clip back, byte-identical to what was uploaded."""
    vault = open_vault(ctx)
    out = vault.write_audio(record_id, output, principal=_reader(vault, reader))
    emit(ctx, {"record_id": record_id, "output": str(out)}, f"wrote {out}")


@cli.command()
@click.option("--client", "client_id", help="Only this client's log.")
@click.option(
    "--deep",
    is_flag=True,
    help="Also decrypt every record: every AEAD tag and the plaintext commitments.",
)
@click.pass_context
def verify(ctx, client_id, deep) -> None:
    """Audit the logs: chain links, entry hashes, Merkle roots against every signed
    checkpoint, checkpoint signatures, every stored object's hash, orphan objects.

    Exit code 0 only when everything checks out; --json gives one finding per problem.
    """
    vault = open_vault(ctx)
    total = vault.count_entries(client_id)
    show_bar = not wants_json(ctx) and sys.stderr.isatty()
    with click.progressbar(
        length=total, label="verifying", file=sys.stderr, hidden=not show_bar
    ) as bar:
        report = vault.verify(client_id, progress=bar.update, deep=deep)
    emit(ctx, report.to_dict(), _render_report(report))
    if not report.clean:
        ctx.exit(EXIT_FINDINGS)


def _render_report(report) -> str:
    head = (
        f"checked {len(report.clients)} client log(s), {report.entries} entries, "
        f"{report.records} records, {report.objects} objects, "
        f"{report.checkpoints} checkpoints"
    )
    if report.clean:
        return head + "\nOK: every chain link, checkpoint and stored object matches"
    return "\n".join(
        [head, f"PROBLEMS: {len(report.findings)}"] + [f"  {f}" for f in report.findings]
    )


@cli.command()
@click.option("--client", "client_id", required=True, help="The client whose log to sign.")
@click.option(
    "--timestamp",
    "stamp",
    is_flag=True,
    help="Also have it time-stamped now by every configured TSA (RFC 3161).",
)
@click.pass_context
def checkpoint(ctx, client_id, stamp: bool) -> None:
    """Sign a checkpoint of a client's log now (C2SP signed note) and print it."""
    vault = open_vault(ctx)
    cp = vault.checkpoint(client_id)
    if not stamp:
        emit(ctx, cp.to_dict(), cp.note.rstrip("\n"))
        return
    report = vault.timestamp_checkpoint(client_id, cp.size)
    held = vault.checkpoint_timestamps(client_id, cp.size)
    data = {**cp.to_dict(), "timestamps": [t.to_dict() for t in held], **report.to_dict()}
    emit(ctx, data, cp.note.rstrip("\n") + "\n" + _stamp_lines(report, held))
    if report.failed:
        ctx.exit(EXIT_FINDINGS)


@cli.command()
@click.option("--client", "client_id", help="Only this client's checkpoints.")
@click.pass_context
def timestamp(ctx, client_id) -> None:
    """Time-stamp every checkpoint still lacking a token from a configured TSA (catch-up).

    Exit 0 when nothing is left unstamped, 1 when a TSA failed (tried again next time).
    """
    vault = open_vault(ctx)
    report = vault.timestamp_pending(client_id)
    if not vault.settings.tsas:
        human = "no TSA is configured ([[timestamping.tsa]] in vault.toml): nothing to stamp"
    elif report.stamped or report.failed:
        human = _stamp_lines(report, report.stamped)
    else:
        human = "nothing to stamp: every checkpoint has a token from every configured TSA"
    emit(ctx, report.to_dict(), human)
    if report.failed:
        ctx.exit(EXIT_FINDINGS)


def _stamp_lines(report, held) -> str:
    lines = [
        f"time-stamped checkpoint {t.size} of {t.client} by {t.tsa}: genTime "
        f"{t.gen_time.isoformat().replace('+00:00', 'Z')}, serial {t.serial}"
        for t in held
    ]
    lines += [
        f"NOT time-stamped: checkpoint {size} of {client} by {tsa}: {why}"
        for tsa, client, size, why in report.failed
    ]
    return "\n".join(lines) or "no TSA is configured ([[timestamping.tsa]] in vault.toml)"


@cli.command()
@click.argument("record_id", required=False)
@click.option("--client", "client_id", help="For a consistency proof: the client's log.")
@click.option("--from", "old", type=int, help="Consistency proof from this tree size ...")
@click.option("--to", "new", type=int, help="... to this one (default: the current size).")
@click.pass_context
def proof(ctx, record_id, client_id, old, new) -> None:
    """Inclusion proof of RECORD_ID in the latest checkpoint, or with --client/--from/--to
    a consistency proof between two tree sizes (RFC 9162)."""
    vault = open_vault(ctx)
    if record_id:
        p = vault.inclusion_proof(record_id)
        human = (
            f"record {record_id} is entry {p.seq} of {p.client}'s log\n"
            f"leaf hash {p.leaf_hash}\ntree size {p.tree_size}, root {p.root_hash}\n"
            + "\n".join(f"  {h}" for h in p.hashes)
            + "\n"
            + p.checkpoint.rstrip()
        )
    elif client_id and old is not None:
        c = vault.consistency_proof(client_id, old, new)
        human = (
            f"{c.client}: size {c.old_size} (root {c.old_root}) is a prefix of size "
            f"{c.new_size} (root {c.new_root})\n" + "\n".join(f"  {h}" for h in c.hashes)
        )
    else:
        raise click.UsageError("give RECORD_ID, or --client with --from [--to]")
    emit(ctx, (p if record_id else c).to_dict(), human)


@cli.group()
def log() -> None:
    """The auditor's view: the log key, exports, offline verification."""


@log.command("key")
@click.pass_context
def log_key(ctx) -> None:
    """Print the log's verifier key (C2SP: name+keyid+base64); auditors pin it."""
    key = open_vault(ctx).log_key()
    emit(ctx, {"verifier_key": key}, key)


@log.command("export")
@click.option("--client", "client_id", required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def log_export(ctx, client_id, output: Path) -> None:
    """Export a client's entries and checkpoints (JSON Lines; no PII, no keys)."""
    out = open_vault(ctx).export_log(client_id, output)
    emit(ctx, {"output": str(out)}, f"wrote {out}")


_TSA_ROOTS = click.option(
    "--tsa-roots",
    "tsa_roots",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM file of the root certificates of the Time-Stamping Authorities you trust "
    "(repeatable); without it time-stamp signatures are not checked.",
)


def _trust_roots(paths):
    from vault.sealing.timestamps import TrustRoots

    return TrustRoots.from_files(paths) if paths else None


def _witness_options(fn):
    """``--witness KEY`` (repeated) and ``--witness-quorum N``: the N-of-M witness policy."""
    fn = click.option(
        "--witness-quorum",
        "quorum",
        type=click.IntRange(min=1),
        default=None,
        help="How many of the --witness keys must have cosigned (default: all).",
    )(fn)
    return click.option(
        "--witness",
        "witnesses",
        multiple=True,
        metavar="KEY",
        help="A witness's verifier key (C2SP, type 0x04); repeat for each witness. The "
        "checkpoint must be cosigned by --witness-quorum of them.",
    )(fn)


_WITNESS_OPTIONS = _witness_options


def _witness_policy(witnesses: tuple[str, ...], quorum: int | None):
    from vault.ledger.cosignature import WitnessPolicy

    if not witnesses:
        if quorum is not None:
            raise click.UsageError("--witness-quorum needs at least one --witness KEY")
        return None
    return WitnessPolicy.of(witnesses, quorum)


@log.command("verify")
@click.argument("export")
@click.option("--key", "key", required=True, help="The log's verifier key (from `log key`).")
@click.option(
    "--trusted-checkpoint",
    "trusted",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint note you saved earlier; the log must be consistent with it.",
)
@click.option(
    "--origin",
    help="The log it must be, e.g. evidence-vault.example/telco-de (one key signs every "
    "client's log, so a URL could serve another client's).",
)
@_TSA_ROOTS
@_WITNESS_OPTIONS
@click.pass_context
def log_verify(
    ctx, export: str, key: str, trusted, origin: str | None, tsa_roots, witnesses, quorum
) -> None:
    """Audit a log offline: EXPORT is a `log export` file, a tiled log's URL
    (http(s)://…/_tlog/CLIENT) or a mirror directory. Needs only that and the key.
    Exit 0 only if clean."""
    from vault.ledger.audit import Finding
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.ledger.offline import audit_export
    from vault.ledger.tiles import audit_tiles
    from vault.tlog import is_tiled_log, open_source

    verifier = parse_verifier_key(key)
    notes = [p.read_bytes() for p in trusted]
    policy = _witness_policy(witnesses, quorum)
    if is_tiled_log(export):
        source = open_source(export)
        try:
            report = audit_tiles(source, verifier, notes, witnesses=policy)
        finally:
            source.close()
    else:
        path = Path(export)
        if not path.is_file():
            raise click.BadParameter(
                f"{export} is neither a file, a directory nor an http(s) URL", param_hint="EXPORT"
            )
        with path.open(encoding="utf-8") as fh:
            report = audit_export(
                fh, verifier, notes, tsa_roots=_trust_roots(tsa_roots), witnesses=policy
            )
    if origin is not None and report.origin != origin:
        report.findings.insert(
            0, Finding("bad-signature", "", f"the log is {report.origin!r}, not {origin!r}")
        )
    human = (
        f"{report.origin}: {report.entries} entries, {report.checkpoints} checkpoints, "
        f"{report.trusted} trusted checkpoint(s), {len(report.timestamps)} time-stamp(s)\n"
    )
    human += "".join(f"  {t}\n" for t in report.timestamps if t.ok)
    if policy is not None and report.witnessed_size:
        human += (
            f"witnessed by {policy.describe()}: entries up to size {report.witnessed_size}\n"
        )
    human += (
        "OK: the chain, the tree and every checkpoint agree"
        if report.clean
        else "PROBLEMS:\n" + "\n".join(f"  {f}" for f in report.findings)
    )
    emit(ctx, report.to_dict(), human)
    if not report.clean:
        ctx.exit(EXIT_FINDINGS)


@log.command("mirror")
@click.argument("url")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key", "key", required=True, help="The log's verifier key (from `log key`).")
@click.pass_context
def log_mirror(ctx, url: str, directory: Path, key: str) -> None:
    """Mirror a tiled log (URL, or another mirror) into DIRECTORY with plain GETs.

    Full tiles already mirrored are kept; a checkpoint smaller than (or forked from) the
    one the mirror holds is refused. Check the mirror with `log verify DIRECTORY`.
    """
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.tlog import mirror, open_source

    source = open_source(url)
    try:
        cp = mirror(source, directory, [parse_verifier_key(key)])
    finally:
        source.close()
    emit(
        ctx,
        {"origin": cp.origin, "size": cp.size, "directory": str(directory)},
        f"mirrored {cp.origin} at size {cp.size} into {directory}",
    )


@log.command("publish")
@click.option("--client", "client_id", help="Only this client's log (default: every log).")
@click.pass_context
def log_publish(ctx, client_id) -> None:
    """Publish the tiled logs (C2SP tlog-tiles, under _tlog/ in the bucket) up to their
    latest checkpoints; `serve` does this after each checkpoint on its own."""
    done = open_vault(ctx).publish_tiles(client_id)
    emit(
        ctx,
        {"published": [p.to_dict() for p in done]},
        "\n".join(
            f"{p.client}: size {p.old_size} -> {p.size}, {p.written} tiles written" for p in done
        )
        or "no logs",
    )


@cli.command()
@click.argument("record_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the bundle (ZIP).",
)
@click.option(
    "--language",
    type=click.Choice(["de", "en"]),
    default="de",
    show_default=True,
    help="Language of the report (report.html, report.pdf).",
)
@click.option(
    "--time-zone",
    default=None,
    help="The client's time zone for the report's times (default: [web] timezone).",
)
@click.option("--no-pdf", is_flag=True, help="Leave report.pdf out of the bundle (faster).")
@click.option(
    "--report-pdf",
    "report_pdf",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the bundle's report.pdf to this file (the same bytes, e.g. to send).",
)
@_READER
@click.pass_context
def export(
    ctx, record_id, output: Path, language, time_zone, no_pdf, report_pdf, reader
) -> None:
    """Export one record as an evidence bundle that verifies offline (the export is logged).

    The bundle carries a dispute report in German (``--language en``: English), as
    report.html and as PDF/A-3b (report.pdf) with the bundle's files attached.
    """
    if report_pdf is not None and no_pdf:
        raise click.UsageError("--report-pdf needs the PDF: drop --no-pdf")
    vault = open_vault(ctx)
    out = vault.export_bundle(
        record_id,
        output,
        principal=_reader(vault, reader),
        language=language,
        time_zone=time_zone,
        pdf=not no_pdf,
    )
    result, human = {"record_id": record_id, "output": str(out)}, f"wrote {out}"
    if report_pdf is not None:
        _copy_report_pdf(out, report_pdf)
        result["report_pdf"] = str(report_pdf)
        human += f" and {report_pdf}"
    emit(ctx, result, human)


def _copy_report_pdf(bundle: Path, target: Path) -> None:
    """The bundle's report.pdf as a file of its own, written whole or not at all."""
    import zipfile

    from vault.bundle.layout import REPORT_PDF
    from vault.storage.files import atomic_output

    with zipfile.ZipFile(bundle) as zf, atomic_output(target) as fh:
        fh.write(zf.read(REPORT_PDF))


@cli.command("verify-bundle")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", help="The vault's verifier key; without it the bundled key is used.")
@click.option(
    "--max-audio-size",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse an audio file larger than this many bytes (default 512 MiB).",
)
@_TSA_ROOTS
@_WITNESS_OPTIONS
@click.pass_context
def verify_bundle(
    ctx, bundle: Path, key, max_audio_size: int | None, tsa_roots, witnesses, quorum
) -> None:
    """Verify an evidence bundle offline, needing nothing but the file.

    Exit 0: valid and signed by the --key you gave ("ok": true). Exit 8: internally
    consistent, but signed by the key inside the bundle, which only counts if it is the
    vault's published key (`evidence-vault log key`); "ok" is false. Exit 1: invalid.
    """
    from vault.bundle import MAX_AUDIO_SIZE
    from vault.bundle import verify_bundle as check

    verdict = check(
        bundle,
        key,
        max_audio_size=max_audio_size or MAX_AUDIO_SIZE,
        tsa_roots=_trust_roots(tsa_roots),
        witnesses=_witness_policy(witnesses, quorum),
    )
    emit(ctx, verdict.to_dict(), verdict.summary())
    if not verdict.consistent:
        ctx.exit(EXIT_FINDINGS)
    if not verdict.ok:
        ctx.exit(EXIT_UNPINNED)


@cli.command(json_output=False)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo vault here instead of a temporary directory.",
)
@click.pass_context
def demo(ctx, directory: Path | None) -> None:
    """Run the whole job on a throw-away vault and explain each step."""
    from cli.demo import run_demo

    run_demo(directory)


# the lifecycle commands (retention, disputes, erasure, keys) and the service's (serve,
# persons, tokens) are declared in their own modules and attached here
client.add_command(lifecycle.client_retention)
campaign.add_command(lifecycle.campaign_retention)
campaign.add_command(documents.campaign_documents)
log.add_command(lifecycle.log_keys)
log.add_command(lifecycle.log_rotate_key)
for _command in (
    documents.attach,
    documents.documents,
    lifecycle.consent,
    lifecycle.dispute,
    lifecycle.hold,
    lifecycle.retention,
    lifecycle.gc,
    lifecycle.erase,
    lifecycle.keys,
    service.serve,
    service.person,
    service.token,
    agent_commands.agent,
    agent_commands.upload,
    witness_commands,
    dialers.import_,
    dialers.reconcile,
    dialers.cpaas,
    dialer_commands.dialer,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="evidence-vault")


if __name__ == "__main__":
    main()
