"""From a complete clip + sidecar pair in the watch folder to a staged, queued job.

The pair is checked with the vault's own rules first (:func:`vault.audio.probe`,
:func:`vault.evidence.parse_evidence`): a bad clip goes to the quarantine folder with a
readable ``<name>.reason.txt`` at once and never reaches the queue. A good pair is moved
into the agent's ``jobs/`` directory as ``<key>.<name>`` (out of the dialer's reach) and
then queued; a crash between the two is repaired by :func:`adopt_staged` at the next start.
Agents before 2026-12-04 staged a pair in a directory of its own, ``jobs/<key>/<name>``
(a ``mkdir``, an ``rmdir`` and a directory fsync more per pair); both forms are read.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vault import audio
from vault.agent.config import AgentConfig
from vault.agent.jobkey import idempotency_key
from vault.agent.receipts import sealed_document
from vault.agent.spool import Job, NewJob, Spool
from vault.audio import AudioInfo
from vault.errors import InvalidAudio, InvalidEvidence, VaultError
from vault.evidence import Evidence, parse_evidence
from vault.sealing import CommitmentHasher, new_salt

log = logging.getLogger("vault.agent")

CLIP_SUFFIXES = (".wav", ".mp3", ".ogg", ".opus", ".flac")
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Checked:
    """A pair that passed the vault's rules locally."""

    evidence: Evidence
    info: AudioInfo
    meta: bytes
    clip_sha256: str
    #: the commitment salt drawn for the upload and the clip's commitment under it
    salt: bytes | None = None
    clip_commitment: str | None = None

    @property
    def document(self) -> bytes:
        return sealed_document(self.evidence, self.info)

    @property
    def key(self) -> str:
        ev = self.evidence
        return idempotency_key(ev.client, ev.campaign, ev.call_id, ev.segment, self.clip_sha256)


def sidecar_of(clip: Path) -> Path:
    return clip.with_suffix(SIDECAR_SUFFIX)


def check_pair(
    clip: Path,
    meta_path: Path,
    *,
    clip_sha256: str | None = None,
    salt: bytes | None = None,
) -> Checked:
    """Validate like the vault does at ingest; raises InvalidAudio / InvalidEvidence.

    ``clip_sha256``: the hash is known (the caller checks it another way); not recomputed.
    ``salt``: also the clip's commitment under this salt, in the same read as its hash.
    """
    declared = audio.media_type_for_path(clip)
    info = audio.probe(clip, declared_type=declared)
    meta = meta_path.read_bytes()
    evidence = parse_evidence(meta, duration_ms=info.duration_ms, now=datetime.now(UTC))
    if clip_sha256 is not None:
        return Checked(evidence, info, meta, clip_sha256)
    sha256, committed = _hashes(clip, salt)
    return Checked(evidence, info, meta, sha256, salt, committed)


def _hashes(path: Path, salt: bytes | None) -> tuple[str, str | None]:
    """The clip's SHA-256 and, given a salt, its commitment: one read for both."""
    plain = hashlib.sha256()
    committed = CommitmentHasher(salt, "clip") if salt is not None else None
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            plain.update(chunk)
            if committed is not None:
                committed.update(chunk)
    return plain.hexdigest(), None if committed is None else committed.hexdigest()


