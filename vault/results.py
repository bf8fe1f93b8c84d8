"""What the vault answers with: one set of result types for the facade and the HTTP client.

:class:`vault.Vault` builds these from the database; :class:`vault.client.VaultClient`
builds the same ones from the HTTP API's JSON (``from_dict``), so code written against one
runs against the other. ``to_dict`` gives the JSON the API sends (times as RFC 3339 UTC
text); ``from_dict`` reads it back.

The client's results were plain dicts once: ``result["field"]`` still reads a field as the
JSON names it (:class:`JsonFields`).

No database, storage or HTTP import here: the client and auditors load this module alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from vault.ledger.entry import format_time

if TYPE_CHECKING:
    from vault.db.models import Client

__all__ = [
    "CampaignInfo",
    "ClientInfo",
    "ConsistencyProof",
    "DialerKeyInfo",
    "DocumentFact",
    "DocumentInfo",
    "HoldInfo",
    "InclusionProof",
    "IssuedToken",
    "JsonFields",
    "KeyGeneration",
    "PersonInfo",
    "Receipt",
    "RecordSummary",
    "SignedCheckpoint",
    "TextformFacts",
    "TokenInfo",
]

JsonObject = Mapping[str, Any]


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _parse_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _parse_opt_time(value: Any) -> datetime | None:
    return None if value is None else _parse_time(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class JsonFields(ABC):
    """``result["field"]``: a field as the API's JSON names and spells it."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The result as the HTTP API's JSON has it."""

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InclusionProof(JsonFields):
    client: str
    record_id: str | None
    seq: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    hashes: list[str]
    checkpoint: str

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_dict(cls, d: JsonObject) -> InclusionProof:
        return cls(
            client=str(d["client"]),
            record_id=_opt_str(d.get("record_id")),
            seq=int(d["seq"]),
            leaf_hash=str(d["leaf_hash"]),
            tree_size=int(d["tree_size"]),
            root_hash=str(d["root_hash"]),
            hashes=[str(h) for h in d["hashes"]],
            checkpoint=str(d["checkpoint"]),
        )


@dataclass(frozen=True)
class Receipt(JsonFields):
    """What the uploader keeps: proof the vault accepted and chained this record.

    ``inclusion_proof`` is there once a checkpoint covers the record's entry and the
    receipt was asked for again (``VaultClient.receipt``); a fresh upload has none yet.
    """

    record_id: str
    client: str
    campaign: str
    seq: int
    entry_hash: str
    sealed_at: datetime
    duplicate: bool = False
    inclusion_proof: InclusionProof | None = None
    #: the commitment salt of a record sealed by this call (None for a duplicate): the
    #: uploader's opening of its own commitments; never in ``to_dict``
    salt: bytes | None = field(default=None, repr=False, compare=False)
    #: the ``evidence.sealed`` entry's bytes, likewise only of a record sealed by this
    #: call: the opening is answered without reading it back; never in ``to_dict``
    entry: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "client": self.client,
            "campaign": self.campaign,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "sealed_at": format_time(self.sealed_at),
            "duplicate": self.duplicate,
        }
        if self.inclusion_proof is not None:
            out["inclusion_proof"] = self.inclusion_proof.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: JsonObject) -> Receipt:
        proof = d.get("inclusion_proof")
        return cls(
            record_id=str(d["record_id"]),
            client=str(d["client"]),
            campaign=str(d["campaign"]),
            seq=int(d["seq"]),
            entry_hash=str(d["entry_hash"]),
            sealed_at=_parse_time(d["sealed_at"]),
            duplicate=bool(d.get("duplicate", False)),
            inclusion_proof=InclusionProof.from_dict(proof) if proof is not None else None,
        )


@dataclass(frozen=True)
class RecordSummary(JsonFields):
    """One search hit: ids, references and timings; no PII."""

    record_id: str
    client: str
    campaign: str
    call_id: str
    segment: int
    order_ref: str
    agent_id: str
    recorded_at: datetime
    duration_ms: int
    media_type: str
    seq: int
    retain_until: datetime | None = None
    #: "sealed", or "shredded" once crypto-shredded
    state: str = "sealed"
    #: the Textform document kinds its campaign requires that are not sealed yet
    pending_documents: tuple[str, ...] = ()

    @property
    def textform(self) -> str:
        """ "pending" while a required Textform document is missing, else "complete"."""
        return "pending" if self.pending_documents else "complete"

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "client": self.client,
            "campaign": self.campaign,
            "call_id": self.call_id,
            "segment": self.segment,
            "order_ref": self.order_ref,
            "agent_id": self.agent_id,
            "recorded_at": format_time(self.recorded_at),
            "duration_ms": self.duration_ms,
            "media_type": self.media_type,
            "seq": self.seq,
            "retain_until": _time(self.retain_until),
            "state": self.state,
            "textform": self.textform,
            "pending_documents": list(self.pending_documents),
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> RecordSummary:
        return cls(
            record_id=str(d["record_id"]),
            client=str(d["client"]),
            campaign=str(d["campaign"]),
            call_id=str(d["call_id"]),
            segment=int(d["segment"]),
            order_ref=str(d["order_ref"]),
            agent_id=str(d["agent_id"]),
            recorded_at=_parse_time(d["recorded_at"]),
            duration_ms=int(d["duration_ms"]),
            media_type=str(d["media_type"]),
            seq=int(d["seq"]),
            retain_until=_parse_opt_time(d.get("retain_until")),
            state=str(d.get("state", "sealed")),
            pending_documents=tuple(str(k) for k in d.get("pending_documents", ())),
        )


@dataclass(frozen=True)
class HoldInfo(JsonFields):
    id: str
    client: str
    record_id: str
    kind: str
    case_ref: str
    reason: str
    placed_by: str
    placed_at: datetime
    release_requested_by: str | None
    released_by: str | None
    released_at: datetime | None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client": self.client,
            "record_id": self.record_id,
            "kind": self.kind,
            "case_ref": self.case_ref,
            "reason": self.reason,
            "placed_by": self.placed_by,
            "placed_at": format_time(self.placed_at),
            "release_requested_by": self.release_requested_by,
            "released_by": self.released_by,
            "released_at": _time(self.released_at),
            "active": self.active,
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> HoldInfo:
        return cls(
            id=str(d["id"]),
            client=str(d["client"]),
            record_id=str(d["record_id"]),
            kind=str(d["kind"]),
            case_ref=str(d["case_ref"]),
            reason=str(d["reason"]),
            placed_by=str(d["placed_by"]),
            placed_at=_parse_time(d["placed_at"]),
            release_requested_by=_opt_str(d.get("release_requested_by")),
            released_by=_opt_str(d.get("released_by")),
            released_at=_parse_opt_time(d.get("released_at")),
        )


# -- administration ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientInfo(JsonFields):
    id: str
    display_name: str
    #: the default retention of its campaigns, days
    retention_days: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Client) -> ClientInfo:
        return cls(row.id, row.display_name, row.retention_days, row.created_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "retention_days": self.retention_days,
            "created_at": format_time(self.created_at),
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> ClientInfo:
        days = d.get("retention_days")
        return cls(
            id=str(d["id"]),
            display_name=str(d["display_name"]),
            retention_days=None if days is None else int(days),
            created_at=_parse_time(d["created_at"]),
        )


@dataclass(frozen=True)
class CampaignInfo(JsonFields):
    client: str
    name: str
    #: the effective period: the campaign's own, else the client's default
    retention_days: int | None
    retention_basis: str = "recorded"
    client_default: bool = False
    #: the Textform document kinds each record of the campaign needs
    required_documents: tuple[str, ...] = ()
    #: uploads without a valid source signature of a registered dialer key are refused
    require_source_signature: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "name": self.name,
            "retention_days": self.retention_days,
            "retention_basis": self.retention_basis,
            "client_default": self.client_default,
            "required_documents": list(self.required_documents),
            "require_source_signature": self.require_source_signature,
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> CampaignInfo:
        days = d.get("retention_days")
        return cls(
            client=str(d["client"]),
            name=str(d["name"]),
            retention_days=None if days is None else int(days),
            retention_basis=str(d.get("retention_basis", "recorded")),
            client_default=bool(d.get("client_default", False)),
            required_documents=tuple(str(k) for k in d.get("required_documents", ())),
            require_source_signature=bool(d.get("require_source_signature", False)),
        )


@dataclass(frozen=True)
class PersonInfo(JsonFields):
    handle: str
    display_name: str
    role: str
    client: str | None
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    disabled_at: datetime | None

    @property
    def status(self) -> str:
        if self.disabled_at is not None:
            return "disabled"
        return "active" if self.approved_at is not None else "pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "display_name": self.display_name,
            "role": self.role,
            "client": self.client,
            "status": self.status,
            "created_by": self.created_by,
            "created_at": format_time(self.created_at),
            "approved_by": self.approved_by,
            "approved_at": _time(self.approved_at),
            "disabled_at": _time(self.disabled_at),
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> PersonInfo:
        return cls(
            handle=str(d["handle"]),
            display_name=str(d.get("display_name") or ""),
            role=str(d["role"]),
            client=_opt_str(d.get("client")),
            created_by=str(d["created_by"]),
            created_at=_parse_time(d["created_at"]),
            approved_by=_opt_str(d.get("approved_by")),
            approved_at=_parse_opt_time(d.get("approved_at")),
            disabled_at=_parse_opt_time(d.get("disabled_at")),
        )


@dataclass(frozen=True)
class TokenInfo(JsonFields):
    id: str
    person: str
    role: str
    client: str | None
    campaign: str | None
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person": self.person,
            "role": self.role,
            "client": self.client,
            "campaign": self.campaign,
            "label": self.label,
            "created_at": format_time(self.created_at),
            "expires_at": _time(self.expires_at),
            "revoked_at": _time(self.revoked_at),
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> TokenInfo:
        return cls(
            id=str(d["id"]),
            person=str(d["person"]),
            role=str(d["role"]),
            client=_opt_str(d.get("client")),
            campaign=_opt_str(d.get("campaign")),
            label=str(d.get("label") or ""),
            created_at=_parse_time(d["created_at"]),
            expires_at=_parse_opt_time(d.get("expires_at")),
            revoked_at=_parse_opt_time(d.get("revoked_at")),
        )


class IssuedToken(NamedTuple):
    """A new token: its info and its secret, shown this once.

    A pair, as it always was: ``info, secret = vault.create_token(...)``.
    """

    info: TokenInfo
    secret: str

    def to_dict(self) -> dict[str, Any]:
        """The API's answer: the token's fields and ``token``, the secret."""
        return {**self.info.to_dict(), "token": self.secret}

    @classmethod
    def from_dict(cls, d: JsonObject) -> IssuedToken:
        return cls(TokenInfo.from_dict(d), str(d["token"]))


# -- the ledger ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCheckpoint(JsonFields):
    client: str
    size: int
    root_hash: str
    note: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "size": self.size,
            "root_hash": self.root_hash,
            "note": self.note,
            "created_at": format_time(self.created_at),
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> SignedCheckpoint:
        return cls(
            client=str(d["client"]),
            size=int(d["size"]),
            root_hash=str(d["root_hash"]),
            note=str(d["note"]),
            created_at=_parse_time(d["created_at"]),
        )


@dataclass(frozen=True)
class ConsistencyProof(JsonFields):
    client: str
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    hashes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_dict(cls, d: JsonObject) -> ConsistencyProof:
        return cls(
            client=str(d["client"]),
            old_size=int(d["old_size"]),
            new_size=int(d["new_size"]),
            old_root=str(d["old_root"]),
            new_root=str(d["new_root"]),
            hashes=[str(h) for h in d["hashes"]],
        )


@dataclass(frozen=True)
class KeyGeneration(JsonFields):
    generation: int
    verifier_key: str
    active: bool

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_dict(cls, d: JsonObject) -> KeyGeneration:
        return cls(int(d["generation"]), str(d["verifier_key"]), bool(d["active"]))


@dataclass(frozen=True)
class DocumentInfo(JsonFields):
    """A Textform document sealed with a record (no content, no PII)."""

    document_id: str
    record_id: str
    client: str
    kind: str
    media_type: str
    size: int
    seq: int
    entry_hash: str
    sealed_at: datetime
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "record_id": self.record_id,
            "client": self.client,
            "kind": self.kind,
            "media_type": self.media_type,
            "size": self.size,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "sealed_at": format_time(self.sealed_at),
            "duplicate": self.duplicate,
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> DocumentInfo:
        return cls(
            document_id=str(d["document_id"]),
            record_id=str(d["record_id"]),
            client=str(d["client"]),
            kind=str(d["kind"]),
            media_type=str(d["media_type"]),
            size=int(d["size"]),
            seq=int(d["seq"]),
            entry_hash=str(d["entry_hash"]),
            sealed_at=_parse_time(d["sealed_at"]),
            duplicate=bool(d.get("duplicate", False)),
        )


@dataclass(frozen=True)
class DocumentFact(JsonFields):
    """One sealed document as a report states it: what it is, when it was sealed, and
    whether it checked ("ok", or what is wrong)."""

    document_id: str
    seq: int
    kind: str
    media_type: str
    size: int
    sealed_at: datetime
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "seq": self.seq,
            "kind": self.kind,
            "media_type": self.media_type,
            "size": self.size,
            "sealed_at": format_time(self.sealed_at),
            "verdict": self.verdict,
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> DocumentFact:
        return cls(
            document_id=str(d["document_id"]),
            seq=int(d["seq"]),
            kind=str(d["kind"]),
            media_type=str(d["media_type"]),
            size=int(d["size"]),
            sealed_at=_parse_time(d["sealed_at"]),
            verdict=str(d["verdict"]),
        )


@dataclass(frozen=True)
class TextformFacts(JsonFields):
    """A record's Textform state: its sealed documents and the required kinds missing.

    ``pending`` is the "pending Textform" state the desk, the search and the report show.
    """

    record_id: str
    required: tuple[str, ...]
    documents: tuple[DocumentFact, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        have = {d.kind for d in self.documents if d.verdict == "ok"}
        return tuple(k for k in self.required if k not in have)

    @property
    def pending(self) -> bool:
        return bool(self.missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "required": list(self.required),
            "documents": [d.to_dict() for d in self.documents],
            "missing": list(self.missing),
            "textform": "pending" if self.pending else "complete",
        }

    @classmethod
    def from_dict(cls, d: JsonObject) -> TextformFacts:
        return cls(
            record_id=str(d["record_id"]),
            required=tuple(str(k) for k in d.get("required", ())),
            documents=tuple(DocumentFact.from_dict(x) for x in d.get("documents", ())),
        )


@dataclass(frozen=True)
class DialerKeyInfo(JsonFields):
    """A dialer host's registered public key (base64 of the raw 32 bytes)."""

    key_id: str
    client: str
    public_key: str
    label: str
    registered_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "client": self.client,
            "public_key": self.public_key,
            "label": self.label,
            "registered_at": format_time(self.registered_at),
            "revoked_at": _time(self.revoked_at),
        }
