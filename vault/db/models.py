"""SQLModel tables: what search and the ledger need, and no PII.

Phone numbers appear only as a keyed hash (``phone_hash``); names, dates of birth and
the confirmed identity values live only inside the encrypted metadata object.
Schema changes go through the Alembic migrations in ``vault/db/migrations``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class Client(SQLModel, table=True):
    """A tenant: one campaign owner with its own log, keys and evidence."""

    __tablename__ = "client"

    id: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(max_length=200)
    retention_days: int | None = Field(default=None)
    created_at: datetime


class Campaign(SQLModel, table=True):
    __tablename__ = "campaign"
    __table_args__ = (UniqueConstraint("client_id", "name", name="uq_campaign_client_name"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(foreign_key="client.id", index=True, max_length=64)
    name: str = Field(max_length=64)
    #: None: the client's default applies (resolved at each ingest)
    retention_days: int | None = Field(default=None)
    #: "recorded" (N days after recording) or "consent-use" (N days after the last use of
    #: the advertising consent the record documents, UWG §7a)
    retention_basis: str = Field(default="recorded", max_length=20)
    created_at: datetime
    #: the Textform document kinds each record of the campaign needs (comma-separated,
    #: e.g. "contract-summary,approval" for TKG §54(3)); a record missing one is "pending
    #: Textform" (vault.services.documents)
    required_documents: str = Field(default="", max_length=200)
    #: refuse uploads without a valid source signature of a registered dialer key
    require_source_signature: bool = Field(default=False)


class Record(SQLModel, table=True):
    """One sealed recorded order segment."""

    __tablename__ = "record"
    __table_args__ = (
        UniqueConstraint("campaign_id", "call_id", "segment", name="uq_record_call_segment"),
    )

    id: str = Field(primary_key=True, max_length=40)
    client_id: str = Field(foreign_key="client.id", index=True, max_length=64)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    call_id: str = Field(max_length=128)
    segment: int
    order_ref: str = Field(index=True, max_length=128)
    agent_id: str = Field(index=True, max_length=128)
    recorded_at: datetime = Field(index=True)
    sealed_at: datetime
    retain_until: datetime = Field(index=True)
    #: the rule that set retain_until, in words (no PII): shown by plan, show and audio
    retention_rule: str = Field(default="", max_length=200)
    phone_hash: str = Field(index=True, max_length=64)
    # keyed fingerprints of the plaintext clip and evidence document: idempotency checks
    clip_fingerprint: str = Field(max_length=64)
    meta_fingerprint: str = Field(max_length=64)
    media_type: str = Field(max_length=40)
    codec: str = Field(max_length=20)
    duration_ms: int
    clip_size: int = Field(sa_type=BigInteger)
    clip_key: str = Field(max_length=300)
    clip_sha256: str = Field(max_length=64)
    #: the S3 version the vault wrote (None on stores without versions): every read, hold,
    #: retention change and delete names it, so a version stacked on the key is never used
    clip_version: str | None = Field(default=None, max_length=1024)
    meta_key: str = Field(max_length=300)
    meta_sha256: str = Field(max_length=64)
    meta_version: str | None = Field(default=None, max_length=1024)
    kek_id: str = Field(max_length=200)
    wrapped_dek: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    seq: int = Field(sa_type=BigInteger)
    # crypto-shredding: the wrapped data key is emptied in the same transaction that logs
    # evidence.shredded; the objects are deleted afterwards (purged_at), when the store lets us
    shredded_at: datetime | None = Field(default=None, index=True)
    shred_reason: str | None = Field(default=None, max_length=20)
    shred_rule: str | None = Field(default=None, max_length=200)
    purged_at: datetime | None = Field(default=None)


class Document(SQLModel, table=True):
    """A Textform document (e-mail, PDF, SMS text) sealed with a record.

    Its own data key is wrapped under the record's data key (``wrapped_key``), so the
    document is shredded with its record. ``fingerprint`` (keyed hash of kind and plaintext)
    recognises a repeated attach; it is emptied when the record is shredded.
    """

    __tablename__ = "document"

    id: str = Field(primary_key=True, max_length=40)
    client_id: str = Field(foreign_key="client.id", index=True, max_length=64)
    record_id: str = Field(foreign_key="record.id", index=True, max_length=40)
    kind: str = Field(max_length=40)
    media_type: str = Field(max_length=60)
    size: int = Field(sa_type=BigInteger)
    fingerprint: str = Field(index=True, max_length=64)
    object_key: str = Field(max_length=300)
    object_sha256: str = Field(max_length=64)
    object_version: str | None = Field(default=None, max_length=1024)
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sealed_at: datetime
    seq: int = Field(sa_type=BigInteger)


class Hold(SQLModel, table=True):
    """A legal hold on one record (from a dispute or placed by an admin); blocks purging.

    Release takes two different admins (four-eyes): the first sets ``release_requested_by``,
    the second releases. ``reason`` is free text and stays in the database only; the log
    names the hold, its kind, case reference and principals.
    """

    __tablename__ = "hold"

    id: str = Field(primary_key=True, max_length=40)
    client_id: str = Field(foreign_key="client.id", index=True, max_length=64)
    record_id: str = Field(foreign_key="record.id", index=True, max_length=40)
    kind: str = Field(max_length=20)  # "dispute" or "legal"
    case_ref: str = Field(max_length=64)
    reason: str = Field(max_length=500)
    placed_by: str = Field(max_length=200)
    placed_at: datetime
    release_requested_by: str | None = Field(default=None, max_length=200)
    release_requested_at: datetime | None = Field(default=None)
    released_by: str | None = Field(default=None, max_length=200)
    released_at: datetime | None = Field(default=None, index=True)


class LogHead(SQLModel, table=True):
    """The head of one client's log; its row is the append lock."""

    __tablename__ = "log_head"

    client_id: str = Field(primary_key=True, foreign_key="client.id", max_length=64)
    size: int = Field(default=0, sa_type=BigInteger)
    head_hash: str = Field(max_length=64)


