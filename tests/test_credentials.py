"""Desk credentials: argon2id passwords, sealed TOTP secrets, tagged rows, throttling."""

from __future__ import annotations

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
