"""The dialer agent's throughput against direct ``VaultClient`` uploads, and its peak RSS.

One ``evidence-vault serve`` (SQLite, local objects) on loopback. Three series of 1 MiB
WAV clips (random samples, so every clip differs and validates; every series its own
clips and calls) are sealed at the same concurrency, in rounds of the three in turn (every
other round backwards), so that a drift of the shared machine's speed and the vault's
growth weigh on all alike:

- **direct**: CONCURRENCY threads sharing one ``VaultClient`` ``upload`` distinct
  calls (no receipt checks, no spool, no Idempotency-Key) — the baseline of issue 11;
- **direct, Idempotency-Key**: the same with a key per upload, as the agent sends one
  (the vault stores the key with the record);
- **agent**: ``evidence-vault agent run`` as a subprocess with ``concurrency =
  CONCURRENCY``, started once; every pair is written beside the watch folder and renamed
  in at once, and the clock runs from the first rename until every job of the round is
  uploaded with its commitments checked (``waiting_proof`` or ``done``). The proofs are
  checked off the clock, before the next round starts. What the agent adds per clip:
  the settle wait (a latency, overlapped across clips), local validation (audio probe,
  evidence rules, SHA-256 and the clip's commitment under the salt it proposes),
  staging, SQLite state changes with fsync, and the opening check by a checker thread
  (the entry's clip commitment against the one taken at intake: no second read).

ratio = agent clips/s over direct clips/s (issue 11 asks >= 0.9); the ratio against the
keyed series is printed too. Also printed, for information: the same in the steady state,
each round timed from its first finished clip to its last (the direct series' returns,
the agent's "sealed" log lines), which leaves out what every round pays once before its
first clip is done (for the agent, the settle wait and the first intake batch).

The agent's peak RSS (``VmHWM`` of its process) is reported against the < 80 MiB target,
and the CPU time per clip of the agent process and of the direct client (the machine has
two cores for the vault, the client and the agent).

    python bench/agent.py [--quick]
"""

from __future__ import annotations

