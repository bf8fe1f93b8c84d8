"""The escalation desk on a big tenant: from sign-in to the first audio byte of "play the
yes", against the API path alone; and the desk's search by order reference.

The tenant: RECORDS sealed records (100,000 full; 2,000 quick) built fast as in
``bench/verify_checks.build_log`` (complete rows and real v2 log entries through the real
commit step, no objects: nothing reads them), then one real record ingested with its clip
(30 s WAV) and a checkpoint over all of it. ``evidence-vault serve`` (one worker, SQLite,
local object directory) answers both paths over loopback HTTP:

* **desk**: what a browser asks, from the sign-in form on: ``GET /desk/sign-in``,
  ``POST /desk/sign-in`` (password, argon2id), ``GET`` the record page, ``POST`` the
  reason (logged; answered with the record page, now with the player), then
  ``GET /desk/records/{id}/audio`` with ``Range: bytes=N-`` where N is the byte where the
  "yes" (the intent region) starts — timed to its first body byte. The record page's
  integrity panel is fetched by the page once it is shown (``GET .../integrity``, which
  re-reads and hashes the stored objects): the bench asks for it after the first audio
  byte, times it as its own step, and leaves it out of the desk total (a browser runs it
  beside the audio request).
* **api**: ``GET /v1/records/{id}/audio`` with a client's bearer token and the same Range
  (logged as well), timed to its first body byte.

The two alternate (desk, api, api, desk), RUNS runs each; p50 and p95 of each. ``ratio`` is
api p50 / desk p50 (target >= 0.8: the desk costs at most a quarter more than the API).
Also printed: the desk from a signed-in session (record page, reason, record page, audio:
the sign-in's password hash left out) and its ratio, and the search's latency
(``POST /desk/search`` by one bulk record's order reference, p50/p95).

    python bench/desk.py [--quick] [--records N] [--runs N]
"""

from __future__ import annotations

import re
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c
import group_commit as gc

BATCH = 500
FULL = {"records": 100_000, "runs": 30, "searches": 50}
QUICK = {"records": 2_000, "runs": 5, "searches": 10}
CLIP_SECONDS = 30.0
TARGET = 0.8
WAV_HEADER, BYTES_PER_MS = 44, 16  # 8 kHz, 16-bit mono (vault.synth's wav-pcm16)


def build_records(vault: Any, records: int) -> float:
    """RECORDS sealed rows with their ``evidence.sealed`` entries (no objects); rows/s."""
    from sqlmodel import select

    from tests.support.vaults import CLIENT
    from vault.db import Campaign, read_session
    from vault.services.ingest import _begin_batch, _commit_batch, _ToCommit, sealed_entry_body

    ctx = vault.context
    keys = ctx.log_keys(CLIENT)
    with read_session(ctx.engine) as s:
        campaign = s.exec(select(Campaign).where(Campaign.client_id == CLIENT)).first()
    t0 = time.perf_counter()
    for start in range(0, records, BATCH):
        items = []
        for n in range(start, min(records, start + BATCH)):
            sealed = gc.fake_sealed(campaign, "desk", n)
            rec = sealed.record
            body = sealed_entry_body(rec, campaign.name, sealed.commitments, 1 << 20, 2100)
            items.append(_ToCommit(ctx.engine, keys, rec.model_dump(), body, False))
        with _begin_batch(CLIENT, items[0]) as locked:
            _commit_batch(locked, items)
    return records / (time.perf_counter() - t0)


def seed(home: Path, records: int) -> dict:
    """The tenant, one real record, a client person with a password and a token."""
    from tests.support.desk import OP, PASSWORD
    from tests.support.vaults import CLIENT, clip, make_vault, order_meta
    from vault.services import credentials, people, tokens

    vault = make_vault(home)
    try:
        rate = build_records(vault, records)
        meta = order_meta(1, callee={"phone": "+4915112345699"})
        meta["intent"]["span_ms"] = [21_000, 23_500]
        real = vault.ingest(clip(home.parent, seconds=CLIP_SECONDS, seed=7), meta).record_id
        vault.checkpoint(CLIENT)
        people.add_person(vault.context, "carla", role="client", client=CLIENT, by=OP)
        credentials.set_password(vault.context, "carla", PASSWORD, by=OP)
        _, secret = tokens.create_token(vault.context, person="carla", by=OP, label="bench")
    finally:
        vault.close()
    yes_at = WAV_HEADER + meta["intent"]["span_ms"][0] * BYTES_PER_MS
    return {"record": real, "token": secret, "range": f"bytes={yes_at}-", "build_rate": rate}


def first_byte(http: Any, path: str, headers: dict) -> None:
    with http.stream("GET", path, headers=headers) as r:
        if r.status_code != 206:
            raise AssertionError(f"{path}: {r.status_code}")
        for chunk in r.iter_bytes():
            if chunk:
                return
    raise AssertionError(f"{path}: an empty body")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html)[1]


def sign_in(http: Any) -> None:
    from tests.support.desk import PASSWORD

    form = http.get("/desk/sign-in").text
    token = re.search(r'name="token" value="([^"]+)"', form)[1]
    r = http.post("/desk/sign-in", data={"token": token, "handle": "carla", "password": PASSWORD})
    if r.status_code != 303:
        raise AssertionError(f"sign-in: {r.status_code}")


STEPS = ("record page", "reason, answered with the player", "audio first byte")
#: timed, but not part of the path to the first audio byte (the page loads it by itself)
BESIDE = "integrity panel (after the page)"