class LogEntry(SQLModel, table=True):
    """One entry of a client's append-only log: its canonical JSON bytes, exactly as hashed."""

    __tablename__ = "log_entry"
    #: verify reads a log's state, dialer and orphan entries by type before its walk:
    #: without this index each of those reads scanned the whole log (issue 13)
    __table_args__ = (Index("ix_log_entry_client_id_type", "client_id", "type"),)

    client_id: str = Field(primary_key=True, foreign_key="client.id", max_length=64)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    type: str = Field(max_length=40)
    record_id: str | None = Field(default=None, index=True, max_length=40)
    entry: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    #: HMAC of (client, seq, entry hash) under the client's log key, which only the
    #: keyring holds: an entry without a valid tag was not appended by the vault
    tag: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class MerkleNode(SQLModel, table=True):
    """A complete aligned subtree of a client's RFC 9162 Merkle tree.

    Level 0 holds the leaf hashes; ``(level, idx)`` covers leaves
    ``[idx * 2**level, (idx + 1) * 2**level)``. Stored so roots and proofs cost O(log n)
    reads instead of rehashing the log.
    """

    __tablename__ = "merkle_node"

    client_id: str = Field(primary_key=True, foreign_key="client.id", max_length=64)
    level: int = Field(primary_key=True)
    idx: int = Field(primary_key=True, sa_type=BigInteger)
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Checkpoint(SQLModel, table=True):
    """A signed tree head of a client's log, in C2SP signed-note text."""

    __tablename__ = "checkpoint"

    client_id: str = Field(primary_key=True, foreign_key="client.id", max_length=64)
    size: int = Field(primary_key=True, sa_type=BigInteger)
    root_hash: str = Field(max_length=64)
    note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime
    object_key: str | None = Field(default=None, max_length=300)
    object_version: str | None = Field(default=None, max_length=1024)


class CheckpointTimestamp(SQLModel, table=True):
    """An RFC 3161 time-stamp token of a checkpoint's note text, by one configured TSA.

    The token (a DER TimeStampResp, checked when it arrived) is also stored in object
    storage under Object Lock (``object_key``); ``gen_time`` and ``serial`` are what it
    states, kept for listing without parsing it.
    """

    __tablename__ = "checkpoint_timestamp"
    __table_args__ = (
        ForeignKeyConstraint(
            ["client_id", "size"],
            ["checkpoint.client_id", "checkpoint.size"],
            name="fk_checkpoint_timestamp_checkpoint",
        ),
    )

    client_id: str = Field(primary_key=True, max_length=64)
    size: int = Field(primary_key=True, sa_type=BigInteger)
    tsa: str = Field(primary_key=True, max_length=64)
    token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    gen_time: datetime
    serial: str = Field(max_length=64)
    created_at: datetime
    object_key: str = Field(max_length=300)
    object_version: str | None = Field(default=None, max_length=1024)


