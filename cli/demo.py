"""`evidence-vault demo`: the whole job on a throw-away embedded vault, narrated.

Everything here goes through the public facade, exactly as a user's code would.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from vault import Vault
from vault.errors import Conflict, InvalidEvidence
from vault.synth import EXTENSIONS, FORMATS, MEDIA_TYPES, write_clip

CLIENT, CAMPAIGN = "telco-de", "fibre-upsell-2026q4"
CLIP_SECONDS = 24.0
CUSTOMERS = [
    ("Max Mustermann", "1980-01-31", "10115", "+4915112345678", "Fibre 250", "39.99 EUR/month"),
    ("Erika Musterfrau", "1975-06-12", "20095", "+4917612345670", "Fibre 500", "49.99 EUR/month"),
    ("Jonas Schmidt", "1991-11-03", "80331", "+4915212345679", "Fibre 250", "39.99 EUR/month"),
    ("Leonie Wagner", "1988-02-29", "50667", "+4916012345671", "Fibre 1000", "69.99 EUR/month"),
    ("Ali Yilmaz", "1969-09-09", "70173", "+4930901820", "Fibre 100", "29.99 EUR/month"),
    ("Sophie Becker", "2001-04-17", "01067", "+33612345678", "Fibre 500", "49.99 EUR/month"),
]


def order_metadata(i: int, recorded_at: datetime) -> dict:
    """Realistic order metadata for the i-th demo customer (spans fit a 24 s clip)."""
    name, dob, postcode, phone, product, price = CUSTOMERS[i % len(CUSTOMERS)]
    return {
        "client": CLIENT,
        "campaign": CAMPAIGN,
        "call_id": f"dialer-7f3a-{i + 123:06d}",
        "segment": 1,
        "order_ref": f"ORD-2026-{i + 123:06d}",
        "agent_id": f"agent-{40 + i % 3:03d}",
        "recorded_at": recorded_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "callee": {"phone": phone},
        "consent": {
            "recording_at_ms": 1200,
            "advertising": {
                "source": "web-optin",
                "obtained_at": "2026-10-01T12:00:00Z",
                "reference": f"optin-{5521 + i}",
            },
        },
        "identity": {
            "method": "name+date_of_birth+postcode",
            "confirmed": {"name": name, "date_of_birth": dob, "postcode": postcode},
            "span_ms": [3000, 9000],
        },
        "intent": {
            "product": product,
            "price": price,
            "term": "24 months",
            "statement": "Ja, ich möchte den Vertrag so abschließen.",
            "span_ms": [10000, 18000],
        },
        "withdrawal_notice_span_ms": [18000, 23000],
    }


def say(step: str, text: str = "") -> None:
    click.secho(f"\n== {step}", bold=True)
    if text:
        click.echo(text)


def run_demo(directory: Path | None = None) -> None:
    keep = directory is not None
    root = (
        Path(directory)
        if directory is not None
        else Path(tempfile.mkdtemp(prefix="evidence-vault-demo-"))
    )
    try:
        _run(root)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    click.echo("\nThe demo vault " + (f"is kept in {root}" if keep else "was removed") + ".")


def _run(root: Path) -> None:
    home, clips = root / "vault", root / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    say(
        "1. Create an embedded vault",
        f"SQLite metadata, a local object directory and a keyring, all in {home}",
    )
    vault = Vault.create(home)
    with vault:
        vault.add_client(CLIENT, "Telco DE")
        vault.add_campaign(CLIENT, CAMPAIGN, retention_days=730)
        click.echo(f"client {CLIENT}, campaign {CAMPAIGN} (evidence kept 730 days)")
        receipts = _ingest_all(vault, clips)
        _find_and_open(vault, receipts, root)
        _refusals(vault, clips)
        _verify_and_tamper(vault, receipts)
        _prove(vault, receipts, root)
        _retention(vault, receipts)


def _ingest_all(vault: Vault, clips: Path) -> list:
    say(
        "2. Synthesise six order segments and seal them",
        "real audio in six formats; each is validated, encrypted with its own data key, "
        "stored, and chained into the client's log",
    )
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    receipts = []
    for i, fmt in enumerate(FORMATS):
        clip = write_clip(clips / f"order-{i}{EXTENSIONS[fmt]}", fmt, CLIP_SECONDS, seed=i)
        meta = order_metadata(i, base + timedelta(minutes=17 * i))
        (clips / f"order-{i}.json").write_text(json.dumps(meta, ensure_ascii=False))
        r = vault.ingest(clip, meta, media_type=MEDIA_TYPES[fmt])
        receipts.append((r, clip, meta))
        click.echo(
            f"  {fmt:10s} {clip.stat().st_size:>8,d} bytes -> record {r.record_id}"
            f"  log #{r.seq} {r.entry_hash[:16]}…"
        )
    r, clip, meta = receipts[0]
    again = vault.ingest(clip, meta)
    click.echo(
        f"  uploading order-0 again returns the same record: {again.record_id} "
        f"(duplicate={again.duplicate})"
    )
    return receipts


def _find_and_open(vault: Vault, receipts: list, root: Path) -> None:
    r, clip, meta = receipts[1]
    say(
        "3. A customer disputes an order: find the evidence",
        f"search by order reference {meta['order_ref']}, and by phone number "
        "(matched by keyed hash; the database never holds the number)",
    )
    by_ref = vault.find(order_ref=meta["order_ref"])
    by_phone = vault.find(phone=meta["callee"]["phone"])
    click.echo(f"  by order ref: {[h.record_id for h in by_ref]}")
    click.echo(f"  by phone:     {[h.record_id for h in by_phone]}")
    say("4. Open it (each access is written to the log: chain of custody)")
    doc = vault.show(r.record_id, principal="demo:escalation-team")
    ev = doc["evidence"]
    click.echo(
        f"  identity confirmed: {ev['identity']['confirmed']['name']}, "
        f"born {ev['identity']['confirmed']['date_of_birth']}"
    )
    click.echo(
        f"  intent: {ev['intent']['product']} at {ev['intent']['price']} for "
        f'{ev["intent"]["term"]}: "{ev["intent"]["statement"]}"'
    )
    out = vault.write_audio(
        r.record_id, root / f"retrieved{clip.suffix}", principal="demo:escalation-team"
    )
    same = out.read_bytes() == clip.read_bytes()
    click.echo(f"  audio written to {out.name}: byte-identical to the upload: {same}")
    if not same:
        raise click.ClickException("retrieved audio differs from the upload")


def _refusals(vault: Vault, clips: Path) -> None:
    say("5. Bad input is refused with field-level reasons, and nothing is stored")
    r_meta = order_metadata(0, datetime.now(UTC) - timedelta(hours=1))
    r_meta["call_id"] = "dialer-7f3a-bad"
    r_meta["intent"]["span_ms"] = [10000, 95000]
    r_meta["callee"]["phone"] = "0151 1234"
    try:
        vault.ingest(clips / "order-0.wav", r_meta)
    except InvalidEvidence as exc:
        for fe in exc.errors:
            click.echo(f"  refused: {fe.field}: {fe.message}")
    other = clips / "order-2.wav"
    try:
        meta = json.loads((clips / "order-0.json").read_text())
        vault.ingest(other, meta)
    except Conflict as exc:
        click.echo(f"  refused: {exc.message}")


def _verify_and_tamper(vault: Vault, receipts: list) -> None:
    say("6. Verify the log and every stored object")
    report = vault.verify()
    click.echo(
        f"  {report.entries} log entries, {report.objects} objects: "
        f"{'clean' if report.clean else 'PROBLEMS'}"
    )
    r = receipts[3][0]
    say(
        "7. Someone edits a stored recording behind the vault's back",
        "flip one byte of a stored clip object, then verify again",
    )
    path = _object_path(vault, r.record_id)
    original = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    for f in vault.verify().findings:
        click.echo(f"  found: {f}")
    path.write_bytes(original)
    path.chmod(0o444)
    click.echo(f"  after restoring the object: clean = {vault.verify().clean}")


def _prove(vault: Vault, receipts: list, root: Path) -> None:
    from vault.bundle import verify_bundle

    say(
        "8. Prove it to outsiders: a signed checkpoint, and a bundle for the lawyer",
        "the vault signs its log's Merkle root (C2SP checkpoint); one record is exported "
        "as a ZIP that verifies offline against the vault's published key",
    )
    key = vault.log_key()
    cp = vault.checkpoint(CLIENT)
    click.echo(f"  log key:    {key}")
    lines = cp.note.rstrip().splitlines()
    click.echo(
        "  checkpoint: " + "\n".join([lines[0], *(" " * 14 + ln if ln else "" for ln in lines[1:])])
    )
    r = receipts[1][0]
    bundle = vault.export_bundle(
        r.record_id, root / "dispute.zip", principal="demo:escalation-team"
    )
    verdict = verify_bundle(bundle, key)
    click.echo(f"  bundle {bundle.name}: " + verdict.summary().splitlines()[0])
    if not verdict.ok:
        raise click.ClickException("the exported bundle does not verify")


def _retention(vault: Vault, receipts: list) -> None:
    disputed, other = receipts[1][0], receipts[2][0]
    say(
        "9. Over two years later: retention runs, the disputed order is kept",
        "the client's dispute placed a legal hold; everything else past its 730 days is "
        "crypto-shredded (its data key destroyed) and its objects deleted; the key of the "
        "month whose evidence has expired is destroyed too, so database backups are covered",
    )
    hold = vault.open_dispute(
        disputed.record_id,
        case_ref="CASE-2026-0042",
        reason="customer denies the order",
        principal="demo:escalation-team",
    )
    click.echo(f"  dispute {hold.id} holds record {disputed.record_id}")
    later = datetime.now(UTC) + timedelta(days=800)
    # the demo's time machine: the same vault, opened with a clock 800 days ahead
    with Vault.open(vault.settings.home, clock=lambda: later) as future:
        _retention_later(future, later, disputed.record_id, other.record_id)


def _retention_later(vault: Vault, later: datetime, disputed: str, other: str) -> None:
    from vault.errors import Shredded

    report = vault.run_retention()
    click.echo(
        f"  retention run on {later:%Y-%m-%d}: shredded {len(report.shredded)}, kept on hold "
        f"{len(report.kept)}, month keys destroyed {len(report.keks_destroyed)}, the held "
        f"record's data key re-wrapped under a later month's key: {report.rewrapped}"
    )
    try:
        vault.show(other)
    except Shredded as exc:
        click.echo(f"  opening {other}: {exc.message}")
    kept = vault.show(disputed, principal="demo:escalation-team")
    click.echo(f"  the disputed order is still readable: {kept['evidence']['order_ref']}")
    checked = vault.verify()
    click.echo(
        f"  verify after shredding: {checked.entries} log entries, "
        f"{'clean' if checked.clean else 'PROBLEMS'} (the log commits only to hashes)"
    )
    if not checked.clean:
        raise click.ClickException("verify found problems after the retention run")


def _object_path(vault: Vault, record_id: str) -> Path:
    # the tamperer works behind the vault's back: below the facade, on purpose
    from vault.services.retrieve import get_record

    rec = get_record(vault.context, record_id)
    return vault.settings.resolved_objects_dir / rec.clip_key
