"""The dialer agent's throughput against direct ``VaultClient`` uploads, and its peak RSS.

One ``evidence-vault serve`` (SQLite, local objects) on loopback. The same number of
1 MiB WAV clips (random samples, so every clip differs and validates) is sealed twice,
at the same concurrency:

- **direct**: CONCURRENCY threads sharing one ``VaultClient`` ``upload`` distinct
  calls (no receipt checks, no spool, no Idempotency-Key) — the baseline of issue 11;
- **direct, Idempotency-Key**: the same with a key per upload, as the agent sends one:
  the vault then looks the key up and stores it, a cost of the vault's, not the agent's;
- **agent**: ``evidence-vault agent run`` as a subprocess with ``concurrency =
  CONCURRENCY``; every pair is written beside the watch folder and renamed in at once,
  and the clock runs from the first rename until every job is uploaded with its
  commitments checked (``waiting_proof`` or ``done``). What the agent adds per clip:
  the settle wait (a latency, overlapped across clips), local validation (audio probe,
  evidence rules, SHA-256), staging, SQLite state changes with fsync, and the opening
  check (the clip hashed once more).

ratio = agent clips/s over direct clips/s (issue 11 asks >= 0.9); the ratio against the
keyed series is printed too. The agent's peak RSS (``VmHWM`` of its process) is reported
against the < 80 MiB target, and the CPU time per clip of the agent process and of the
direct client (the machine has two cores for the vault, the client and the agent).

    python bench/agent.py [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _common as c

TARGET = 0.9
RSS_TARGET = 80
CONCURRENCY = 4
FULL = {"clips": 1000}
QUICK = {"clips": 12}
#: the console script's entry point (``cli:main``), run as ``python -m cli``: a venv
#: installed before that entry point existed would start the full command tree instead
AGENT_CMD = [sys.executable, "-m", "cli"]


def write_clip(path: Path, size: int = c.MIB) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(os.urandom(size - 44))


def wait(condition, timeout: float = 1800, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the benchmark gave up waiting")
        time.sleep(every)


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    plan = QUICK if args.quick else FULL
    n = plan["clips"]
    c.header("dialer agent vs direct VaultClient uploads", args.quick)
    from tests.support.vaults import CLIENT, make_vault, order_meta, person_token
    from tests.test_http_multiprocess import Server
    from vault.agent.config import load_config
    from vault.agent.status import agent_status
    from vault.client import VaultClient

    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        tmp = Path(tmp)
        vault = make_vault(tmp / "vault")
        _, token = person_token(vault.context, "dialer", CLIENT)
        log_key = vault.log_key()
        server = Server(tmp / "vault", {}, tmp / "serve.log", workers=1)
        try:
            server.wait_ready()
            clips = tmp / "clips"
            clips.mkdir()
            for i in range(2 * n):
                write_clip(clips / f"c{i}.wav")

            # -- direct -----------------------------------------------------------------
            api = VaultClient(server.url, token)  # one connection pool, as the agent has

            def direct(i: int) -> None:
                api.upload(clips / f"c{i}.wav", order_meta(100000 + i))

            warm = clips / "warm.wav"
            write_clip(warm)
            for i in range(CONCURRENCY):  # a warm server for both series
                api.upload(warm, order_meta(90000 + i))
            cpu = _own_cpu()
            start = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(pool.map(direct, range(n)))
            direct_s = time.perf_counter() - start
            direct_cpu = _own_cpu() - cpu

            # -- direct with an Idempotency-Key (what the agent sends; the vault then
            # looks the key up and stores it: its own cost, paid by any safe retrier) ----
            def keyed(i: int) -> None:
                api.upload(clips / f"c{i}.wav", order_meta(200000 + i), idempotency_key=f"k-{i}")

            start = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(pool.map(keyed, range(n)))
            keyed_s = time.perf_counter() - start
            api.close()

            # -- the agent --------------------------------------------------------------
            home = tmp / "agent"
            home.mkdir()
            conf = {
                "url": server.url,
                "log_keys": [log_key],
                "concurrency": CONCURRENCY,
                "settle_seconds": 0.2,
                "poll_interval": 0.05,
                "proof_interval": 1.0,
            }
            (home / "agent.toml").write_text(
                "[agent]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in conf.items())
            )
            cfg = load_config(home)
            cfg.watch.mkdir(parents=True)
            log = (home / "agent.log").open("wb")
            proc = subprocess.Popen(
                [*AGENT_CMD, "agent", "--dir", str(home), "run"],
                env={**os.environ, "EVIDENCE_VAULT_TOKEN": token},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            wait(lambda: cfg.spool_path.exists())
            beside = tmp / "beside"
            beside.mkdir()
            for i in range(n, 2 * n):
                shutil.copy(clips / f"c{i}.wav", beside / f"c{i}.wav")
                (beside / f"c{i}.json").write_text(json.dumps(order_meta(100000 + i)))
            start = time.perf_counter()
            for i in range(n, 2 * n):
                os.replace(beside / f"c{i}.json", cfg.watch / f"c{i}.json")
                os.replace(beside / f"c{i}.wav", cfg.watch / f"c{i}.wav")

            def uploaded() -> bool:
                s = agent_status(cfg)
                if s["alert"] or s["quarantined"]:
                    raise SystemExit(f"the agent refused clips: {s}")
                return s["waiting_proof"] + s["done"] >= n

            wait(uploaded, every=0.1)
            agent_s = time.perf_counter() - start
            agent_cpu = _cpu(proc.pid)
            wait(lambda: agent_status(cfg)["done"] >= n, every=0.5)
            rss_kib = _hwm(proc.pid)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
            log.close()
        finally:
            server.stop()
            vault.close()

    direct_rate, keyed_rate, agent_rate = n / direct_s, n / keyed_s, n / agent_s
    ratio = agent_rate / direct_rate
    c.table(
        ["series", "clips", "seconds", "clips/s"],
        [
            ["direct VaultClient", n, round(direct_s, 2), round(direct_rate, 2)],
            ["direct, Idempotency-Key", n, round(keyed_s, 2), round(keyed_rate, 2)],
            ["agent (watch folder)", n, round(agent_s, 2), round(agent_rate, 2)],
        ],
    )
    print(f"agent vs direct with a key: {agent_rate / keyed_rate:.3f}")
    print(f"agent peak RSS: {rss_kib / 1024:.1f} MiB (target < {RSS_TARGET} MiB)")
    print(
        f"CPU per clip: agent {agent_cpu / n * 1000:.1f} ms (start-up included), "
        f"direct client {direct_cpu / n * 1000:.1f} ms"
    )
    c.emit(
        "agent",
        args.quick,
        ratio,
        TARGET,
        "ratio>=",
        clips=n,
        concurrency=CONCURRENCY,
        clip_mib=1,
        direct_clips_per_s=round(direct_rate, 3),
        keyed_clips_per_s=round(keyed_rate, 3),
        ratio_vs_keyed=round(agent_rate / keyed_rate, 4),
        agent_clips_per_s=round(agent_rate, 3),
        peak_rss_mib=round(rss_kib / 1024, 1),
        agent_cpu_ms_per_clip=round(agent_cpu / n * 1000, 1),
        direct_cpu_ms_per_clip=round(direct_cpu / n * 1000, 1),
        rss_target_mib=RSS_TARGET,
    )


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _hwm(pid: int) -> int:
    """Peak resident set (VmHWM) of the agent process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
