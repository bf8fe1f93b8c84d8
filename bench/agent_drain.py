"""Draining the dialer agent's spool through a flaky network: 0 lost, 0 doubled, how long.

One ``evidence-vault serve`` (SQLite, local objects, a checkpoint every second) on
loopback. N clip + sidecar pairs are dropped into the watch folder of a stopped agent;
then ``evidence-vault agent run`` (concurrency 3) starts and the clock runs until every
job is ``done`` (uploaded, commitments checked, inclusion proof verified against the
pinned key, receipt kept). Twice, each with its own N calls and agent directory:

- **clean**: through a TCP proxy on loopback that passes every connection;
- **flaky**: through the same proxy, seeded to drop, stall and truncate connections at
  random (the weights of ``tests/test_agent_processes.py``'s flaky-network test), and to
  cut every passing connection after a random life of up to MAX_LIFE seconds, wherever
  its requests are (else a kept-alive connection would carry the whole run unharmed).

After each series: exactly one sealed record per call (0 duplicates), every call sealed
(0 lost), one verified receipt per call, and ``verify`` clean. ratio = clean drain time
over flaky drain time (the share of the clean drain rate the agent keeps on a bad line).

    python bench/agent_drain.py [--quick]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c
from agent import write_clip

FULL = {"clips": 100}
QUICK = {"clips": 6}
CONCURRENCY = 3
SEED = 11
MAX_LIFE = 2.0  # seconds: a kept-alive connection is cut somewhere in its first two
AGENT_CMD = [sys.executable, "-m", "cli"]  # the console script's entry point (cli:main)


def drain(tmp: Path, vault, proxy, name: str, first_call: int, n: int) -> dict:
    from tests.support.netfaults import wait_for
    from vault.agent.config import load_config
    from vault.agent.status import agent_status

    home = tmp / name
    home.mkdir()
    conf = {
        "url": proxy.url,
        "log_keys": [vault.log_key],
        "concurrency": CONCURRENCY,
        "settle_seconds": 0.2,
        "poll_interval": 0.1,
        "backoff_base": 0.2,
        "backoff_cap": 5.0,
        "proof_interval": 0.5,
        "timeout": 10.0,
    }
    (home / "agent.toml").write_text(
        "[agent]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in conf.items())
    )
    cfg = load_config(home)
    cfg.watch.mkdir(parents=True)
    from tests.support.vaults import order_meta

    for i in range(first_call, first_call + n):
        write_clip(cfg.watch / f"c{i}.wav", c.MIB // 4)
        (cfg.watch / f"c{i}.json").write_text(json.dumps(order_meta(i)))
    time.sleep(0.3)  # the pairs stand still before the agent looks
    log = (home / "agent.log").open("wb")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*AGENT_CMD, "agent", "--dir", str(home), "run"],
        env={**os.environ, "EVIDENCE_VAULT_TOKEN": vault.token},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def drained() -> bool:
            if not cfg.spool_path.exists():
                return False
            s = agent_status(cfg)
            if s["alert"] or s["quarantined"]:
                raise SystemExit(f"the agent refused clips: {s}")
            return s["done"] >= n

        wait_for(drained, timeout=1800, what="the spool drained")
        seconds = time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
    calls = {f"dialer-7f3a-{i:06d}" for i in range(first_call, first_call + n)}
    records = [r for r in vault.records() if r.call_id in calls]
    receipts = [json.loads(x) for x in cfg.receipts_path.read_text().splitlines()]
    sealed = {r.call_id for r in records}
    return {
        "seconds": seconds,
        "lost": len(calls - sealed),
        "duplicates": len(records) - len(sealed),
        "receipts": len(receipts),
        "faults": len([f for f in proxy.seen if f != "pass"]) + proxy.cut,
        "connections": len(proxy.seen),
    }


def _counts(r: dict) -> list[int]:
    return [r["lost"], r["duplicates"], r["receipts"]]


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    n = (QUICK if args.quick else FULL)["clips"]
    c.header("dialer agent: draining the spool through a flaky network", args.quick)
    from tests.support.netfaults import DROP, PASS, STALL, TRUNCATE, TcpProxy
    from tests.test_agent_processes import Vault

    weights = {PASS: 0.45, DROP: 0.2, STALL: 0.1, TRUNCATE: 0.25}
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        tmp = Path(tmp)
        vault = Vault(tmp / "vault", tmp)
        vault.start()
        try:
            clean_proxy = TcpProxy(vault.port)
            clean = drain(tmp, vault, clean_proxy, "clean", 10000, n)
            clean_proxy.close()
            flaky_proxy = TcpProxy.flaky(vault.port, seed=SEED, weights=weights)
            flaky_proxy.stall_seconds = 0.5
            flaky_proxy.max_life = MAX_LIFE
            flaky = drain(tmp, vault, flaky_proxy, "flaky", 20000, n)
            flaky_proxy.close()
            vault.verify_clean()
        finally:
            vault.stop()
            vault.vault.close()

    c.table(
        ["series", "clips", "seconds", "faults/connections", "lost", "duplicates", "receipts"],
        [
            [name, n, round(r["seconds"], 2), f"{r['faults']}/{r['connections']}", *_counts(r)]
            for name, r in (("clean proxy", clean), ("flaky proxy", flaky))
        ],
    )
    for r in (clean, flaky):
        if r["lost"] or r["duplicates"] or r["receipts"] != n:
            raise SystemExit(f"not every clip sealed exactly once: {r}")
    ratio = clean["seconds"] / flaky["seconds"]
    c.emit(
        "agent_drain",
        args.quick,
        ratio,
        None,
        None,
        clips=n,
        clip_kib=256,
        concurrency=CONCURRENCY,
        seed=SEED,
        clean_seconds=round(clean["seconds"], 2),
        flaky_seconds=round(flaky["seconds"], 2),
        flaky_faults=flaky["faults"],
        flaky_connections=flaky["connections"],
        lost=flaky["lost"],
        duplicates=flaky["duplicates"],
    )


if __name__ == "__main__":
    main()
