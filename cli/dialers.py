"""``evidence-vault import`` and ``reconcile``: recordings from a bucket, and the dialer's
CDR against the vault (docs/dialers.md). Attached to the main command in :mod:`cli.main`.
"""

from __future__ import annotations

import click

from cli._common import EXIT_FINDINGS, command, emit, open_vault
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
