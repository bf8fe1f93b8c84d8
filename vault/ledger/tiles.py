"""A client's log as C2SP ``tlog-tiles``: paths, entry bundles, and the auditor's check. Pure.

Layout under a log's prefix (see docs/formats.md, "Tiled log (tlog-tiles)"):

* ``checkpoint`` — the latest signed checkpoint note (C2SP tlog-checkpoint);
* ``tile/<L>/<N>[.p/<W>]`` — hash tiles of height 8: tile ``(L, N)`` holds the stored
  nodes ``(8·L, N·256 + i)`` of :mod:`vault.ledger.merkle`, i < W, 32 bytes each;
* ``tile/entries/<N>[.p/<W>]`` — entry bundles: entries ``N·256 .. N·256+W-1``, each as a
  big-endian uint16 length and the entry's bytes (our canonical JSON entry).

``N`` is written in 3-digit groups, all but the last prefixed ``x`` (1234067 →
``x001/x234/067``); ``.p/<W>`` marks a partial tile of width ``W`` (1..255).

:func:`audit_tiles` checks a whole tiled log read through a :class:`TileSource` (HTTP, a
mirror directory; the I/O lives in :mod:`vault.tlog`): the checkpoint's signature, every
entry's chain link, every hash tile against the entries and the tiles below, and the
checkpoint's root against the tree the entries make — plus checkpoints the auditor kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vault.ledger.audit import CheckedEntry, Finding, audit_chain
from vault.ledger.checkpoint import (
    Checkpoint,
    NoteError,
    Verifier,
    open_checkpoint,
    open_note,
    parse_verifier_key,
)
from vault.ledger.cosignature import WitnessPolicy
from vault.ledger.merkle import (
    HASH_SIZE,
    CompactRange,
    MissingNodesError,
    NodeSource,
    leaf_hash,
    parent,
)
from vault.ledger.offline import OfflineReport, check_witnessed

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
#: entry bundles length-prefix each entry with a big-endian uint16
MAX_ENTRY_SIZE = 0xFFFF
CHECKPOINT = "checkpoint"
ENTRIES = "entries"
#: hand-over checkpoints of key rotations, ``key-handover/<size>`` (an extension of ours)
HANDOVER = "key-handover"
ROTATION = "log.key_rotated"


class TileError(ValueError):
    """A tile path or an entry bundle is malformed."""


@dataclass(frozen=True)
class Tile:
    """One tile: ``level`` 0..63, or ``ENTRIES`` for an entry bundle; ``width`` 1..256."""

    level: int | str
    index: int
    width: int

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        return tile_path(self.level, self.index, self.width)

    def coords(self) -> list[tuple[int, int]]:
        """The stored Merkle nodes ``(level, index)`` a hash tile holds, in order."""
        if self.level == ENTRIES:
            raise TileError("an entry bundle holds entries, not nodes")
        assert isinstance(self.level, int)
        first = self.index * TILE_WIDTH
        return [(TILE_HEIGHT * self.level, first + i) for i in range(self.width)]


def _encode_index(index: int) -> str:
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int | str, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``, or ``tile/entries/<N>[.p/<W>]`` for ``level=ENTRIES``."""
    if level != ENTRIES and not (isinstance(level, int) and 0 <= level <= 63):
        raise TileError(f"tile level {level!r} is not 0..63 or {ENTRIES!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise TileError(f"tile index {index!r} is not a non-negative integer")
    if not 1 <= width <= TILE_WIDTH:
        raise TileError(f"tile width {width} is not 1..{TILE_WIDTH}")
    partial = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{_encode_index(index)}{partial}"


def parse_tile_path(path: str) -> Tile:
    """The tile a path names; :class:`TileError` unless it is the one canonical spelling."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TileError(f"not a tile path: {path!r}")
    level: int | str = parts[1]
    if level != ENTRIES:
        level = int(parts[1]) if parts[1].isdigit() and parts[1].isascii() else -1
    width = TILE_WIDTH
    rest = parts[2:]
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width = int(rest[-1]) if rest[-1].isdigit() and rest[-1].isascii() else 0
        rest = [*rest[:-2], rest[-2][:-2]]
    index = 0
    for group in rest:
        digits = group.removeprefix("x")
        if len(digits) != 3 or not digits.isdigit() or not digits.isascii():
            raise TileError(f"not a tile path: {path!r}")
        index = index * 1000 + int(digits)
    try:
        canonical = tile_path(level, index, width)
    except TileError:
        raise TileError(f"not a tile path: {path!r}") from None
    if canonical != path:
        raise TileError(f"not a canonical tile path: {path!r}")
    return Tile(level, index, width)


# --- which tiles a tree has ----------------------------------------------------------


def _level_tiles(level: int | str, count: int, old_count: int = 0) -> Iterator[Tile]:
    """Tiles over ``count`` items of one level, skipping those complete at ``old_count``."""
    for index in range(old_count // TILE_WIDTH, -(-count // TILE_WIDTH)):
        width = min(TILE_WIDTH, count - index * TILE_WIDTH)
        if index * TILE_WIDTH + width > old_count:
            yield Tile(level, index, width)


def hash_tiles(size: int, old_size: int = 0) -> list[Tile]:
    """The hash tiles of a tree of ``size`` leaves that a tree of ``old_size`` lacks.

    Level ``L`` has ``size >> 8L`` hashes: full tiles of 256, then a partial one (C2SP:
    ``floor(s / 256**l) mod 256`` wide); levels with no hash have no tile.
    """
    out: list[Tile] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        out += _level_tiles(level, count, old_size >> (TILE_HEIGHT * level))
        level += 1
    return out


def entry_bundles(size: int, old_size: int = 0) -> list[Tile]:
    """The entry bundles of a log of ``size`` entries that one of ``old_size`` lacks."""
    return list(_level_tiles(ENTRIES, size, old_size))


def published_tiles(size: int, old_size: int = 0) -> list[Tile]:
    """Every tile and bundle to publish going from ``old_size`` to ``size``."""
    return [*entry_bundles(size, old_size), *hash_tiles(size, old_size)]


# --- entry bundles -------------------------------------------------------------------


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """Each entry as a big-endian uint16 length and its bytes (C2SP tlog-tiles)."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"an entry of {len(entry)} bytes does not fit an entry bundle")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; :class:`TileError` if the lengths do not add up."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise TileError(f"entry bundle ends inside a length prefix at byte {pos}")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + length > len(data):
            raise TileError(f"entry {len(out)} runs past the end of the bundle")
        out.append(bytes(data[pos : pos + length]))
        pos += length
    return out


def hash_tile_bytes(tile: Tile, source: NodeSource) -> bytes:
    """A hash tile's bytes: its stored nodes, 32 bytes each, read in one ``nodes()`` call."""
    coords = tile.coords()
    got = source.nodes(coords)
    missing = [c for c in coords if c not in got]
    if missing:
        raise MissingNodesError(f"the tree store lacks nodes {missing[:4]} of {tile.path}")
    return b"".join(got[c] for c in coords)


def tile_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a full tile: its 256 hashes are the leaves of a perfect subtree."""
    level = list(hashes)
    while len(level) > 1:
        level = [parent(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


# --- the auditor's check -------------------------------------------------------------


class TileSource(Protocol):
    """Where a tiled log is read from: a URL prefix or a mirror directory."""

    def get(self, path: str) -> bytes | None:
        """The object at ``path`` under the log's prefix; None if it does not exist."""
        ...


@dataclass
class _Walk:
    source: TileSource
    report: OfflineReport
    log: str
    size: int
    origin: str
    #: the keys trusted so far: the pinned one, then each one a hand-over passed the log to
    keys: list[Verifier]
    #: the tree's root at the sizes some note names (the checkpoint, trusted notes)
    roots_at: dict[int, bytes]
    #: a bundle was missing: the entries after it were not read
    stopped: bool = False

    def fetch(self, tile: Tile) -> bytes | None:
        data = self.source.get(tile.path)
        if data is None and not tile.full:
            data = self._from_full(tile)
        if data is None:
            self.finding("missing", f"{tile.path} is missing")
        return data

    def _from_full(self, tile: Tile) -> bytes | None:
        """A partial tile may be deleted once its full tile exists (C2SP): its first
        ``width`` items are the same."""
        full = self.source.get(Tile(tile.level, tile.index, TILE_WIDTH).path)
        if full is None:
            return None
        if tile.level != ENTRIES:
            return full[: tile.width * HASH_SIZE]
        try:
            return encode_bundle(decode_bundle(full)[: tile.width])
        except TileError:
            return full  # reported as malformed by the caller

    def finding(self, kind: str, detail: str, seq: int | None = None) -> None:
        self.report.findings.append(Finding(kind, self.log, detail, seq=seq))


def audit_tiles(
    source: TileSource,
    verifier: Verifier,
    trusted: Iterable[bytes] = (),
    witnesses: WitnessPolicy | None = None,
) -> OfflineReport:
    """Check a tiled log from its checkpoint down to every entry; findings as ``log verify``.

    ``verifier`` is the pinned key; a ``log.key_rotated`` entry hands the log over to a new
    key when the hand-over checkpoint published at ``key-handover/<size>`` is signed by
    both keys and matches the tree (as ``log verify`` of an export follows a key chain).
    The published checkpoint must verify with a key of that chain.

    ``trusted``: checkpoint notes the auditor kept from earlier; each must be a prefix of
    the published history (else: ``truncated`` — rolled back, or ``forked``).

    ``witnesses``: the checkpoint must carry valid cosignatures of the policy's quorum
    (the vault appends them to the published ``checkpoint`` as the witnesses return them).
    """
    report = OfflineReport()
    note = source.get(CHECKPOINT)
    if note is None:
        report.findings.append(Finding("missing", "", f"no {CHECKPOINT} is published"))
        return report
    try:
        # the size and origin to walk; the signature is checked once the key chain is known
        unverified = note_checkpoint(note)
    except NoteError as exc:
        report.findings.append(Finding("bad-signature", "", f"{CHECKPOINT}: {exc.message}"))
        return report
    report.origin, report.checkpoints = unverified.origin, 1
    kept = _kept(report, trusted)
    walk = _Walk(
        source,
        report,
        unverified.origin.rsplit("/", 1)[-1],
        unverified.size,
        unverified.origin,
        [verifier],
        {size: b"" for size in [unverified.size, *(cp.size for _, cp in kept)]},
    )
    tree, from_entries, from_tiles = _walk_entries(walk)
    report.keys = [k.key_string() for k in walk.keys]
    cp = _signed(walk, note)
    entries_hold = cp is not None and tree.size == cp.size and tree.root() == cp.root
    if cp is not None and tree.size == cp.size and not entries_hold:
        walk.finding(
            "forked",
            f"the {CHECKPOINT} of size {cp.size} signed a different history than the "
            "published entries make",
            seq=cp.size - 1 if cp.size else None,
        )
    _check_kept(walk, kept, unverified)
    if witnesses is not None and cp is not None:
        _check_witnesses(walk, note, cp, witnesses)
    if not walk.stopped:
        # level 1 is checked against what the entries make when they match the checkpoint,
        # else against the level-0 tiles (the entries are then the suspects, already named)
        below = from_entries if entries_hold else {**from_entries, **from_tiles}
        _check_upper_levels(walk, below)
    return report


def _check_witnesses(walk: _Walk, note: bytes, cp: Checkpoint, policy: WitnessPolicy) -> None:
    check_witnessed(CHECKPOINT, note, cp, policy, walk.report)
    if not walk.report.witnessed_size:
        walk.finding(
            "unwitnessed",
            f"the {CHECKPOINT} of size {cp.size} is not cosigned by {policy.describe()} of "
            "the witness policy: nothing shows that independent witnesses saw this history "
            "(a new checkpoint gets its cosignatures within a tick of the vault's timer: "
            "try again, then ask the operator)",
        )


def note_checkpoint(note: bytes) -> Checkpoint:
    """The checkpoint a note states, its signatures not yet checked."""
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    return Checkpoint.parse_body(note[: split + 1])


def _signed(walk: _Walk, note: bytes) -> Checkpoint | None:
    try:
        cp, _ = open_checkpoint(note, walk.keys, origin=walk.origin)
    except NoteError as exc:
        walk.finding("bad-signature", f"{CHECKPOINT}: {exc.message}")
        return None
    return cp


def _kept(report: OfflineReport, notes: Iterable[bytes]) -> list[tuple[bytes, Checkpoint]]:
    out = []
    for note in notes:
        try:
            out.append((note, note_checkpoint(note)))
        except NoteError as exc:
            report.findings.append(
                Finding("bad-signature", "", f"trusted checkpoint: {exc.message}")
            )
    return out


def _check_kept(walk: _Walk, kept: list[tuple[bytes, Checkpoint]], published: Checkpoint) -> None:
    """Each checkpoint the auditor kept: signed by the chain, and a prefix of this history."""
    for note, _ in kept:
        try:
            cp, _ = open_checkpoint(note, walk.keys, origin=walk.origin)
        except NoteError as exc:
            walk.finding("bad-signature", f"trusted checkpoint: {exc.message}")
            continue
        walk.report.trusted += 1
        if cp.size > published.size:
            walk.finding(
                "truncated",
                f"trusted checkpoint covers {cp.size} entries but the published "
                f"{CHECKPOINT} only {published.size}: the log was rolled back",
                seq=published.size,
            )
        elif walk.roots_at.get(cp.size, cp.root) not in (cp.root, b""):
            walk.finding(
                "forked",
                f"trusted checkpoint of size {cp.size} signed a different history than "
                "the published entries make",
                seq=cp.size - 1 if cp.size else None,
            )


def _walk_entries(walk: _Walk) -> tuple[CompactRange, dict[int, bytes], dict[int, bytes]]:
    """Stream the bundles through the chain audit and the tree; check the level-0 tiles.

    Returns the tree and, by index, the roots of the full level-0 tiles as the entries
    make them and as the published tiles make them: the hashes level 1 must hold.
    """
    tree = CompactRange()
    roots: dict[int, bytes] = {}
    tile_roots: dict[int, bytes] = {}
    rows = _bundle_rows(walk, roots, tile_roots)
    for item in audit_chain(walk.log, rows, walk.size, None):
        if isinstance(item, Finding):
            walk.report.findings.append(item)
            continue
        _grow(walk, tree, item)
    return tree, roots, tile_roots


def _grow(walk: _Walk, tree: CompactRange, item: CheckedEntry) -> None:
    walk.report.entries += 1
    tree.append(bytes.fromhex(item.hash))
    if tree.size in walk.roots_at:
        walk.roots_at[tree.size] = tree.root()
    _follow_handover(walk, tree, item)


def rotation(entry: dict[str, Any], keys: Sequence[Verifier]) -> tuple[Verifier, Verifier] | None:
    """``(old, new)`` of a ``log.key_rotated`` entry whose old key is trusted, else None."""
    if entry.get("type") != ROTATION:
        return None
    try:
        old = parse_verifier_key(entry["body"]["old"])
        new = parse_verifier_key(entry["body"]["new"])
    except (NoteError, KeyError, TypeError):
        return None  # not a hand-over we can follow: a later note by `new` will not verify
    return (old, new) if any(k.public_key == old.public_key for k in keys) else None


def open_handover(note: bytes, old: Verifier, new: Verifier, origin: str, size: int) -> Checkpoint:
    """The hand-over checkpoint of a rotation; :class:`NoteError` unless both keys signed it
    and it is of this log at ``size`` (the tree just after the rotation entry)."""
    body, signed = open_note(note, [old, new])
    cp = Checkpoint.parse_body(body)
    if len(signed) != 2 or cp.size != size or cp.origin != origin:
        raise NoteError(f"{HANDOVER}/{size} is not signed by both keys for this tree")
    return cp


def _follow_handover(walk: _Walk, tree: CompactRange, item: CheckedEntry) -> None:
    """Trust the rotation's new key if its hand-over checkpoint (the tree just after the
    entry) is published, signed by the trusted old key *and* the new one, and matches."""
    pair = rotation(item.entry, walk.keys)
    if pair is None:
        return
    path = f"{HANDOVER}/{tree.size}"
    note = walk.source.get(path)
    if note is None:
        walk.finding("missing", f"{path} is missing: the key hand-over cannot be followed")
        return
    try:
        cp = open_handover(note, *pair, walk.origin, tree.size)
    except NoteError as exc:
        walk.finding("bad-signature", f"{path}: {exc.message}")
        return
    if cp.root != tree.root():
        walk.finding(
            "forked",
            f"{path} signed a different history than the published entries make",
            seq=tree.size - 1,
        )
    else:
        walk.keys.append(pair[1])


def _bundle_rows(
    walk: _Walk, roots: dict[int, bytes], tile_roots: dict[int, bytes]
) -> Iterator[tuple[int, bytes]]:
    """``(seq, entry)`` of each bundle; findings where a bundle or its level-0 tile is off."""
    for bundle in entry_bundles(walk.size):
        first = bundle.index * TILE_WIDTH
        data = walk.fetch(bundle)
        if data is None:
            # the entries after a gap cannot be chained: stop (the size may be forged, too)
            walk.stopped = True
            return
        hashes = _hash_tile(walk, Tile(0, bundle.index, bundle.width))
        if hashes is not None and bundle.full:
            tile_roots[bundle.index] = tile_root(hashes)
        try:
            entries = decode_bundle(data)
        except TileError as exc:
            walk.finding("modified", f"{bundle.path}: {exc}", seq=first)
            continue
        if len(entries) != bundle.width:
            walk.finding(
                "modified",
                f"{bundle.path} holds {len(entries)} entries, not {bundle.width}",
                seq=first,
            )
            continue
        if hashes is not None:
            _match_leaves(walk, bundle, entries, hashes)
        if bundle.full:
            roots[bundle.index] = tile_root([leaf_hash(e) for e in entries])
        for i, entry in enumerate(entries):
            yield first + i, entry


def _match_leaves(walk: _Walk, bundle: Tile, entries: list[bytes], hashes: list[bytes]) -> None:
    tile = Tile(0, bundle.index, bundle.width).path
    for i, (entry, h) in enumerate(zip(entries, hashes, strict=True)):
        if leaf_hash(entry) != h:
            walk.finding(
                "modified",
                f"entry {i} of {bundle.path} does not hash to hash {i} of {tile}",
                seq=bundle.index * TILE_WIDTH + i,
            )


def _hash_tile(walk: _Walk, tile: Tile) -> list[bytes] | None:
    data = walk.fetch(tile)
    if data is None:
        return None
    if len(data) != tile.width * HASH_SIZE:
        walk.finding("modified", f"{tile.path} is {len(data)} bytes, not {tile.width * HASH_SIZE}")
        return None
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _check_upper_levels(walk: _Walk, below: dict[int, bytes]) -> None:
    """Each hash at level L ≥ 1 must be the root of the full tile it stands for below.

    ``below`` holds those roots as computed from the entries (or, where a tile below was
    missing, as published), so one damaged tile is reported once, at its own level.
    """
    level = 1
    while walk.size >> (TILE_HEIGHT * level):
        roots: dict[int, bytes] = {}
        for tile in _level_tiles(level, walk.size >> (TILE_HEIGHT * level)):
            hashes = _hash_tile(walk, tile)
            if hashes is None:
                continue
            first = tile.index * TILE_WIDTH
            for i, h in enumerate(hashes):
                if below.get(first + i, h) != h:
                    lower = Tile(level - 1, first + i, TILE_WIDTH).path
                    walk.finding("modified", f"hash {i} of {tile.path} is not the root of {lower}")
            if tile.full:
                roots[tile.index] = tile_root(
                    [below.get(first + i, h) for i, h in enumerate(hashes)]
                )
        below, level = roots, level + 1
