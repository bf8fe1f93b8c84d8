"""Passwords and TOTP of persons, and the checks of a sign-in (the escalation desk).

Setting a password, enrolling TOTP and resetting a factor are logged (``person.credential``
in the person's log, naming who did it; never a secret). A sign-in is refused, with one
message whatever the cause, when the handle is unknown, the person is disabled or pending,
the password or code is wrong, or the credential row's tag does not verify (a database
writer changed it: :mod:`vault.sealing.credentials`). Failures are counted per handle and
per client address in the database (``signin_throttle``, keyed hashes, each row tagged
under the credential key like sessions), so every worker sees them: from
the fifth failure on, each further one locks the key for twice as long (30 s, 1 min, ...,
at most an hour). Unknown handles are counted too, so a lock reveals nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import delete, select

from vault.db import read_session, write_session
from vault.db.log import EntryDraft, append_entries
from vault.db.models import Credential, DeskGrant, Person, SignInThrottle, WebSession
from vault.errors import FieldError, InvalidEvidence, Unauthenticated
from vault.ledger.entry import format_time
from vault.sealing.credentials import (
    THROTTLE_DOMAIN,
    CredentialSeal,
    check_password,
    dummy_hash,
    dummy_password_check,
    hash_password,
    needs_rehash,
    new_totp_secret,
    totp_step_of,
    totp_uri,
)
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.people import Principal, find_person, log_of

log = logging.getLogger(__name__)

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
FREE_FAILURES = 5
FIRST_LOCK = timedelta(seconds=30)
LONGEST_LOCK = timedelta(hours=1)
ISSUER = "evidence-vault"


class SignInRefused(Unauthenticated):
    """One answer for every failed sign-in: nothing says whether the handle exists."""

    def __init__(self) -> None:
        super().__init__(
            "sign-in failed: the handle, password or code is not right",
            hint="check them and try again; after several failures wait a while",
        )


class SignInLocked(Unauthenticated):
    def __init__(self) -> None:
        super().__init__(
            "too many failed sign-ins: try again later",
            hint="the wait doubles with every further failure (at most an hour)",
        )


@dataclass(frozen=True)
class PasswordOk:
    person_id: str
    needs_totp: bool


def seal(ctx: VaultContext) -> CredentialSeal:
    return CredentialSeal(ctx.keys.credential_key())


# -- managing factors (CLI) ---------------------------------------------------------------


def set_password(ctx: VaultContext, handle: str, password: str, *, by: Principal) -> None:
    by.require("admin")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidEvidence(
            [FieldError("password", f"must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")],
            hint="a passphrase of several words is easy to type and hard to guess",
        )
    person = find_person(ctx, handle, by)
    hashed = hash_password(password)
    _change(ctx, person, by, "password", lambda row: setattr(row, "password_hash", hashed))


def enrol_totp(ctx: VaultContext, handle: str, *, by: Principal) -> str:
    """A new TOTP secret for the person; returns the ``otpauth://`` URI (shown once)."""
    by.require("admin")
    person = find_person(ctx, handle, by)
    secret = new_totp_secret()
    sealed = seal(ctx).seal_totp(person.id, secret)

    def put(row: Credential) -> None:
        row.totp_sealed, row.totp_last_step = sealed, None

    _change(ctx, person, by, "totp-enrolled", put)
    return totp_uri(secret, account=handle, issuer=ISSUER)


def reset_factor(ctx: VaultContext, handle: str, *, by: Principal) -> None:
    """Remove the person's TOTP (they enrol again) and end their web sessions."""
    by.require("admin")
    person = find_person(ctx, handle, by)

    def drop(row: Credential) -> None:
        row.totp_sealed, row.totp_last_step = None, None

    _change(ctx, person, by, "totp-reset", drop)


def _change(ctx: VaultContext, person: Person, by: Principal, change: str, edit) -> None:
    sealer = seal(ctx)
    now = ctx.clock()
    log_name = log_of(ctx, person.client_id)
    with write_session(ctx.engine) as s:
        row = s.get(Credential, person.id)
        if row is None:
            row = Credential(person_id=person.id, updated_at=now, tag=b"")
        elif not _intact(sealer, person, row):
            log.warning("credential of person %s had a bad tag; replaced", person.handle)
        edit(row)
        row.updated_at = now
        row.tag = sealer.tag(person.id, person.handle, row.password_hash, _sealed(row))
        s.add(row)
        # a changed factor ends every session of the person (and what they had opened)
        theirs = select(WebSession.id_hash).where(WebSession.person_id == person.id)
        s.exec(delete(DeskGrant).where(DeskGrant.session_hash.in_(theirs)))
        s.exec(delete(WebSession).where(WebSession.person_id == person.id))
        body = {"person": person.handle, "change": change, "by": by.name}
        append_entries(
            s, log_name, [EntryDraft("person.credential", None, body)], now, ctx.log_keys(log_name)
        )
    checkpoint_after_commit(ctx, log_name)