import json
import os
import re
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
FULL = {"clips": 1000, "rounds": 4}
QUICK = {"clips": 16, "rounds": 2}
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
    n, rounds = plan["clips"], plan["rounds"]
    per = n // rounds
    c.header("dialer agent vs direct VaultClient uploads", args.quick)
    from tests.support.vaults import CLIENT, make_vault, order_meta, person_token
    from tests.test_http_multiprocess import Server
    from vault.agent.config import load_config
    from vault.agent.status import agent_status
    from vault.client import VaultClient

    seconds = {"direct": 0.0, "keyed": 0.0, "agent": 0.0}
    # the steady state of each round: from its first finished clip to its last
    steady = {"direct": [0.0, 0], "keyed": [0.0, 0], "agent": [0.0, 0]}

    def settled(series: str, finished: list[float]) -> None:
        steady[series][0] += max(finished) - min(finished)
        steady[series][1] += len(finished) - 1

    # each series' wall-clock windows, to read the vault's own account of its uploads
    windows: dict[str, list[tuple[float, float]]] = {k: [] for k in seconds}

    direct_cpu = 0.0
    agent_round_cpu = 0.0  # the agent process's CPU while a round's clock runs
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        tmp = Path(tmp)
        vault = make_vault(tmp / "vault")
        _, token = person_token(vault.context, "dialer", CLIENT)
        log_key = vault.log_key()
        server = Server(tmp / "vault", {}, tmp / "serve.log", workers=1)
        proc = None
        try:
            server.wait_ready()
            clips = tmp / "clips"
            clips.mkdir()
            for i in range(3 * n):
                write_clip(clips / f"c{i}.wav")
            api = VaultClient(server.url, token)  # one connection pool, as the agent has
            warm = clips / "warm.wav"
            write_clip(warm)
            for i in range(CONCURRENCY):  # a warm server for every series
                api.upload(warm, order_meta(90000 + i))

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

            def timed(series: str, upload, first: int) -> None:
                finished: list[float] = []

                def one(i: int) -> None:
                    upload(i)
                    finished.append(time.time())

                start, wall = time.perf_counter(), time.time()
                with ThreadPoolExecutor(CONCURRENCY) as pool:
                    list(pool.map(one, range(first, first + per)))
                seconds[series] += time.perf_counter() - start
                windows[series].append((wall, time.time()))
                settled(series, finished)

            def direct(i: int) -> None:
                api.upload(clips / f"c{i}.wav", order_meta(100000 + i))

            # an Idempotency-Key per upload, as the agent sends one (the vault stores it)
            def keyed(i: int) -> None:
                api.upload(clips / f"c{i}.wav", order_meta(100000 + i), idempotency_key=f"k-{i}")

            def through_agent(first: int) -> None:
                batch = range(first, first + per)
                for i in batch:
                    shutil.copy(clips / f"c{i}.wav", beside / f"c{i}.wav")
                    (beside / f"c{i}.json").write_text(json.dumps(order_meta(100000 + i)))
                nonlocal agent_round_cpu
                goal = agent_status(cfg)["done"] + per
                cpu = _cpu(proc.pid)
                start, wall = time.perf_counter(), time.time()
                for i in batch:
                    os.replace(beside / f"c{i}.json", cfg.watch / f"c{i}.json")
                    os.replace(beside / f"c{i}.wav", cfg.watch / f"c{i}.wav")

                def left() -> int:
                    s = agent_status(cfg)
                    if s["alert"] or s["quarantined"]:
                        raise SystemExit(f"the agent refused clips: {s}")
                    return goal - s["waiting_proof"] - s["done"]

                # look every 0.1 s, then every 10 ms for the last few jobs: the clock
                # stops when the last check is recorded, not up to 0.1 s later (the
                # direct series' clock stops the moment its last upload returns)
                wait(lambda: left() <= 2 * CONCURRENCY, every=0.1)
                wait(lambda: left() <= 0, every=0.01)
                seconds["agent"] += time.perf_counter() - start
                agent_round_cpu += _cpu(proc.pid) - cpu
                windows["agent"].append((wall, time.time()))
                # the log line follows the recorded state by a moment
                deadline = time.monotonic() + 5
                while len(finished := _sealed_since(home / "agent.log", wall)) < per:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
                if len(finished) != per:
                    raise SystemExit(f"{len(finished)} clips sealed in the log, not {per}")
                settled("agent", finished)
                # the proofs are checked off the clock, before the next round's direct
                # series: they would slow it down, not the agent
                wait(lambda: agent_status(cfg)["done"] >= goal, every=0.2)

            # rounds of the three series in turn, every other round backwards: a steady
            # drift of the machine's speed (it is shared) and the vault's growth weigh on
            # all three alike
            def direct_round(r: int) -> None:
                nonlocal direct_cpu
                cpu = _own_cpu()
                timed("direct", direct, r * per)
                direct_cpu += _own_cpu() - cpu

            for r in range(rounds):
                steps = [
                    lambda r=r: direct_round(r),
                    lambda r=r: timed("keyed", keyed, n + r * per),
                    lambda r=r: through_agent(2 * n + r * per),
                ]
                for step in steps if r % 2 == 0 else steps[::-1]:
                    step()
            agent_cpu = _cpu(proc.pid)
            rss_kib = _hwm(proc.pid)
            api.close()
            seen = _vault_view(tmp / "serve.log", windows)
            # proofs the agent checked while a round's clock ran (a receipt request each,
            # which the vault serves from the same two cores)
            proven = _sealed_since(home / "agent.log", 0.0, _PROVEN)
            on_clock = sum(any(a <= t <= b for a, b in windows["agent"]) for t in proven)
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
            server.stop()
            vault.close()

    m = per * rounds
    direct_rate, keyed_rate, agent_rate = (m / seconds[k] for k in ("direct", "keyed", "agent"))
    ratio = agent_rate / direct_rate
    rate = {k: v[1] / v[0] for k, v in steady.items()}
    steady_ratio = rate["agent"] / rate["direct"]
    c.table(
        ["series", "clips", "seconds", "clips/s"],
        [
            ["direct VaultClient", m, round(seconds["direct"], 2), round(direct_rate, 2)],
            ["direct, Idempotency-Key", m, round(seconds["keyed"], 2), round(keyed_rate, 2)],
            ["agent (watch folder)", m, round(seconds["agent"], 2), round(agent_rate, 2)],
        ],
    )
    print(f"{rounds} rounds of {per} clips per series, the series in turn")
    print(f"agent vs direct with a key: {agent_rate / keyed_rate:.3f}")
    print(
        "steady state (each round from its first finished clip to its last), clips/s: "
        f"direct {rate['direct']:.1f}, keyed {rate['keyed']:.1f}, agent {rate['agent']:.1f}; "
        f"agent vs direct {steady_ratio:.3f}, vs keyed {rate['agent'] / rate['keyed']:.3f}"
    )
    print(
        "the vault's view (its access log): mean time per upload, ms: "
        + ", ".join(f"{k} {v[0]:.1f}" for k, v in seen.items())
        + "; uploads in flight on average: "
        + ", ".join(f"{k} {v[1]:.2f}" for k, v in seen.items())
    )
    print(f"proofs checked while the agent's clock ran: {on_clock} of {m}")
    print(f"agent peak RSS: {rss_kib / 1024:.1f} MiB (target < {RSS_TARGET} MiB)")
    print(
        f"CPU per clip: agent {agent_cpu / m * 1000:.1f} ms (start-up and proof checks "
        f"included; {agent_round_cpu / m * 1000:.1f} ms on the clock), direct client "
        f"{direct_cpu / m * 1000:.1f} ms"
    )
    c.emit(
        "agent",
        args.quick,
        ratio,
        TARGET,
        "ratio>=",
        clips=m,
        rounds=rounds,
        concurrency=CONCURRENCY,
        clip_mib=1,
        direct_clips_per_s=round(direct_rate, 3),
        keyed_clips_per_s=round(keyed_rate, 3),
        ratio_vs_keyed=round(agent_rate / keyed_rate, 4),
        steady_ratio=round(steady_ratio, 4),
        steady_ratio_vs_keyed=round(rate["agent"] / rate["keyed"], 4),
        agent_clips_per_s=round(agent_rate, 3),
        peak_rss_mib=round(rss_kib / 1024, 1),
        agent_cpu_ms_per_clip=round(agent_cpu / m * 1000, 1),
        agent_cpu_ms_per_clip_on_the_clock=round(agent_round_cpu / m * 1000, 1),
        vault_ms_per_upload={k: round(v[0], 1) for k, v in seen.items()},
        uploads_in_flight={k: round(v[1], 2) for k, v in seen.items()},
        proofs_checked_on_the_clock=on_clock,
        direct_cpu_ms_per_clip=round(direct_cpu / m * 1000, 1),
        rss_target_mib=RSS_TARGET,
    )


