"""RFC 9162 (RFC 6962) Merkle tree arithmetic over leaf hashes. Pure; no I/O.

Hashing (RFC 9162 §2.1.1):

* leaf hash   = SHA-256(0x00 ‖ entry)          — :func:`leaf_hash`, ``entry.entry_hash``
* interior    = SHA-256(0x01 ‖ left ‖ right)   — :func:`parent`
* empty tree  = SHA-256("")                    — :data:`EMPTY_ROOT`

Storage model. Only *complete aligned subtrees* are ever stored, addressed ``(level,
index)``: level 0 holds the leaf hashes, and node ``(L, i)`` is the root of the perfect
subtree over leaves ``[i·2^L, (i+1)·2^L)``. Such a node never changes once all its leaves
exist, so it is written once, when its last leaf is appended
(:func:`nodes_completed_by_append`). Any RFC 9162 subtree hash — a root, or a sibling in
a proof — is a right fold over at most ~log2(n) of those nodes (:func:`subtree_coords`),
so roots and proofs read O(log n) stored nodes and never rehash the log.

Every function that needs stored nodes first works out *all* the coordinates it needs,
then asks the :class:`NodeSource` for them in a single ``nodes()`` call (one SQL query in
the database implementation), then combines them in memory.

Hashes are raw 32-byte ``bytes`` throughout (the ledger's entry module speaks hex).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
#: MTH({}) — the root of the empty tree (RFC 9162 §2.1.1)
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256

Coord = tuple[int, int]
"""``(level, index)`` of a stored node: it covers leaves ``[index·2^level, (index+1)·2^level)``."""


class NodeSource(Protocol):
    """Where stored complete-subtree nodes come from (the database, or :class:`MemoryNodes`)."""

    def nodes(self, coords: Sequence[Coord]) -> Mapping[Coord, bytes]:
        """The hashes at ``coords``, fetched in one batch. Missing nodes may be left out
        (or the source may raise ``LookupError`` itself); callers check."""
        ...


class MissingNodesError(LookupError):
    """A :class:`NodeSource` did not return a node the tree of that size must have.

    That is a damaged or incomplete store, not a bad request: the nodes of every size up
    to the log head are written in the same transaction as the entries.
    """


# --- hashing -------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 ‖ entry): the leaf hash of RFC 9162 §2.1.1."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def parent(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): an interior node. The prefixes keep a leaf and a node
    from ever having the same preimage (second-preimage resistance of the tree)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


# --- coordinates ---------------------------------------------------------------------


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")


def _split(n: int) -> int:
    """k of RFC 9162 §2.1.1: the largest power of two smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def nodes_completed_by_append(index: int) -> list[Coord]:
    """The level ≥ 1 nodes that become complete when leaf ``index`` is appended.

    Leaf ``index`` completes ``(L, i)`` exactly when it is the last leaf of that node,
    i.e. when 2^L divides ``index + 1``: one node per trailing zero bit of ``index + 1``.
    Listed in increasing level, so each node's two children come before it:
    ``(L, i) = parent((L-1, 2i), (L-1, 2i+1))``, where the right child is the node (or
    leaf) just before it in the list and the left child is already stored.
    """
    _check_size("index", index)
    size = index + 1
    out: list[Coord] = []
    level = 1
    while size % (1 << level) == 0:
        out.append((level, (size >> level) - 1))
        level += 1
    return out


def subtree_coords(start: int, end: int) -> list[Coord]:
    """The stored nodes whose right fold is MTH(D[start:end]), left to right.

    This is the "compact range" of ``[start, end)``: greedily the largest aligned complete
    subtree starting at ``start`` that fits, then the next. The nodes shrink from left to
    right, and folding them from the right (``parent(a, parent(b, c))``) reproduces the
    RFC's recursive split at the largest power of two — *provided* the range has the
    shape of a subtree of an RFC 9162 tree: ``start`` must be a multiple of the smallest
    power of two ≥ ``end - start``. Every range in a root or a proof has that shape
    (``start = 0`` always does); other ranges raise ``ValueError``, because their fold is
    not their MTH.
    """
    _check_size("start", start)
    _check_size("end", end)
    if end <= start:
        raise ValueError(f"empty or reversed range [{start}, {end})")
    width = end - start
    span = 1 << (width - 1).bit_length()  # smallest power of two ≥ width
    if start % span:
        raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 9162 tree")
    out: list[Coord] = []
    while start < end:
        # largest level L with start aligned to 2^L and start + 2^L ≤ end
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


# --- combining fetched nodes ---------------------------------------------------------


