"""`gc` collects orphans (objects no committed record owns), and never an owned object.

Orphans are made the way outages make them: an upload whose commit hits a database error
keeps its objects (the commit may have happened). The vault's clock is moved on to age
them past the grace period; objects in flight (younger) and every owned object survive.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy.exc import OperationalError

from cli.main import cli
from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.errors import OutcomeUnknown
from vault.services import ingest as ingest_module
from vault.services import orphans
from vault.services.context import utc_now


def _orphan_upload(vault, path, n: int, monkeypatch) -> None:
    """An upload whose commit fails with a database error: its objects stay behind."""
    real = ingest_module._commit

    def failing(*_a, **_k):
        raise OperationalError("COMMIT", {}, Exception("connection lost"))

    monkeypatch.setattr(ingest_module, "_commit", failing)
    with pytest.raises(OutcomeUnknown):
        vault.ingest(path, order_meta(n))
    monkeypatch.setattr(ingest_module, "_commit", real)


def _data_keys(vault) -> set[str]:
    # keys under "_" segments are the vault's own: checkpoints, the published tiled log
    return {k for k in vault.context.store.list("") if "/_" not in k and not k.startswith("_")}


def _orphan_findings(vault) -> list:
    return [f for f in vault.verify().findings if f.kind == "orphan"]


def test_gc_deletes_old_orphans_and_never_an_owned_or_young_object(tmp_path, monkeypatch):
    start = utc_now()
    now = [start]
    vault = make_vault(tmp_path / "vault", clock=lambda: now[0])
    path = clip(tmp_path)
    vault.ingest(path, order_meta(0))
    owned = _data_keys(vault)
    _orphan_upload(vault, path, 1, monkeypatch)
    left = _data_keys(vault) - owned
    assert len(left) == 2 and len(owned) == 2
    assert {f.key for f in _orphan_findings(vault)} == left

    # half an hour on, the orphans may still be an upload in flight: untouched
    now[0] = start + timedelta(minutes=30)
    young = orphans.collect(vault.context, grace=timedelta(hours=1))
    assert young.deleted == [] and young.within_grace == 2
    assert _data_keys(vault) == owned | left

    # two hours on: a dry run lists them, a real run deletes them; the owned ones (older
    # than the grace too) stay, and so does the record
    now[0] = start + timedelta(hours=2)
    dry = orphans.collect(vault.context, dry_run=True)
    assert {d["key"] for d in dry.deleted} == left and _data_keys(vault) == owned | left
    done = orphans.collect(vault.context)
    assert {d["key"] for d in done.deleted} == left
    assert all(set(d) == {"key", "version", "size"} for d in done.deleted)
    assert _data_keys(vault) == owned
    report = vault.verify(deep=True)  # deep: the record's objects are opened and checked
    assert report.clean, [f.to_dict() for f in report.findings]


def test_gc_command_and_retention_run(tmp_path, monkeypatch):
    vault = make_vault(tmp_path / "vault")
    path = clip(tmp_path)
    vault.ingest(path, order_meta(0))
    _orphan_upload(vault, path, 1, monkeypatch)
    home = str(vault.settings.home)
    runner = CliRunner()
    kept = runner.invoke(cli, ["--vault", home, "gc", "--json"])
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.output)["within_grace"] == 2
    bad = runner.invoke(cli, ["--vault", home, "gc", "--grace", "soon"])
    assert bad.exit_code == 2
    dry = runner.invoke(cli, ["--vault", home, "gc", "--grace", "0s", "--dry-run", "--json"])
    assert len(json.loads(dry.output)["deleted"]) == 2 and len(_orphan_findings(vault)) == 2
    run = runner.invoke(cli, ["--vault", home, "retention", "run", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)["orphans"]["within_grace"] == 2  # default grace: 1 h
    gone = runner.invoke(cli, ["--vault", home, "gc", "--grace", "0s"])
    assert gone.exit_code == 0 and "deleted 2" in gone.output
    assert _orphan_findings(vault) == []


def test_gc_on_every_store_records_locked_orphans_so_verify_knows_them(
    vault, tmp_path, monkeypatch
):
    """Local store: deleted. Object Lock (moto, real SeaweedFS): the store refuses, so each
    orphan is recorded once as ``object.orphaned`` and verify stops reporting it."""
    path = clip(tmp_path)
    vault.ingest(path, order_meta(0))
    owned = _data_keys(vault)
    _orphan_upload(vault, path, 1, monkeypatch)
    left = _data_keys(vault) - owned
    assert len(left) == 2 and {f.key for f in _orphan_findings(vault)} == left
    entries = vault.count_entries()

    first = orphans.collect(vault.context, grace=timedelta(0))
    locked = vault.context.store.supports_object_lock
    if locked:
        assert {a["key"] for a in first.acknowledged} == left and first.deleted == []
        assert vault.count_entries() == entries + 2  # one object.orphaned entry each
        assert _data_keys(vault) == owned | left  # the lock still runs
        again = orphans.collect(vault.context, grace=timedelta(0))
        assert {a["key"] for a in again.locked} == left and again.acknowledged == []
        assert vault.count_entries() == entries + 2  # recorded once
    else:
        assert {d["key"] for d in first.deleted} == left
        assert _data_keys(vault) == owned
    assert _data_keys(vault) >= owned  # owned objects are never touched
    report = vault.verify(deep=True)
    assert report.clean, [f.to_dict() for f in report.findings]


@pytest.mark.parametrize(
    "vault",
    ["moto-sqlite", pytest.param("seaweedfs-sqlite", marks=pytest.mark.seaweedfs)],
    indirect=True,
)
def test_a_recorded_orphan_is_deleted_once_its_lock_runs_out(vault, tmp_path):
    """Under Object Lock gc records the orphan first; a later gc, after the lock's
    retain-until date, deletes it for real, records nothing more, and verify stays clean."""
    vault.ingest(clip(tmp_path), order_meta(0))
    owned, store = _data_keys(vault), vault.context.store
    # an object left by a crash, locked for a few seconds only (the store rounds up to 1 s)
    stored = store.put(
        f"{CLIENT}/left-by-a-crash.bin",
        [b"\x00" * 4096],
        retain_until=utc_now() + timedelta(seconds=2),
    )
    assert stored.retain_until is not None
    first = orphans.collect(vault.context, grace=timedelta(0))
    assert [a["key"] for a in first.acknowledged] == [stored.key] and first.deleted == []
    entries = vault.count_entries()
    assert vault.verify(deep=True).clean
    while utc_now() <= stored.retain_until + timedelta(seconds=1):
        time.sleep(0.2)
    second = orphans.collect(vault.context, grace=timedelta(0))
    assert second.deleted == [
        {"key": stored.key, "version": stored.version_id, "size": stored.size}
    ]
    assert second.acknowledged == [] and second.locked == []
    assert _data_keys(vault) == owned  # the owned clip and metadata untouched
    assert vault.count_entries() == entries  # deleting it is not a second record
    report = vault.verify(deep=True)
    assert report.clean, [f.to_dict() for f in report.findings]
