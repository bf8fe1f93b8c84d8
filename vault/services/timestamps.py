"""Time-stamping checkpoints with the configured RFC 3161 TSAs, off the ingest path.

Each checkpoint's note text (:func:`vault.ledger.timestamps.note_text`) is sent to every
configured TSA; the token it answers with is checked at once (imprint, nonce, signature,
chain to that TSA's configured roots, ``id-kp-timeStamping``), written to object storage
beside the checkpoint (``{client}/_timestamps/{size}/{tsa}.tsr``, Object Lock like the
note) and then recorded in the database — storage first, as for checkpoints, so a crash
in between leaves a token that catch-up finds again, never a row pointing at nothing.

Nothing on the ingest or checkpoint path waits for a TSA: a checkpoint is signed and
committed without a token, and :func:`stamp_pending` — run by ``serve`` on a timer
(:class:`TimestampTimer`), by ``evidence-vault timestamp`` and before a bundle is exported
— stamps every checkpoint still lacking a token from some TSA. A TSA that is down or
answers nonsense is logged and tried again next time; the others carry on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vault.config import TsaSettings
from vault.db import read_session, write_session
from vault.db.models import Checkpoint as CheckpointRow
from vault.db.models import CheckpointTimestamp
from vault.errors import ConfigError, NotFound, ObjectExists, ObjectMissing, VaultError
from vault.ledger.audit import Finding
from vault.ledger.timestamps import VALID, check_checkpoint_timestamp, note_text
from vault.sealing.timestamps import TrustRoots, read_timestamp, timestamp_request
from vault.services.checkpoints import CHECKPOINT_RETENTION
from vault.services.context import VaultContext

log = logging.getLogger(__name__)

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
#: a TSA's answer is a few KiB; more is not a time-stamp response
MAX_REPLY_SIZE = 256 * 1024


def timestamp_key(client: str, size: int, tsa: str) -> str:
    """Where the token of checkpoint ``size`` by ``tsa`` is stored: beside the checkpoints,
    not under ``_checkpoints/`` (which holds signed notes only)."""
    return f"{client}/_timestamps/{size}/{tsa}.tsr"


@dataclass(frozen=True)
class StoredTimestamp:
    """A token the vault holds for a checkpoint (checked when it arrived)."""

    client: str
    size: int
    tsa: str
    token: bytes
    gen_time: datetime
    serial: str

    def to_dict(self) -> dict:
        return {
            "client": self.client,
            "size": self.size,
            "tsa": self.tsa,
            "gen_time": self.gen_time.isoformat().replace("+00:00", "Z"),
            "serial": self.serial,
        }


@dataclass
class StampReport:
    """What one catch-up run did: tokens stored, and the attempts that failed (and why)."""

    stamped: list[StoredTimestamp] = field(default_factory=list)
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)  # tsa, client, size, why

    @property
    def pending(self) -> int:
        return len(self.failed)

    def to_dict(self) -> dict:
        return {
            "stamped": [t.to_dict() for t in self.stamped],
            "failed": [
                {"tsa": tsa, "client": client, "size": size, "reason": why}
                for tsa, client, size, why in self.failed
            ],
        }


class TsaUnavailable(VaultError):
    """A TSA did not answer, or not with a valid token for our request. Transient for
    the vault: the checkpoint stays unstamped and catch-up tries again."""

    kind = "tsa-unavailable"


def trust_roots(tsa: TsaSettings) -> TrustRoots:
    return TrustRoots.from_files([tsa.roots])


def request_token(tsa: TsaSettings, note: bytes, timeout: float) -> bytes:
    """Ask ``tsa`` to stamp the checkpoint ``note``'s text; the token, checked against
    the TSA's roots and the request's nonce."""
    roots = trust_roots(tsa)
    request = timestamp_request(note_text(note))
    http = urllib.request.Request(
        tsa.url, data=request.der, method="POST", headers={"Content-Type": QUERY_TYPE}
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:
            token = answer.read(MAX_REPLY_SIZE + 1)
    except urllib.error.HTTPError as exc:
        raise TsaUnavailable(f"TSA {tsa.name} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TsaUnavailable(f"TSA {tsa.name} is unreachable ({type(reason).__name__})") from None
    if len(token) > MAX_REPLY_SIZE:
        raise TsaUnavailable(f"TSA {tsa.name} answered more than {MAX_REPLY_SIZE} bytes")
    verdict = check_checkpoint_timestamp(tsa.name, token, note, roots, nonce=request.nonce)
    if verdict.status != VALID:
        raise TsaUnavailable(
            f"TSA {tsa.name} answered with an unusable token ({verdict.reason}: {verdict.detail})",
            hint="check the TSA's url and its trust roots in [[timestamping.tsa]]",
        )
    return token


def stamp_checkpoint(
    ctx: VaultContext, client: str, size: int, tsas: Sequence[TsaSettings] | None = None
) -> StampReport:
    """Get a token from every configured TSA (or those of ``tsas``) that has none for this
    checkpoint yet."""
    report = StampReport()
    with read_session(ctx.engine) as s:
        row = s.get(CheckpointRow, (client, size))
        have = set(
            s.exec(
                select(CheckpointTimestamp.tsa).where(
                    CheckpointTimestamp.client_id == client, CheckpointTimestamp.size == size
                )
            )
        )
    if row is None:
        raise NotFound(
            f"client {client!r} has no checkpoint of size {size}",
            hint="sign one with `evidence-vault checkpoint`",
        )
    note = bytes(row.note)
    for tsa in ctx.settings.tsas if tsas is None else tsas:
        if tsa.name in have:
            continue
        try:
            token = request_token(tsa, note, ctx.settings.timestamp_timeout)
            report.stamped.append(_keep(ctx, client, size, tsa, note, token))
        except (TsaUnavailable, ConfigError) as exc:
            log.warning("time-stamp of checkpoint %s/%d postponed: %s", client, size, exc.message)
            report.failed.append((tsa.name, client, size, exc.message))
    return report


def _keep(
    ctx: VaultContext, client: str, size: int, tsa: TsaSettings, note: bytes, token: bytes
) -> StoredTimestamp:
    """Store the token under Object Lock, then record it (storage first)."""
    key = timestamp_key(client, size, tsa.name)
    until = ctx.clock() + CHECKPOINT_RETENTION
    try:
        version = ctx.store.put(key, [token], retain_until=until).version_id
    except ObjectExists:
        # a crash after an earlier put, or another worker: keep the stored token, once it
        # is checked like the one just received (anyone with bucket access could put one)
        token = b"".join(ctx.store.get(key))
        stored = ctx.store.head(key)
        version = stored.version_id if stored else None
        verdict = check_checkpoint_timestamp(tsa.name, token, note, trust_roots(tsa))
        if verdict.status != VALID:
            raise TsaUnavailable(
                f"an invalid token is already stored at {key} ({verdict.reason})",
                hint="run `evidence-vault verify`; remove the object if it was put there "
                "outside the vault",
            ) from None
    facts = read_timestamp(token)
    stamp = StoredTimestamp(client, size, tsa.name, token, facts.gen_time, facts.serial_hex)
    # another worker may record its token of the same checkpoint first: one suffices
    with contextlib.suppress(IntegrityError):
        _record(ctx, stamp, key, version)
    return stamp


def _record(ctx: VaultContext, stamp: StoredTimestamp, key: str, version: str | None) -> None:
    client, size, tsa, token = stamp.client, stamp.size, stamp.tsa, stamp.token
    with write_session(ctx.engine) as s:
        if s.get(CheckpointTimestamp, (client, size, tsa)) is None:
            s.add(
                CheckpointTimestamp(
                    client_id=client,
                    size=size,
                    tsa=tsa,
                    token=token,
                    gen_time=stamp.gen_time,
                    serial=stamp.serial,
                    created_at=ctx.clock(),
                    object_key=key,
                    object_version=version,
                )
            )


def unstamped(ctx: VaultContext, client: str | None = None) -> list[tuple[str, int]]:
    """Checkpoints (client, size) lacking a token from at least one configured TSA."""
    names = {t.name for t in ctx.settings.tsas}
    if not names:
        return []
    with read_session(ctx.engine) as s:
        query = select(CheckpointRow.client_id, CheckpointRow.size)
        if client is not None:
            query = query.where(CheckpointRow.client_id == client)
        checkpoints = list(s.exec(query.order_by(CheckpointRow.client_id, CheckpointRow.size)))
        stamps = select(
            CheckpointTimestamp.client_id, CheckpointTimestamp.size, CheckpointTimestamp.tsa
        )
        if client is not None:
            stamps = stamps.where(CheckpointTimestamp.client_id == client)
        have: dict[tuple[str, int], set[str]] = {}
        for c, size, tsa in s.exec(stamps):
            have.setdefault((c, size), set()).add(tsa)
    return [(c, size) for c, size in checkpoints if not names <= have.get((c, size), set())]


def stamp_pending(ctx: VaultContext, client: str | None = None) -> StampReport:
    """Catch up: stamp every checkpoint still lacking a token from some TSA.

    The newest first: the latest checkpoint's token alone dates every entry under it, so
    after a long outage the most useful token comes first. A TSA that fails is not asked
    again in this run (it would fail for every checkpoint, each after a timeout).
    """
    report = StampReport()
    down: set[str] = set()
    for c, size in reversed(unstamped(ctx, client)):
        if down >= {t.name for t in ctx.settings.tsas}:
            report.failed.append(("*", c, size, "every TSA failed in this run"))
            continue
        one = stamp_checkpoint(ctx, c, size, [t for t in ctx.settings.tsas if t.name not in down])
        report.stamped += one.stamped
        report.failed += one.failed
        down |= {tsa for tsa, *_ in one.failed}
    return report


def timestamps_of(ctx: VaultContext, client: str, size: int) -> list[StoredTimestamp]:
    """The tokens held for a checkpoint, by TSA name."""
    with read_session(ctx.engine) as s:
        rows = list(
            s.exec(
                select(CheckpointTimestamp)
                .where(CheckpointTimestamp.client_id == client, CheckpointTimestamp.size == size)
                .order_by(CheckpointTimestamp.tsa)
            )
        )
    return [
        StoredTimestamp(r.client_id, r.size, r.tsa, bytes(r.token), _aware(r.gen_time), r.serial)
        for r in rows
    ]


def all_timestamps(ctx: VaultContext, client: str, upto: int) -> list[StoredTimestamp]:
    """Every token of the client's checkpoints up to tree size ``upto`` (for a log export)."""
    with read_session(ctx.engine) as s:
        rows = list(
            s.exec(
                select(CheckpointTimestamp)
                .where(CheckpointTimestamp.client_id == client, CheckpointTimestamp.size <= upto)
                .order_by(CheckpointTimestamp.size, CheckpointTimestamp.tsa)
            )
        )
    return [
        StoredTimestamp(r.client_id, r.size, r.tsa, bytes(r.token), _aware(r.gen_time), r.serial)
        for r in rows
    ]


