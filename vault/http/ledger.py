"""HTTP routes: a client's verifiable log, for its auditor (and admins).

Everything here is ciphertext-free and PII-free by construction: log entries name record
ids, object keys, hashes and times, never metadata values. An auditor token sees only its
own client's log; another client's log answers exactly like a missing one (404).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlmodel import select

from vault.db import LogEntry, LogHead, read_session
from vault.db.models import Checkpoint as CheckpointRow
from vault.errors import NotFound
from vault.http.app import Caller, Ctx
from vault.http.problems import openapi_responses
from vault.ledger.entry import entry_hash
from vault.ledger.offline import export_lines
from vault.services import checkpoints
from vault.services.checkpoints import SignedCheckpoint
from vault.services.context import VaultContext
from vault.services.keys import log_keys as _log_keys
from vault.services.tokens import Principal
from vault.services.verify import rows as entry_rows

#: roles that may read a client's log
LOG_ROLES = ("auditor", "admin")
#: the largest sequence number or tree size a query may name (a signed 64-bit column)
MAX_SIZE = 2**63 - 1
MAX_ENTRIES = 1000


# -- models -------------------------------------------------------------------------------


class LogInfo(BaseModel):
    client: str
    origin: str = Field(description="The log's name in its checkpoints: `<vault>/<client>`")
    size: int = Field(description="Entries in the log now")
    verifier_key: str = Field(description="C2SP verifier key of the current log signing key")


class LogEntryItem(BaseModel):
    seq: int
    entry: str = Field(description="The canonical (RFC 8785) JSON text of the entry, as hashed")
    hash: str = Field(description="Its RFC 9162 leaf hash, SHA-256(0x00 || entry), hex")


class LogEntryPage(BaseModel):
    client: str
    size: int = Field(description="Entries in the log when the page was read")
    start: int
    entries: list[LogEntryItem]
    next: int | None = Field(description="`start` of the next page; null at the end of the log")


class LogCheckpoint(BaseModel):
    client: str
    size: int
    root_hash: str = Field(description="RFC 9162 root of the first `size` entries, hex")
    note: str = Field(description="The C2SP signed note (tlog-checkpoint body + signatures)")
    created_at: str


class LogInclusionProof(BaseModel):
    client: str
    seq: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    hashes: list[str] = Field(description="The audit path, leaf first, hex")
    checkpoint: str = Field(description="The signed note of the tree the proof is against")


class LogConsistencyProof(BaseModel):
    client: str
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    hashes: list[str]


class LogKey(BaseModel):
    generation: int
    verifier_key: str
    active: bool = Field(description="True for the generation signing now")


class NDJSONResponse(StreamingResponse):
    media_type = "application/x-ndjson"


router = APIRouter(tags=["ledger"])

#: the rule of vault.evidence.SLUG_PATTERN, in a form JSON Schema tools understand
SLUG = r"^[a-z0-9][a-z0-9._-]{0,63}$"
ClientId = Annotated[str, Path(description="The client (tenant) id", pattern=SLUG, max_length=64)]


# -- routes -------------------------------------------------------------------------------


@router.get(
    "/v1/logs/{client}",
    response_model=LogInfo,
    responses=openapi_responses(401, 403, 404),
    summary="The log's origin, size and verifier key",
)
def log_info(client: ClientId, ctx: Ctx, caller: Caller) -> LogInfo:
    head = _head(ctx, caller, client)
    return LogInfo(
        client=client,
        origin=checkpoints.origin(ctx, client),
        size=head.size,
        verifier_key=checkpoints.log_verifier_key(ctx),
    )


@router.get(
    "/v1/logs/{client}/entries",
    response_model=LogEntryPage,
    responses=openapi_responses(401, 403, 404),
    summary="A page of log entries in seq order",
)
def log_entries(
    client: ClientId,
    ctx: Ctx,
    caller: Caller,
    start: Annotated[int, Query(ge=0, le=MAX_SIZE, description="First seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES, description="Entries per page")] = 100,
) -> LogEntryPage:
    _allow(caller, client)
    with read_session(ctx.engine) as s:
        # the head and the page in one session: never an entry past the size reported
        head = s.get(LogHead, client)
        if head is None:
            raise _missing(client)
        got = list(
            s.exec(
                select(LogEntry.seq, LogEntry.entry)
                .where(LogEntry.client_id == client, LogEntry.seq >= start)
                .where(LogEntry.seq < head.size)
                .order_by(LogEntry.seq)
                .limit(limit)
            )
        )
        size = head.size
    items = [
        LogEntryItem(seq=seq, entry=bytes(raw).decode(), hash=entry_hash(bytes(raw)))
        for seq, raw in got
    ]
    last = items[-1].seq + 1 if items else start
    return LogEntryPage(
        client=client,
        size=size,
        start=start,
        entries=items,
        next=last if items and last < size else None,
    )


@router.get(
    "/v1/logs/{client}/checkpoint",
    response_model=LogCheckpoint,
    responses=openapi_responses(401, 403, 404),
    summary="The latest signed checkpoint",
)
def log_checkpoint(client: ClientId, ctx: Ctx, caller: Caller) -> LogCheckpoint:
    _head(ctx, caller, client)
    return _checkpoint_model(checkpoints.latest_checkpoint(ctx, client))


@router.get(
    "/v1/logs/{client}/proofs/inclusion",
    response_model=LogInclusionProof,
    responses=openapi_responses(401, 403, 404),
    summary="Inclusion proof of entry `seq` in a signed checkpoint",
)
def inclusion_proof(
    client: ClientId,
    ctx: Ctx,
    caller: Caller,
    seq: Annotated[int, Query(ge=0, le=MAX_SIZE, description="The entry's seq")],
    tree_size: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_SIZE,
            description="Size of a signed checkpoint; default: the latest checkpoint",
        ),
    ] = None,
) -> LogInclusionProof:
    _head(ctx, caller, client)
    if tree_size is None:
        cp = checkpoints.latest_checkpoint(ctx, client)
    else:
        cp = _checkpoint_of_size(ctx, client, tree_size)
    if seq >= cp.size:
        raise NotFound(
            f"entry {seq} is not in the checkpoint of size {cp.size}",
            hint="choose seq < tree_size, or a later checkpoint",
        )
    p = checkpoints.inclusion_at(ctx, client, seq, cp)
    return LogInclusionProof(
        client=p.client,
        seq=p.seq,
        leaf_hash=p.leaf_hash,
        tree_size=p.tree_size,
        root_hash=p.root_hash,
        hashes=p.hashes,
        checkpoint=p.checkpoint,
    )


@router.get(
    "/v1/logs/{client}/proofs/consistency",
    response_model=LogConsistencyProof,
    responses=openapi_responses(401, 403, 404),
    summary="Consistency proof between two tree sizes",
)
def consistency_proof(
    client: ClientId,
    ctx: Ctx,
    caller: Caller,
    old: Annotated[int, Query(alias="from", ge=1, le=MAX_SIZE, description="The older size")],
    new: Annotated[
        int | None,
        Query(alias="to", ge=1, le=MAX_SIZE, description="The newer size; default: the log size"),
    ] = None,
) -> LogConsistencyProof:
    _head(ctx, caller, client)
    p = checkpoints.consistency(ctx, client, old, new)
    return LogConsistencyProof(**p.to_dict())


@router.get(
    "/v1/logs/{client}/export",
    response_class=NDJSONResponse,
    responses={
        200: {
            "description": "JSON Lines: a `log` header line, the entries in seq order, then "
            "every checkpoint (the format of `evidence-vault log export`)",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **openapi_responses(401, 403, 404),
    },
    summary="The whole log as JSON Lines, for an offline audit",
)
def log_export(client: ClientId, ctx: Ctx, caller: Caller) -> NDJSONResponse:
    # every check before the first byte: once streaming, an error can no longer be a problem
    head = _head(ctx, caller, client)
    size = head.size
    notes = [
        cp.note.encode() for cp in checkpoints.list_checkpoints(ctx, client) if cp.size <= size
    ]
    lines = export_lines(
        checkpoints.origin(ctx, client),
        size,
        checkpoints.log_verifier_key(ctx),
        _upto(entry_rows(ctx, client), size),
        notes,
    )
    return NDJSONResponse(
        _ndjson(lines),
        headers={"Content-Disposition": f'attachment; filename="{client}-log.jsonl"'},
    )


@router.get(
    "/v1/log-keys",
    response_model=list[LogKey],
    responses=openapi_responses(401),
    summary="Every generation of the log signing key, oldest first",
)
def log_keys(ctx: Ctx, caller: Caller) -> list[LogKey]:
    return [LogKey(**k.to_dict()) for k in _log_keys(ctx)]


# -- helpers ------------------------------------------------------------------------------


def _allow(caller: Principal, client: str) -> None:
    caller.require_client(client, *LOG_ROLES)


def _missing(client: str) -> NotFound:
    # the very error Principal.require_client raises for another tenant: same body
    return NotFound(f"client {client!r} does not exist")


def _head(ctx: VaultContext, caller: Principal, client: str) -> LogHead:
    _allow(caller, client)
    with read_session(ctx.engine) as s:
        head = s.get(LogHead, client)
    if head is None:
        raise _missing(client)
    return head


def _checkpoint_of_size(ctx: VaultContext, client: str, size: int) -> SignedCheckpoint:
    with read_session(ctx.engine) as s:
        row = s.get(CheckpointRow, (client, size))
    if row is None:
        raise NotFound(
            f"client {client!r} has no checkpoint of size {size}",
            hint="use the size of a checkpoint you hold, or leave tree_size out",
        )
    return SignedCheckpoint(
        row.client_id, row.size, row.root_hash, bytes(row.note).decode(), row.created_at
    )


def _checkpoint_model(cp: SignedCheckpoint) -> LogCheckpoint:
    return LogCheckpoint(**cp.to_dict())


def _upto(rows: Iterable[tuple[int, bytes]], size: int) -> Iterator[tuple[int, bytes]]:
    # entries appended while the export streams are left for the next export
    for seq, raw in rows:
        if seq >= size:
            return
        yield seq, bytes(raw)


def _ndjson(lines: Iterable[str], batch: int = 256) -> Iterator[bytes]:
    """Lines joined into chunks of ``batch`` (one send per line would be slow)."""
    buf: list[str] = []
    for line in lines:
        buf.append(line + "\n")
        if len(buf) >= batch:
            yield "".join(buf).encode()
            buf.clear()
    if buf:
        yield "".join(buf).encode()
