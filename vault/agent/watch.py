"""The watch folder: complete clip + sidecar pairs only, never a half-written file.

A pair (``call.wav`` and ``call.json``, any of ``.wav .mp3 .ogg .opus .flac``) is
complete when

- both files exist,
- neither has changed size or modification time for ``settle_seconds`` (a file renamed
  in counts the time it stood still before the rename: its change time minus its
  modification time, both from the file system's own clock), and
- no process on this host holds either open for writing (``/proc/*/fdinfo``; a writer
  that pauses longer than the settle time while keeping the file open is still waited
  for). On a network share a writer on another host is invisible to this check: there
  the settle time alone decides, so choose it longer than the dialer's longest pause.

Changes are noticed through inotify (``watchdog``), or by polling the folder
(``poll=True``, for network shares where inotify sees nothing); either way a scan of
the folder decides, so a missed event only delays a pair, never loses it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from vault.agent.intake import CLIP_SUFFIXES, sidecar_of

_Stamp = tuple[int, int]  # size, mtime_ns


def open_for_writing(paths: Iterable[Path]) -> set[Path]:
    """Which of ``paths`` some process on this host holds open for writing (Linux /proc;
    elsewhere none are seen, and the settle time alone decides)."""
    wanted = {os.path.realpath(p): Path(p) for p in paths}
    found: set[Path] = set()
    if not wanted or not os.path.isdir("/proc/self/fd"):
        return found
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in wanted and _writable(pid, fd):
                found.add(wanted[target])
    return found


def _writable(pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
            for line in fh:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & 0o3 != 0  # O_WRONLY or O_RDWR
    except (OSError, ValueError):
        return True  # cannot tell: assume it is still being written
    return True


class Settler:
    """Remembers each candidate's size and mtime and since when they stood still."""

    def __init__(
        self,
        folder: Path,
        settle_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        writers: Callable[[Iterable[Path]], set[Path]] = open_for_writing,
    ) -> None:
        self.folder = Path(folder)
        self.settle = settle_seconds
        self._clock = clock
        self._writers = writers
        self._seen: dict[Path, tuple[_Stamp, float]] = {}

    def pending(self) -> int:
        return len(self._seen)

    def scan(self) -> list[tuple[Path, Path]]:
        """The pairs that are complete now (each returned once per settle time while it
        stays put)."""
        now = self._clock()
        stable: list[tuple[Path, Path]] = []
        present: set[Path] = set()
        for clip in self._clips():
            meta = sidecar_of(clip)
            steady = True
            for path in (clip, meta):
                looked = _look(path)
                if looked is None:
                    steady = False
                    continue
                present.add(path)
                stamp, still = looked
                before = self._seen.get(path)
                if before is None or before[0] != stamp:
                    before = self._seen[path] = (stamp, now - still)
                if now - before[1] < self.settle:
                    steady = False
            if steady:
                stable.append((clip, meta))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        if not stable:
            return []
        busy = self._writers([p for pair in stable for p in pair])
        ready = [(c, m) for c, m in stable if c not in busy and m not in busy]
        for pair in ready:
            # offered once: a pair still here a settle time later (its intake failed) is
            # offered again, by this clock alone
            for path in pair:
                self._seen[path] = (self._seen[path][0], now)
        return ready

    def _clips(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        return [
            self.folder / n
            for n in names
            if not n.startswith(".") and os.path.splitext(n)[1].lower() in CLIP_SUFFIXES
        ]


def _look(path: Path) -> tuple[_Stamp, float] | None:
    """``path``'s size and modification time, and how long it had stood still when its
    metadata last changed (seconds); None when it is gone.

    Writing a file moves its modification and change times together; renaming it (the
    recommended way to drop a pair) or changing its mode moves only the change time. So
    a pair written elsewhere and renamed in has already stood still for the time between
    its last write and the rename, and need not wait that long again. Both times come
    from the file system's own clock, so a share whose clock differs from this host's
    gives the same difference.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns), max(0, st.st_ctime_ns - st.st_mtime_ns) / 1e9


class FolderEvents:
    """Wakes the scan loop when the folder changes (inotify, or watchdog's poller)."""

    def __init__(self, folder: Path, *, poll: bool, poll_interval: float) -> None:
        from watchdog.events import FileClosedEvent, FileCreatedEvent, FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        self.changed = threading.Event()
        changed = self.changed

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                changed.set()

        self._observer = PollingObserver(timeout=poll_interval) if poll else Observer()
        # only a file's arrival (created or moved in) and a writer's close wake the scan:
        # while anything is pending the loop looks again every step anyway, and the
        # agent's own reads of the pairs it takes would otherwise wake it (open, access,
        # close-nowrite), several events per pair for nothing
        self._observer.schedule(
            _Wake(),
            str(folder),
            recursive=False,
            event_filter=[FileCreatedEvent, FileClosedEvent],
        )

    def start(self) -> FolderEvents:
        self._observer.start()
        return self

    def wait(self, timeout: float) -> None:
        self.changed.wait(timeout)
        self.changed.clear()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(5)
