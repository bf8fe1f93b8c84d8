"""``evidence-vault import`` and ``reconcile``: recordings from a bucket, and the dialer's
CDR against the vault (docs/dialers.md). Attached to the main command in :mod:`cli.main`.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli._common import EXIT_FINDINGS, command, emit, group, open_vault, parse_when
from vault.services import cpaas as cpaas_service
from vault.services import reconcile as reconciling
from vault.services import s3import


@command("import")
@click.argument("source", metavar="s3://BUCKET/PREFIX")
@click.option("--endpoint-url", help="S3 endpoint of the bucket (omit for AWS).")
@click.option("--region", help="Region of the bucket.")
@click.option("--client", "client_id", help="Import only sidecars of this client.")
@click.pass_context
def import_(ctx, source: str, endpoint_url, region, client_id) -> None:
    """Import every clip + sidecar pair under an S3 prefix, each once.

    Safe to run again (and for every at-least-once event): a pair already imported is
    skipped, the same call segment again is stored once. A clip whose sidecar is not there
    yet waits for the next run. Credentials come from boto3's usual chain. Exit 1 if any
    pair was refused (the reasons are listed).
    """
    import boto3

    where = s3import.S3Location.parse(source)
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
    vault = open_vault(ctx)
    outcomes = s3import.import_prefix(vault.context, s3, where, client=client_id)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    lines = [
        f"{o.status:16} {o.key}"
        + (f"  record {o.record_id}" if o.record_id else "")
        + (f"  ({o.reason})" if o.reason else "")
        for o in outcomes
    ]
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to import"
    emit(
        ctx,
        {"source": source, "counts": counts, "objects": [o.to_dict() for o in outcomes]},
        "\n".join([*lines, summary]),
    )
    if counts.get("refused"):
        ctx.exit(EXIT_FINDINGS)


@command()
@click.option(
    "--calls",
    "calls_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The dialer's CDR as CSV: call_id, segment, order_ref (header row).",
)
@click.option("--client", "client_id", required=True, help="The client (tenant).")
@click.option("--campaign", help="Only this campaign's records.")
@click.option("--since", help="Only records recorded at or after (ISO 8601, UTC default).")
@click.option("--until", help="Only records recorded before (ISO 8601, UTC default).")
@click.pass_context
def reconcile(ctx, calls_path: Path, client_id, campaign, since, until) -> None:
    """Calls of the CDR without sealed evidence, and evidence without a call.

    Give the window the CDR export covers (--since/--until), or every record of the client
    outside the CDR counts as evidence without a call. Exit 0 when everything matches, 1
    when anything is listed.
    """
    calls = reconciling.read_calls(calls_path)
    vault = open_vault(ctx)
    report = reconciling.reconcile(
        vault.context,
        client_id,
        calls,
        campaign=campaign,
        since=parse_when(since, "--since"),
        until=parse_when(until, "--until"),
    )
    emit(ctx, report.to_dict(), _render(report))
    if not report.clean:
        ctx.exit(EXIT_FINDINGS)


def _render(r: reconciling.Reconciliation) -> str:
    lines = [f"{r.calls} calls in the CDR, {r.records} records of {r.client} in scope"]
    sections = (
        ("calls without sealed evidence", r.missing, "line {line}: {call_id} #{segment}"),
        ("calls whose evidence was shredded", r.shredded, "{call_id} #{segment}: {record_id}"),
        (
            "order reference differs",
            r.order_ref_mismatch,
            "{call_id} #{segment}: CDR {cdr_order_ref}, evidence {order_ref} ({record_id})",
        ),
        (
            "evidence without a call in the CDR",
            r.unmatched,
            "{record_id} {campaign} {call_id} #{segment} {order_ref} {recorded_at}",
        ),
    )
    for title, items, fmt in sections:
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines += ["  " + fmt.format(**item) for item in items]
    if r.clean:
        lines.append("every call has its sealed evidence, and every record its call")
    return "\n".join(lines)


@group()
def cpaas() -> None:
    """Recordings announced by CPaaS webhooks (docs/dialers.md)."""


@cpaas.command("jobs")
@click.option("--client", "client_id", help="Only this client's jobs.")
@click.option(
    "--state", type=click.Choice(["queued", "done", "failed"]), help="Only jobs in this state."
)
@click.pass_context
def cpaas_jobs(ctx, client_id, state) -> None:
    """The jobs of recording-ready callbacks, newest first (no metadata values).

    `serve` runs them; a failed job names the problem's kind: after fixing its cause, the
    CPaaS's callback can be sent again (a failed job is tried afresh).
    """
    rows = cpaas_service.jobs(open_vault(ctx).context, client_id)
    rows = [r for r in rows if state is None or r["state"] == state]
    lines = [
        f"{r['id']}  {r['state']:7} {r['client']}/{r['campaign']}  {r['recording_sid']}  "
        f"attempts {r['attempts']}"
        + (f"  record {r['record_id']}" if r["record_id"] else "")
        + (f"  ({r['last_error']})" if r["last_error"] else "")
        for r in rows
    ]
    emit(ctx, rows, "\n".join(lines) or "(no jobs)")