def _fetch(source: NodeSource, coords: Sequence[Coord]) -> Mapping[Coord, bytes]:
    """One batch read; every coordinate must come back as a 32-byte hash."""
    if not coords:
        return {}
    unique = list(dict.fromkeys(coords))
    got = source.nodes(unique)
    missing = [c for c in unique if c not in got]
    if missing:
        raise MissingNodesError(f"the tree store lacks nodes {missing[:4]}")
    bad = [c for c in unique if len(got[c]) != HASH_SIZE]
    if bad:
        raise MissingNodesError(f"the tree store returned malformed nodes {bad[:4]}")
    return got


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of a compact range: parent(h0, parent(h1, … h_last))."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = parent(h, acc)
    return acc


def _subtree_hashes(source: NodeSource, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each range, with all the nodes they need read in one ``nodes()`` call."""
    plans = [subtree_coords(a, b) for a, b in ranges]
    got = _fetch(source, [c for plan in plans for c in plan])
    return [_fold([got[c] for c in plan]) for plan in plans]


def root(source: NodeSource, size: int) -> bytes:
    """MTH(D[0:size]): the tree head of the first ``size`` leaves (``EMPTY_ROOT`` for 0)."""
    _check_size("size", size)
    if size == 0:
        return EMPTY_ROOT
    return _subtree_hashes(source, [(0, size)])[0]


# --- proofs --------------------------------------------------------------------------


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the siblings in PATH(index, D[0:size]), leaf first (RFC 9162 §2.1.3.1).

    PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])    if m < k
                  = PATH(m-k, D[k:n]) : MTH(D[0:k])  otherwise
    Walking down from the root yields the siblings top first; the proof lists them from
    the leaf up, hence the reversal. Once the walk turns left it is inside a complete
    subtree, so only one sibling is ragged: O(log n) stored nodes in all.
    """
    out: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1)."""
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _subtree_hashes(source, _inclusion_ranges(index, size))


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """Leaf ranges of the hashes in PROOF(old, D[0:new]), in proof order (RFC 9162 §2.1.4.1).

    SUBPROOF(m, D[m], true)  = {}
    SUBPROOF(m, D[m], false) = {MTH(D[m])}
    SUBPROOF(m, D[n], b)     = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])        if m ≤ k
                             = SUBPROOF(m-k, D[k:n], false) : MTH(D[0:k])  if m > k
    """
    out: list[tuple[int, int]] = []
    start, end, m, whole = 0, new, old, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        # the old tree is not a complete subtree of the new one: its last node is needed
        out.append((start, end))
    out.reverse()
    return out


def consistency_proof(source: NodeSource, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[0:new]) of RFC 9162 §2.1.4.1: the tree of ``old`` leaves is a prefix of
    the tree of ``new`` leaves. Empty when ``old`` is 0 or equals ``new``."""
    _check_size("old", old)
    _check_size("new", new)
    if old > new:
        raise ValueError(f"cannot prove consistency from size {old} to the smaller size {new}")
    if old == 0 or old == new:
        return []
    return _subtree_hashes(source, _consistency_ranges(old, new))