def desk_after_sign_in(http: Any, seeded: dict, steps: dict[str, list[float]]) -> None:
    page = f"/desk/records/{seeded['record']}"
    t = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t
        now = time.perf_counter()
        steps[step].append(now - t)
        t = now

    csrf = csrf_of(http.get(page).text)
    lap(STEPS[0])
    r = http.post(f"{page}/open", data={"csrf": csrf, "reason": "dispute", "case": "C-1"})
    if r.status_code != 200 or 'id="player"' not in r.text:
        raise AssertionError(f"open: {r.status_code}, or no player after the reason")
    lap(STEPS[1])
    first_byte(http, f"{page}/audio", {"Range": seeded["range"]})
    lap(STEPS[2])
    panel = http.get(f"{page}/integrity")
    if panel.status_code != 200 or 'class="check fail"' in panel.text:
        raise AssertionError(f"integrity panel: {panel.status_code}")
    steps[BESIDE].append(time.perf_counter() - t)


def desk_once(url: str, seeded: dict, steps: dict[str, list[float]]) -> tuple[float, float]:
    """Seconds from the sign-in form to the first audio byte, and the part after sign-in."""
    import httpx

    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as http:
        t0 = time.perf_counter()
        sign_in(http)
        t1 = time.perf_counter()
        steps["sign-in (form, password)"].append(t1 - t0)
        desk_after_sign_in(http, seeded, steps)
        t2 = t1 + sum(steps[step][-1] for step in STEPS)  # without the panel's fetch
        http.post("/desk/sign-out", data={"csrf": csrf_of(http.get("/desk/search").text)})
    return t2 - t0, t2 - t1


def api_once(url: str, seeded: dict) -> float:
    import httpx

    headers = {"Authorization": f"Bearer {seeded['token']}", "Range": seeded["range"]}
    with httpx.Client(base_url=url, timeout=60) as http:
        t0 = time.perf_counter()
        first_byte(http, f"/v1/records/{seeded['record']}/audio", headers)
        return time.perf_counter() - t0


def search_times(url: str, records: int, n: int) -> list[float]:
    import httpx

    out = []
    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/search").text)
        for _ in range(n):
            ref = f"ORD-desk-{secrets.randbelow(records):06d}"
            t0 = time.perf_counter()
            r = http.post("/desk/search", data={"csrf": csrf, "order_ref": ref})
            out.append(time.perf_counter() - t0)
            if r.status_code != 200 or ref not in r.text:
                raise AssertionError(f"search {ref}: {r.status_code}")
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] * 1000


def main() -> int:
    def extra(p):
        p.add_argument("--records", type=int, help="sealed records of the tenant")
        p.add_argument("--runs", type=int, help="runs of each path")

    args = c.parse_args(__doc__.splitlines()[0], extra)
    sizes = dict(QUICK if args.quick else FULL)
    sizes["records"] = args.records or sizes["records"]
    sizes["runs"] = args.runs or sizes["runs"]
    c.header("the desk: sign-in to the first byte of the yes, and search", args.quick)
    from tests.support.browser import start_server

    with tempfile.TemporaryDirectory(prefix="bench-desk-") as tmp:
        t0 = time.perf_counter()
        seeded = seed(Path(tmp) / "vault", sizes["records"])
        print(f"built {sizes['records']:,} records in {time.perf_counter() - t0:.1f} s")
        with start_server(Path(tmp) / "vault", Path(tmp) / "server.log") as server:
            steps: dict[str, list[float]] = {"sign-in (form, password)": []}
            steps |= {step: [] for step in (*STEPS, BESIDE)}
            desk_once(server.url, seeded, {k: [] for k in steps})  # warm-up of both paths
            api_once(server.url, seeded)
            desk, after, api = [], [], []
            for k in range(sizes["runs"]):
                order = ("desk", "api") if k % 2 == 0 else ("api", "desk")
                for path in order:
                    if path == "desk":
                        full, rest = desk_once(server.url, seeded, steps)
                        desk.append(full)
                        after.append(rest)
                    else:
                        api.append(api_once(server.url, seeded))
            search = search_times(server.url, sizes["records"], sizes["searches"])
    figures = {
        "desk: sign-in to first byte": desk,
        "desk: signed in, to first byte": after,
        "api: token to first byte": api,
        "desk: search by order ref": search,
        **{f"  desk step: {name}": xs for name, xs in steps.items()},
    }
    c.table(
        ["", "p50 ms", "p95 ms", "runs"],
        [(name, pct(xs, 0.5), pct(xs, 0.95), len(xs)) for name, xs in figures.items()],
    )
    ratio = pct(api, 0.5) / pct(desk, 0.5)
    signed_in_ratio = pct(api, 0.5) / pct(after, 0.5)
    print(
        f"{sizes['records']:,} records; ratio api/desk p50 {ratio:.3f} "
        f"(signed in: {signed_in_ratio:.3f}); target >= {TARGET}"
    )
    c.emit(
        "desk",
        args.quick,
        ratio,
        TARGET,
        "ratio>=",
        records=sizes["records"],
        runs=sizes["runs"],
        signed_in_ratio=round(signed_in_ratio, 4),
        ms={
            name: {"p50": round(pct(xs, 0.5), 2), "p95": round(pct(xs, 0.95), 2)}
            for name, xs in figures.items()
        },
        build_records_per_s=round(seeded["build_rate"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
