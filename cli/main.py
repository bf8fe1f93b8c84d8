"""The ``evidence-vault`` command. Thin: parse, call a use case, print.

Exit codes scripts can rely on:

==  ===========================================================
0   success (for ``verify``: everything checked out)
1   ``verify`` found problems (details in the output)
2   usage error (bad option or argument)
3   invalid input: the evidence metadata or the audio was refused
4   not found (record, client, campaign), or the record was crypto-shredded
5   conflict (e.g. a different clip under an existing call/segment)
6   configuration problem (no vault, bad vault.toml, missing master key)
7   integrity, key or storage failure while reading or writing
8   ``verify-bundle``: consistent, but checked only against the key inside the bundle
9   refused: not allowed (e.g. the four-eyes rule of a hold release)
==  ===========================================================
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

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
from vault.errors import (
    ConfigError,
    Conflict,
    FieldError,
    InvalidAudio,
    InvalidEvidence,
    NotFound,
    PermissionDenied,
    VaultError,
)
from vault.inputs import InvalidText, text_problem
from vault.services.context import create_vault

EXIT_UNPINNED = 8
EXIT_REFUSED = 9
EXIT_FINDINGS, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_CONFIG, EXIT_FAILURE = (
    1,
    3,
    4,
    5,
    6,
    7,
)


def _exit_code(exc: VaultError) -> int:
    for kind, code in (
        ((InvalidEvidence, InvalidAudio), EXIT_INVALID),
        (NotFound, EXIT_NOT_FOUND),
        (Conflict, EXIT_CONFLICT),
        (ConfigError, EXIT_CONFIG),
        (PermissionDenied, EXIT_REFUSED),
    ):
        if isinstance(exc, kind):
            return code
    return EXIT_FAILURE


class _Command(click.Command):
    """Refuses control characters and lone surrogates in every text option and argument.

    A NUL in ``--reason`` cannot be stored on PostgreSQL, an ESC sequence in a label
    rewrites the next operator's terminal, and bytes that are not UTF-8 reach Python as
    lone surrogates (:mod:`vault.inputs`): exit 3, naming the option, never the value.
    """

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


class _Group(click.Group):
    """Turns VaultErrors into a clear message (or JSON) and a documented exit code."""

    command_class = _Command
    group_class = type  # subgroups are _Groups: their commands are checked too

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VaultError as exc:
            as_json = (ctx.obj or {}).get("json", False)
            if as_json:
                click.echo(json.dumps({"error": exc.to_dict()}, indent=2))
            else:
                click.secho(f"error: {exc.message}", fg="red", err=True)
                for fe in getattr(exc, "errors", []):
                    click.echo(f"  - {fe.field}: {fe.message}", err=True)
                if exc.hint:
                    click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(_exit_code(exc))


@click.group(cls=_Group)
@click.option(
    "--vault",
    "vault_dir",
    type=click.Path(file_okay=False),
    envvar="EVIDENCE_VAULT_HOME",
    help="Vault directory [env EVIDENCE_VAULT_HOME; default ./.evidence-vault].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.version_option(package_name="evidence-vault")
@click.pass_context
def cli(ctx: click.Context, vault_dir: str | None, as_json: bool) -> None:
    """Sealed, hash-chained evidence of recorded order segments.

    Start with `evidence-vault demo` to see the whole job on a throw-away vault.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(home=resolve_home(vault_dir), json=as_json)


def _open(ctx: click.Context) -> Vault:
    vault = Vault.open(ctx.obj["home"])
    ctx.call_on_close(vault.close)
    return vault


