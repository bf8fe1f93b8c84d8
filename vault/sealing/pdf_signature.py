"""Signing report.pdf (PAdES B-T, pyHanko) and checking such a signature's integrity.

The signer is the operator's X.509 key and certificate (``[report] sign_key``,
``sign_cert``, ``sign_chain``), the signature time-stamped by the RFC 3161 TSA at
``[report] tsa_url`` (B-T); without a TSA it is B-B. The signature is invisible (a widget
of zero area): it changes nothing a reader sees, and the bundle's ``report-pdf`` check
accepts exactly that one form field and widget.

Checking (:func:`signature_findings`) establishes what needs no trust decision: the
signature covers the whole file and is cryptographically sound, and a time-stamp token,
when present, is sound over the signature. Whether the signer's and the TSA's
certificates are trusted is for whoever relies on the PDF to decide (a PAdES validator
and their trust list); the bundle verifier lists it as unchecked.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

#: the signature field's name in the PDF
FIELD_NAME = "Beweisbericht"


@dataclass(frozen=True)
class PdfSigning:
    key: Path  # PEM private key (unencrypted)
    cert: Path  # PEM certificate of that key
    chain: tuple[Path, ...] = ()  # PEM certificates up to (not needed: including) the root
    tsa_url: str | None = None  # RFC 3161 over HTTP; None: no time-stamp (B-B)


def sign_pdf(pdf: bytes, signing: PdfSigning, *, timestamper: object | None = None) -> bytes:
    """``pdf`` with an invisible PAdES signature appended as an incremental update.

    ``timestamper`` (a pyHanko ``TimeStamper``) overrides ``signing.tsa_url`` (tests).
    """
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers, timestamps

    signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
        str(signing.key), str(signing.cert), ca_chain_files=tuple(str(c) for c in signing.chain)
    )
    if signer is None:
        raise ValueError("the report signing key or certificate cannot be read")
    if timestamper is None and signing.tsa_url:
        timestamper = timestamps.HTTPTimeStamper(signing.tsa_url, timeout=30)
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.sign_pdf(writer, meta, signer=signer, timestamper=timestamper)  # type: ignore[arg-type]
    return bytes(out.getvalue())


@dataclass(frozen=True)
class SignatureFinding:
    """What a signature's integrity check found (no trust decision)."""

    ok: bool
    signer: str  # the certificate's subject, as text
    timestamped: bool
    detail: str


def signature_findings(reader: object) -> list[SignatureFinding]:
    """Each embedded signature of a PDF (a pyHanko ``PdfFileReader``), checked for
    integrity and whole-file coverage, its time-stamp token for soundness."""
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    found = []
    quiet = logging.getLogger("pyhanko")
    level = quiet.level
    for sig in reader.embedded_signatures:  # type: ignore[attr-defined]
        context = ValidationContext(trust_roots=[], allow_fetching=False)
        # without trust roots pyHanko logs every unbuildable path with a traceback: that
        # is the expected outcome here (trust is the reader's decision), not an error
        quiet.setLevel(logging.CRITICAL)
        try:
            status = validate_pdf_signature(sig, context, ts_validation_context=context)
        finally:
            quiet.setLevel(level)
        signer = status.signing_cert.subject.human_friendly if status.signing_cert else "?"
        whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        ts = status.timestamp_validity
        problems = []
        if not (status.intact and status.valid):
            problems.append("the signature does not match the file (broken or altered)")
        if not whole:
            problems.append("the signature does not cover the whole file")
        if ts is not None and not (ts.intact and ts.valid):
            problems.append("its time-stamp token is not sound")
        when = f", time-stamped {ts.timestamp:%Y-%m-%dT%H:%M:%SZ}" if ts is not None else ""
        detail = "; ".join(problems) if problems else f"signed by {signer}{when}"
        found.append(SignatureFinding(not problems, signer, ts is not None, detail))
    return found
