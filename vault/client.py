"""A Python client for the vault's HTTP API (docs/api.md, section "HTTP").

::

    from vault.client import VaultClient

    with VaultClient("https://vault.example:8400", "evt1_...") as api:
        receipt = api.upload("clip.wav", order_metadata)          # streamed from disk
        hits = api.search(order_ref="ORD-2026-000123")
        api.download_audio(hits[0]["record_id"], "out.wav")       # streamed, atomic

Every refused call raises :class:`VaultApiError` (a :class:`vault.errors.VaultError`),
built from the RFC 9457 problem details the server sends. Where the problem's kind has a
local counterpart the error is also an instance of it, so ``except NotFound`` or
``except Conflict`` work for a remote vault as for a local one. A server that cannot be
reached raises :class:`VaultConnectionError`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from vault.errors import (
    FieldError,
    InvalidAudio,
    InvalidDocument,
    StorageError,
    VaultError,
    error_classes,
)
from vault.results import (
    CampaignInfo,
    ClientInfo,
    ConsistencyProof,
    DocumentInfo,
    HoldInfo,
    InclusionProof,
    IssuedToken,
    KeyGeneration,
    PersonInfo,
    Receipt,
    RecordSummary,
    SignedCheckpoint,
    TokenInfo,
)
from vault.storage.files import atomic_output

__all__ = ["VaultApiError", "VaultClient", "VaultConnectionError", "encode_metadata"]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_CHUNK = 1 << 16
#: a Textform document's media type by file extension (as the CLI's ``attach`` tells it)
_DOCUMENT_TYPES = {
    ".eml": "message/rfc822",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".sms": "text/plain",
}


class VaultApiError(VaultError):
    """The API refused a call: ``status`` and the RFC 9457 ``problem`` it answered with.

    ``message`` is the problem's ``detail``, ``hint`` its hint, ``kind`` the last part of
    its ``type`` (e.g. ``not-found``) and ``errors`` one :class:`FieldError` per field.
    """

    kind = "api-error"

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem)
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        hint = problem.get("hint")
        VaultError.__init__(self, str(detail), hint=str(hint) if hint else None)
        self.http_status = status
        kind = str(problem.get("type") or "").rstrip("/").rsplit("/", 1)[-1]
        self.kind = kind if kind and kind != "about:blank" else f"http-{status}"
        self.errors = [
            FieldError(str(e.get("field", "")), str(e.get("message", "")))
            for e in problem.get("errors") or []
            if isinstance(e, Mapping)
        ]

    def __str__(self) -> str:
        return f"HTTP {self.status}: {VaultError.__str__(self)}"

    def __reduce__(self) -> tuple[Any, tuple[int, dict[str, Any]]]:
        return (_rebuild, (self.status, self.problem))


class VaultConnectionError(StorageError):
    """The API could not be reached, or the connection broke (retry later)."""

    kind = "connection-error"


def _remote_classes() -> tuple[dict[str, type[VaultApiError]], dict[int, type[VaultApiError]]]:
    """One VaultApiError subclass per local error class, by kind and by status.

    A remote error is an instance of the local class of its kind and, where that class is
    not already one, of the class standing for its status: ``except Conflict`` catches every
    409 (a ``tamper-detected`` too), ``except StorageError`` every 503 (retry later).
    """
    local = error_classes()[1:]  # VaultError itself names no kind of its own
    # declared on the class itself: a subclass (ObjectLocked) does not stand for 503
    for_status = {c.http_status: c for c in local if c.__dict__.get("stands_for_status")}
    by_kind: dict[str, type[VaultApiError]] = {}
    for cls in local:
        also = for_status.get(cls.http_status)
        bases = (cls,) if also is None or issubclass(cls, also) else (cls, also)
        # its own kind, status and exit code, not those of the status class it also is
        own = {"kind": cls.kind, "http_status": cls.http_status, "exit_code": cls.exit_code}
        by_kind[cls.kind] = type(
            f"Api{cls.__name__}", (VaultApiError, *bases), {"__module__": __name__, **own}
        )
    by_status = {status: by_kind[cls.kind] for status, cls in for_status.items()}
    return by_kind, by_status


_BY_KIND, _BY_STATUS = _remote_classes()


def _rebuild(status: int, problem: dict[str, Any]) -> VaultApiError:
    return api_error(status, problem)


def api_error(status: int, problem: Mapping[str, Any]) -> VaultApiError:
    """The :class:`VaultApiError` (subclass by kind, else by status) for a problem."""
    kind = str(problem.get("type") or "").rstrip("/").rsplit("/", 1)[-1]
    cls = _BY_KIND.get(kind) or _BY_STATUS.get(status) or VaultApiError
    return cls(status, problem)


def encode_metadata(metadata: Mapping[str, Any] | str | bytes) -> str:
    """The ``Evidence-Metadata`` header: base64url, no padding, of the UTF-8 JSON."""
    if isinstance(metadata, Mapping):
        raw = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode()
    elif isinstance(metadata, str):
        raw = metadata.encode("utf-8")
    elif isinstance(metadata, bytes | bytearray | memoryview):
        raw = bytes(metadata)
    else:
        raise TypeError("metadata must be a dict, a JSON string or JSON bytes")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


class VaultClient:
    """The vault's HTTP API for one token.

    ``transport`` plugs an httpx transport under a client of our own (e.g. a
    ``httpx.MockTransport``); ``http`` uses an existing ``httpx.Client`` instead, such as
    a ``fastapi.testclient.TestClient`` (then ``base_url`` may be ``""``, and closing this
    client leaves that one open).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        verify: bool | str = True,
    ) -> None:
        self.base_url = (base_url or "").rstrip("/")
        self._token = token
        if http is not None:
            self._http, self._own = http, False
        else:
            self._http = httpx.Client(
                base_url=self.base_url, transport=transport, timeout=timeout, verify=verify
            )
            self._own = True

    # -- plumbing ---------------------------------------------------------------
    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never the token
        return f"VaultClient({self.base_url or self._http.base_url!s})"

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}" if self.base_url else path

    def _headers(
        self, extra: Mapping[str, str] | None = None, *, auth: bool = True
    ) -> dict[str, str]:
        headers = {"Accept": "application/json, application/problem+json;q=0.9, */*;q=0.1"}
        if auth and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        headers.update(extra or {})
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: IO[bytes] | bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        stream: bool = False,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            self._url(path),
            params={k: v for k, v in (params or {}).items() if v is not None} or None,
            json=json_body,
            content=content,
            headers=self._headers(headers, auth=auth),
        )
        try:
            response = self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise VaultConnectionError(
                f"{method} {path} failed: {type(exc).__name__}",
                hint=f"check that the vault API at {self.base_url or 'the server'} is reachable",
            ) from None
        if response.status_code >= 400:
            try:
                if stream:
                    response.read()
                raise self._error(response)
            finally:
                response.close()
        return response

    @staticmethod
    def _error(response: httpx.Response) -> VaultApiError:
        problem: Any = None
        if "json" in response.headers.get("content-type", ""):
            try:
                problem = response.json()
            except ValueError:
                problem = None
        if not isinstance(problem, dict):
            # not a problem document (a proxy's page?): its text is not repeated here
            problem = {
                "type": "about:blank",
                "title": response.reason_phrase or "Error",
                "status": response.status_code,
                "detail": f"HTTP {response.status_code} {response.reason_phrase}".strip(),
            }
        error = api_error(response.status_code, problem)
        retry_after = response.headers.get("retry-after", "").strip()
        if retry_after.isascii() and retry_after.isdigit():
            # this client does not retry by itself: the caller waits this long, then retries
            error.retry_after = int(retry_after)  # type: ignore[attr-defined]
        return error

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self._send(method, path, **kw).json()

    def _object(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """A JSON object answer (a dict; anything else is the server's fault)."""
        found = self._json(method, path, **kw)
        if not isinstance(found, dict):
            raise VaultApiError(502, {"detail": f"{method} {path}: not a JSON object"})
        return found

    def _objects(self, method: str, path: str, **kw: Any) -> list[dict[str, Any]]:
        """A JSON array of objects answer."""
        found = self._json(method, path, **kw)
        if not isinstance(found, list) or not all(isinstance(o, dict) for o in found):
            raise VaultApiError(502, {"detail": f"{method} {path}: not a JSON array of objects"})
        return found

    def _to_file(self, path: str, out_path: str | os.PathLike[str], **kw: Any) -> Path:
        """Stream a response body into ``out_path`` (atomically: all of it, or no file)."""
        out = Path(out_path)
        response = self._send("GET", path, stream=True, **kw)
        try:
            with atomic_output(out) as fh:
                for chunk in response.iter_bytes(_CHUNK):
                    fh.write(chunk)
        except httpx.TransportError as exc:
            raise VaultConnectionError(
                f"GET {path} broke off: {type(exc).__name__}", hint="download it again"
            ) from None
        finally:
            response.close()
        return out

    # -- health -----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /healthz``: the process answers."""
        return self._object("GET", "/healthz", auth=False)

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: ``{status, checks}``; a 503 (not ready) is returned, not raised."""
        try:
            return self._object("GET", "/readyz", auth=False)
        except VaultApiError as exc:
            if exc.status == 503 and "checks" in exc.problem:
                return exc.problem
            raise

    # -- records ------------------------------------------------------------------
    def upload(
        self,
        clip_path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | str | bytes,
        *,
        media_type: str | None = None,
        idempotency_key: str | None = None,
        signature: str | None = None,
    ) -> Receipt:
        """Upload one order segment (streamed from disk); the receipt.

        ``signature`` is the ``Evidence-Signature`` header of the dialer host's source
        signature (``SourceSignature.header()``). The receipt's ``duplicate`` is true when
        the vault already held this call segment.
        """
        from vault.audio import media_type_for_path

        media_type = media_type or media_type_for_path(clip_path)
        if not media_type:
            raise InvalidAudio(
                "the clip's media type cannot be told from its file name",
                hint="pass media_type=, e.g. 'audio/wav'",
            )
        headers = {"Content-Type": media_type, "Evidence-Metadata": encode_metadata(metadata)}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if signature:
            headers["Evidence-Signature"] = signature
        with open(clip_path, "rb") as fh:  # httpx reads it in chunks; Content-Length from fstat
            return Receipt.from_dict(
                self._object("POST", "/v1/records", content=fh, headers=headers)
            )

    def receipt(self, record_id: str) -> Receipt:
        """A record's receipt, with its inclusion proof once a checkpoint covers it."""
        return Receipt.from_dict(self._object("GET", f"/v1/records/{_segment(record_id)}/receipt"))

    def search(self, **filters: Any) -> list[RecordSummary]:
        """Record summaries (no PII): campaign, order_ref, phone, agent, since, until, limit."""
        body = {k: _jsonable(v) for k, v in filters.items() if v is not None}
        found = self._objects("POST", "/v1/records/search", json_body=body)
        return [RecordSummary.from_dict(hit) for hit in found]

    def record(self, record_id: str) -> dict[str, Any]:
        """The decrypted evidence document (a logged read)."""
        return self._object("GET", f"/v1/records/{_segment(record_id)}")

    def audio(self, record_id: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """The clip, or its bytes ``start``..``end`` (both inclusive, as in HTTP; a missing
        ``start`` is 0, a missing ``end`` the last byte)."""
        headers: dict[str, str] = {}
        if start is not None or end is not None:
            headers["Range"] = f"bytes={start or 0}-{'' if end is None else end}"
        return self._send(
            "GET", f"/v1/records/{_segment(record_id)}/audio", headers=headers
        ).content

    def download_audio(self, record_id: str, out_path: str | os.PathLike[str]) -> Path:
        """The clip, byte-identical, streamed into ``out_path`` (atomic)."""
        return self._to_file(f"/v1/records/{_segment(record_id)}/audio", out_path)

    def bundle(self, record_id: str, out_path: str | os.PathLike[str]) -> Path:
        """The evidence bundle (ZIP), streamed into ``out_path`` (atomic)."""
        return self._to_file(f"/v1/records/{_segment(record_id)}/bundle", out_path)

    # -- Textform documents --------------------------------------------------------
    def attach(
        self,
        record_id: str,
        path: str | os.PathLike[str],
        *,
        kind: str,
        media_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> DocumentInfo:
        """Seal a Textform document (``.eml``, ``.pdf``, ``.txt``/``.sms``) with a record;
        ``duplicate`` is true for the same document again."""
        media_type = media_type or _DOCUMENT_TYPES.get(Path(path).suffix.lower())
        if not media_type:
            raise InvalidDocument(
                "the document's media type cannot be told from its file name",
                hint="pass media_type=, e.g. 'application/pdf'",
            )
        headers = {"Content-Type": media_type}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        data = Path(path).read_bytes()
        found = self._object(
            "POST",
            f"/v1/records/{_segment(record_id)}/documents",
            params={"kind": kind},
            content=data,
            headers=headers,
        )
        return DocumentInfo.from_dict(found)

    def documents(self, record_id: str) -> list[DocumentInfo]:
        """The record's documents (receipts, no content); not an access."""
        listing = self.document_listing(record_id)
        return [DocumentInfo.from_dict(d) for d in listing.get("documents", [])]

    def document_listing(self, record_id: str) -> dict[str, Any]:
        """The API's listing: ``documents`` and the Textform state — ``required``,
        ``missing``, ``textform`` ("pending" or "complete")."""
        return self._object("GET", f"/v1/records/{_segment(record_id)}/documents")

    def document(
        self,
        record_id: str,
        document_id: str,
        *,
        reason: str | None = None,
        case: str | None = None,
    ) -> bytes:
        """A document's bytes, exactly as attached (a logged read)."""
        path = f"/v1/records/{_segment(record_id)}/documents/{_segment(document_id)}"
        return self._send("GET", path, params={"reason": reason, "case": case}).content

    # -- disputes and holds -------------------------------------------------------
    def open_dispute(self, record_id: str, case_ref: str, reason: str) -> HoldInfo:
        """A client disputes a record: the hold placed."""
        return HoldInfo.from_dict(
            self._object(
                "POST",
                f"/v1/records/{_segment(record_id)}/disputes",
                json_body={"case_ref": case_ref, "reason": reason},
            )
        )

    def place_hold(self, record_id: str, case_ref: str, reason: str) -> HoldInfo:
        """An admin's legal hold on a record."""
        return HoldInfo.from_dict(
            self._object(
                "POST",
                f"/v1/records/{_segment(record_id)}/holds",
                json_body={"case_ref": case_ref, "reason": reason},
            )
        )

    def release_hold(self, hold_id: str) -> HoldInfo:
        """Four-eyes: the first admin's call requests the release, a second admin's releases."""
        return HoldInfo.from_dict(self._object("POST", f"/v1/holds/{_segment(hold_id)}/release"))

    def holds(self, record_id: str | None = None) -> list[HoldInfo]:
        """Active holds (of one record)."""
        found = self._objects("GET", "/v1/holds", params={"record": record_id})
        return [HoldInfo.from_dict(h) for h in found]

    # -- the ledger ---------------------------------------------------------------
    def log_info(self, client: str) -> dict[str, Any]:
        """``{origin, size, verifier_key}`` of a client's log."""
        return self._object("GET", f"/v1/logs/{_segment(client)}")

    def entries(self, client: str, start: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """One page of log entries ``{seq, entry, hash}`` from ``start``."""
        entries: list[dict[str, Any]] = self.entries_page(client, start, limit)["entries"]
        return entries

    def entries_page(self, client: str, start: int = 0, limit: int = 100) -> dict[str, Any]:
        """``{client, size, start, entries, next}``; ``next`` is null at the end of the log."""
        return self._object(
            "GET",
            f"/v1/logs/{_segment(client)}/entries",
            params={"start": start, "limit": limit},
        )

    def iter_entries(
        self, client: str, start: int = 0, page: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every entry from ``start`` on, page by page."""
        next_start: int | None = start
        while next_start is not None:
            found = self.entries_page(client, next_start, page)
            yield from found["entries"]
            next_start = found.get("next")

    def checkpoint(self, client: str) -> SignedCheckpoint:
        """The latest signed checkpoint of a client's log."""
        return SignedCheckpoint.from_dict(
            self._object("GET", f"/v1/logs/{_segment(client)}/checkpoint")
        )

    def inclusion(self, client: str, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Inclusion proof of entry ``seq`` (default tree size: the latest checkpoint)."""
        return InclusionProof.from_dict(
            self._object(
                "GET",
                f"/v1/logs/{_segment(client)}/proofs/inclusion",
                params={"seq": seq, "tree_size": tree_size},
            )
        )

    def consistency(self, client: str, old: int, new: int | None = None) -> ConsistencyProof:
        """Consistency proof between tree sizes ``old`` and ``new``."""
        return ConsistencyProof.from_dict(
            self._object(
                "GET",
                f"/v1/logs/{_segment(client)}/proofs/consistency",
                params={"from": old, "to": new},
            )
        )

    def export_log(self, client: str, out_path: str | os.PathLike[str]) -> Path:
        """The JSON Lines export (for ``evidence-vault log verify``), streamed to disk."""
        return self._to_file(f"/v1/logs/{_segment(client)}/export", out_path)

    def log_keys(self) -> list[KeyGeneration]:
        """Every generation of the log signing key."""
        return [KeyGeneration.from_dict(k) for k in self._objects("GET", "/v1/log-keys")]

    # -- administration -----------------------------------------------------------
    def clients(self) -> list[ClientInfo]:
        """Clients in scope (a tenant admin sees its own)."""
        return [ClientInfo.from_dict(c) for c in self._objects("GET", "/v1/clients")]

    def add_client(
        self, client_id: str, display_name: str | None = None, *, retention_days: int | None = None
    ) -> ClientInfo:
        """Create a client (global admin)."""
        body = {"id": client_id, "display_name": display_name, "retention_days": retention_days}
        return ClientInfo.from_dict(
            self._object(
                "POST", "/v1/clients", json_body={k: v for k, v in body.items() if v is not None}
            )
        )

    def campaigns(self, client: str) -> list[CampaignInfo]:
        """A client's campaigns and their retention rules."""
        found = self._objects("GET", f"/v1/clients/{_segment(client)}/campaigns")
        return [CampaignInfo.from_dict(c) for c in found]

    def add_campaign(
        self,
        client: str,
        name: str,
        retention_days: int | None = None,
        *,
        retention_basis: str | None = None,
    ) -> CampaignInfo:
        """Create a campaign; without ``retention_days`` the client's default applies."""
        body = {"name": name, "retention_days": retention_days, "retention_basis": retention_basis}
        return CampaignInfo.from_dict(
            self._object(
                "POST",
                f"/v1/clients/{_segment(client)}/campaigns",
                json_body={k: v for k, v in body.items() if v is not None},
            )
        )

    def tokens(self) -> list[TokenInfo]:
        """Tokens in scope (never their secrets)."""
        return [TokenInfo.from_dict(t) for t in self._objects("GET", "/v1/tokens")]

    def persons(self, client: str | None = None) -> list[PersonInfo]:
        """Persons in scope."""
        found = self._objects("GET", "/v1/persons", params={"client": client} if client else None)
        return [PersonInfo.from_dict(p) for p in found]

    def add_person(
        self,
        handle: str,
        role: str,
        client: str | None = None,
        *,
        display_name: str | None = None,
    ) -> PersonInfo:
        """Create a person (logged); an admin is ``pending`` until a second admin approves."""
        body = {"handle": handle, "role": role, "client": client, "display_name": display_name}
        return PersonInfo.from_dict(
            self._object(
                "POST", "/v1/persons", json_body={k: v for k, v in body.items() if v is not None}
            )
        )

    def approve_person(self, handle: str) -> PersonInfo:
        """Approve a pending admin (not its creator, not itself)."""
        return PersonInfo.from_dict(self._object("POST", f"/v1/persons/{_segment(handle)}/approve"))

    def disable_person(self, handle: str) -> PersonInfo:
        """Disable a person: every token of theirs stops working at once."""
        return PersonInfo.from_dict(self._object("POST", f"/v1/persons/{_segment(handle)}/disable"))

    def create_token(
        self,
        person: str,
        *,
        campaign: str | None = None,
        expires_at: datetime | str | None = None,
        label: str | None = None,
    ) -> IssuedToken:
        """A new token of ``person`` and its secret, which is in this answer only."""
        body = {
            "person": person,
            "campaign": campaign,
            "expires_at": _jsonable(expires_at),
            "label": label,
        }
        return IssuedToken.from_dict(
            self._object(
                "POST", "/v1/tokens", json_body={k: v for k, v in body.items() if v is not None}
            )
        )

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token at once (idempotent)."""
        return TokenInfo.from_dict(self._object("DELETE", f"/v1/tokens/{_segment(token_id)}"))
