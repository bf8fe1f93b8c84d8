"""evidence-vault: sealed, hash-chained evidence of recorded order segments.

The facade most users need::

    from vault import Vault

    with Vault.open("/srv/evidence") as v:
        receipt = v.ingest("call.wav", meta=open("order.json").read())
        hits = v.find(order_ref="ORD-2026-000123")
        doc = v.show(receipt.record_id)
        v.write_audio(receipt.record_id, "out.wav")
        assert v.verify().clean
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = [
    "ErasureReport",
    "HoldInfo",
    "PlanItem",
    "Query",
    "Receipt",
    "RecordSummary",
    "Report",
    "RunReport",
    "Vault",
    "VaultError",
    "local_principal",
]

if TYPE_CHECKING:
    from vault.errors import VaultError
    from vault.facade import (
        ErasureReport,
        HoldInfo,
        PlanItem,
        Query,
        Receipt,
        RecordSummary,
        Report,
        RunReport,
        Vault,
        local_principal,
    )


def __getattr__(name: str):
    # Lazy: `import vault.audio` (or the sealing package alone) must not pull in the
    # database, storage and HTTP layers.
    if name == "VaultError":
        from vault.errors import VaultError

        return VaultError
    if name in __all__:
        from vault import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'vault' has no attribute {name!r}")