def _emit(ctx: click.Context, data, human: str) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if ctx.obj["json"] else human)


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

    create_vault(settings).close()
    where = settings.home
    _emit(
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
    _open(ctx).add_client(client_id, display_name, retention_days=retention_days)
    _emit(ctx, {"client": client_id}, f"added client {client_id}")


@client.command("list")
@click.pass_context
def client_list(ctx) -> None:
    """List clients."""
    rows = _open(ctx).clients()
    _emit(
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
@click.pass_context
def campaign_add(ctx, name, client_id, retention_days, basis) -> None:
    """Add campaign NAME for a client."""
    info = _open(ctx).add_campaign(client_id, name, retention_days, retention_basis=basis)
    _emit(ctx, info.to_dict(), f"added campaign {name} for {client_id} ({_rule(info)})")


def _rule(info) -> str:
    since = "recording" if info.retention_basis == "recorded" else "last consent use"
    default = ", client default" if info.client_default else ""
    return f"retention {info.retention_days} days after {since}{default}"


@campaign.command("list")
@click.option("--client", "client_id", help="Only this client's campaigns.")
@click.pass_context
def campaign_list(ctx, client_id) -> None:
    """List campaigns."""
    rows = _open(ctx).campaigns(client_id)
    _emit(
        ctx,
        [r.to_dict() for r in rows],
        "\n".join(f"{r.client}\t{r.name}\t{_rule(r)}" for r in rows) or "(no campaigns)",
    )


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
    receipt = _open(ctx).ingest(clip, meta_path.read_bytes(), media_type=media_type)
    r = receipt.to_dict()
    verb = "already sealed" if receipt.duplicate else "sealed"
    _emit(
        ctx,
        r,
        f"{verb} record {r['record_id']}\n"
        f"  client/campaign: {r['client']}/{r['campaign']}\n"
        f"  log entry:       #{r['seq']}  {r['entry_hash']}",
    )


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 date or time") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


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
    hits = _open(ctx).find(
        client=client_id,
        campaign=campaign,
        order_ref=order_ref,
        phone=phone,
        agent=agent,
        since=_when(since),
        until=_when(until),
        limit=limit,
    )
    lines = [
        f"{h.record_id}  {h.recorded_at:%Y-%m-%d %H:%M}  {h.client}/{h.campaign}  "
        f"{h.order_ref}  {h.agent_id}  {h.duration_ms / 1000:.1f}s"
        for h in hits
    ]
    _emit(
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
    return vault.person(handle, "client", "admin") if handle else vault.operator()


@cli.command()
@click.argument("record_id")
@_READER
@click.pass_context
def show(ctx, record_id, reader) -> None:
    """Print a record's decrypted evidence (identity, intent, consent, spans).

    The access is recorded in the client's log (chain of custody).
    """
    vault = _open(ctx)
    doc = vault.show(record_id, principal=_reader(vault, reader))
    _emit(ctx, doc, _render_document(record_id, doc))


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
    vault = _open(ctx)
    out = vault.write_audio(record_id, output, principal=_reader(vault, reader))
    _emit(ctx, {"record_id": record_id, "output": str(out)}, f"wrote {out}")


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
    vault = _open(ctx)
    from vault.services.verify import count_entries

    total = count_entries(vault.context, client_id)
    show_bar = not ctx.obj["json"] and sys.stderr.isatty()
    with click.progressbar(
        length=total, label="verifying", file=sys.stderr, hidden=not show_bar
    ) as bar:
        report = vault.verify(client_id, progress=bar.update, deep=deep)
    _emit(ctx, report.to_dict(), _render_report(report))
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
@click.pass_context
def checkpoint(ctx, client_id) -> None:
    """Sign a checkpoint of a client's log now (C2SP signed note) and print it."""
    cp = _open(ctx).checkpoint(client_id)
    _emit(ctx, cp.to_dict(), cp.note.rstrip("\n"))


@cli.command()
@click.argument("record_id", required=False)
@click.option("--client", "client_id", help="For a consistency proof: the client's log.")
@click.option("--from", "old", type=int, help="Consistency proof from this tree size ...")
@click.option("--to", "new", type=int, help="... to this one (default: the current size).")
@click.pass_context
def proof(ctx, record_id, client_id, old, new) -> None:
    """Inclusion proof of RECORD_ID in the latest checkpoint, or with --client/--from/--to
    a consistency proof between two tree sizes (RFC 9162)."""
    vault = _open(ctx)
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
        p = vault.consistency_proof(client_id, old, new)
        human = (
            f"{p.client}: size {p.old_size} (root {p.old_root}) is a prefix of size "
            f"{p.new_size} (root {p.new_root})\n" + "\n".join(f"  {h}" for h in p.hashes)
        )
    else:
        raise click.UsageError("give RECORD_ID, or --client with --from [--to]")
    _emit(ctx, p.to_dict(), human)


@cli.group()
def log() -> None:
    """The auditor's view: the log key, exports, offline verification."""


@log.command("key")
@click.pass_context
def log_key(ctx) -> None:
    """Print the log's verifier key (C2SP: name+keyid+base64); auditors pin it."""
    key = _open(ctx).log_key()
    _emit(ctx, {"verifier_key": key}, key)


@log.command("export")
@click.option("--client", "client_id", required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def log_export(ctx, client_id, output: Path) -> None:
    """Export a client's entries and checkpoints (JSON Lines; no PII, no keys)."""
    out = _open(ctx).export_log(client_id, output)
    _emit(ctx, {"output": str(out)}, f"wrote {out}")


@log.command("verify")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key", required=True, help="The log's verifier key (from `log key`).")
@click.option(
    "--trusted-checkpoint",
    "trusted",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint note you saved earlier; the export must be consistent with it.",
)
@click.pass_context
def log_verify(ctx, export: Path, key: str, trusted) -> None:
    """Audit an exported log offline: needs only the file and the key. Exit 0 only if clean."""
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.ledger.offline import audit_export

    verifier = parse_verifier_key(key)
    with export.open(encoding="utf-8") as fh:
        report = audit_export(fh, verifier, [p.read_bytes() for p in trusted])
    human = (
        f"{report.origin}: {report.entries} entries, {report.checkpoints} checkpoints, "
        f"{report.trusted} trusted checkpoint(s)\n"
    )
    human += (
        "OK: the chain, the tree and every checkpoint agree"
        if report.clean
        else "PROBLEMS:\n" + "\n".join(f"  {f}" for f in report.findings)
    )
    _emit(ctx, report.to_dict(), human)
    if not report.clean:
        ctx.exit(EXIT_FINDINGS)


@cli.command()
@click.argument("record_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the bundle (ZIP).",
)
@_READER
@click.pass_context
def export(ctx, record_id, output: Path, reader) -> None:
    """Export one record as an evidence bundle that verifies offline (the export is logged)."""
    vault = _open(ctx)
    out = vault.export_bundle(record_id, output, principal=_reader(vault, reader))
    _emit(ctx, {"record_id": record_id, "output": str(out)}, f"wrote {out}")


@cli.command("verify-bundle")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", help="The vault's verifier key; without it the bundled key is used.")
@click.option(
    "--max-audio-size",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse an audio file larger than this many bytes (default 512 MiB).",
)
@click.pass_context
def verify_bundle(ctx, bundle: Path, key, max_audio_size: int | None) -> None:
    """Verify an evidence bundle offline, needing nothing but the file.

    Exit 0: valid and signed by the --key you gave ("ok": true). Exit 8: internally
    consistent, but signed by the key inside the bundle, which only counts if it is the
    vault's published key (`evidence-vault log key`); "ok" is false. Exit 1: invalid.
    """
    from vault.bundle import MAX_AUDIO_SIZE
    from vault.bundle import verify_bundle as check

    verdict = check(bundle, key, max_audio_size=max_audio_size or MAX_AUDIO_SIZE)
    _emit(ctx, verdict.to_dict(), verdict.summary())
    if not verdict.consistent:
        ctx.exit(EXIT_FINDINGS)
    if not verdict.ok:
        ctx.exit(EXIT_UNPINNED)


@cli.command()
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


def main() -> None:
    cli(prog_name="evidence-vault")


# the lifecycle commands (retention, disputes, erasure, keys) register themselves on `cli`
from cli import agent as _agent_cli  # noqa: E402
from cli import lifecycle, service  # noqa: E402, F401

cli.add_command(_agent_cli.agent)
cli.add_command(_agent_cli.upload)

if __name__ == "__main__":
    main()