# -- signing in ---------------------------------------------------------------------------


def ready_for_sign_in() -> None:
    """Make what the first sign-in would otherwise make (the unknown handle's hash), so
    that it answers no slower than the ones after it. Call when a server starts."""
    dummy_hash()


def check_password_step(ctx: VaultContext, handle: str, password: str, address: str) -> PasswordOk:
    """The first factor. SignInRefused / SignInLocked, with the same text for every cause."""
    keys = throttle_keys(handle, address, ctx)
    refuse_if_locked(ctx, keys)
    person, cred = _person_and_credential(ctx, handle)
    ok = False
    if person is None or cred is None or cred.password_hash is None:
        dummy_password_check(password if isinstance(password, str) else "")
    elif not _intact(seal(ctx), person, cred):
        dummy_password_check(password)
        log.warning("credential of person %s fails its tag: sign-in refused", person.handle)
    else:
        ok = check_password(cred.password_hash, password) and _active(person)
    if not ok:
        record_failure(ctx, keys)
        raise SignInRefused()
    clear_failures(ctx, keys[:1])
    if needs_rehash(cred.password_hash):
        _rehash(ctx, person, cred.password_hash, password)
    return PasswordOk(person.id, cred.totp_sealed is not None)


def _rehash(ctx: VaultContext, person: Person, old_hash: str, password: str) -> None:
    """Store the just-verified password at today's argon2id parameters.

    Only if the row still holds the hash that was checked (a concurrent change wins) and
    still verifies; tagged like any change, in one transaction. Not logged: the factor is
    the same password (``person.credential`` entries record changes of factors).
    """
    fresh = hash_password(password)
    sealer = seal(ctx)
    with write_session(ctx.engine) as s:
        row = s.get(Credential, person.id)
        if row is None or row.password_hash != old_hash or not _intact(sealer, person, row):
            return
        row.password_hash = fresh
        row.updated_at = ctx.clock()
        row.tag = sealer.tag(person.id, person.handle, fresh, _sealed(row))
        s.add(row)


def check_totp_step(ctx: VaultContext, person_id: str, code: str, address: str) -> None:
    """The second factor for a person past the password; a code is good once only."""
    with read_session(ctx.engine) as s:
        person = s.get(Person, person_id)
    keys = throttle_keys(person.handle if person else person_id, address, ctx)
    refuse_if_locked(ctx, keys)
    sealer = seal(ctx)
    now = ctx.clock()
    with write_session(ctx.engine) as s:
        cred = s.get(Credential, person_id)
        step = None
        usable = person is not None and cred is not None and cred.totp_sealed is not None
        if usable and _intact(sealer, person, cred) and _active(person):
            secret = sealer.open_totp(person_id, cred.totp_sealed)
            step = totp_step_of(secret, code, now) if secret else None
        if step is not None and (cred.totp_last_step is None or step > cred.totp_last_step):
            cred.totp_last_step = step
            s.add(cred)
            ok = True
        else:
            ok = False
    if not ok:
        record_failure(ctx, keys)
        raise SignInRefused()
    clear_failures(ctx, keys[:1])


def credential_intact(ctx: VaultContext, person: Person) -> bool | None:
    """Whether the person's credential row verifies (None: they have none)."""
    with read_session(ctx.engine) as s:
        cred = s.get(Credential, person.id)
    return None if cred is None else _intact(seal(ctx), person, cred)


def tampered_credentials(ctx: VaultContext) -> list[str]:
    """Handles whose credential row fails its tag (for ``verify``)."""
    sealer = seal(ctx)
    with read_session(ctx.engine) as s:
        rows = list(
            s.exec(select(Credential, Person).join(Person, Person.id == Credential.person_id))
        )
        orphans = list(
            s.exec(
                select(Credential.person_id).where(Credential.person_id.not_in(select(Person.id)))
            )
        )
    bad = [p.handle for c, p in rows if not _intact(sealer, p, c)]
    return sorted(bad) + [f"(unknown person {pid})" for pid in orphans]


# -- throttling ---------------------------------------------------------------------------


def throttle_keys(handle: str, address: str, ctx: VaultContext) -> tuple[str, str]:
    """(per handle, per client address), keyed hashes: the table holds neither value."""
    sealer = seal(ctx)
    h = str(handle).strip().lower()[:200]
    return sealer.throttle_key("handle", h), sealer.throttle_key("ip", str(address)[:200])


