"""The agent's two calls to the vault, with every failure sorted into transient or final.

Built on :mod:`vault.client` (its problem-document mapping and metadata header) but
with what an agent needs on top: the upload asks for the receipt's opening
(``?opening=true``), streams the clip with a progress callback, and a failure carries the
``Retry-After`` the vault (or a proxy) sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from vault.agent.retry import is_transient, parse_retry_after
from vault.client import VaultClient, encode_metadata
from vault.errors import VaultError

#: read and sent 256 KiB at a time: per-chunk work in httpx is a fair share of an upload's CPU
_CHUNK = 1 << 18


class UploadFailed(VaultError):
    """An attempt failed. ``transient``: try again later (after ``retry_after`` if set)."""

    kind = "upload-failed"

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        cause: VaultError | None = None,
    ) -> None:
        super().__init__(message, hint=getattr(cause, "hint", None))
        self.transient = transient
        self.status = status
        self.retry_after = retry_after
        self.cause = cause


class Uplink:
    """Upload and receipt calls for one dialer token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )
        self._token = token

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Uplink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upload(
        self,
        clip: str | os.PathLike,
        meta: bytes,
        *,
        media_type: str,
        key: str,
        progress: Callable[[int], None] | None = None,
        tap: Callable[[bytes], None] | None = None,
        signature: str | None = None,
        salt: str | None = None,
    ) -> dict:
        """POST the clip; the receipt with its opening (201 new, 200 a repeat).

        ``tap`` sees every chunk sent (e.g. a hash of exactly what went out). ``salt``: the
        commitment salt to propose (64 hex; the vault seals a new record under it)."""
        size = os.stat(clip).st_size
        headers = {
            "Content-Type": media_type,
            "Content-Length": str(size),
            "Evidence-Metadata": encode_metadata(meta),
            "Idempotency-Key": key,
        }
        if signature:
            headers["Evidence-Signature"] = signature  # the dialer host's source signature
        if salt:
            headers["Commitment-Salt"] = salt
        return self._call(
            "POST",
            "/v1/records",
            params={"opening": "true"},
            content=_read(clip, progress, tap),
            headers=headers,
        )

    def receipt(self, record_id: str) -> dict:
        """The receipt, with the inclusion proof once a checkpoint covers the record."""
        return self._call("GET", f"/v1/records/{record_id}/receipt")

    def _call(self, method: str, path: str, **kw: Any) -> dict:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        headers.update(kw.pop("headers", {}))
        try:
            response = self._http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise UploadFailed(
                f"{method} {path.split('?')[0]}: {type(exc).__name__}", transient=True
            ) from None
        if response.status_code >= 400:
            raise _failure(response)
        try:
            body = response.json()
        except ValueError:
            # a 2xx that is not JSON: something between us and the vault broke it
            raise UploadFailed(
                f"HTTP {response.status_code}: the answer is not JSON", transient=True
            ) from None
        if not isinstance(body, dict):
            raise UploadFailed(f"HTTP {response.status_code}: not a receipt", transient=True)
        return body


def _failure(response: httpx.Response) -> UploadFailed:
    error = VaultClient._error(response)
    status = response.status_code
    return UploadFailed(
        f"HTTP {status} {error.kind}: {error.message}"[:300],
        transient=is_transient(status),
        status=status,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        cause=error,
    )


def _read(
    path: str | os.PathLike,
    progress: Callable[[int], None] | None,
    tap: Callable[[bytes], None] | None = None,
) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            if tap is not None:
                tap(chunk)
            if progress is not None:
                progress(len(chunk))
            yield chunk
