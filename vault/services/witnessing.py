"""Witness cosignatures: submit each client's latest checkpoint to the configured C2SP
tlog-witnesses, keep what they return, and put it into bundles and log exports.

A witness cosigns a checkpoint only if it is consistent with every checkpoint of the same
log it cosigned before (``POST <witness>/add-checkpoint`` with a consistency proof from
the size it last saw, which it names on ``409 Conflict``). Once a witness has cosigned
size N, nobody holding the vault's key can show it another history of N or fewer entries:
it answers ``422`` to a fork and cannot go back to a smaller size. A verifier that demands
N-of-M witnesses therefore trusts a checkpoint only if the log was not split or rewritten
before those witnesses' eyes (``docs/security.md``, "Witnesses").

Witnessing is never on the ingest path: a checkpoint is signed and the entries stand
whatever the witnesses do; :func:`catch_up` (the ``serve`` timer, or ``evidence-vault
witness cosign``) submits what is not cosigned yet, so an outage only delays it. A
refusal is stored (:class:`~vault.db.models.WitnessRefusal`) and logged: it is evidence
that the log was forked or rolled back, or that the witness is misconfigured.

Each cosignature is stored in the database and, like the checkpoint, beside it in object
storage under Object Lock: ``{client}/_checkpoints/{size}.cosignature.{witness key id}``.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vault.config import WitnessSettings
from vault.db import read_session, write_session
from vault.db.models import Checkpoint as CheckpointRow
from vault.db.models import LogHead, WitnessCosignature, WitnessRefusal
from vault.db.tree import StoredTree
from vault.errors import NotFound, ObjectExists, VaultError
from vault.ledger.audit import Finding
from vault.ledger.checkpoint import Checkpoint, NoteError
from vault.ledger.cosignature import (
    WitnessKey,
    WitnessPolicy,
    add_checkpoint_request,
    open_cosignature,
    parse_cosignature_answer,
    parse_size_answer,
    parse_witness_key,
    with_cosignatures,
)
from vault.ledger.merkle import consistency_proof
from vault.results import SignedCheckpoint
from vault.services.checkpoints import (
    CHECKPOINT_RETENTION,
    checkpoint_key,
    latest_checkpoint,
    make_checkpoint,
)
from vault.services.context import VaultContext

if TYPE_CHECKING:
    import httpx  # imported where a witness is asked: ~4 MiB a vault without them never needs

log = logging.getLogger(__name__)

#: how often one submission follows a 409 (the witness moved on meanwhile)
_CONFLICT_RETRIES = 3
_COSIGNATURE_KEY = re.compile(r"(0|[1-9][0-9]*)\.cosignature\.[0-9a-f]{8}")

#: outcomes of one submission
COSIGNED, ALREADY, REFUSED, ROLLED_BACK, UNREACHABLE = (
    "cosigned",
    "already-cosigned",
    "refused",
    "rolled-back",
    "unreachable",
)
#: why a witness refuses, by the tlog-witness status code: the vault's own words
_REFUSALS = {
    400: "the witness rejected the request as malformed (an old size beyond the checkpoint: "
    "a rolled-back log)",
    403: "the witness does not accept the vault's log key for this log",
    404: "the witness does not know this log's origin",
    422: "the checkpoint is inconsistent with what the witness cosigned before: the log "
    "was forked or rewritten",
}


@dataclass(frozen=True)
class WitnessOutcome:
    """What one witness did with one checkpoint."""

    client: str
    size: int
    witness: str  # name+key id
    result: str  # COSIGNED, ALREADY, REFUSED, ROLLED_BACK or UNREACHABLE
    detail: str = ""
    timestamp: int | None = None

    def to_dict(self) -> dict:
        return {
            "client": self.client,
            "size": self.size,
            "witness": self.witness,
            "result": self.result,
            "detail": self.detail,
            "timestamp": self.timestamp,
        }


def cosignature_key(client: str, size: int, witness: WitnessKey) -> str:
    return f"{checkpoint_key(client, size)}.cosignature.{witness.key_id.hex()}"


def is_cosignature_key(name: str) -> bool:
    """Whether the last segment of a key under ``_checkpoints/`` names a cosignature."""
    return bool(_COSIGNATURE_KEY.fullmatch(name))


def configured(ctx: VaultContext) -> list[tuple[WitnessSettings, WitnessKey]]:
    return [(w, parse_witness_key(w.key)) for w in ctx.settings.witnessing.witnesses]


def vault_policy(ctx: VaultContext) -> WitnessPolicy | None:
    """The configured witnesses and quorum as a policy; None without witnesses."""
    keys = configured(ctx)
    if not keys:
        return None
    return WitnessPolicy(tuple(k for _w, k in keys), ctx.settings.witnessing.required)


# --- submitting --------------------------------------------------------------------------


def catch_up(
    ctx: VaultContext, client: str | None = None, *, pending_only: bool = False
) -> list[WitnessOutcome]:
    """Submit every client's (or one client's) latest checkpoint to each witness that has
    not cosigned it; what happened, per client and witness. Never raises for a witness.

    ``pending_only`` (the ``serve`` timer, every tick) first finds in two queries the logs
    whose latest checkpoint some witness has neither cosigned nor refused, and touches
    only those: a quiet vault costs nothing, and a witness that refused a checkpoint is
    not asked again until the next one.
    """
    if not ctx.settings.witnessing.witnesses:
        return []
    if pending_only:
        clients = _pending(ctx)
    else:
        with read_session(ctx.engine) as s:
            clients = [client] if client else list(s.exec(select(LogHead.client_id)))
    out: list[WitnessOutcome] = []
    for c in clients:
        try:
            cp = latest_checkpoint(ctx, c)
        except NotFound:
            continue
        got = cosign_checkpoint(ctx, c, cp, _http(ctx.settings.witnessing.timeout))
        if any(o.result == COSIGNED for o in got):
            from vault.services.tiles import publish_after_checkpoint  # it imports this module

            publish_after_checkpoint(ctx, c)  # the tiled log's checkpoint gains the lines
        out += got
    return out


def _pending(ctx: VaultContext) -> list[str]:
    """Clients whose latest checkpoint some configured witness has neither cosigned nor
    refused: primary-key lookups per client, however many checkpoints the logs have."""
    witnesses = {str(k) for _w, k in configured(ctx)}
    out = []
    with read_session(ctx.engine) as s:
        for client in s.exec(select(LogHead.client_id)).all():
            size = s.exec(
                select(CheckpointRow.size)
                .where(CheckpointRow.client_id == client)
                .order_by(CheckpointRow.size.desc())  # type: ignore[attr-defined]
                .limit(1)
            ).first()
            if size is None:
                continue
            answered = set(
                s.exec(
                    select(WitnessCosignature.witness).where(
                        WitnessCosignature.client_id == client, WitnessCosignature.size == size
                    )
                ).all()
            )
            answered.update(
                s.exec(
                    select(WitnessRefusal.witness).where(
                        WitnessRefusal.client_id == client, WitnessRefusal.size == size
                    )
                ).all()
            )
            if witnesses - answered:
                out.append(client)
    return out


_clients: dict[float, httpx.Client] = {}
_clients_lock = threading.Lock()


def _http(timeout: float) -> httpx.Client:
    """One keep-alive HTTP client per process (and timeout), as tlog-witness recommends:
    making one per round would cost a TLS context and a connection each time."""
    import httpx

    with _clients_lock:
        client = _clients.get(timeout)
        if client is None:
            client = _clients[timeout] = httpx.Client(timeout=timeout)
        return client


def cosign_checkpoint(
    ctx: VaultContext, client: str, cp: SignedCheckpoint, http: httpx.Client
) -> list[WitnessOutcome]:
    """Ask each configured witness that has not cosigned ``cp`` for its cosignature, all
    at once: a bundle export waits for the slowest witness, not for the sum of them (a
    witness that is down costs one timeout, however many are down)."""
    have = {row.witness for row in _cosignature_rows(ctx, client, cp.size)}
    ask = [(w, key) for w, key in configured(ctx) if str(key) not in have]

    def submit(pair: tuple[WitnessSettings, WitnessKey]) -> WitnessOutcome:
        outcome = _submit(ctx, client, cp, pair[0], pair[1], http)
        if outcome.result != COSIGNED:
            log.warning(
                "witness %s did not cosign checkpoint %s of log %s: %s",
                pair[1],
                cp.size,
                client,
                outcome.result,
            )
        return outcome

    if len(ask) > 1:
        with ThreadPoolExecutor(len(ask), thread_name_prefix="witness") as pool:
            asked = dict(zip(map(str, (k for _w, k in ask)), pool.map(submit, ask), strict=True))
    else:
        asked = {str(k): submit((w, k)) for w, k in ask}
    # in the configured order, as before
    return [
        asked.get(str(key)) or WitnessOutcome(client, cp.size, str(key), ALREADY)
        for _w, key in configured(ctx)
    ]


def _submit(
    ctx: VaultContext,
    client: str,
    cp: SignedCheckpoint,
    settings: WitnessSettings,
    key: WitnessKey,
    http: httpx.Client,
) -> WitnessOutcome:
    import httpx

    old = _last_cosigned_size(ctx, client, key)
    for _ in range(_CONFLICT_RETRIES):
        if old > cp.size:
            return _refused(ctx, client, cp, key, 409, ROLLED_BACK, old)
        body = add_checkpoint_request(old, _proof(ctx, client, old, cp.size), cp.note.encode())
        try:
            status, answer = _post(http, f"{settings.url}/add-checkpoint", body)
        except (httpx.HTTPError, _Oversized) as exc:
            return WitnessOutcome(client, cp.size, str(key), UNREACHABLE, type(exc).__name__)
        if status == 409:
            try:
                old = parse_size_answer(answer)
            except NoteError as exc:
                return WitnessOutcome(client, cp.size, str(key), UNREACHABLE, exc.message)
            continue
        if status == 200:
            return _accept(ctx, client, cp, key, answer)
        if status in _REFUSALS:
            return _refused(ctx, client, cp, key, status, REFUSED, None)
        return WitnessOutcome(client, cp.size, str(key), UNREACHABLE, f"HTTP status {status}")
    return WitnessOutcome(client, cp.size, str(key), UNREACHABLE, "the witness kept moving")


#: the most a witness's answer may hold: a few signature lines, or a size
MAX_ANSWER = 64 * 1024


class _Oversized(Exception):
    """A witness's answer is larger than :data:`MAX_ANSWER`: not read further."""


