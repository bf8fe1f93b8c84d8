"""Cost of witness cosigning: checkpoints/s with and without, and ingest with witnessing on/off.

The witness is the independent Go tlog-witness of ``tests/support/witness`` on loopback
(built offline from Debian's golang-go and golang-golang-x-mod-dev).

* **Checkpoint path** — a log grows by ``STEP`` entries, then a checkpoint is signed
  (``make_checkpoint``; baseline), or signed and cosigned by the witness (``make_checkpoint``
  then ``catch_up``: one add-checkpoint request with a consistency proof). Reported:
  checkpoints/s each way and their ratio (information; the witness round trip is the cost).
* **Ingest** — clips ingested with the ``serve`` checkpoint timer running
  (``checkpoint_every`` 10), with witnessing configured (each tick also cosigns the
  latest checkpoint when it is new) or not. Witnessing is off the ingest path, so the
  target is a ratio of ingest rates, on over off, of at least 0.95, with the timer ticking
  every second (``serve`` ticks every ``checkpoint_seconds``, 60 s by default). The same
  with a tick every 0.2 s is reported as a stress figure (``stress_ratio``). Short series
  alternate (off, on, on, off), four times over in full mode.

    python bench/witnessing.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common as c

TARGET = 0.95
STEP = 20


def _vault(home: Path) -> Any:
    from tests.support.vaults import make_vault

    v = make_vault(home)
    v.log_key()
    return v


def _witness(workdir: Path, vault: Any) -> Any:
    from tests.support.witness import Witness

    return Witness(workdir, {f"{vault.settings.name}/*": vault.log_key()}).start()


def _configure(vault: Any, witness: Any | None) -> None:
    from vault.config import WitnessingSettings, WitnessSettings

    entries = (WitnessSettings(witness.url, witness.vkey),) if witness else ()
    vault.context.settings = replace(
        vault.context.settings, witnessing=WitnessingSettings(entries, None, 5.0)
    )


def _grow(vault: Any, client: str, n: int) -> None:
    from vault.db import write_session
    from vault.db.log import EntryDraft, append_entries

    with write_session(vault.context.engine) as s:
        append_entries(
            s,
            client,
            [EntryDraft("evidence.accessed", None, {"i": i}) for i in range(n)],
            datetime.now(UTC),
            vault.context.log_keys(client),
        )


def checkpoint_rates(workdir: Path, rounds: int) -> dict[str, float]:
    from tests.support.vaults import CLIENT
    from vault.services.checkpoints import make_checkpoint
    from vault.services.witnessing import COSIGNED, catch_up

    v = _vault(workdir / "cp-vault")
    witness = _witness(workdir / "cp-witness", v)
    try:
        _configure(v, witness)
        plain: list[float] = []
        witnessed: list[float] = []
        for r in range(2 * rounds):
            _grow(v, CLIENT, STEP)
            with_witness = r % 4 in (1, 2)  # off, on, on, off, ...
            t0 = time.perf_counter()
            make_checkpoint(v.context, CLIENT)
            if with_witness:
                outcomes = catch_up(v.context, CLIENT)
                assert [o.result for o in outcomes] == [COSIGNED], outcomes
            (witnessed if with_witness else plain).append(time.perf_counter() - t0)
    finally:
        witness.stop()
        v.close()
    return {
        "plain_cps": len(plain) / sum(plain),
        "witnessed_cps": len(witnessed) / sum(witnessed),
    }


def ingest_rates(workdir: Path, n: int, reps: int, tick: float) -> dict[str, float]:
    from tests.support.vaults import CLIENT, clip, order_meta
    from vault.services.checkpoints import CheckpointTimer
    from vault.services.witnessing import witness_status

    v = _vault(workdir / f"in-vault-{tick}")
    witness = _witness(workdir / f"in-witness-{tick}", v)
    clips = [clip(workdir, seconds=2.0, seed=i) for i in range(4 * n * reps)]
    v.context.settings = replace(v.context.settings, checkpoint_every=10, checkpoint_seconds=1)
    timer = CheckpointTimer(v.context, tick).start()
    times: dict[str, list[float]] = {"off": [], "on": []}
    seed = 0
    try:
        # short series, alternating (off, on, on, off) several times: the machine's drift
        # and the log's growth fall on both sides alike
        for series in ("off", "on", "on", "off") * reps:
            _configure(v, witness if series == "on" else None)
            t0 = time.perf_counter()
            for _ in range(n):
                v.ingest(clips[seed], order_meta(seed))
                seed += 1
            times[series].append(time.perf_counter() - t0)
        _configure(v, witness)
        cosigned = witness_status(v.context, CLIENT)[0].cosigned_size
    finally:
        timer.stop()
        witness.stop()
        v.close()
    off = len(times["off"]) * n / sum(times["off"])
    on = len(times["on"]) * n / sum(times["on"])
    return {"off_clips_s": off, "on_clips_s": on, "ratio": on / off, "cosigned_size": cosigned}


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    rounds, n, reps = (4, 8, 1) if quick else (40, 40, 4)
    c.header("witness cosigning: checkpoint path and ingest, Go witness on loopback", quick)
    from tests.support.witness import go_missing

    why = go_missing()
    if why:
        c.emit("witnessing", quick, None, TARGET, "ratio>=", skipped=why)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp:
        cps = checkpoint_rates(Path(tmp), rounds)
        ingest = ingest_rates(Path(tmp), n, reps, 1.0)
        stress = ingest_rates(Path(tmp), n, reps, 0.2)
    cp_ratio = cps["witnessed_cps"] / cps["plain_cps"]
    print(
        f"checkpoints of {STEP} new entries each, {rounds} per side; "
        f"{2 * n * reps} clips per side in series of {n}"
    )
    c.table(
        ["", "per second", "ratio"],
        [
            ("checkpoints, signed only", cps["plain_cps"], None),
            ("checkpoints, signed + cosigned", cps["witnessed_cps"], cp_ratio),
            ("ingest, witnessing off (timer 1 s)", ingest["off_clips_s"], None),
            ("ingest, witnessing on (timer 1 s)", ingest["on_clips_s"], ingest["ratio"]),
            ("ingest, witnessing off (timer 0.2 s)", stress["off_clips_s"], None),
            ("ingest, witnessing on (timer 0.2 s)", stress["on_clips_s"], stress["ratio"]),
        ],
    )
    c.emit(
        "witnessing",
        quick,
        ingest["ratio"],
        TARGET,
        "ratio>=",
        checkpoints={k: round(v, 2) for k, v in cps.items()},
        checkpoint_ratio=round(cp_ratio, 4),
        ingest={k: round(v, 2) if isinstance(v, float) else v for k, v in ingest.items()},
        stress={k: round(v, 2) if isinstance(v, float) else v for k, v in stress.items()},
        stress_ratio=round(stress["ratio"], 4),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
