"""Reading a published tiled log (C2SP tlog-tiles) as an auditor: over HTTP or from a mirror.

No account, no database: plain GETs of ``<prefix>/checkpoint`` and the tiles. The checks
themselves are :func:`vault.ledger.tiles.audit_tiles` (pure); this module only fetches.

A *mirror* is a directory with the same relative paths as the prefix (``checkpoint``,
``tile/...``): :func:`mirror` copies what the published checkpoint needs, skipping full
tiles already there (they never change), and writes ``checkpoint`` last. ``log verify``
reads a mirror exactly as it reads the URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from vault.errors import NotFound, StorageError
from vault.ledger.checkpoint import Checkpoint, NoteError, Verifier, open_checkpoint
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import HASH_SIZE
from vault.ledger.tiles import (
    CHECKPOINT,
    ENTRIES,
    HANDOVER,
    MAX_ENTRY_SIZE,
    ROTATION,
    TILE_WIDTH,
    Tile,
    TileError,
    TileSource,
    decode_bundle,
    encode_bundle,
    note_checkpoint,
    open_handover,
    published_tiles,
    rotation,
)

TIMEOUT = 30.0
#: GETs a mirror keeps in flight
FETCHERS = 8
#: the largest object a tiled log has: a full bundle of 256 entries of at most 65,535 bytes
MAX_OBJECT_SIZE = TILE_WIDTH * (2 + MAX_ENTRY_SIZE)


class HttpSource:
    """A tiled log at an ``http(s)://`` prefix; one kept-alive connection."""

    def __init__(self, url: str, *, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True)

    def get(self, path: str) -> bytes | None:
        try:
            with self._client.stream("GET", f"{self.url}/{path}") as resp:
                if resp.status_code == 404:
                    return None
                if resp.status_code != 200:
                    raise StorageError(
                        f"reading {path} of the tiled log at {self.url} gave HTTP "
                        f"{resp.status_code}",
                        hint="the prefix must allow anonymous GET (see docs/operations.md)",
                    )
                return _capped(resp.iter_bytes(), path)
        except httpx.HTTPError as exc:
            raise StorageError(
                f"cannot read {path} of the tiled log at {self.url}: {type(exc).__name__}",
                hint="check the URL and that the log's prefix is readable without an account",
            ) from exc

    def close(self) -> None:
        self._client.close()


class DirectorySource:
    """A tiled log mirrored into a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not (self.root / CHECKPOINT).is_file():
            raise NotFound(
                f"{self.root} holds no tiled log (no {CHECKPOINT} file)",
                hint="give the directory `evidence-vault log mirror` wrote, or the log's URL",
            )

    def get(self, path: str) -> bytes | None:
        try:
            with (self.root / path).open("rb") as fh:
                return _capped(iter(lambda: fh.read(1 << 20), b""), path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def close(self) -> None:
        pass


def _capped(chunks: Iterator[bytes], path: str) -> bytes:
    """The object's bytes, refusing more than any tile, bundle or note can hold."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > MAX_OBJECT_SIZE:
            raise StorageError(
                f"{path} of the tiled log is larger than {MAX_OBJECT_SIZE} bytes",
                hint="this is no tile, bundle or checkpoint: check the URL or the mirror",
            )
    return bytes(out)


def open_source(where: str) -> HttpSource | DirectorySource:
    """A URL (``http://``, ``https://``) or a mirror directory."""
    if where.startswith(("http://", "https://")):
        return HttpSource(where)
    return DirectorySource(where)


def is_tiled_log(where: str) -> bool:
    """Whether ``log verify`` should read ``where`` as a tiled log rather than an export."""
    return where.startswith(("http://", "https://")) or Path(where).is_dir()


