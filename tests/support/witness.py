"""Build and run the independent C2SP tlog-witness (``tests/support/witness/main.go``).

The witness is written in Go on golang.org/x/mod/sumdb (``note`` checks the vault's signed
note, ``tlog`` its consistency proofs) and shares no code with the vault. It builds offline
from Debian's ``golang-go`` and ``golang-golang-x-mod-dev`` (``GO111MODULE=off``,
``GOPATH=/usr/share/gocode``); :func:`go_missing` says why not when it cannot, and tests
skip with that reason. Used by the tests and by ``bench/witnessing.py``::

    with Witness(tmp_path, logs={"evidence-vault/*": vault_key}) as w:
        w.url, w.vkey   # the submission prefix and the witness's verifier key
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType

SOURCE = Path(__file__).resolve().parent / "witness"
GOPATH = "/usr/share/gocode"
_XMOD = Path(GOPATH) / "src" / "golang.org" / "x" / "mod" / "sumdb"
_built: Path | None = None
_lock = threading.Lock()


class WitnessError(RuntimeError):
    """The witness could not be built or started; the message holds its output."""


def go_missing() -> str | None:
    """Why the Go witness cannot be built here, or None when it can."""
    if shutil.which("go") is None:
        return "needs Go (Debian: apt-get install golang-go golang-golang-x-mod-dev)"
    if not _XMOD.is_dir():
        return f"needs golang.org/x/mod in {GOPATH} (Debian: golang-golang-x-mod-dev)"
    return None


def build() -> Path:
    """Build the witness once per process (offline); the path of the binary."""
    global _built
    with _lock:
        if _built is not None and _built.exists():
            return _built
        why = go_missing()
        if why:
            raise WitnessError(why)
        out = Path(tempfile.mkdtemp(prefix="tlog-witness-")) / "witness"
        atexit.register(shutil.rmtree, out.parent, ignore_errors=True)
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": GOPATH,
            "GOFLAGS": "",
            "GOCACHE": str(out.parent / "gocache"),
            "CGO_ENABLED": "0",
        }
        done = subprocess.run(
            ["go", "build", "-o", str(out), "."],
            cwd=SOURCE,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise WitnessError(f"go build failed:\n{done.stderr[-2000:]}")
        _built = out
        return out


class Witness:
    """One witness process on loopback; its state and key live in ``workdir``.

    ``logs`` maps an origin (or a prefix ending in ``*``) to the log's verifier key.
    ``fixed_time`` pins the cosignature timestamp (for test vectors). Stop and start again
    with the same ``workdir`` and ``name``: the key and the per-origin state persist.
    """

    def __init__(
        self,
        workdir: Path,
        logs: dict[str, str],
        *,
        name: str = "witness.test/w1",
        fixed_time: int | None = None,
        seed_hex: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.logs = dict(logs)
        self.fixed_time = fixed_time
        slug = name.replace("/", "_")
        self.key_file = self.workdir / f"{slug}.key"
        self.state_file = self.workdir / f"{slug}.state.json"
        self.log_file = self.workdir / f"{slug}.log"
        if seed_hex is not None:
            self.key_file.write_text(seed_hex + "\n")
            self.key_file.chmod(0o600)
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.vkey = ""

    def start(self) -> Witness:
        cmd = [
            str(build()),
            "-name",
            self.name,
            "-key",
            str(self.key_file),
            "-state",
            str(self.state_file),
        ]
        for origin, key in self.logs.items():
            cmd += ["-log", f"{origin}={key}"]
        if self.fixed_time is not None:
            cmd += ["-time", str(self.fixed_time)]
        log = self.log_file.open("a")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        assert self._proc.stdout is not None
        lines = [self._proc.stdout.readline().strip() for _ in range(2)]
        got = dict(line.split(" ", 1) for line in lines if " " in line)
        if "vkey" not in got or "url" not in got:
            self.stop()
            raise WitnessError(f"the witness did not start: {self.log_file.read_text()[-2000:]}")
        self.vkey, self.url = got["vkey"], got["url"]
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def __enter__(self) -> Witness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