def refuse_if_locked(ctx: VaultContext, keys: tuple[str, ...]) -> None:
    """SignInLocked while a counter is locked; a counter whose tag fails counts as locked.

    A database writer could otherwise lower a count or shorten a lock to guess on. A
    tampered row is re-made as a fresh first lock (FIRST_LOCK from now), so tampering
    buys a wait, never more tries. (Deleting a row resets its count: the row's absence
    cannot be authenticated; docs/security.md.)
    """
    now = ctx.clock()
    sealer = seal(ctx)
    with read_session(ctx.engine) as s:
        rows = s.exec(select(SignInThrottle).where(SignInThrottle.key.in_(keys))).all()
    tampered = [row.key for row in rows if not _counter_intact(sealer, row)]
    if tampered:
        log.warning("sign-in throttle counter(s) with a bad tag: locked afresh")
        with write_session(ctx.engine) as s:
            for key in tampered:
                row = SignInThrottle(
                    key=key,
                    failures=FREE_FAILURES,
                    last_failure_at=now,
                    locked_until=now + FIRST_LOCK,
                    tag=b"",
                )
                row.tag = sealer.row_tag(THROTTLE_DOMAIN, *_counted(row))
                s.merge(row)
        raise SignInLocked()
    for row in rows:
        if row.locked_until is not None and _aware(row.locked_until) > now:
            raise SignInLocked()


#: counts older than this start again from zero (and their rows go)
FORGET_AFTER = timedelta(days=1)


def record_failure(ctx: VaultContext, keys: tuple[str, ...]) -> None:
    now = ctx.clock()
    sealer = seal(ctx)
    with write_session(ctx.engine) as s:
        s.exec(delete(SignInThrottle).where(SignInThrottle.last_failure_at < now - FORGET_AFTER))
        for key in keys:
            row = s.get(SignInThrottle, key)
            if row is None:
                row = SignInThrottle(key=key, failures=0, last_failure_at=now, tag=b"")
            elif not _counter_intact(sealer, row):
                # changed since it was last counted (between refuse_if_locked and here):
                # count on from the lock threshold, never from what the writer left
                row.failures = max(row.failures or 0, FREE_FAILURES - 1)
            row.failures = (row.failures or 0) + 1
            row.last_failure_at = now
            if row.failures >= FREE_FAILURES:
                wait = FIRST_LOCK * 2 ** min(row.failures - FREE_FAILURES, 12)
                row.locked_until = now + min(wait, LONGEST_LOCK)
            row.tag = sealer.row_tag(THROTTLE_DOMAIN, *_counted(row))
            s.add(row)


def clear_failures(ctx: VaultContext, keys: tuple[str, ...]) -> None:
    with write_session(ctx.engine) as s:
        s.exec(delete(SignInThrottle).where(SignInThrottle.key.in_(keys)))


def tampered_throttle_counters(ctx: VaultContext) -> int:
    """How many throttle counters fail their tag (for ``verify``; they name nobody)."""
    sealer = seal(ctx)
    with read_session(ctx.engine) as s:
        rows = s.exec(select(SignInThrottle)).all()
    return sum(1 for row in rows if not _counter_intact(sealer, row))


def _counted(row: SignInThrottle) -> tuple[str, ...]:
    locked = "-" if row.locked_until is None else format_time(_aware(row.locked_until))
    return (row.key, str(row.failures), format_time(_aware(row.last_failure_at)), locked)


def _counter_intact(sealer: CredentialSeal, row: SignInThrottle) -> bool:
    return sealer.check_row(row.tag, THROTTLE_DOMAIN, *_counted(row))


# -- helpers ------------------------------------------------------------------------------


def _person_and_credential(ctx, handle) -> tuple[Person | None, Credential | None]:
    if not isinstance(handle, str) or len(handle) > 64:
        return None, None
    with read_session(ctx.engine) as s:
        person = s.exec(select(Person).where(Person.handle == handle)).first()
        cred = s.get(Credential, person.id) if person else None
    return person, cred


def _active(person: Person) -> bool:
    return person.disabled_at is None and person.approved_at is not None


def _intact(sealer: CredentialSeal, person: Person, cred: Credential) -> bool:
    return sealer.check(person.id, person.handle, cred.password_hash, _sealed(cred), cred.tag)


def _sealed(cred: Credential) -> bytes | None:
    return None if cred.totp_sealed is None else bytes(cred.totp_sealed)


def _aware(ts: datetime) -> datetime:
    from datetime import UTC

    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


__all__ = [
    "PasswordOk",
    "SignInLocked",
    "SignInRefused",
    "check_password_step",
    "check_totp_step",
    "enrol_totp",
    "reset_factor",
    "set_password",
]
