"""RFC 3161 time-stamps: the request sent to a Time-Stamping Authority, and the check of
the token it answers with, online (at stamping, with the request's nonce) or offline.

A token says "this SHA-256 digest existed at genTime", signed by a TSA whose certificate
chains to a root the verifier trusts. The checks, each its own :attr:`TimestampError.reason`
so that a verdict can say exactly what is wrong:

``malformed``  not a DER TimeStampResp with a token (RFC 3161 §2.4.2)
``status``     the TSA did not grant the request (PKIStatus other than granted)
``imprint``    the message imprint is not SHA-256 of the message
``nonce``      the token answers another request (online only: the nonce is not kept)
``eku``        the signing certificate is not a TSA's: its extended key usage is not
               critical and exactly ``id-kp-timeStamping`` (RFC 3161 §2.3)
``signature``  the CMS signature does not hold, or the signer's certificate does not chain
               to a trusted root (checked at genTime, so an expired TSA certificate
               still proves the time it signed)

The CMS and chain arithmetic is ``rfc3161-client`` (OpenSSL underneath); this module only
decides what to ask and in which order to check, so the first failing check is the one
reported. ``docs/formats.md``, "Checkpoint time-stamps (RFC 3161)".
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from vault.errors import ConfigError, VaultError

if TYPE_CHECKING:
    from rfc3161_client import TimeStampResponse

# rfc3161-client is imported where a token is made or read: ~2 MiB that a process opening
# a vault without a TSA (a CLI command, an ingest) would otherwise carry

#: the only imprint algorithm the vault asks for and accepts
SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
#: an OpenSSL verify error inside rfc3161-client's message, e.g. "certificate has expired"
_VERIFY_ERROR = re.compile(r'Verify error: ([^"]+)"')
#: the OpenSSL reasons in its error stack, e.g. "digest failure"
_REASON = re.compile(r'reason: "([^"]+)"')
REASONS = ("malformed", "status", "imprint", "nonce", "eku", "signature")


class TimestampError(VaultError):
    """A time-stamp token does not prove what it should; ``reason`` says which check failed."""

    kind = "bad-timestamp"

    def __init__(self, message: str, *, reason: str = "malformed", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


@dataclass(frozen=True)
class TimestampRequest:
    """A DER TimeStampReq for SHA-256 of a message, with a fresh nonce, asking for the
    TSA's certificate to be included (so the token can be checked offline)."""

    der: bytes
    nonce: int
    imprint: bytes


@dataclass(frozen=True)
class TimestampFacts:
    """What a token states. Trusted only as far as :func:`check_timestamp` checked it."""

    gen_time: datetime
    serial: int
    policy: str
    imprint: bytes
    signer: str  # the signing certificate's subject (RFC 4514), "" if not embedded
    nonce: int | None

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


class TrustRoots:
    """The TSA root certificates a verifier trusts (PEM), from one or more files."""

    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        self._certs = list(dict.fromkeys(certificates))
        if not self._certs:
            raise ConfigError(
                "no TSA trust root given", hint="give a PEM file of root certificates"
            )

    @classmethod
    def from_pem(cls, data: bytes, where: str = "the trust roots") -> TrustRoots:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ConfigError(
                f"{where} holds no readable PEM certificate",
                hint="give the TSA's root certificate(s) in PEM (-----BEGIN CERTIFICATE-----)",
            ) from None
        return cls(certs)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> TrustRoots:
        certs: list[x509.Certificate] = []
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the TSA trust roots {path}: {exc.strerror}",
                    hint="give the path of a PEM file with the TSA's root certificate(s)",
                ) from None
            certs += cls.from_pem(data, str(path))._certs
        return cls(certs)

    @property
    def subjects(self) -> list[str]:
        return [c.subject.rfc4514_string() for c in self._certs]

    @property
    def certificates(self) -> list[x509.Certificate]:
        return list(self._certs)


def imprint_of(message: bytes) -> bytes:
    """The message imprint the vault asks for: SHA-256 of ``message``."""
    return hashlib.sha256(message).digest()