def mirror(
    source: TileSource,
    out: str | os.PathLike[str],
    verifiers: list[Verifier],
    *,
    workers: int = FETCHERS,
) -> Checkpoint:
    """Copy the tiled log into ``out``; return the checkpoint mirrored.

    Full tiles already in the mirror are not fetched again. The checkpoint is written last
    and only if it verifies with the pinned keys, or with a key they handed the log over to
    (a ``key-handover`` note signed by both); the contents are checked by ``log verify``
    on the mirror. A missing bundle stops the mirror: it keeps its old checkpoint.
    """
    note = source.get(CHECKPOINT)
    if note is None:
        raise NotFound("the tiled log has no checkpoint", hint="check the URL")
    try:
        stated = note_checkpoint(note)
    except NoteError as exc:
        raise NoteError(f"the published checkpoint is malformed: {exc.message}") from None
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    keys = list(verifiers)
    for tile, data in _fetched(source, root, published_tiles(stated.size), workers):
        if tile.level == ENTRIES:
            if data is None:
                raise NotFound(
                    f"{tile.path} is missing at the source; the mirror keeps its checkpoint",
                    hint="try again later, or verify the source to see what else is wrong",
                )
            _follow_rotations(source, root, tile, data, keys, stated)
    try:
        cp, _ = open_checkpoint(note, keys, origin=stated.origin)
    except NoteError as exc:
        raise NoteError(
            f"the published checkpoint does not verify: {exc.message}",
            hint="check --key; do not trust this log until it verifies",
        ) from None
    _refuse_rollback(root, cp, keys)
    _write(root / CHECKPOINT, note)
    return cp


def _fetched(
    source: TileSource, root: Path, tiles: list[Tile], workers: int
) -> Iterator[tuple[Tile, bytes | None]]:
    """Each tile with its bytes, in order, fetched by ``workers`` threads (C2SP: tiles can be
    fetched in parallel); a window bounds what is held in memory."""
    window = workers * 8
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(tiles), window):
            part = tiles[start : start + window]
            yield from zip(part, pool.map(lambda t: _copy(source, root, t), part), strict=True)


def _copy(source: TileSource, root: Path, tile: Tile) -> bytes | None:
    """The tile's bytes, fetched unless the mirror already has the (immutable) full tile."""
    target = root / tile.path
    if tile.full and target.is_file():
        return target.read_bytes() if tile.level == ENTRIES else b""
    data = source.get(tile.path)
    if data is None and not tile.full:
        return _copy_full_instead(source, root, tile)
    if data is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write(target, data)
    return data


def _copy_full_instead(source: TileSource, root: Path, tile: Tile) -> bytes | None:
    """A partial tile may be gone once its full tile exists (C2SP): mirror the full tile
    (``log verify`` reads a partial from it) and return the partial's part of it."""
    full = Tile(tile.level, tile.index, TILE_WIDTH)
    data = source.get(full.path)
    if data is None:
        return None
    (root / full.path).parent.mkdir(parents=True, exist_ok=True)
    _write(root / full.path, data)
    if tile.level != ENTRIES:
        return data[: tile.width * HASH_SIZE]
    try:
        return encode_bundle(decode_bundle(data)[: tile.width])
    except TileError:
        return data  # `log verify` reports it


def _follow_rotations(
    source: TileSource, root: Path, bundle: Tile, data: bytes, keys: list, stated: Checkpoint
) -> None:
    """Copy the hand-over notes of rotations in this bundle; extend ``keys`` by them."""
    if ROTATION.encode() not in data:
        return
    try:
        entries = decode_bundle(data)
    except TileError:
        return  # `log verify` reports it
    for i, raw in enumerate(entries):
        try:
            pair = rotation(parse_entry(raw), keys)
        except ValueError:
            continue
        size = bundle.index * TILE_WIDTH + i + 1
        path = f"{HANDOVER}/{size}"
        note = source.get(path) if pair else None
        if pair is None or note is None:
            continue
        (root / HANDOVER).mkdir(exist_ok=True)
        _write(root / path, note)
        try:
            open_handover(note, *pair, stated.origin, size)
        except NoteError:
            continue
        keys.append(pair[1])


def _refuse_rollback(root: Path, new: Checkpoint, verifiers: list[Verifier]) -> None:
    """A mirror that already holds a checkpoint never goes back to a smaller or other one."""
    try:
        old, _ = open_checkpoint((root / CHECKPOINT).read_bytes(), verifiers)
    except (FileNotFoundError, NoteError):
        return
    if old.size > new.size or (old.size == new.size and old.root != new.root):
        what = "rolled back" if old.size > new.size else "forked"
        raise NoteError(
            f"the published checkpoint (size {new.size}) is {what} against the mirror's "
            f"(size {old.size}); the mirror is left as it was",
            hint="keep the mirror as evidence and ask the vault's operator",
        )


def _write(target: Path, data: bytes) -> None:
    # tmp + rename: a reader never sees half a tile; no fsync, a mirror can be fetched again
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
