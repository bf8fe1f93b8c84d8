"""Entry tags, head anchors and the row digest against fixed vectors (tests/vectors/logauth.json).

The vectors were computed with the standard library alone (hmac, hashlib, rfc8785), so
another implementation can check its tags and digests against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault.ledger.entry import encode_entry, entry_hash, parse_entry
from vault.sealing import LogAuthenticator
from vault.services.binding import row_digest
from vault.services.logauth import LogKeys, TamperDetected, anchor_path, write_anchor

V = json.loads((Path(__file__).parent / "vectors" / "logauth.json").read_text(encoding="utf-8"))


def auth() -> LogAuthenticator:
    return LogAuthenticator(bytes.fromhex(V["log_key"]), V["client"])


def test_row_digest_vector():
    assert row_digest(V["row"]) == V["row_digest"] == V["entry"]["body"]["row"]


def test_version_2_entry_vector():
    assert encode_entry(V["entry"]).decode() == V["canonical"]
    assert entry_hash(V["canonical"].encode()) == V["leaf_hash"]
    assert parse_entry(V["canonical"].encode()) == V["entry"]


def test_entry_and_head_tag_vectors():
    leaf = bytes.fromhex(V["leaf_hash"])
    assert auth().entry_tag(0, leaf).hex() == V["entry_tag"]
    assert auth().head_tag(1, leaf).hex() == V["head_tag"]
    assert auth().check_entry(0, leaf, bytes.fromhex(V["entry_tag"]))
    # bound to its position, its log and its domain
    assert not auth().check_entry(1, leaf, bytes.fromhex(V["entry_tag"]))
    other = LogAuthenticator(bytes.fromhex(V["log_key"]), "energy-de")
    assert not other.check_entry(0, leaf, bytes.fromhex(V["entry_tag"]))
    assert not auth().check_entry(0, leaf, bytes.fromhex(V["head_tag"]))
    assert not auth().check_entry(0, leaf, None)


def test_anchor_file_vector_and_rules(tmp_path):
    write_anchor(tmp_path, auth(), 1, V["leaf_hash"])
    path = anchor_path(tmp_path, V["client"])
    assert path.read_text(encoding="ascii") == V["anchor_line"]
    keys = LogKeys(auth(), tmp_path)
    assert keys.read_anchor().size == 1
    write_anchor(tmp_path, auth(), 0, "0" * 64)  # never moves back
    assert path.read_text(encoding="ascii") == V["anchor_line"]
    # forged: a larger size with the old tag
    path.write_text(V["anchor_line"].replace(" 1 ", " 9 "), encoding="ascii")
    with pytest.raises(TamperDetected, match="invalid tag"):
        keys.read_anchor()
    path.write_text("garbage\n", encoding="ascii")
    with pytest.raises(TamperDetected, match="malformed"):
        keys.read_anchor()


def test_nulled_tags_are_never_adopted_again(tmp_path):
    from tests.support.tamper import sql
    from tests.support.vaults import CLIENT, clip, make_vault, order_meta
    from vault import Vault

    with make_vault(tmp_path / "v") as v:
        v.ingest(clip(tmp_path, seed=1), order_meta(1))
        sql(v, "UPDATE log_entry SET tag = NULL WHERE client_id = :c AND seq = 0", c=CLIENT)
        home = v.settings.home
    # adoption happens only when a client's log key is made; reopening makes none
    with Vault.open(home) as v:
        [f] = v.verify().findings
        assert (f.kind, f.seq) == ("unauthenticated", 0)
        assert f.detail == "entry was not appended by the vault: its tag is missing"


def test_the_serve_timer_signs_a_quiet_log(tmp_path):
    from dataclasses import replace

    from tests.support.vaults import CLIENT, clip, make_vault, order_meta
    from vault.services.checkpoints import CheckpointTimer

    with make_vault(tmp_path / "v") as v:
        v.ingest(clip(tmp_path, seed=1), order_meta(1))  # signs size 1
        v.context.settings = replace(v.context.settings, checkpoint_every=1000)
        v.ingest(clip(tmp_path, seed=2), order_meta(2))
        assert v.latest_checkpoint(CLIENT).size == 1
        v.context.settings = replace(v.context.settings, checkpoint_seconds=0)
        timer = CheckpointTimer(v.context, 0.05).start()
        try:
            import time

            deadline = time.monotonic() + 10
            while v.latest_checkpoint(CLIENT).size < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            timer.stop()
        assert v.latest_checkpoint(CLIENT).size == 2  # no append was needed