def _post(http: httpx.Client, url: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body``; the status and at most :data:`MAX_ANSWER` bytes of the answer."""
    with http.stream("POST", url, content=body) as answer:
        got = bytearray()
        for chunk in answer.iter_bytes():
            got += chunk
            if len(got) > MAX_ANSWER:
                raise _Oversized
        return answer.status_code, bytes(got)


def _proof(ctx: VaultContext, client: str, old: int, new: int) -> list[bytes]:
    if old == 0 or old == new:
        return []
    with read_session(ctx.engine) as s:
        return consistency_proof(StoredTree(s, client), old, new)


def _accept(
    ctx: VaultContext, client: str, cp: SignedCheckpoint, key: WitnessKey, answer: bytes
) -> WitnessOutcome:
    """Keep the witness's cosignature, checked against its configured key."""
    body = Checkpoint.parse_body(cp.note.encode().split(b"\n\n")[0] + b"\n").body()
    try:
        lines = parse_cosignature_answer(answer)
    except NoteError as exc:
        return WitnessOutcome(client, cp.size, str(key), UNREACHABLE, exc.message)
    for line in lines:
        try:
            got = open_cosignature(body, line, key)
        except NoteError:
            continue  # another key of the witness, or not a cosignature of ours
        _store(ctx, client, cp.size, key, got.line + b"\n", got.timestamp)
        return WitnessOutcome(client, cp.size, str(key), COSIGNED, timestamp=got.timestamp)
    return WitnessOutcome(
        client, cp.size, str(key), UNREACHABLE, "the answer holds no valid cosignature"
    )


def _store(
    ctx: VaultContext, client: str, size: int, key: WitnessKey, line: bytes, timestamp: int
) -> None:
    """Object storage first (Object Lock), then the database row, as for checkpoints."""
    object_key = cosignature_key(client, size, key)
    until = ctx.clock() + CHECKPOINT_RETENTION
    try:
        ctx.store.put(object_key, [line], retain_until=until)
    except ObjectExists:
        # a crash after an earlier put: keep the stored cosignature (another timestamp
        # would be as valid, but the stored one is what object storage proves)
        stored = b"".join(ctx.store.get(object_key))
        body = _body_of(ctx, client, size)
        try:
            timestamp = open_cosignature(body, stored, key).timestamp
        except NoteError:
            raise VaultError(
                f"a different object is already stored at {object_key}",
                hint="run `evidence-vault verify`: the stored cosignature does not verify",
            ) from None
        line = stored
    try:
        with write_session(ctx.engine) as s:
            if s.get(WitnessCosignature, (client, size, str(key))) is None:
                s.add(
                    WitnessCosignature(
                        client_id=client,
                        size=size,
                        witness=str(key),
                        timestamp=timestamp,
                        line=line,
                        received_at=ctx.clock(),
                        object_key=object_key,
                    )
                )
    except IntegrityError:
        pass  # another serve worker stored this witness's cosignature first: one is enough


def _body_of(ctx: VaultContext, client: str, size: int) -> bytes:
    with read_session(ctx.engine) as s:
        row = s.get(CheckpointRow, (client, size))
    if row is None:
        raise NotFound(f"client {client!r} has no checkpoint of size {size}")
    return bytes(row.note).split(b"\n\n")[0] + b"\n"


def _refused(
    ctx: VaultContext,
    client: str,
    cp: SignedCheckpoint,
    key: WitnessKey,
    status: int,
    result: str,
    witness_size: int | None,
) -> WitnessOutcome:
    if result == ROLLED_BACK:
        reason = (
            f"the witness has cosigned {witness_size} entries of this log, more than the "
            f"checkpoint's {cp.size}: the log was rolled back"
        )
    else:
        reason = _REFUSALS[status]
    with write_session(ctx.engine) as s:
        seen = s.exec(
            select(WitnessRefusal).where(
                WitnessRefusal.client_id == client,
                WitnessRefusal.size == cp.size,
                WitnessRefusal.witness == str(key),
                WitnessRefusal.status == status,
            )
        ).first()
        if seen is None:  # once per checkpoint, witness and status, however often retried
            s.add(
                WitnessRefusal(
                    client_id=client,
                    size=cp.size,
                    witness=str(key),
                    status=status,
                    reason=reason,
                    witness_size=witness_size,
                    refused_at=ctx.clock(),
                )
            )
    return WitnessOutcome(client, cp.size, str(key), result, reason)


def _last_cosigned_size(ctx: VaultContext, client: str, key: WitnessKey) -> int:
    """The largest size this witness cosigned for the client (0: none); a 409 corrects it."""
    with read_session(ctx.engine) as s:
        row = s.exec(
            select(WitnessCosignature.size)
            .where(WitnessCosignature.client_id == client)
            .where(WitnessCosignature.witness == str(key))
            .order_by(WitnessCosignature.size.desc())  # type: ignore[attr-defined]
            .limit(1)
        ).first()
    return int(row) if row is not None else 0


# --- reading -----------------------------------------------------------------------------


def _cosignature_rows(ctx: VaultContext, client: str, size: int) -> list[WitnessCosignature]:
    with read_session(ctx.engine) as s:
        return list(
            s.exec(
                select(WitnessCosignature)
                .where(WitnessCosignature.client_id == client)
                .where(WitnessCosignature.size == size)
                .order_by(WitnessCosignature.witness)
            )
        )


def cosigned_note(ctx: VaultContext, client: str, size: int, note: str) -> str:
    """The checkpoint note with every stored cosignature line appended (C2SP: a cosigned
    checkpoint is the note with the witnesses' signature lines)."""
    lines = [bytes(r.line) for r in _cosignature_rows(ctx, client, size)]
    if not lines:
        return note
    return with_cosignatures(note.encode(), lines).decode()


def witnessed_checkpoint_covering(ctx: VaultContext, client: str, seq: int) -> SignedCheckpoint:
    """The checkpoint a bundle of entry ``seq`` should carry: the latest one covering the
    entry that meets the vault's witness quorum (cosignatures by configured witnesses),
    else (no witnesses configured, or none cosigned yet) the latest covering it, made now
    if needed. Its note carries the stored cosignatures."""
    witnesses = [str(k) for _w, k in configured(ctx)]
    with read_session(ctx.engine) as s:
        size = None
        if witnesses:
            size = s.exec(
                select(WitnessCosignature.size)
                .where(WitnessCosignature.client_id == client)
                .where(WitnessCosignature.size > seq)
                .where(WitnessCosignature.witness.in_(witnesses))  # type: ignore[attr-defined]
                .group_by(WitnessCosignature.size)
                .having(func.count() >= ctx.settings.witnessing.required)
                .order_by(WitnessCosignature.size.desc())  # type: ignore[attr-defined]
                .limit(1)
            ).first()
        query = select(CheckpointRow).where(CheckpointRow.client_id == client)
        if size is not None:
            row = s.get(CheckpointRow, (client, size))
        else:
            row = s.exec(
                query.where(CheckpointRow.size > seq)
                .order_by(CheckpointRow.size.desc())  # type: ignore[attr-defined]
                .limit(1)
            ).first()
    cp = _as_signed(row) if row is not None else make_checkpoint(ctx, client)
    return with_cosignature_lines(ctx, cp)


def _as_signed(row: CheckpointRow) -> SignedCheckpoint:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return SignedCheckpoint(
        row.client_id, row.size, row.root_hash, bytes(row.note).decode(), created
    )


def cosign_now(ctx: VaultContext, client: str, cp: SignedCheckpoint) -> SignedCheckpoint:
    """``cp`` submitted to the configured witnesses now (a bundle export's fresh checkpoint),
    returned with the cosignatures stored for it; a witness that does not answer is left
    for the timer's catch-up, and never stops the caller."""
    if ctx.settings.witnessing.witnesses:
        cosign_checkpoint(ctx, client, cp, _http(ctx.settings.witnessing.timeout))
    return with_cosignature_lines(ctx, cp)


def with_cosignature_lines(ctx: VaultContext, cp: SignedCheckpoint) -> SignedCheckpoint:
    """``cp`` with the stored witness cosignatures appended to its note."""
    note = cosigned_note(ctx, cp.client, cp.size, cp.note)
    return SignedCheckpoint(cp.client, cp.size, cp.root_hash, note, cp.created_at)


@dataclass(frozen=True)
class WitnessState:
    """One witness's view of one client's log, for ``witness status``."""

    client: str
    witness: str
    url: str
    cosigned_size: int | None
    cosigned_at: datetime | None
    refusals: int

    def to_dict(self) -> dict:
        return {
            "client": self.client,
            "witness": self.witness,
            "url": self.url,
            "cosigned_size": self.cosigned_size,
            "cosigned_at": self.cosigned_at.isoformat() if self.cosigned_at else None,
            "refusals": self.refusals,
        }


def witness_status(ctx: VaultContext, client: str) -> list[WitnessState]:
    out = []
    for settings, key in configured(ctx):
        with read_session(ctx.engine) as s:
            row = s.exec(
                select(WitnessCosignature)
                .where(WitnessCosignature.client_id == client)
                .where(WitnessCosignature.witness == str(key))
                .order_by(WitnessCosignature.size.desc())  # type: ignore[attr-defined]
                .limit(1)
            ).first()
            refusals = len(
                list(
                    s.exec(
                        select(WitnessRefusal.id)
                        .where(WitnessRefusal.client_id == client)
                        .where(WitnessRefusal.witness == str(key))
                    )
                )
            )
        at = datetime.fromtimestamp(row.timestamp, UTC) if row else None
        size = row.size if row else None
        out.append(WitnessState(client, str(key), settings.url, size, at, refusals))
    return out


def refusals(ctx: VaultContext, client: str) -> list[WitnessRefusal]:
    with read_session(ctx.engine) as s:
        return list(
            s.exec(
                select(WitnessRefusal)
                .where(WitnessRefusal.client_id == client)
                .order_by(WitnessRefusal.id)  # type: ignore[arg-type]
            )
        )


# --- what `verify` reports ---------------------------------------------------------------


def witness_findings(ctx: VaultContext, client: str) -> list[Finding]:
    """Refusals (a witness saw another history) and stored cosignatures that do not verify.

    Cosignatures by witnesses no longer configured are not checked (their keys are gone
    from the configuration, not from the bundles that carry them).
    """
    out: list[Finding] = []
    for r in refusals(ctx, client):
        kind = {422: "forked", 409: "truncated", 400: "truncated"}.get(r.status, "witness")
        out.append(
            Finding(kind, client, f"witness {r.witness} refused checkpoint {r.size}: {r.reason}")
        )
    keys = {str(k): k for _w, k in configured(ctx)}
    with read_session(ctx.engine) as s:
        rows = list(
            s.exec(select(WitnessCosignature).where(WitnessCosignature.client_id == client))
        )
        notes = {
            row.size: bytes(row.note)
            for row in s.exec(select(CheckpointRow).where(CheckpointRow.client_id == client))
        }
    for row in rows:
        key, note = keys.get(row.witness), notes.get(row.size)
        if key is None:
            continue
        where = f"the cosignature by witness {row.witness} of checkpoint {row.size}"
        if note is None:
            out.append(Finding("missing", client, f"{where} has no checkpoint"))
            continue
        try:
            open_cosignature(note.split(b"\n\n")[0] + b"\n", bytes(row.line), key)
        except NoteError:
            out.append(Finding("bad-signature", client, f"{where} does not verify"))
    return out
