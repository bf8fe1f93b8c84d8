"""What the attack tests share: sealed records, findings as comparable tuples, the CLI."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from tests.support.vaults import clip, order_meta
from vault import Vault

PHONE_A, PHONE_B = "+4915112345678", "+4917098765432"


def seal(vault: Vault, tmp: Path, n: int, phone: str = PHONE_A) -> str:
    meta = order_meta(n, callee={"phone": phone})
    return vault.ingest(clip(tmp, seed=n), meta).record_id


def findings(report) -> list[tuple]:
    """Every finding as (kind, record, seq, detail), in a stable order."""
    return sorted(
        ((f.kind, f.record, f.seq, f.detail) for f in report.findings),
        key=lambda t: (t[0], t[1] or "", -1 if t[2] is None else t[2], t[3]),
    )


def cli_run(vault: Vault, *args: str):
    """The `evidence-vault` command on this vault, as an operator would run it."""
    return CliRunner().invoke(cli, ["--vault", str(vault.settings.home), *args])


def sealed_seq(attacker, record: str) -> int:
    return attacker.record(record, "seq")