def timestamp_pins(ctx: VaultContext, client: str) -> dict[str, str | None]:
    """Object key -> the version the vault wrote, of every token recorded (for the
    storage checks: a version stacked on a token's key is ``shadowed``)."""
    with read_session(ctx.engine) as s:
        return {
            key: version
            for key, version in s.exec(
                select(CheckpointTimestamp.object_key, CheckpointTimestamp.object_version).where(
                    CheckpointTimestamp.client_id == client
                )
            )
        }


def timestamp_findings(ctx: VaultContext, client: str) -> list[Finding]:
    """``verify``: each token held (row and stored copy alike) still stamps its checkpoint
    and, for a configured TSA, chains to that TSA's roots."""
    tsas = {t.name: t for t in ctx.settings.tsas}
    with read_session(ctx.engine) as s:
        rows = list(
            s.exec(
                select(CheckpointTimestamp, CheckpointRow.note)
                .join(
                    CheckpointRow,
                    (CheckpointRow.client_id == CheckpointTimestamp.client_id)
                    & (CheckpointRow.size == CheckpointTimestamp.size),
                )
                .where(CheckpointTimestamp.client_id == client)
                .order_by(CheckpointTimestamp.size, CheckpointTimestamp.tsa)
            )
        )
    out = []
    for row, note in rows:
        tsa = tsas.get(row.tsa)
        roots = trust_roots(tsa) if tsa else None
        try:
            stored = b"".join(ctx.store.get(row.object_key, version_id=row.object_version))
        except ObjectMissing:
            stored = None
        for where, token in (("database", bytes(row.token)), ("stored copy", stored)):
            if token is None:
                out.append(_finding("missing", client, row, "the stored copy of the token is gone"))
                continue
            verdict = check_checkpoint_timestamp(row.tsa, token, bytes(note), roots)
            if not verdict.ok:
                out.append(_finding("bad-timestamp", client, row, f"{where}: {verdict}"))
    return out


def _finding(kind: str, client: str, row: CheckpointTimestamp, detail: str) -> Finding:
    return Finding(
        kind, client, f"time-stamp of checkpoint {row.size} by {row.tsa}: {detail}",
        key=row.object_key,
    )  # fmt: skip


class TimestampTimer:
    """Catches up on time-stamps every ``interval`` seconds (``serve``), off the ingest path.

    Every worker of ``serve`` runs one; two stamping the same checkpoint at once both
    store a valid token and the database keeps the first, so nothing breaks.
    """

    def __init__(self, ctx: VaultContext, interval: float) -> None:
        self._ctx, self._interval = ctx, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timestamp timer", daemon=True)

    def start(self) -> TimestampTimer:
        if self._ctx.settings.tsas:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                stamp_pending(self._ctx)
            except Exception as exc:  # the database may be down: try again next tick
                log.warning("timestamp timer: %s", type(exc).__name__)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
