"""A database attacker: raw ``sqlite3`` / ``psycopg`` on the vault's metadata database.

Deliberately independent of the code under attack: no vault module, no SQLAlchemy. What
it knows of the formats it takes from the documentation (docs/formats.md): entries are
RFC 8785 JSON (for ASCII entries without floats that is ``json.dumps`` with sorted keys
and no spaces), the leaf hash is SHA-256(0x00 || entry), interior Merkle nodes are
SHA-256(0x01 || left || right) (RFC 9162). It has no key: it cannot make an entry tag.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def canonical(obj: dict[str, Any]) -> bytes:
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert raw.isascii(), "the attacker's shortcut to RFC 8785 holds for ASCII only"
    return raw.encode()


def leaf_hash(raw: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + raw).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def entry_time(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class Attacker:
    """Read and write access to the vault's database, and nothing else."""

    def __init__(self, database_url: str, home: Path) -> None:
        self.home = home
        if database_url.startswith("postgresql"):
            import psycopg

            dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
            self._conn = psycopg.connect(dsn, autocommit=True)
            self._mark = "%s"
        else:
            path = database_url.removeprefix("sqlite:///")
            self._conn = sqlite3.connect(path, isolation_level=None)  # autocommit
            self._mark = "?"

    def close(self) -> None:
        self._conn.close()

    # -- raw SQL ----------------------------------------------------------------------
    def run(self, sql: str, *params: Any) -> None:
        self._conn.execute(sql.replace("?", self._mark), params)

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        return list(self._conn.execute(sql.replace("?", self._mark), params).fetchall())

    def one(self, sql: str, *params: Any) -> Any:
        [row] = self.rows(sql, *params)
        return row[0] if len(row) == 1 else row

    # -- reading ---------------------------------------------------------------------
    def head(self, client: str) -> tuple[int, str]:
        return self.one("SELECT size, head_hash FROM log_head WHERE client_id = ?", client)

    def entry(self, client: str, seq: int) -> dict[str, Any]:
        raw = self.one("SELECT entry FROM log_entry WHERE client_id = ? AND seq = ?", client, seq)
        return json.loads(bytes(raw))

    def tag(self, client: str, seq: int) -> bytes | None:
        tag = self.one("SELECT tag FROM log_entry WHERE client_id = ? AND seq = ?", client, seq)
        return None if tag is None else bytes(tag)

    def seqs(self, client: str, kind: str, record: str | None = None) -> list[int]:
        found = self.rows(
            "SELECT seq, entry FROM log_entry WHERE client_id = ? ORDER BY seq", client
        )
        out = []
        for seq, raw in found:
            e = json.loads(bytes(raw))
            if e["type"] == kind and (record is None or e.get("record") == record):
                out.append(seq)
        return out

    def record(self, record_id: str, column: str) -> Any:
        return self.one(f"SELECT {column} FROM record WHERE id = ?", record_id)

    def checkpoint_sizes(self, client: str) -> list[int]:
        rows = self.rows("SELECT size FROM checkpoint WHERE client_id = ? ORDER BY size", client)
        return [r[0] for r in rows]

    # -- writing ---------------------------------------------------------------------
    def set_record(self, record_id: str, column: str, value: Any) -> None:
        self.run(f"UPDATE record SET {column} = ? WHERE id = ?", value, record_id)

    def shift_time(self, table: str, column: str, key: str, days: float) -> None:
        """Move a timestamp column of the row ``id = key`` by ``days`` (either storage)."""
        value = self.one(f"SELECT {column} FROM {table} WHERE id = ?", key)
        if isinstance(value, str):  # SQLite keeps SQLAlchemy's text spelling
            moved = datetime.fromisoformat(value) + timedelta(days=days)
            value = moved.strftime("%Y-%m-%d %H:%M:%S.%f")
        else:
            value = value + timedelta(days=days)
        self.run(f"UPDATE {table} SET {column} = ? WHERE id = ?", value, key)

    def now_value(self) -> Any:
        """The current time in the column representation of this database."""
        return self.time_value(datetime.now(UTC))

    def time_value(self, ts: datetime) -> Any:
        """``ts`` (UTC) as this database's timestamp columns hold it."""
        naive = ts.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self._mark == "?" else naive

    def append(
        self,
        client: str,
        kind: str,
        record: str | None,
        body: dict[str, Any],
        *,
        tag: bytes | None = None,
    ) -> int:
        """Append a well-formed entry at the head: row, Merkle leaf and parents, head.

        Everything the vault would write, except a valid tag (``tag`` may be a replayed
        one). Returns its seq.
        """
        size, prev = self.head(client)
        entry = {
            "v": 2,
            "log": client,
            "seq": size,
            "type": kind,
            "time": entry_time(datetime.now(UTC)),
            "prev": prev,
            "body": body,
        }
        if record is not None:
            entry["record"] = record
        raw = canonical(entry)
        self.run(
            "INSERT INTO log_entry (client_id, seq, type, record_id, entry, tag) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            client,
            size,
            kind,
            record,
            raw,
            tag,
        )
        leaf = leaf_hash(raw)
        self._add_leaf(client, size, leaf)
        self.run(
            "UPDATE log_head SET size = ?, head_hash = ? WHERE client_id = ?",
            size + 1,
            leaf.hex(),
            client,
        )
        return size

    def rewrite(self, client: str, seq: int, change) -> bytes:
        """Replace entry ``seq``'s bytes with ``change(entry)`` (canonical), keeping its tag."""
        entry = self.entry(client, seq)
        change(entry)
        raw = canonical(entry)
        self.run("UPDATE log_entry SET entry = ? WHERE client_id = ? AND seq = ?", raw, client, seq)
        return raw

    def rechain(self, client: str, start: int) -> None:
        """Re-link entries ``start..`` to their (edited) predecessors, rebuild the Merkle
        tree from every entry and move the head: a consistent, untagged history."""
        prev = leaf_hash(
            bytes(
                self.one(
                    "SELECT entry FROM log_entry WHERE client_id = ? AND seq = ?", client, start - 1
                )
            )
        ).hex()
        size, _ = self.head(client)
        for seq in range(start, size):
            raw = self.rewrite(client, seq, lambda e, prev=prev: e.update(prev=prev))
            prev = leaf_hash(raw).hex()
        self.run("DELETE FROM merkle_node WHERE client_id = ?", client)
        for seq, raw in self.rows(
            "SELECT seq, entry FROM log_entry WHERE client_id = ? ORDER BY seq", client
        ):
            self._add_leaf(client, seq, leaf_hash(bytes(raw)))
        self.run("UPDATE log_head SET head_hash = ? WHERE client_id = ?", prev, client)

    def truncate(self, client: str, keep: int) -> None:
        """Cut every entry from ``keep`` on, with the Merkle nodes over them; rewind the head."""
        raw = self.one(
            "SELECT entry FROM log_entry WHERE client_id = ? AND seq = ?", client, keep - 1
        )
        self.run("DELETE FROM log_entry WHERE client_id = ? AND seq >= ?", client, keep)
        for level, idx in self.rows(
            "SELECT level, idx FROM merkle_node WHERE client_id = ?", client
        ):
            if (idx + 1) << level > keep:
                self.run(
                    "DELETE FROM merkle_node WHERE client_id = ? AND level = ? AND idx = ?",
                    client,
                    level,
                    idx,
                )
        self.run(
            "UPDATE log_head SET size = ?, head_hash = ? WHERE client_id = ?",
            keep,
            leaf_hash(bytes(raw)).hex(),
            client,
        )

    def _add_leaf(self, client: str, index: int, leaf: bytes) -> None:
        level, idx, h = 0, index, leaf
        while True:
            self.run(
                "INSERT INTO merkle_node (client_id, level, idx, hash) VALUES (?, ?, ?, ?)",
                client,
                level,
                idx,
                h,
            )
            if idx % 2 == 0:
                return  # a left child: its parent is not complete yet
            left = self.one(
                "SELECT hash FROM merkle_node WHERE client_id = ? AND level = ? AND idx = ?",
                client,
                level,
                idx - 1,
            )
            level, idx, h = level + 1, idx // 2, node_hash(bytes(left), h)
