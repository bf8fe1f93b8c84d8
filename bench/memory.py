"""Peak memory of ingesting and retrieving one large clip (1 GiB WAV; 64 MiB with --quick).

Each operation runs in a fresh Python process; its peak RSS is the high-water mark of
that process's own address space (``VmHWM``, read as it exits). Baseline: a process that
only imports ``vault`` and opens the vault. Reported: baseline, peak and delta per
operation, on the embedded default (local directory + SQLite) and, when SeaweedFS is
installed, on S3 (SeaweedFS + SQLite). Target: every peak below 100 MiB. The retrieved
clip is checked to be byte-identical to the original (streamed SHA-256).

    python bench/memory.py [--quick] [--tmpdir DIR]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _common as c

TARGET_MIB = 100.0


# --- the measured process ----------------------------------------------------------------


def child(op: str, home: str, clip: str, meta: str, out: str, record: str) -> None:
    from vault import Vault

    result: dict = {"op": op}
    v = Vault.open(home)
    try:
        t0 = time.perf_counter()
        if op == "ingest":
            receipt = v.ingest(clip, Path(meta).read_text(encoding="utf-8"))
            result["record_id"] = receipt.record_id
        elif op == "retrieve":
            v.write_audio(record, out, principal="bench:memory")
        elif op != "baseline":
            raise SystemExit(f"unknown op {op!r}")
        result["seconds"] = time.perf_counter() - t0
    finally:
        v.close()
    result["vmhwm_kib"] = _status_kib("VmHWM")
    print(json.dumps(result))


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# --- the driver --------------------------------------------------------------------------


class Child:
    """One operation in a fresh interpreter (started at once; ``result`` waits for it)."""

    def __init__(
        self,
        op: str,
        home: Path,
        *,
        clip: Path | None = None,
        meta: Path | None = None,
        out: Path | None = None,
        record: str = "",
        env: dict | None = None,
    ) -> None:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            op,
            "--home",
            str(home),
            "--clip",
            str(clip or ""),
            "--meta",
            str(meta or ""),
            "--out",
            str(out or ""),
            "--record",
            record,
        ]
        self.op = op
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, **(env or {})})

    def result(self) -> dict:
        stdout, _ = self.proc.communicate()
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.op} child failed with exit code {self.proc.returncode}")
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        # VmHWM of the child's own address space. Not ru_maxrss from wait4/RUSAGE_CHILDREN:
        # Linux carries the parent's high-water mark over fork + exec into the child's
        # ru_maxrss, so a child of a big parent would look as big as its parent.
        result["peak_kib"] = result["vmhwm_kib"]
        return result


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(c.MIB):
            digest.update(chunk)
    return digest.hexdigest()


def measure_backend(
    label: str,
    home: Path,
    base: dict,
    clip: Path,
    clip_sha: str,
    meta: Path,
    workdir: Path,
    env: dict | None,
) -> list[dict]:
    rows = [
        {
            "backend": label,
            "op": "baseline (import + open)",
            "peak_kib": base["peak_kib"],
            "seconds": None,
        }
    ]
    ing = Child("ingest", home, clip=clip, meta=meta, env=env).result()
    rows.append(
        {"backend": label, "op": "ingest", "peak_kib": ing["peak_kib"], "seconds": ing["seconds"]}
    )
    out = workdir / f"retrieved-{label}.wav"
    ret = Child("retrieve", home, out=out, record=ing["record_id"], env=env).result()
    identical = sha256_file(out) == clip_sha
    out.unlink()
    rows.append(
        {
            "backend": label,
            "op": "retrieve (write_audio)",
            "peak_kib": ret["peak_kib"],
            "seconds": ret["seconds"],
            "identical": identical,
        }
    )
    for r in rows:
        r["baseline_kib"] = base["peak_kib"]
        r["delta_kib"] = r["peak_kib"] - base["peak_kib"]
    if not identical:
        raise AssertionError(f"{label}: the retrieved clip differs from the ingested one")
    return rows


def main() -> int:
    def extra(p):
        p.add_argument("--tmpdir", help="where the clip and vaults go (default: $TMPDIR)")
        p.add_argument("--child", help=argparse_hidden())
        for name in ("home", "clip", "meta", "out", "record"):
            p.add_argument(f"--{name}", default="", help=argparse_hidden())

    args = c.parse_args(__doc__.splitlines()[0], extra)
    if args.child:
        child(args.child, args.home, args.clip, args.meta, args.out, args.record)
        return 0

    quick = args.quick
    size = (64 if quick else 1024) * c.MIB
    c.header(f"peak RSS of ingest and retrieval of a {size // c.MIB} MiB WAV", quick)
    base_dir = Path(args.tmpdir or tempfile.gettempdir())
    # the clip, its sealed copy and the retrieved copy at once (one backend at a time:
    # each backend's objects and retrieved copy are removed before the next)
    need = 3 * size + 64 * c.MIB
    free = c.disk_free(base_dir)
    print(
        f"disk: needs about {need / c.MIB / 1024:.2f} GiB free in {base_dir} "
        f"(clip + sealed object + retrieved copy), {free / c.MIB / 1024:.1f} GiB free"
    )
    if free < need:
        print("error: not enough free disk space; use --tmpdir", file=sys.stderr)
        return 2

    from tests.support.vaults import make_vault, order_meta
    from vault.synth import write_large_wav

    rows: list[dict] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-", dir=base_dir) as tmp,
        c.seaweedfs() as server,
    ):
        workdir = Path(tmp)
        backends = [("local+sqlite", workdir / "vault-local", None)]
        make_vault(backends[0][1]).close()
        if server is not None:
            home = workdir / "vault-s3"
            make_vault(home, storage="s3", s3=c.s3_settings(server)).close()
            backends.append(
                (
                    "s3+sqlite",
                    home,
                    {
                        "AWS_ACCESS_KEY_ID": server.access_key,
                        "AWS_SECRET_ACCESS_KEY": server.secret_key,
                    },
                )
            )
        # baselines run while the clip is written: only their memory is measured
        baselines = [Child("baseline", home, env=env) for _, home, env in backends]
        clip = write_large_wav(workdir / "large.wav", size_bytes=size)
        clip_sha = sha256_file(clip)
        meta = workdir / "meta.json"
        meta.write_text(json.dumps(order_meta(1)), encoding="utf-8")

        def one(backend: tuple, base: Child) -> list[dict]:
            label, home, env = backend
            got = measure_backend(label, home, base.result(), clip, clip_sha, meta, workdir, env)
            if env is None:
                shutil.rmtree(home, ignore_errors=True)  # the local sealed copy
            return got

        if quick:
            # a smoke run: backends side by side (memory is per process; times suffer)
            with ThreadPoolExecutor(len(backends)) as pool:
                for got in pool.map(one, backends, baselines):
                    rows += got
        else:
            for backend, base in zip(backends, baselines, strict=True):
                rows += one(backend, base)

    mib = 1024.0
    c.table(
        ["backend / operation", "baseline MiB", "peak MiB", "delta MiB", "seconds", "identical"],
        [
            (
                f"{r['backend']}: {r['op']}",
                r["baseline_kib"] / mib,
                r["peak_kib"] / mib,
                r["delta_kib"] / mib,
                r["seconds"],
                r.get("identical"),
            )
            for r in rows
        ],
    )
    ops = [r for r in rows if not r["op"].startswith("baseline")]
    worst = max(ops, key=lambda r: r["peak_kib"])
    peak_mib = worst["peak_kib"] / mib
    ratio = worst["peak_kib"] / worst["baseline_kib"]
    worst_delta = max(r["delta_kib"] for r in ops) / mib
    print(
        f"worst peak: {peak_mib:.1f} MiB ({worst['backend']} {worst['op']}), "
        f"{ratio:.2f}x its baseline; worst delta {worst_delta:.1f} MiB; "
        f"target: peak < {TARGET_MIB:.0f} MiB"
    )
    c.emit(
        "memory",
        quick,
        ratio,
        TARGET_MIB,
        "peak_rss_mib<",
        peak_rss_mib=round(peak_mib, 1),
        worst_delta_mib=round(worst_delta, 1),
        clip_bytes=size,
        rows=[
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows
        ],
    )
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
