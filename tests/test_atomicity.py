"""Ingest is all-or-nothing: a fault between upload and commit leaves no record, no entry."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from tests.support.vaults import CLIENT, clip, order_meta, reopen
from vault.db import LogEntry, LogHead, Record, read_session
from vault.services import ingest as ingest_service


def _counts(vault):
    with read_session(vault.context.engine) as s:
        head = s.get(LogHead, CLIENT)
        return (
            len(list(s.exec(Record.__table__.select()))),
            len(list(s.exec(LogEntry.__table__.select()))),
            head.size,
        )


def test_fault_after_upload_leaves_nothing_and_retry_succeeds(vault, tmp_path, monkeypatch):
    src, meta = clip(tmp_path), order_meta(1)
    real_append = ingest_service.append_entries

    def broken_append(*a, **kw):
        raise ConnectionError("database went away")

    monkeypatch.setattr(ingest_service, "append_entries", broken_append)
    with pytest.raises(ConnectionError):
        vault.ingest(src, meta)
    assert _counts(vault) == (0, 0, 0)
    # the uploaded objects were cleaned up where the store allows deletion ...
    leftovers = list(vault.context.store.list(CLIENT + "/"))
    if vault.context.store.supports_object_lock:
        # ... and under Object Lock they cannot be: verify reports them as orphans
        assert {f.kind for f in vault.verify().findings} <= {"orphan"}
    else:
        assert leftovers == []
    monkeypatch.setattr(ingest_service, "append_entries", real_append)
    receipt = vault.ingest(src, meta)
    assert receipt.seq == 0 and not receipt.duplicate
    assert _counts(vault) == (1, 1, 1)


def _crash_between_upload_and_commit(settings, src, meta):
    from vault import Vault
    from vault.services.context import open_vault

    def die(*a, **kw):
        os._exit(17)  # a crash: no cleanup, no exception handlers, no atexit

    ingest_service.append_entries = die
    Vault(open_vault(settings)).ingest(src, meta)


def test_crash_between_upload_and_commit_leaves_orphans_that_verify_reports(vault, tmp_path):
    if vault.settings.s3 and vault.settings.s3.endpoint_url is None:
        pytest.skip(
            "moto's S3 lives in this process's memory: a crashed child's uploads "
            "vanish with it (covered on local and SeaweedFS)"
        )
    src, meta = clip(tmp_path), order_meta(2)
    proc = mp.get_context("fork").Process(
        target=_crash_between_upload_and_commit, args=(vault.settings, src, meta)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 17
    fresh = reopen(vault)
    assert _counts(fresh) == (0, 0, 0)
    report = fresh.verify()
    assert sorted(f.kind for f in report.findings) == ["orphan", "orphan"]
    assert all(f.key.endswith(("/clip", "/meta")) for f in report.findings)
    receipt = fresh.ingest(src, meta)  # the retry succeeds under a fresh record id
    assert receipt.seq == 0
    assert not any(receipt.record_id in f.key for f in fresh.verify().findings)
