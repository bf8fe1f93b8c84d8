"""Attack 3: cutting the unsigned tail of the log and rewinding the head.

The database alone cannot tell: the remaining entries chain, the tree and the head agree.
What remembers the cut entries is outside the database: the head anchor in the vault
directory, and signed checkpoints in object storage (under Object Lock on S3).
"""

from __future__ import annotations

import pytest

from tests.attacks.helpers import findings, seal
from tests.support.vaults import CLIENT

CUT = 2


@pytest.fixture
def log(vault, attacker, tmp_path):
    """Three sealed records and two reads after them; returns the log size."""
    ids = [seal(vault, tmp_path, n) for n in range(3)]
    for record in ids[:CUT]:
        vault.show(record)  # evidence.accessed entries: the tail that will be cut
    assert vault.verify().clean
    size, _ = attacker.head(CLIENT)
    assert attacker.checkpoint_sizes(CLIENT) == [1]  # only the first append was signed
    return size


def _anchor(vault):
    return vault.settings.home / "anchors" / f"{CLIENT}.head"


def test_cut_tail_is_truncated_by_the_anchor(vault, attacker, log):
    attacker.truncate(CLIENT, log - CUT)
    assert findings(vault.verify()) == [
        (
            "truncated",
            None,
            log - CUT,
            f"the vault anchored a log of {log} entries outside the database, but the "
            f"stored log ends at {log - CUT}: entries were cut off the end",
        )
    ]


def test_cut_tail_and_deleted_anchor_is_the_residual_window(vault, attacker, log):
    """The documented residual window: an attacker who can write the database AND the
    vault directory, cutting entries that no checkpoint covers yet, is not detected.
    `serve` bounds the window by signing the tail every checkpoint_seconds."""
    attacker.truncate(CLIENT, log - CUT)
    _anchor(vault).unlink()
    assert vault.verify().clean
    assert max(attacker.checkpoint_sizes(CLIENT)) < log - CUT + 1  # nothing covered the cut


def test_cut_tail_under_a_checkpoint_is_truncated_by_it(vault, attacker, log):
    vault.checkpoint(CLIENT)
    attacker.truncate(CLIENT, log - CUT)
    _anchor(vault).unlink()
    note = f"{CLIENT}/_checkpoints/{log}"
    # the checkpoint was also published with the tiled log (_tlog/): a third witness
    published = f"published checkpoint _tlog/{CLIENT}/checkpoint"
    held = f"covers {log} entries but the log holds only {log - CUT}"
    assert findings(vault.verify()) == [
        ("truncated", None, log - CUT, f"database checkpoint {log} {held}"),
        ("truncated", None, log - CUT, f"{published} {held}"),
        ("truncated", None, log - CUT, f"stored checkpoint {note} {held}"),
    ]
    # the database row of the checkpoint is the attacker's too; the signed note in
    # object storage is not
    attacker.run("DELETE FROM checkpoint WHERE client_id = ? AND size = ?", CLIENT, log)
    assert findings(vault.verify()) == [
        ("truncated", None, log - CUT, f"{published} {held}"),
        ("truncated", None, log - CUT, f"stored checkpoint {note} {held}"),
    ]