# --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) -------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True if ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root`` of ``size``.

    The algorithm of RFC 9162 §2.1.3.2, step for step. Malformed input (wrong hash
    lengths, negative or out-of-range numbers) is simply not a valid proof.
    """
    if not (_is_count(index) and _is_count(size) and _is_hash(leaf) and _is_hash(root)):
        return False
    if index >= size or not all(_is_hash(p) for p in proof):
        return False
    fn, sn = index, size - 1
    r = bytes(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = parent(p, r)
            if not fn & 1:
                # a right-edge node with no right sibling at these levels: climb past them
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = parent(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if ``proof`` shows the tree ``old_root`` of size ``old`` is a prefix of the tree
    ``new_root`` of size ``new`` (RFC 9162 §2.1.4.2).

    Edge cases the RFC leaves to the caller are strict here: size 0 needs an empty proof
    and ``old_root == EMPTY_ROOT``; equal sizes need an empty proof and equal roots.
    """
    if not (_is_count(old) and _is_count(new) and _is_hash(old_root) and _is_hash(new_root)):
        return False
    if old > new or not all(_is_hash(p) for p in proof):
        return False
    if old == 0:
        return not proof and hmac.compare_digest(old_root, EMPTY_ROOT)
    if old == new:
        return not proof and hmac.compare_digest(old_root, new_root)
    if not proof:
        return False
    path = [bytes(p) for p in proof]
    if old & (old - 1) == 0:
        # the old tree is a complete subtree of the new one: the proof omits its root
        path.insert(0, bytes(old_root))
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = parent(c, fr)
            sr = parent(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = parent(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


# --- streaming and in-memory trees ---------------------------------------------------


class CompactRange:
    """The right edge of a growing tree: O(log n) hashes, enough for its root.

    Holds the nodes of ``subtree_coords(0, size)`` (one per set bit of ``size``), so an
    audit can stream millions of leaves through it and compare the root with a signed
    checkpoint without keeping, or fetching, anything else.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_source(cls, source: NodeSource, size: int) -> CompactRange:
        """Resume at ``size`` from stored nodes (one ``nodes()`` call)."""
        _check_size("size", size)
        cr = cls()
        if size:
            coords = subtree_coords(0, size)
            got = _fetch(source, coords)
            cr._hashes = [bytes(got[c]) for c in coords]
            cr._size = size
        return cr

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash (``_push`` without the list of completed nodes: an audit
        streams millions of leaves through here)."""
        if type(leaf) is not bytes or len(leaf) != HASH_SIZE:
            self._push(leaf)  # validates (bytearray too), and raises for a bad leaf
            return
        hashes, node, index = self._hashes, leaf, self._size
        while index & 1:
            node = _sha256(NODE_PREFIX + hashes.pop() + node).digest()
            index >>= 1
        hashes.append(node)
        self._size += 1

    def _push(self, leaf: bytes) -> list[tuple[Coord, bytes]]:
        """Add a leaf; return the level ≥ 1 nodes it completed, lowest first."""
        if not _is_hash(leaf):
            raise ValueError("a leaf hash is 32 bytes")
        completed: list[tuple[Coord, bytes]] = []
        node, level, index = bytes(leaf), 0, self._size
        # while the new node is a right child, merge it with its left sibling
        while index & 1:
            node = parent(self._hashes.pop(), node)
            level += 1
            index >>= 1
            completed.append(((level, index), node))
        self._hashes.append(node)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def hashes(self) -> tuple[bytes, ...]:
        """The range's nodes, left to right: one per set bit of ``size``, highest first."""
        return tuple(self._hashes)

    def joined(self, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """This range followed by the compact range of the next ``size`` leaves.

        ``hashes`` are that range's :meth:`hashes`, computed elsewhere (a process that
        verified leaves ``[self.size, self.size + size)``). The join is exact when this
        range's size is a multiple of the smallest power of two >= ``size``, so every
        node of the right range is an aligned node of the whole tree.
        """
        _check_size("size", size)
        levels = [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
        if len(levels) != len(hashes) or not all(_is_hash(h) for h in hashes):
            raise ValueError("a compact range has one 32-byte hash per set bit of its size")
        if size and self._size % (1 << (size - 1).bit_length()):
            raise ValueError(f"a range of {size} leaves cannot be joined at {self._size}")
        out = CompactRange()
        out._hashes, out._size = list(self._hashes), self._size
        for level, node in zip(levels, hashes, strict=True):
            index = out._size >> level
            node = bytes(node)
            while index & 1:  # binary addition of a node of this level, as in _push
                node = parent(out._hashes.pop(), node)
                index >>= 1
            out._hashes.append(node)
            out._size += 1 << level
        return out


def append_nodes(source: NodeSource, size: int, leaves: Sequence[bytes]) -> dict[Coord, bytes]:
    """The level ≥ 1 nodes completed by appending ``leaves`` to a tree of ``size`` leaves.

    For group commit: one ``nodes()`` call fetches the current right edge, and the nodes
    of all new leaves (including those combining two new leaves) are computed in memory.
    The caller stores these plus the leaves themselves at ``(0, size + i)``.
    """
    cr = CompactRange.from_source(source, size)
    out: dict[Coord, bytes] = {}
    for leaf in leaves:
        out.update(cr._push(leaf))
    return out


class MemoryNodes:
    """A :class:`NodeSource` that holds every complete-subtree node of a list of leaves.

    For tests, evidence bundles and offline verification: it is what the database stores,
    in a dict.
    """

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._nodes: dict[Coord, bytes] = {}
        self._edge = CompactRange()
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return self._edge.size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash and store the nodes it completes."""
        index = self._edge.size
        completed = self._edge._push(leaf)
        self._nodes[(0, index)] = bytes(leaf)
        self._nodes.update(completed)

    def nodes(self, coords: Sequence[Coord]) -> Mapping[Coord, bytes]:
        return {c: self._nodes[c] for c in coords if c in self._nodes}

    def stored(self) -> Mapping[Coord, bytes]:
        """A copy of every stored node."""
        return dict(self._nodes)
