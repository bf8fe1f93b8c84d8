"""The Merkle tree of a client's log, as stored in the database.

Every complete aligned subtree is a ``merkle_node`` row, written in the same transaction
as the entries it covers. Roots and proofs are then a handful of reads answered by one
query each (see :mod:`vault.ledger.merkle`), however long the log grows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from sqlalchemy import insert
from sqlmodel import Session

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
        unique = list(dict.fromkeys(coords))
        # one primary-key lookup per node, glued with UNION ALL: a single round trip, and
        # an index seek each on SQLite and PostgreSQL alike (an OR of the same terms, or a
        # row-value IN, makes SQLite scan the client's whole tree). The text depends only
        # on the number of nodes, so it is built once per count and sent as it is: a
        # proof's cost is then the database's, not the building of a statement.
        conn = self._session.connection()
        sql = _lookup_sql(len(unique), conn.dialect.paramstyle == "qmark")
        params: list[object] = []
        for level, idx in unique:
            params += (self._client, level, idx)
        rows = conn.exec_driver_sql(sql, tuple(params))
        found = {(level, idx): bytes(h) for level, idx, h in rows}
        missing = [c for c in unique if c not in found]
        if missing:
            raise LookupError(f"merkle nodes {missing[:3]} of log {self._client!r} are missing")
        return found


@lru_cache(maxsize=256)
def _lookup_sql(count: int, qmark: bool) -> str:
    mark = "?" if qmark else "%s"
    one = (
        f"SELECT level, idx, hash FROM {MerkleNode.__tablename__} "
        f"WHERE client_id = {mark} AND level = {mark} AND idx = {mark}"
    )
    return " UNION ALL ".join([one] * count)


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
