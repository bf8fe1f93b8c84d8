"""Evidence bundles: one ZIP per record, for a dispute, checkable without the vault.

Made by ``vault.services.export.export_bundle``; checked offline by
:func:`verify_bundle`. The format (``docs/formats.md``, "Evidence bundle") is
:mod:`vault.bundle.layout`::

    manifest.json            format, record, client, created_at, SHA-256 + size of the rest
    audio/<record><ext>      the clip, byte-identical to the upload
    evidence.json            the sealed document, RFC 8785 bytes (the meta commitment's input)
    entry.json               the record's ``evidence.sealed`` log entry, exact bytes
    openings.json            the commitment salt (and the two commitments it opens)
    proof.json               RFC 9162 inclusion proof of the entry
    checkpoint.txt           the signed checkpoint (C2SP signed note) the proof leads to
    verifier-key.txt         the vault's verifier key, as the vault says it is
    custody.json             (format 4) the record's access and hold entries, with proofs
    report.html              the same facts for people, rendered again and compared
    report.pdf               (format 4, optional) the same as PDF/A-3b, the files attached
    timestamps/<tsa>.tsr     (version 4) RFC 3161 tokens over the checkpoint's text

Pure code only, like :mod:`vault.ledger`: no database, no storage, no vault.
"""

from vault.bundle.layout import CHECKS, FORMAT, REPORT_CHECKS, SUPPORTED_VERSIONS, VERSION
from vault.bundle.verify import (
    MAX_AUDIO_SIZE,
    MAX_MANIFEST_SIZE,
    MAX_TEXT_SIZE,
    BundleVerdict,
    Check,
    Unchecked,
    verify_bundle,
)

__all__ = [
    "CHECKS",
    "FORMAT",
    "MAX_AUDIO_SIZE",
    "MAX_MANIFEST_SIZE",
    "MAX_TEXT_SIZE",
    "REPORT_CHECKS",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "BundleVerdict",
    "Check",
    "Unchecked",
    "verify_bundle",
]