_ACCESS = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO vault.http POST /v1/records 20[01] "
    r"([\d.]+)ms"
)


def _vault_view(
    log: Path, windows: dict[str, list[tuple[float, float]]]
) -> dict[str, tuple[float, float]]:
    """Per series, from the vault's access log: the mean time of an upload (from its
    request to its answer) and the mean number in flight over the series' windows (4
    would be the concurrency, kept full). Whether a gap between the series is the vault
    taking longer per upload or the client leaving a slot empty."""
    done = []  # (answered at, seconds taken)
    for line in log.read_text(errors="replace").splitlines():
        if m := _ACCESS.match(line):
            at = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
            done.append((at, float(m[3]) / 1000))
    out = {}
    for series, spans in windows.items():
        taken = [d for at, d in done if any(a <= at <= b + 0.002 for a, b in spans)]
        span = sum(b - a for a, b in spans)
        if taken and span:
            out[series] = (1000 * sum(taken) / len(taken), sum(taken) / span)
    return out


_SEALED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO job \d+ sealed as record")
_PROVEN = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO job \d+ done: record")


def _sealed_since(log: Path, since: float, pattern: re.Pattern = _SEALED) -> list[float]:
    """When the agent recorded each upload's check since ``since`` (its log's local-time
    stamps, to the millisecond); with ``_PROVEN``, each verified inclusion proof."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if m := pattern.match(line):
            t = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
            if t >= since - 0.001:
                out.append(t)
    return out


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