class Person(SQLModel, table=True):
    """Someone who acts on the vault: a named person, or a machine (a dialer's account).

    ``handle`` is the stable name the logs use (``person:<handle>``); ``display_name``
    stays in the database. ``client_id`` None is a global person (admins only). An admin
    acts only once approved (``approved_at``) by a second admin or the vault's operator.
    Credentials other than API tokens (password, TOTP) will hang off this row in their own
    tables. ``oidc_subject`` (``issuer#sub``) is the OpenID Connect identity the person
    signs in with at the escalation desk, if any.
    """

    __tablename__ = "person"

    id: str = Field(primary_key=True, max_length=40)
    handle: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(default="", max_length=200)
    role: str = Field(max_length=20)
    client_id: str | None = Field(default=None, foreign_key="client.id", max_length=64)
    created_by: str = Field(max_length=200)
    created_at: datetime
    approved_by: str | None = Field(default=None, max_length=200)
    approved_at: datetime | None = Field(default=None)
    disabled_by: str | None = Field(default=None, max_length=200)
    disabled_at: datetime | None = Field(default=None)
    oidc_subject: str | None = Field(default=None, max_length=600, unique=True, index=True)


class ApiToken(SQLModel, table=True):
    """A bearer token of the HTTP API: only the SHA-256 of its secret is stored.

    Every token belongs to a person and carries that person's role and client (copied at
    creation; the person's state is checked on every use). ``client_id`` None means every
    client (global admins only); ``campaign`` narrows a dialer token to one campaign.
    """

    __tablename__ = "api_token"

    id: str = Field(primary_key=True, max_length=40)
    secret_hash: str = Field(index=True, unique=True, max_length=64)
    person_id: str = Field(foreign_key="person.id", index=True, max_length=40)
    role: str = Field(max_length=20)
    client_id: str | None = Field(default=None, foreign_key="client.id", max_length=64)
    campaign: str | None = Field(default=None, max_length=64)
    label: str = Field(default="", max_length=200)
    created_at: datetime
    expires_at: datetime | None = Field(default=None)
    revoked_at: datetime | None = Field(default=None)
    #: HMAC under the keyring's token key over every column but ``label``
    #: (:mod:`vault.services.tokens`): a row a database writer inserted, re-pointed to
    #: another person or role, or un-revoked authenticates nobody. NULL only on rows from
    #: before tokens were tagged, until the vault opens (they are adopted once)
    tag: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class IdempotencyKey(SQLModel, table=True):
    """An upload's ``Idempotency-Key`` header, per token: a retry returns the same receipt."""

    __tablename__ = "idempotency_key"

    token_id: str = Field(primary_key=True, foreign_key="api_token.id", max_length=40)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    record_id: str = Field(foreign_key="record.id", max_length=40)
    created_at: datetime
    #: set when the key was used to attach a Textform document to ``record_id``
    document_id: str | None = Field(default=None, max_length=40)


class Credential(SQLModel, table=True):
    """A person's sign-in factors for the escalation desk: password and optional TOTP.

    ``password_hash`` is argon2id; ``totp_sealed`` is the TOTP secret sealed under the
    keyring's credential key. ``tag`` (HMAC under the same key, see
    :mod:`vault.sealing.credentials`) binds both to the person's id and handle: a row a
    database writer changed, copied or swapped signs nobody in. ``totp_last_step`` (not
    tagged: it moves on every sign-in) refuses a replayed code.
    """

    __tablename__ = "credential"

    person_id: str = Field(primary_key=True, foreign_key="person.id", max_length=40)
    password_hash: str | None = Field(default=None, max_length=200)
    totp_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    totp_last_step: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: datetime
    tag: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class WebSession(SQLModel, table=True):
    """A signed-in browser: only the SHA-256 of the session id (the cookie) is stored.

    ``stage`` is ``"totp"`` between a right password and the second factor, ``"full"``
    once signed in. ``csrf`` is the session's form token (useless without the cookie).
    """

    __tablename__ = "web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    person_id: str = Field(foreign_key="person.id", index=True, max_length=40)
    stage: str = Field(max_length=10)
    csrf: str = Field(max_length=64)
    created_at: datetime
    last_seen_at: datetime
    #: HMAC under the credential key over (id hash, person, stage, created_at): a row a
    #: database writer inserts or re-points to another person signs nobody in
    tag: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SignInThrottle(SQLModel, table=True):
    """Failed sign-ins per handle and per client address, counted in the database so every
    worker sees them. ``key`` is an HMAC of ``handle``/``ip`` and the value under the
    credential key, never the value; ``tag`` (HMAC under the same key over every column)
    keeps a database writer from lowering a count or shortening a lock."""

    __tablename__ = "signin_throttle"

    key: str = Field(primary_key=True, max_length=64)
    failures: int = Field(default=0)
    last_failure_at: datetime
    locked_until: datetime | None = Field(default=None)
    tag: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DeskGrant(SQLModel, table=True):
    """A logged reason to open one record's evidence, for one web session (tagged like
    sessions, so a database writer cannot open evidence without the logged reason)."""

    __tablename__ = "desk_grant"

    session_hash: str = Field(primary_key=True, max_length=64)
    record_id: str = Field(primary_key=True, max_length=40)
    reason: str = Field(max_length=40)
    case_ref: str = Field(default="", max_length=64)
    granted_at: datetime
    tag: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