def reason_text(exc: VaultError) -> str:
    """A reason file a person can read: what was refused, each rule, what to do."""
    lines = [f"refused: {exc.message}"]
    lines += [f"  - {fe.field}: {fe.message}" for fe in getattr(exc, "errors", [])]
    if exc.hint:
        lines.append(f"what to do: {exc.hint}")
    lines.append(f"at: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    return "\n".join(lines) + "\n"


def quarantine(
    cfg: AgentConfig, clip: Path, meta: Path, reason: str, *, name: str | None = None
) -> Path:
    """Move the pair into the quarantine folder beside ``<name>.reason.txt``; its path.

    ``name``: the name the clip was dropped with, when ``clip`` is its staged file."""
    assert cfg.quarantine is not None
    cfg.quarantine.mkdir(parents=True, exist_ok=True)
    target = _free_name(cfg.quarantine, name or clip.name)
    _write_durably(target.with_name(target.name + ".reason.txt"), reason.encode())
    if meta.exists():
        _move(meta, sidecar_of(target))
    if clip.exists():
        _move(clip, target)
    return target


def finish_files(cfg: AgentConfig, clip: Path, meta: Path, *, name: str | None = None) -> None:
    """A verified job's files: moved to the done folder, or removed (``after_done``).

    ``name``: the name the clip was dropped with, when ``clip`` is its staged file."""
    if cfg.after_done == "delete":
        for p in (clip, meta):
            p.unlink(missing_ok=True)
    else:
        assert cfg.done is not None
        cfg.done.mkdir(parents=True, exist_ok=True)
        if clip.exists():
            target = _free_name(cfg.done, name or clip.name)
            if meta.exists():
                # one directory fsync (the clip's move) covers both renames
                _move(meta, sidecar_of(target), sync=not clip.exists())
            _move(clip, target)
    _remove_empty(clip.parent, cfg.jobs_dir)


def intake(cfg: AgentConfig, spool: Spool, clip: Path, meta: Path) -> Job | None:
    """Check, stage and queue one complete pair; None when it was quarantined or a repeat."""
    jobs = intake_batch(cfg, spool, [(clip, meta)])
    return jobs[0] if jobs else None


def intake_batch(cfg: AgentConfig, spool: Spool, pairs: Iterable[tuple[Path, Path]]) -> list[Job]:
    """Check, stage and queue complete pairs; the new jobs (quarantined pairs and repeats
    are not among them).

    The pairs are staged first, then one fsync per folder touched and one spool
    transaction queue them all: per pair, that spares a commit with its fsync and a turn
    at the spool's write lock, which the upload threads wait for. A crash in between
    leaves staged pairs without a job, which :func:`adopt_staged` queues at the next start.
    """
    staged: dict[str, _Staged] = {}
    jobs: list[Job] = []
    for clip, meta in pairs:
        try:
            # the upload proposes this salt: the receipt's clip commitment is then checked
            # against this read, not a second one (docs/agent.md)
            checked = check_pair(clip, meta, salt=new_salt())
        except (InvalidAudio, InvalidEvidence) as exc:
            where = quarantine(cfg, clip, meta, reason_text(exc))
            log.warning("quarantined %s: %s", where.name, exc.kind)
            continue
        except OSError:
            continue  # gone or unreadable right now: the next scan sees it again
        key = checked.key
        if key in staged:  # the same clip and segment twice in this batch: a repeat
            jobs += _queue(cfg, spool, staged.values())
            staged = {}
        existing = spool.by_key(key)
        if existing is not None and existing.clip != clip:
            _repeat(cfg, existing, clip, meta)
            continue
        try:
            staged[key] = _stage(cfg, key, clip, meta, checked)
        except OSError as exc:  # this pair stays in the watch folder for the next scan
            log.error("staging %s failed: %s", clip.name, type(exc).__name__)
    return jobs + _queue(cfg, spool, staged.values())


@dataclass(frozen=True)
class _Staged:
    checked: Checked
    name: str  # the name the clip was dropped with
    clip: Path
    meta: Path


def staged_name(key: str, name: str) -> str:
    """A dropped file's name in ``jobs/``: ``<key>.<name>`` (keys hold no dot)."""
    return f"{key}.{name}"


def _stage(cfg: AgentConfig, key: str, clip: Path, meta: Path, checked: Checked) -> _Staged:
    """Move the pair into ``jobs/`` as ``<key>.<name>`` (out of the dialer's reach); not
    yet synced. A pair already staged (adopted at start) stays where it is."""
    if cfg.jobs_dir in clip.parents:
        return _Staged(checked, _dropped_name(cfg, clip), clip, meta)
    cfg.jobs_dir.mkdir(parents=True, exist_ok=True)
    staged_clip = cfg.jobs_dir / staged_name(key, clip.name)
    staged_meta = sidecar_of(staged_clip)
    _move(meta, staged_meta, sync=False)
    _move(clip, staged_clip, sync=False)
    return _Staged(checked, clip.name, staged_clip, staged_meta)


def _dropped_name(cfg: AgentConfig, staged: Path) -> str:
    """The name a staged clip was dropped with, in either layout."""
    if staged.parent == cfg.jobs_dir:
        return staged.name.split(".", 1)[1]
    return staged.name  # jobs/<key>/<name>


def _queue(cfg: AgentConfig, spool: Spool, pairs: Iterable[_Staged]) -> list[Job]:
    """Make the staged pairs durable, then queue them in one transaction."""
    pairs = list(pairs)
    if not pairs:
        return []
    for folder in sorted({p.clip.parent for p in pairs} | {cfg.jobs_dir}):
        _fsync_dir(folder)
    jobs = spool.add_many(
        [
            NewJob(
                key=p.checked.key,
                name=p.name,
                clip=p.clip,
                meta=p.meta,
                media_type=p.checked.info.media_type,
                clip_sha256=p.checked.clip_sha256,
                client=p.checked.evidence.client,
                salt=p.checked.salt.hex() if p.checked.salt is not None else None,
                clip_commitment=p.checked.clip_commitment,
            )
            for p in pairs
        ]
    )
    for job in jobs:
        log.info("queued job %d (%s)", job.id, job.name)
    return jobs


def _repeat(cfg: AgentConfig, existing: Job, clip: Path, meta: Path) -> None:
    """The same call segment with the same clip dropped again: never a second upload."""
    if existing.state in ("quarantined", "alert"):
        quarantine(
            cfg,
            clip,
            meta,
            f"refused: the same clip and call segment as job {existing.id}, which is in "
            f"state {existing.state}\nwhat to do: resolve job {existing.id} first\n",
        )
    else:
        finish_files(cfg, clip, meta)
    log.info("a repeat of job %d (%s) was not queued again", existing.id, clip.name)


def adopt_staged(cfg: AgentConfig, spool: Spool) -> int:
    """Queue staged pairs without a job (a crash between staging and queueing), and move
    the files of done jobs still staged (a crash between the done row and the move).

    Reads both layouts: ``jobs/<key>.<name>`` and the older ``jobs/<key>/<name>``."""
    if not cfg.jobs_dir.exists():
        return 0
    adopted = 0
    for entry in sorted(cfg.jobs_dir.iterdir()):
        if entry.is_dir():  # the older layout: a directory per job
            adopted += _adopt(cfg, spool, entry.name, entry, list(entry.iterdir()))
            _remove_empty(entry, cfg.jobs_dir)
    by_key: dict[str, list[Path]] = {}
    for entry in sorted(cfg.jobs_dir.iterdir()):
        if entry.is_file() and "." in entry.name and not entry.name.endswith(".part"):
            by_key.setdefault(entry.name.split(".", 1)[0], []).append(entry)
    for key, files in by_key.items():
        adopted += _adopt(cfg, spool, key, cfg.jobs_dir, files)
    return adopted


def _adopt(cfg: AgentConfig, spool: Spool, key: str, folder: Path, files: list[Path]) -> int:
    """One staged job's files (``folder`` holds them, named for ``key`` when flat)."""
    job = spool.by_key(key)
    if job is not None:
        if job.state == "done":  # a stop between the done row and the files' move
            finish_files(cfg, job.clip, job.meta, name=job.name)
        return 0
    prefix = "" if folder != cfg.jobs_dir else staged_name(key, "")
    _complete_pair(cfg, folder, prefix, files)
    adopted = 0
    for clip in sorted(folder.glob(f"{glob.escape(prefix)}*")):
        meta = sidecar_of(clip)
        is_pair = clip.suffix.lower() in CLIP_SUFFIXES and meta.exists()
        if is_pair and intake(cfg, spool, clip, meta) is not None:
            adopted += 1
    return adopted


def _complete_pair(cfg: AgentConfig, folder: Path, prefix: str, files: list[Path]) -> None:
    """A crash between moving the sidecar and the clip leaves one half in the watch
    folder: bring it over (the halves are paired by name)."""
    assert cfg.watch is not None
    for staged in files:
        dropped = staged.name[len(prefix) :]
        if staged.suffix.lower() == SIDECAR_SUFFIX:
            for suffix in CLIP_SUFFIXES:
                other = cfg.watch / (Path(dropped).stem + suffix)
                if other.exists() and not (folder / (prefix + other.name)).exists():
                    _move(other, folder / (prefix + other.name))
        elif not sidecar_of(staged).exists():
            other = cfg.watch / sidecar_of(Path(dropped)).name
            if other.exists():
                _move(other, sidecar_of(staged))


# --- files ----------------------------------------------------------------------------------


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    n = 1
    while target.exists() or sidecar_of(target).exists():
        stem, suffix = os.path.splitext(name)
        target = folder / f"{stem}.{n}{suffix}"
        n += 1
    return target


def _move(src: Path, dst: Path, *, sync: bool = True) -> None:
    """Rename, or copy durably and remove where the folders are on different filesystems.

    ``sync=False`` leaves the directory's fsync to the next move into the same folder."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != 18:  # EXDEV
            raise
        tmp = dst.with_name(dst.name + ".part")
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
        src.unlink()
    if sync:
        _fsync_dir(dst.parent)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_empty(folder: Path, root: Path) -> None:
    if folder != root and folder.is_relative_to(root):
        with contextlib.suppress(OSError):
            folder.rmdir()
