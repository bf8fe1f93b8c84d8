"""Attacks 1 and 2: entries the vault did not append — forged, tag-replayed, edited.

The attacker writes well-formed canonical JSON at the right place with the right ``prev``,
the Merkle leaf and the parents it completes, and moves the log head: the chain, the
tree and the head all check out. Only the tag cannot be made without the log key.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.attacks.helpers import findings, seal
from tests.support.vaults import CLIENT
from vault.services.logauth import TamperDetected

UNTAGGED = "entry was not appended by the vault: its tag is missing"
WRONG_TAG = "entry was not appended by the vault: its tag is wrong"


@pytest.fixture
def records(vault, tmp_path):
    ids = [seal(vault, tmp_path, n) for n in range(3)]
    assert vault.verify().clean
    return ids


def _forge_shred(attacker, record: str, *, tag: bytes | None = None) -> int:
    """An evidence.shredded entry for a live record, and the row shredded to match it."""
    sealed = attacker.entry(CLIENT, attacker.record(record, "seq"))
    seq = attacker.append(
        CLIENT,
        "evidence.shredded",
        record,
        {
            "reason": "erasure",
            "rule": "GDPR Art. 17 request art17",
            "retain_until": sealed["body"]["retain_until"],
            "kek": attacker.record(record, "kek_id"),
        },
        tag=tag,
    )
    attacker.run(
        "UPDATE record SET wrapped_dek = ?, shredded_at = ?, shred_reason = 'erasure', "
        "shred_rule = 'GDPR Art. 17 request art17', phone_hash = '', clip_fingerprint = '', "
        "meta_fingerprint = '' WHERE id = ?",
        b"",
        attacker.now_value(),
        record,
    )
    return seq


def _no_checkpoint_at(vault, attacker, size: int) -> None:
    assert size not in attacker.checkpoint_sizes(CLIENT)
    note = vault.settings.resolved_objects_dir / CLIENT / "_checkpoints" / str(size)
    assert not note.exists()


def test_forged_shred_entry_is_unauthenticated_and_never_signed(vault, attacker, records):
    target = records[1]
    seq = _forge_shred(attacker, target)
    assert attacker.head(CLIENT)[0] == seq + 1

    assert findings(vault.verify()) == [("unauthenticated", target, seq, UNTAGGED)]
    with pytest.raises(TamperDetected, match=f"entry {seq} was not appended by the vault"):
        vault.checkpoint(CLIENT)
    _no_checkpoint_at(vault, attacker, seq + 1)
    # the record is not taken as shredded: every use of it is refused as tampered ...
    with pytest.raises(TamperDetected, match=f"log entry {seq} was not appended"):
        vault.show(target)
    # ... and the retention run does not purge its objects on the forged entry's word
    clip_key = attacker.record(target, "clip_key")
    with pytest.raises(TamperDetected):
        vault.run_retention()
    assert (vault.settings.resolved_objects_dir / clip_key).exists()
    assert attacker.head(CLIENT)[0] == seq + 1  # nothing was appended by the refusals


def test_replayed_tag_of_another_entry(vault, attacker, records):
    """A valid tag copied from the entry before: it is bound to that entry's seq and hash."""
    size, _ = attacker.head(CLIENT)
    seq = _forge_shred(attacker, records[2], tag=attacker.tag(CLIENT, size - 1))
    assert findings(vault.verify()) == [("unauthenticated", records[2], seq, WRONG_TAG)]
    with pytest.raises(TamperDetected):
        vault.checkpoint(CLIENT)
    _no_checkpoint_at(vault, attacker, seq + 1)


def test_replaced_last_entry_keeps_its_tag(vault, attacker, records):
    """The last entry cut and a forged one appended in its place with the old tag (same
    seq, same log): the tag still covers the old entry's hash, and the anchor its head."""
    vault.show(records[0])  # an evidence.accessed entry at the head
    size, _ = attacker.head(CLIENT)
    old_tag = attacker.tag(CLIENT, size - 1)
    attacker.truncate(CLIENT, size - 1)
    seq = _forge_shred(attacker, records[0], tag=old_tag)
    assert seq == size - 1
    assert findings(vault.verify()) == [
        (
            "forked",
            None,
            seq,
            "the entry at the anchored head differs from the one the vault appended",
        ),
        ("unauthenticated", records[0], seq, WRONG_TAG),
    ]
    with pytest.raises(TamperDetected):
        vault.checkpoint(CLIENT)
    _no_checkpoint_at(vault, attacker, size)


def _earlier(entry: dict) -> None:
    entry["body"]["retain_until"] = "2027-01-01T00:00:00.000Z"


def test_entry_edited_in_place_keeps_its_tag(vault, attacker, records):
    """The sealed entry's retain_until moved earlier in the stored bytes, row to match."""
    target = records[1]
    seq = attacker.record(target, "seq")
    attacker.rewrite(CLIENT, seq, _earlier)
    assert findings(vault.verify()) == [
        (
            "modified",
            None,
            None,
            "the stored Merkle tree nodes do not match the log entries; proofs served "
            "from them would fail",
        ),
        (
            "modified",
            target,
            seq,
            f"entry {seq} does not hash to the value entry {seq + 1} chained to",
        ),
        ("modified", target, seq, "record row disagrees with its log entry: retain_until"),
        (
            "modified",
            target,
            seq,
            "the stored Merkle leaf differs from the entry's hash; proofs served for it would fail",
        ),
        ("unauthenticated", target, seq, WRONG_TAG),
    ]
    with pytest.raises(TamperDetected):
        vault.checkpoint(CLIENT)
    with pytest.raises(TamperDetected, match=f"log entry {seq} was not appended"):
        vault.show(target)


def test_rewritten_tail_rechained_and_rehashed(vault, attacker, records):
    """The edit carried through: every later entry re-chained, the Merkle tree rebuilt and
    the head moved. Chain, tree and head agree again; the tags and the anchor do not."""
    target = records[1]
    first = attacker.record(target, "seq")
    size, _ = attacker.head(CLIENT)
    attacker.rewrite(CLIENT, first, _earlier)
    attacker.rechain(CLIENT, first + 1)
    assert attacker.head(CLIENT)[0] == size
    # and the row follows the forged entry, so the two agree
    attacker.set_record(
        target, "retain_until", attacker.time_value(datetime(2027, 1, 1, tzinfo=UTC))
    )
    rewritten = [
        ("unauthenticated", attacker.entry(CLIENT, s).get("record"), s, WRONG_TAG)
        for s in range(first, size)
    ]
    assert findings(vault.verify()) == sorted(
        [
            (
                "forked",
                None,
                size - 1,
                "the entry at the anchored head differs from the one the vault appended",
            ),
            *rewritten,
        ],
        key=lambda t: (t[0], t[1] or "", -1 if t[2] is None else t[2], t[3]),
    )
    with pytest.raises(TamperDetected):
        vault.checkpoint(CLIENT)
    _no_checkpoint_at(vault, attacker, size)