def timestamp_request(message: bytes) -> TimestampRequest:
    """The request to time-stamp SHA-256(``message``)."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    request = (
        TimestampRequestBuilder()
        .data(message)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    nonce = request.nonce
    assert nonce is not None  # asked for above
    return TimestampRequest(request.as_bytes(), nonce, imprint_of(message))


def read_timestamp(token: bytes) -> TimestampFacts:
    """Parse a DER TimeStampResp without trusting it; ``malformed``/``status`` if unusable."""
    return _facts(_parse(token))


def check_timestamp(
    token: bytes, message: bytes, roots: TrustRoots | None, *, nonce: int | None = None
) -> TimestampFacts:
    """Check that ``token`` time-stamps SHA-256(``message``); raise :class:`TimestampError`.

    With ``roots`` None only the token's form and imprint are checked (the caller must say
    the signature was not); with ``nonce`` the token must answer that request.
    """
    response = _parse(token)
    facts = _facts(response)
    imprint = response.tst_info.message_imprint
    if imprint.hash_algorithm != SHA256_OID:
        raise TimestampError(
            f"the token's imprint is not SHA-256 (algorithm {imprint.hash_algorithm})",
            reason="imprint",
        )
    if not hmac.compare_digest(imprint.message, imprint_of(message)):
        raise TimestampError(
            "the token time-stamps another digest than the message's", reason="imprint"
        )
    if nonce is not None and response.tst_info.nonce != nonce:
        raise TimestampError("the token answers another request (nonce mismatch)", reason="nonce")
    if roots is None:
        return facts
    _check_signer_usage(response)
    from rfc3161_client import VerificationError, VerifierBuilder

    builder = VerifierBuilder()
    for cert in roots.certificates:
        builder = builder.add_root_certificate(cert)
    try:
        builder.build().verify(response, imprint_of(message))
    except VerificationError as exc:
        raise TimestampError(_signature_problem(str(exc)), reason="signature") from None
    return facts


def _parse(token: bytes) -> TimeStampResponse:
    from rfc3161_client import PKIStatus, decode_timestamp_response

    if not isinstance(token, bytes) or not token:
        raise TimestampError("the time-stamp token is empty", reason="malformed")
    try:
        response = decode_timestamp_response(token)
    except Exception:  # the parser raises ValueError and friends for any bad DER
        raise TimestampError("not a DER RFC 3161 time-stamp response", reason="malformed") from None
    if response.status != PKIStatus.GRANTED:
        raise TimestampError(
            f"the TSA did not grant the time-stamp (PKIStatus {response.status})", reason="status"
        )
    try:
        response.tst_info  # noqa: B018 -- a granted response must carry a token
    except Exception:
        raise TimestampError(
            "the time-stamp response carries no token", reason="malformed"
        ) from None
    return response


def _facts(response: TimeStampResponse) -> TimestampFacts:
    info = response.tst_info
    signer = _signer_certificate(response)
    when = info.gen_time
    return TimestampFacts(
        gen_time=when if when.tzinfo else when.replace(tzinfo=UTC),
        serial=info.serial_number,
        policy=info.policy.dotted_string,
        imprint=bytes(info.message_imprint.message),
        signer=signer.subject.rfc4514_string() if signer is not None else "",
        nonce=info.nonce,
    )


def _signer_certificate(response: TimeStampResponse) -> x509.Certificate | None:
    """The embedded certificate the SignerInfo names (issuer and serial), if any."""
    infos = list(response.signed_data.signer_infos)
    if len(infos) != 1:
        return None
    issuer, serial = infos[0].issuer, infos[0].serial_number
    for der in response.signed_data.certificates:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        if cert.issuer == issuer and cert.serial_number == serial:
            return cert
    return None


def _check_signer_usage(response: TimeStampResponse) -> None:
    """RFC 3161 §2.3: the TSA's certificate has one *critical* EKU, id-kp-timeStamping."""
    cert = _signer_certificate(response)
    if cert is None:
        raise TimestampError(
            "the token does not include the certificate that signed it", reason="signature"
        )
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError(
            "the signing certificate has no extended key usage id-kp-timeStamping", reason="eku"
        ) from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError(
            "the signing certificate's extended key usage is not critical and only "
            "id-kp-timeStamping: it is not a time-stamping certificate",
            reason="eku",
        )


def _signature_problem(message: str) -> str:
    found = _VERIFY_ERROR.search(message)
    if found:
        return (
            f"the token's signature or certificate chain does not hold against the trusted "
            f"TSA roots ({found.group(1)})"
        )
    reasons = list(dict.fromkeys(_REASON.findall(message)))
    why = ", ".join(reasons) if reasons else "the CMS signature did not verify"
    return f"the token's signature does not hold over what it states ({why})"
