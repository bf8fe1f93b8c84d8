"""The Merkle tree of a client's log, as stored in the database.

Every complete aligned subtree is a ``merkle_node`` row, written in the same transaction
as the entries it covers. Roots and proofs are then a handful of reads answered by one
query each (see :mod:`vault.ledger.merkle`), however long the log grows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import insert, union_all
from sqlmodel import Session, select

from vault.db.models import MerkleNode
from vault.ledger.merkle import append_nodes

Coord = tuple[int, int]


class StoredTree:
    """A :class:`~vault.ledger.merkle.NodeSource` over one client's ``merkle_node`` rows."""

    def __init__(self, session: Session, client_id: str) -> None:
        self._session = session
        self._client = client_id

    def nodes(self, coords: Sequence[Coord]) -> Mapping[Coord, bytes]:
        if not coords:
            return {}
        by_level: dict[int, set[int]] = {}
        for level, idx in coords:
            by_level.setdefault(level, set()).add(idx)
        # one SELECT per level, glued with UNION ALL: each is a primary-key lookup on
        # SQLite and PostgreSQL alike (an OR of the same terms makes SQLite scan the
        # client's whole tree), and it is still a single round trip
        parts = [
            select(MerkleNode.level, MerkleNode.idx, MerkleNode.hash).where(
                MerkleNode.client_id == self._client,
                MerkleNode.level == lvl,
                MerkleNode.idx.in_(sorted(idxs)),
            )
            for lvl, idxs in by_level.items()
        ]
        rows = self._session.execute(union_all(*parts) if len(parts) > 1 else parts[0])
        found = {(level, idx): bytes(h) for level, idx, h in rows}
        missing = [c for c in coords if c not in found]
        if missing:
            raise LookupError(f"merkle nodes {missing[:3]} of log {self._client!r} are missing")
        return found


def add_leaves(session: Session, client_id: str, first: int, leaves: Sequence[bytes]) -> None:
    """Store leaves ``first..first+len-1`` and every subtree node they complete.

    One read (the tree's right edge) and one multi-row insert, whatever the group size.
    """
    nodes = {(0, first + i): leaf for i, leaf in enumerate(leaves)}
    nodes.update(append_nodes(StoredTree(session, client_id), first, leaves))
    session.connection().execute(
        _INSERT_NODE,
        [
            {"client_id": client_id, "level": lvl, "idx": idx, "hash": h}
            for (lvl, idx), h in nodes.items()
        ],
    )


_INSERT_NODE = insert(MerkleNode.__table__)  # type: ignore[attr-defined]
