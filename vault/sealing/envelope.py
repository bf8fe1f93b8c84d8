"""Envelope encryption: per-record data keys and the associated data that binds each object.

Every record gets a fresh data key (DEK); its clip and its metadata are each sealed as a
stream (``vault.sealing.stream``) under that DEK with the associated data of
:func:`object_aad`; the DEK itself is stored only wrapped by a key provider
(``vault.sealing.keys``).
"""

from __future__ import annotations

import os

from vault.sealing._encoding import encode_items, require_text

DATA_KEY_SIZE = 32
OBJECT_AAD_DOMAIN = "evidence-vault/v1 object"
#: the object roles of a record; the AD names the role so that the clip and the metadata
#: of one record (sealed under the same DEK) cannot be swapped for each other
ROLES = frozenset({"clip", "meta"})


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (one per record)."""
    return os.urandom(DATA_KEY_SIZE)


def data_key_context(record_id: str) -> dict[str, str]:
    """The context a record's data key is wrapped under (and must be unwrapped with).

    Key providers bind it into the wrapping (AAD of the local keyring, encryption context
    of AWS KMS), so a wrapped key copied onto another record's row does not unwrap.
    """
    require_text("record_id", record_id)
    return {"record": record_id}


def object_aad(tenant: str, record_id: str, role: str) -> bytes:
    """The associated data that binds a sealed object to its tenant, record and role.

    Decrypting an object under another tenant's, record's or role's AD fails, so an object
    swapped or copied to another place in storage is detected. Encoding:
    ``len32 ‖ "evidence-vault/v1 object" ‖ len32 ‖ tenant ‖ len32 ‖ record_id ‖ len32 ‖ role``
    (lengths u32 big-endian, text UTF-8).
    """
    require_text("tenant", tenant)
    require_text("record_id", record_id)
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, not {role!r}")
    return encode_items(OBJECT_AAD_DOMAIN, tenant, record_id, role)
