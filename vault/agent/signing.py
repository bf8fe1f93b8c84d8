"""The dialer host's source signature of each upload (docs/formats.md, source statement).

The agent and ``evidence-vault upload`` sign the statement of the clip's SHA-256, the
metadata's SHA-256 (of its RFC 8785 form) and the recording time with the host's own key;
the vault checks it against the key an admin registered and records the key id in the
clip's ``evidence.sealed`` entry.
"""

from __future__ import annotations

import os
from datetime import datetime

from vault.errors import ConfigError
from vault.ledger.entry import format_time
from vault.sealing.source import SourceSignature, SourceSigner, metadata_digest


def load_signer(path: str | os.PathLike | None) -> SourceSigner | None:
    """The host's key from its PEM file, or None when no key is configured."""
    if path is None:
        return None
    try:
        return SourceSigner.load(path)
    except FileNotFoundError:
        raise ConfigError(
            f"the signing key {path} does not exist",
            hint="make one with `evidence-vault dialer keygen` and have an admin register it",
        ) from None
    except ValueError as exc:
        raise ConfigError(str(exc), hint="point signing_key at the dialer host's key") from None


def source_header(
    signer: SourceSigner, clip_sha256: str, meta: bytes | str | dict, recorded_at: datetime
) -> str:
    """The ``Evidence-Signature`` header of one upload (``clip_sha256`` in hex)."""
    signature = signer.sign(
        bytes.fromhex(clip_sha256), metadata_digest(meta), format_time(recorded_at)
    )
    return SourceSignature(signer.key_id, signature).header()