# --- witness cosignatures (C2SP tlog-witness) -------------------------------------------


class WitnessCosignature(SQLModel, table=True):
    """A witness's cosignature of a checkpoint: one signature line of its signed note.

    ``witness`` is the witness key (``name+keyid``) it verified under when it arrived;
    ``timestamp`` the POSIX time the witness put in it. The line is also stored beside the
    checkpoint in object storage (``object_key``).
    """

    __tablename__ = "witness_cosignature"

    client_id: str = Field(primary_key=True, foreign_key="client.id", max_length=64)
    size: int = Field(primary_key=True, sa_type=BigInteger)
    witness: str = Field(primary_key=True, max_length=300)
    timestamp: int = Field(sa_type=BigInteger)
    line: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime
    object_key: str | None = Field(default=None, max_length=300)


class WitnessRefusal(SQLModel, table=True):
    """A witness refused a checkpoint: the evidence of a fork or a rollback it saw.

    ``status`` is the HTTP status (422: inconsistent with what the witness cosigned,
    i.e. a forked or rewritten log; 400/403/404: the request or the log key); ``reason``
    the vault's words for it (never the witness's text).
    """

    __tablename__ = "witness_refusal"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(foreign_key="client.id", index=True, max_length=64)
    size: int = Field(sa_type=BigInteger)
    witness: str = Field(max_length=300)
    status: int
    reason: str = Field(max_length=300)
    witness_size: int | None = Field(default=None, sa_type=BigInteger)
    refused_at: datetime
class PullJob(SQLModel, table=True):
    """A recording the vault fetches itself (a CPaaS recording-ready callback): durable, so
    a restart of ``serve`` loses no callback; any worker process may run it.

    ``(client_id, source, source_key)`` is unique: a repeat of the callback (the same
    recording SID) is the same job. The evidence document holds PII: it is kept only
    sealed (``meta_sealed``, a stream under a data key wrapped under the client's KEK),
    and dropped once the job is done or failed.
    """

    __tablename__ = "pull_job"
    __table_args__ = (UniqueConstraint("client_id", "source", "source_key"),)

    id: str = Field(primary_key=True, max_length=40)
    client_id: str = Field(foreign_key="client.id", max_length=64)
    campaign: str = Field(max_length=64)
    source: str = Field(max_length=16)  # "twilio"
    source_key: str = Field(max_length=128)  # the recording SID
    url: str = Field(max_length=2048)
    account: str | None = Field(default=None, max_length=64)  # for fetch_basic_auth
    state: str = Field(max_length=16, index=True)  # queued | done | failed
    attempts: int = 0
    next_try: datetime
    lease_until: datetime | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=300)
    record_id: str | None = Field(default=None, max_length=40)
    created_at: datetime
    updated_at: datetime
    kek_id: str | None = Field(default=None, max_length=300)
    wrapped_dek: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    meta_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class DialerKey(SQLModel, table=True):
    """A dialer host's registered public key: a cache of the log's ``dialer.registered``
    and ``dialer.revoked`` entries, which are the authority (``verify`` checks them)."""

    __tablename__ = "dialer_key"

    client_id: str = Field(foreign_key="client.id", primary_key=True, max_length=64)
    key_id: str = Field(primary_key=True, max_length=40)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    label: str = Field(default="", max_length=200)
    registered_at: datetime
    registered_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_at: datetime | None = Field(default=None)
    revoked_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
