"""``evidence-vault witness``: C2SP tlog-witness cosigning of the logs' checkpoints.

``cosign`` submits each client's latest checkpoint to the configured witnesses (what
``serve`` does on its checkpoint timer; run it from cron when the vault runs without
``serve``); ``status`` shows what each witness has cosigned and any refusal.
"""

from __future__ import annotations

import click

from cli._common import EXIT_FINDINGS, emit, group, open_vault
from vault.services import witnessing


@group()
def witness() -> None:
    """Witness cosignatures of checkpoints (C2SP tlog-witness): cosign now, status."""


@witness.command("cosign")
@click.option("--client", "client_id", help="Only this client's log.")
@click.pass_context
def witness_cosign(ctx, client_id) -> None:
    """Ask the configured witnesses to cosign each log's latest checkpoint, now.

    Exit 1 if a witness refused a checkpoint (a forked or rolled-back log, or a witness
    that does not know the log): see `witness status`. An unreachable witness is retried
    on the next run.
    """
    vault = open_vault(ctx)
    if not vault.settings.witnessing.witnesses:
        raise click.UsageError(
            "no witness is configured: add [[witnessing.witnesses]] url and key to vault.toml "
            "(docs/operations.md, Witnesses)"
        )
    outcomes = witnessing.catch_up(vault.context, client_id)
    human = "\n".join(
        f"{o.client} size {o.size}: {o.witness}: {o.result}"
        + (f" ({o.detail})" if o.detail else "")
        for o in outcomes
    )
    emit(ctx, {"outcomes": [o.to_dict() for o in outcomes]}, human or "no checkpoint to cosign")
    if any(o.result in (witnessing.REFUSED, witnessing.ROLLED_BACK) for o in outcomes):
        ctx.exit(EXIT_FINDINGS)


@witness.command("status")
@click.option("--client", "client_id", required=True, help="The client whose log to show.")
@click.pass_context
def witness_status(ctx, client_id) -> None:
    """What each configured witness has cosigned of a client's log, and its refusals."""
    vault = open_vault(ctx)
    states = witnessing.witness_status(vault.context, client_id)
    refusals = witnessing.refusals(vault.context, client_id)
    lines = [
        f"{s.witness} ({s.url}): "
        + (
            f"cosigned size {s.cosigned_size} at {s.cosigned_at:%Y-%m-%dT%H:%M:%SZ}"
            if s.cosigned_size is not None and s.cosigned_at is not None
            else "nothing cosigned yet"
        )
        + (f"; {s.refusals} refusal(s)" if s.refusals else "")
        for s in states
    ]
    lines += [f"  refused size {r.size} ({r.status}) by {r.witness}: {r.reason}" for r in refusals]
    doc = {
        "witnesses": [s.to_dict() for s in states],
        "refusals": [
            {
                "size": r.size,
                "witness": r.witness,
                "status": r.status,
                "reason": r.reason,
                "witness_size": r.witness_size,
                "refused_at": r.refused_at.isoformat(),
            }
            for r in refusals
        ],
    }
    emit(ctx, doc, "\n".join(lines) or "no witness is configured")
