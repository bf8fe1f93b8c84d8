"""HTTP routes: a client's verifiable log, for its auditor (and admins).

Everything here is ciphertext-free and PII-free by construction: log entries name record
ids, object keys, hashes and times, never metadata values. An auditor token sees only its
own client's log; another client's log answers exactly like a missing one (404).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from vault.errors import NotFound
from vault.http.deps import Caller, ClientId, Ctx
from vault.http.problems import openapi_responses
from vault.services import checkpoints, logexport, timestamps, witnessing
from vault.services.checkpoints import SignedCheckpoint
from vault.services.context import VaultContext
from vault.services.keys import log_keys as _log_keys
from vault.services.tokens import Principal

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
    note: str = Field(
        description="The C2SP signed note (tlog-checkpoint body + signatures): the vault's, "
        "then any witness cosignatures (C2SP tlog-cosignature) received so far"
    )
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


class LogTimestamp(BaseModel):
    tsa: str = Field(description="The Time-Stamping Authority's configured name")
    size: int = Field(description="The tree size of the checkpoint it stamps")
    gen_time: str = Field(description="The time the token states (its genTime), UTC")
    serial: str = Field(description="The token's serial number, hex")
    token: str = Field(
        description="The DER RFC 3161 TimeStampResp, base64: its imprint is SHA-256 of the "
        "checkpoint note's text (docs/formats.md, Checkpoint time-stamps)"
    )


class LogKey(BaseModel):
    generation: int
    verifier_key: str
    active: bool = Field(description="True for the generation signing now")


class NDJSONResponse(StreamingResponse):
    media_type = "application/x-ndjson"


router = APIRouter(tags=["ledger"])


# -- routes -------------------------------------------------------------------------------


@router.get(
    "/v1/logs/{client}",
    response_model=LogInfo,
    responses=openapi_responses(401, 403, 404),
    summary="The log's origin, size and verifier key",
)
def log_info(client: ClientId, ctx: Ctx, caller: Caller) -> LogInfo:
    size = _size(ctx, caller, client)
    return LogInfo(
        client=client,
        origin=checkpoints.origin(ctx, client),
        size=size,
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
    page = logexport.entry_page(ctx, client, start, limit)
    if page is None:
        raise _missing(client)
    size = page.size
    items = [LogEntryItem(seq=e.seq, entry=e.entry.decode(), hash=e.hash) for e in page.entries]
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
    _size(ctx, caller, client)
    cp = checkpoints.latest_checkpoint(ctx, client)
    return _checkpoint_model(witnessing.with_cosignature_lines(ctx, cp))


@router.get(
    "/v1/logs/{client}/checkpoints/{size}/timestamps",
    response_model=list[LogTimestamp],
    responses=openapi_responses(401, 403, 404),
    summary="The RFC 3161 time-stamps of a signed checkpoint",
)
def checkpoint_timestamps(
    client: ClientId, size: Annotated[int, Path(ge=0, le=MAX_SIZE)], ctx: Ctx, caller: Caller
) -> list[LogTimestamp]:
    _size(ctx, caller, client)
    checkpoints.checkpoint_of_size(ctx, client, size)  # NotFound when none was signed
    return [
        LogTimestamp(
            tsa=t.tsa,
            size=t.size,
            gen_time=t.to_dict()["gen_time"],
            serial=t.serial,
            token=base64.b64encode(t.token).decode(),
        )
        for t in timestamps.timestamps_of(ctx, client, size)
    ]


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
    _size(ctx, caller, client)
    if tree_size is None:
        cp = checkpoints.latest_checkpoint(ctx, client)
    else:
        cp = checkpoints.checkpoint_of_size(ctx, client, tree_size)
    if seq >= cp.size:
        raise NotFound(
            f"entry {seq} is not in the checkpoint of size {cp.size}",
            hint="choose seq < tree_size, or a later checkpoint",
        )
    p = checkpoints.inclusion_at(ctx, client, seq, witnessing.with_cosignature_lines(ctx, cp))
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
    _size(ctx, caller, client)
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
    lines = logexport.export_stream(ctx, client, _size(ctx, caller, client))
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


def _size(ctx: VaultContext, caller: Principal, client: str) -> int:
    """The size of a log the caller may read: another client's looks missing."""
    _allow(caller, client)
    size = logexport.log_size(ctx, client)
    if size is None:
        raise _missing(client)
    return size


def _checkpoint_model(cp: SignedCheckpoint) -> LogCheckpoint:
    return LogCheckpoint(**cp.to_dict())


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
