"""Desk credentials: argon2id passwords, sealed TOTP secrets, tagged rows, throttling."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests.support.vaults import CLIENT, make_vault
from vault.db import read_session, write_session
from vault.db.models import Credential, LogEntry, Person
from vault.sealing.credentials import CredentialSeal, totp_code
from vault.services import credentials, people

OP = people.operator("local:test-operator")
PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def vault(tmp_path):
    clock = Clock()
    v = make_vault(tmp_path / "v", clock=clock)
    v.clock = clock
    for handle in ("anna", "bert"):
        people.add_person(v.context, handle, role="client", client=CLIENT, by=OP)
        credentials.set_password(v.context, handle, PASSWORD, by=OP)
    yield v
    v.close()


def _secret(v, handle: str) -> bytes:
    ctx = v.context
    with read_session(ctx.engine) as s:
        person = s.exec(text("SELECT id FROM person WHERE handle = :h"), params={"h": handle}).one()
        cred = s.get(Credential, person[0])
    return credentials.seal(ctx).open_totp(person[0], cred.totp_sealed)


def test_password_is_argon2id_and_checked(vault):
    ctx = vault.context
    with read_session(ctx.engine) as s:
        stored = [c.password_hash for c in s.exec(text("SELECT password_hash FROM credential"))]
    assert all(h.startswith("$argon2id$") for (h,) in [(x,) for x in stored])
    assert PASSWORD not in "".join(stored)
    ok = credentials.check_password_step(ctx, "anna", PASSWORD, "10.0.0.1")
    assert ok.needs_totp is False
    with pytest.raises(credentials.SignInRefused):
        credentials.check_password_step(ctx, "anna", PASSWORD + "x", "10.0.0.1")


def test_unknown_handle_and_wrong_password_answer_alike(vault):
    ctx = vault.context
    with pytest.raises(credentials.SignInRefused) as unknown:
        credentials.check_password_step(ctx, "nobody", PASSWORD, "10.0.0.2")
    with pytest.raises(credentials.SignInRefused) as wrong:
        credentials.check_password_step(ctx, "anna", "wrong password!!", "10.0.0.3")
    assert unknown.value.message == wrong.value.message
    assert unknown.value.hint == wrong.value.hint


def test_short_password_is_refused(vault):
    from vault.errors import InvalidEvidence

    with pytest.raises(InvalidEvidence):
        credentials.set_password(vault.context, "anna", "short", by=OP)


def test_swapped_password_hash_signs_nobody_in(vault):
    """A database writer copies bert's row (whose password they know) onto anna's."""
    ctx = vault.context
    with write_session(ctx.engine) as s:
        ids = dict(s.exec(text("SELECT handle, id FROM person")).all())
        bert = s.get(Credential, ids["bert"])
        anna = s.get(Credential, ids["anna"])
        anna.password_hash, anna.tag = bert.password_hash, bert.tag
        s.add(anna)
    with pytest.raises(credentials.SignInRefused):
        credentials.check_password_step(ctx, "anna", PASSWORD, "10.0.0.4")
    assert credentials.tampered_credentials(ctx) == ["anna"]
    findings = vault.verify().findings
    assert [f.kind for f in findings] == ["modified"] and "person anna" in findings[0].detail
    # bert is untouched
    credentials.check_password_step(ctx, "bert", PASSWORD, "10.0.0.4")


def test_a_fresh_hash_without_the_key_fails_the_tag(vault):
    from vault.sealing.credentials import hash_password

    ctx = vault.context
    with write_session(ctx.engine) as s:
        s.exec(
            text("UPDATE credential SET password_hash = :h"),
            params={"h": hash_password("attacker's password")},
        )
    with pytest.raises(credentials.SignInRefused):
        credentials.check_password_step(ctx, "anna", "attacker's password", "10.0.0.5")


def test_totp_enrol_sealed_checked_once_and_reset(vault):
    ctx = vault.context
    uri = credentials.enrol_totp(ctx, "anna", by=OP)
    assert uri.startswith("otpauth://totp/") and "issuer=evidence-vault" in uri
    secret = _secret(vault, "anna")
    with read_session(ctx.engine) as s:
        (sealed,) = s.exec(
            text(
                "SELECT totp_sealed FROM credential c JOIN person p "
                "ON p.id = c.person_id WHERE p.handle = 'anna'"
            )
        ).one()
    assert secret not in bytes(sealed)
    ok = credentials.check_password_step(ctx, "anna", PASSWORD, "10.0.0.6")
    assert ok.needs_totp
    code = totp_code(secret, vault.clock.now)
    credentials.check_totp_step(ctx, ok.person_id, code, "10.0.0.6")
    with pytest.raises(credentials.SignInRefused):  # the same code twice: a replay
        credentials.check_totp_step(ctx, ok.person_id, code, "10.0.0.6")
    vault.clock.now += timedelta(seconds=60)
    with pytest.raises(credentials.SignInRefused):
        credentials.check_totp_step(
            ctx, ok.person_id, "000000" if code != "000000" else "111111", "10.0.0.6"
        )
    credentials.reset_factor(ctx, "anna", by=OP)
    assert credentials.check_password_step(ctx, "anna", PASSWORD, "10.0.0.6").needs_totp is False
    with read_session(ctx.engine) as s:
        changes = [
            e.entry
            for e in s.exec(
                __import__("sqlmodel").select(LogEntry).where(LogEntry.type == "person.credential")
            )
        ]
    assert len(changes) == 4  # two passwords, enrol, reset; and no secret in any
    assert all(PASSWORD.encode() not in bytes(c) and b"otpauth" not in bytes(c) for c in changes)


def test_totp_secret_moved_to_another_person_does_not_open(vault):
    ctx = vault.context
    credentials.enrol_totp(ctx, "bert", by=OP)
    with read_session(ctx.engine) as s:
        ids = dict(s.exec(text("SELECT handle, id FROM person")).all())
        sealed = bytes(s.get(Credential, ids["bert"]).totp_sealed)
    seal = credentials.seal(ctx)
    assert seal.open_totp(ids["anna"], sealed) is None
    assert seal.open_totp(ids["bert"], sealed) is not None
    # removing the second factor in the database breaks the tag: no downgrade
    with write_session(ctx.engine) as s:
        s.exec(
            text("UPDATE credential SET totp_sealed = NULL WHERE person_id = :p"),
            params={"p": ids["bert"]},
        )
    with pytest.raises(credentials.SignInRefused):
        credentials.check_password_step(ctx, "bert", PASSWORD, "10.0.0.7")


def test_throttling_per_handle_and_per_address_locks_and_doubles(vault):
    ctx = vault.context
    for i in range(credentials.FREE_FAILURES):
        with pytest.raises(credentials.SignInRefused):
            credentials.check_password_step(ctx, "anna", "wrong password!!", f"10.1.0.{i}")
    # now locked for the handle, whatever the address, even with the right password
    with pytest.raises(credentials.SignInLocked):
        credentials.check_password_step(ctx, "anna", PASSWORD, "10.9.9.9")
    vault.clock.now += credentials.FIRST_LOCK + timedelta(seconds=1)
    with pytest.raises(credentials.SignInRefused):
        credentials.check_password_step(ctx, "anna", "wrong again!!!!", "10.9.9.9")
    vault.clock.now += credentials.FIRST_LOCK + timedelta(seconds=1)  # the lock doubled
    with pytest.raises(credentials.SignInLocked):
        credentials.check_password_step(ctx, "anna", PASSWORD, "10.9.9.8")
    vault.clock.now += credentials.FIRST_LOCK
    assert credentials.check_password_step(ctx, "anna", PASSWORD, "10.9.9.8")
    # per address: one address guessing many handles is locked too (unknown ones count)
    for i in range(credentials.FREE_FAILURES):
        with pytest.raises(credentials.SignInRefused):
            credentials.check_password_step(ctx, f"guess{i}", "x" * 12, "10.2.2.2")
    with pytest.raises(credentials.SignInLocked):
        credentials.check_password_step(ctx, "bert", PASSWORD, "10.2.2.2")
    credentials.check_password_step(ctx, "bert", PASSWORD, "10.2.2.3")
    with read_session(ctx.engine) as s:
        keys = [k for (k,) in s.exec(text("SELECT key FROM signin_throttle"))]
    assert all("10.2" not in k and "guess" not in k for k in keys)


def test_disabled_person_cannot_sign_in(vault):
    people.disable_person(vault.context, "anna", by=OP)
    with pytest.raises(credentials.SignInRefused):
        credentials.check_password_step(vault.context, "anna", PASSWORD, "10.0.0.8")


def test_cli_set_password_enrol_and_reset(vault):
    from cli.main import cli

    home = str(vault.settings.home)
    runner = CliRunner()
    r = runner.invoke(
        cli,
        ["--vault", home, "person", "set-password", "bert"],
        input="another long passphrase\nanother long passphrase\n",
    )
    assert r.exit_code == 0, r.output
    assert "another long passphrase" not in r.output
    credentials.check_password_step(vault.context, "bert", "another long passphrase", "10.3.0.1")
    r = runner.invoke(
        cli,
        ["--vault", home, "person", "set-password", "bert"],
        input="another long passphrase\ndifferent passphrase!\nx\nx\n",
    )
    assert r.exit_code != 0
    r = runner.invoke(cli, ["--vault", home, "person", "enrol-totp", "bert"])
    assert r.exit_code == 0 and r.output.startswith("otpauth://totp/")
    r = runner.invoke(cli, ["--vault", home, "person", "reset-factor", "bert"])
    assert r.exit_code == 0, r.output


def test_credential_seal_vectors_are_stable():
    seal = CredentialSeal(bytes(range(32)))
    tag = seal.tag("p1", "anna", "$argon2id$x", None)
    assert tag == seal.tag("p1", "anna", "$argon2id$x", None)
    assert tag != seal.tag("p1", "anna", "$argon2id$x", b"")
    assert tag != seal.tag("p2", "anna", "$argon2id$x", None)
    assert not seal.check("p1", "anna", "$argon2id$x", None, None)
    assert Person  # the table exists for the join above


# -- argon2id parameters: OWASP's, old hashes still verify and are re-hashed ----------------


def test_new_hashes_use_owasp_parameters_and_old_ones_are_rehashed_on_sign_in(vault):
    import argon2

    from vault.sealing import credentials as sealing

    ctx = vault.context
    params = argon2.extract_parameters(_hash_of(vault, "anna"))
    assert (params.type, params.memory_cost, params.time_cost, params.parallelism) == (
        argon2.Type.ID,
        19 * 1024,
        2,
        1,
    )
    # a hash made before (RFC 9106's 64 MiB / 3 / 4), tagged by the vault as then
    old = argon2.PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4).hash(PASSWORD)
    _store_hash(vault, "anna", old)
    assert sealing.needs_rehash(old) and not sealing.needs_rehash(_hash_of(vault, "bert"))
    with pytest.raises(credentials.SignInRefused):  # a wrong password re-hashes nothing
        credentials.check_password_step(ctx, "anna", PASSWORD + "!", "10.5.0.1")
    assert _hash_of(vault, "anna") == old
    credentials.check_password_step(ctx, "anna", PASSWORD, "10.5.0.1")
    new = _hash_of(vault, "anna")
    assert new != old and argon2.extract_parameters(new).memory_cost == 19 * 1024
    assert credentials.check_password_step(ctx, "anna", PASSWORD, "10.5.0.1")  # tag intact
    assert not credentials.tampered_credentials(ctx)


def _person_id(vault, handle: str) -> str:
    with read_session(vault.context.engine) as s:
        return s.exec(text("SELECT id FROM person WHERE handle = :h"), params={"h": handle}).one()[
            0
        ]


def _hash_of(vault, handle: str) -> str:
    with read_session(vault.context.engine) as s:
        return s.get(Credential, _person_id(vault, handle)).password_hash


def _store_hash(vault, handle: str, hashed: str) -> None:
    ctx = vault.context
    pid = _person_id(vault, handle)
    with write_session(ctx.engine) as s:
        row = s.get(Credential, pid)
        row.password_hash = hashed
        row.tag = credentials.seal(ctx).tag(pid, handle, hashed, None)
        s.add(row)


# -- throttle counters are tagged ---------------------------------------------------------


def _fail(ctx, handle: str, address: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(credentials.SignInRefused):
            credentials.check_password_step(ctx, handle, "wrong password!!", address)


def test_a_database_writer_cannot_lower_a_throttle_count_or_lift_a_lock(vault):
    ctx = vault.context
    _fail(ctx, "anna", "10.6.0.1", credentials.FREE_FAILURES)
    with pytest.raises(credentials.SignInLocked):
        credentials.check_password_step(ctx, "anna", PASSWORD, "10.6.0.2")
    # the writer resets the count and lifts the lock, keeping the row (and its tag)
    with write_session(ctx.engine) as s:
        s.exec(text("UPDATE signin_throttle SET failures = 0, locked_until = NULL"))
    assert credentials.tampered_throttle_counters(ctx) == 2
    with pytest.raises(credentials.SignInLocked):  # fails closed: a fresh first lock
        credentials.check_password_step(ctx, "anna", PASSWORD, "10.6.0.2")
    # anna's counter was re-made by the vault; the one of address 10.6.0.1 waits for its
    # next use, and verify names it meanwhile (without naming the address)
    assert credentials.tampered_throttle_counters(ctx) == 1
    findings = [f.detail for f in vault.verify().findings if "throttle" in f.detail]
    assert findings and "10.6" not in findings[0]
    with pytest.raises(credentials.SignInLocked):
        credentials.check_password_step(ctx, "bert", PASSWORD, "10.6.0.1")
    assert credentials.tampered_throttle_counters(ctx) == 0
    # the lock re-made by the vault is a real lock that ends, and counting goes on from it
    vault.clock.now += credentials.FIRST_LOCK + timedelta(seconds=1)
    _fail(ctx, "anna", "10.6.0.3", 1)  # failure FREE_FAILURES + 1: a doubled lock
    vault.clock.now += credentials.FIRST_LOCK + timedelta(seconds=1)
    with pytest.raises(credentials.SignInLocked):
        credentials.check_password_step(ctx, "anna", PASSWORD, "10.6.0.4")


def test_a_forged_throttle_row_and_a_copied_tag_are_found(vault):
    ctx = vault.context
    _fail(ctx, "anna", "10.7.0.1", 1)
    _fail(ctx, "bert", "10.7.0.2", 1)
    with read_session(ctx.engine) as s:
        rows = {
            k: (f, t) for k, f, t in s.exec(text("SELECT key, failures, tag FROM signin_throttle"))
        }
    anna_key = credentials.throttle_keys("anna", "x", ctx)[0]
    bert_key = credentials.throttle_keys("bert", "x", ctx)[0]
    # keyed names: neither the handle's plain SHA-256 nor the handle itself
    import hashlib

    assert hashlib.sha256(b"handle:anna").hexdigest() not in rows and anna_key in rows
    # bert's tag on anna's row (same count, same time): refused
    with write_session(ctx.engine) as s:
        s.exec(
            text("UPDATE signin_throttle SET tag = :t WHERE key = :k"),
            params={"t": rows[bert_key][1], "k": anna_key},
        )
    assert credentials.tampered_throttle_counters(ctx) == 1
    report = vault.verify()
    assert any("throttle counter" in f.detail for f in report.findings)
    with pytest.raises(credentials.SignInLocked):
        credentials.check_password_step(ctx, "anna", PASSWORD, "10.7.0.9")
    credentials.check_password_step(ctx, "bert", PASSWORD, "10.7.0.8")  # bert untouched


# -- credential changes are all-or-nothing ------------------------------------------------


def _state(vault, handle: str):
    ctx = vault.context
    pid = _person_id(vault, handle)
    with read_session(ctx.engine) as s:
        cred = s.get(Credential, pid)
        person = s.get(Person, pid)
        entries = s.exec(text("SELECT count(*) FROM log_entry")).one()[0]
    return (cred.password_hash, cred.totp_sealed, bytes(cred.tag), person.oidc_subject, entries)


@pytest.mark.parametrize("change", ["password", "totp", "reset", "oidc"])
def test_a_credential_change_that_fails_midway_leaves_nothing_behind(vault, monkeypatch, change):
    """The failure comes after the row was changed and the log entry appended in the
    transaction: the row, the sessions, the person and the log stay as they were."""
    from vault.db import log as db_log
    from vault.db.models import WebSession
    from vault.sealing.credentials import SESSION_DOMAIN

    ctx = vault.context
    credentials.enrol_totp(ctx, "anna", by=OP)
    pid = _person_id(vault, "anna")
    now = ctx.clock()
    session = WebSession(
        id_hash="a" * 64,
        person_id=pid,
        stage="full",
        csrf="c" * 64,
        created_at=now,
        last_seen_at=now,
        tag=b"",
    )
    session.tag = credentials.seal(ctx).row_tag(
        SESSION_DOMAIN, "a" * 64, pid, "full", "c" * 64, credentials.format_time(now)
    )
    with write_session(ctx.engine) as s:
        s.add(session)
    before = _state(vault, "anna")
    real = db_log.append_entries

    def append_then_fail(*args, **kwargs):
        real(*args, **kwargs)  # the entry is written in the transaction ...
        raise OSError("injected: the disk went away")  # ... and then the step fails

    for module in (credentials, people):
        monkeypatch.setattr(module, "append_entries", append_then_fail)
    act = {
        "password": lambda: credentials.set_password(ctx, "anna", "a brand new passphrase", by=OP),
        "totp": lambda: credentials.enrol_totp(ctx, "anna", by=OP),
        "reset": lambda: credentials.reset_factor(ctx, "anna", by=OP),
        "oidc": lambda: people.link_oidc(ctx, "anna", "https://idp.example", "sub-1", by=OP),
    }[change]
    with pytest.raises(OSError, match="injected"):
        act()
    monkeypatch.undo()
    assert _state(vault, "anna") == before
    with read_session(ctx.engine) as s:
        assert s.get(WebSession, "a" * 64) is not None  # the session was not ended
    assert not credentials.tampered_credentials(ctx)
    assert vault.verify().clean, vault.verify().findings
    ok = credentials.check_password_step(ctx, "anna", PASSWORD, "10.8.0.1")  # old password
    assert ok.needs_totp  # and the TOTP is still there
    credentials.set_password(ctx, "anna", "a brand new passphrase", by=OP)  # and it works now


def test_throttle_key_and_tag_vectors():
    from vault.sealing.credentials import THROTTLE_DOMAIN

    seal = CredentialSeal(bytes(range(32)))
    key = seal.throttle_key("handle", "anna")
    assert key == "79b6f21bac94a089e0ee2bce1ff5b784338d6ae9375258ee7b21ba8ea8843958"
    tag = seal.row_tag(
        THROTTLE_DOMAIN, key, "5", "2026-12-01T09:00:00.000Z", "2026-12-01T09:00:30.000Z"
    )
    assert tag.hex() == "3659328af1af94cecf7d790faa42c3c8c2d3181e3f4b1a940a1cd7c6c5fd83be"
    assert seal.throttle_key("ip", "anna") != key


def test_importing_the_vault_makes_no_password_hash() -> None:
    """The unknown handle's argon2id hash (19 MiB, tens of ms) is not made at import: the
    CLI, the agent and a large ingest do not pay for it (bench/memory.py's peak)."""
    code = (
        "from vault import Vault\n"
        "from vault.sealing.credentials import dummy_hash\n"
        "print(dummy_hash.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_a_server_makes_it_before_the_first_sign_in(vault) -> None:
    """...but a server makes it as it starts, so the first unknown handle is not the one
    slower answer (which would tell it from a known one)."""
    from fastapi.testclient import TestClient

    from vault.http.app import create_app
    from vault.sealing.credentials import dummy_hash

    dummy_hash.cache_clear()
    with TestClient(create_app(vault.context)):
        assert dummy_hash.cache_info().currsize == 1
