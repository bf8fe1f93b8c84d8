"""Round trips an ingest makes to PostgreSQL, and what they cost when the database is remote.

The vault (local objects, PostgreSQL metadata) reaches PostgreSQL through a TCP proxy on
loopback that reads the wire protocol: it counts the client's ``Sync`` and ``Query``
messages (each ends a request the client then waits for: one round trip) and can hold
every chunk for a fixed delay in each direction, as a network between two hosts would.

Printed: the round trips per ingest; the proxy's own round trip (``SELECT 1``, median)
with and without the delay; and the ingest's median time on loopback (through the proxy,
no delay) and with the delay. Figure: ingest time on loopback over ingest time with the
delay (1.0 = insensitive to the network; every round trip pulls it down).

    python bench/pg_round_trips.py [--quick] [--delay-ms 0.5]
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
import threading
import time
from pathlib import Path

import _common as c

#: startup-phase requests without a type byte (SSL, GSS encryption, cancel)
_UNTYPED_REQUESTS = {80877103, 80877104, 80877102}


class CountingProxy:
    """Forwards 127.0.0.1:port to PostgreSQL; counts round trips; delays each chunk.

    Not the tests' ``TcpProxy`` (tests/support/netfaults.py): that one forwards on a
    thread per direction, chunk after chunk, so a delay there would add up over the
    chunks of one request; here each chunk leaves ``delay`` after it arrived, as on a
    network. The price is the event loop's timer, which rounds a small delay up (the
    round trip it makes is printed).
    """

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.round_trips = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, name="pg proxy", daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pump(reader, up_writer, _Counter(self)),
            self._pump(up_reader, writer, None),
            return_exceptions=True,
        )

    async def _pump(self, reader, writer, counter: _Counter | None) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    writer.close()
                    return
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        while data := await reader.read(1 << 16):
            if counter is not None:
                counter.feed(data)
            queue.put_nowait((time.monotonic() + self.delay, data))
        queue.put_nowait((0.0, None))
        await sender


class _Counter:
    """Splits the client's byte stream into protocol messages; counts Sync and Query."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.buf = b""
        self.started = False

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            if not self.started:  # length-prefixed, no type byte
                if len(self.buf) < 8:
                    return
                length, code = struct.unpack("!II", self.buf[:8])
                if len(self.buf) < length:
                    return
                self.buf = self.buf[length:]
                self.started = code not in _UNTYPED_REQUESTS
                continue
            if len(self.buf) < 5:
                return
            kind, length = self.buf[:1], struct.unpack("!I", self.buf[1:5])[0]
            if len(self.buf) < 1 + length:
                return
            self.buf = self.buf[1 + length :]
            if kind in (b"S", b"Q"):
                self.proxy.round_trips += 1


def main() -> int:
    args = c.parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument(
            "--delay-ms",
            type=float,
            default=0.5,
            help="held each way (the event loop's timer rounds it up; the round trip it "
            "makes is printed)",
        ),
    )
    quick = args.quick
    n, warmup = (10, 3) if quick else (100, 10)
    c.header("an ingest's round trips to PostgreSQL, local objects", quick)
    with c.pg_database() as url:
        if not url:
            c.emit("pg_round_trips", quick, None, None, None, skipped="PostgreSQL missing")
            return 0
        proxy = CountingProxy()
        with tempfile.TemporaryDirectory(prefix="bench-pgrt-") as tmp:
            out = _measure(proxy, url, Path(tmp), n, warmup, args.delay_ms / 1000)
    rows = [
        ("round trips per ingest", out["round_trips"], None),
        ("the proxy's round trip, no delay (ms)", out["rtt_ms"], None),
        (
            f"the proxy's round trip, {args.delay_ms:g} ms each way (ms)",
            out["rtt_delayed_ms"],
            None,
        ),
        ("ingest, loopback (median ms)", out["ingest_ms"], None),
        ("ingest, with the delay (median ms)", out["ingest_delayed_ms"], out["ratio"]),
    ]
    print(f"{n} ingests of a 2 s WAV per series after {warmup} warm-up ingests, alternating")
    c.table(["", "value", "ratio"], rows)
    ratio = out.pop("ratio")
    c.emit("pg_round_trips", quick, ratio, None, None, delay_ms=args.delay_ms, **out)
    return 0


def _measure(proxy: CountingProxy, url: str, tmp: Path, n: int, warmup: int, delay: float):
    from sqlalchemy import create_engine, text

    from tests.support.vaults import clip, make_vault, order_meta

    proxied = url.replace(":5432/", f":{proxy.port}/")
    vault = make_vault(tmp / "vault", storage="local", database_url=proxied)
    wav = clip(tmp)
    probe = create_engine(proxied)
    try:

        def rtt() -> float:
            with probe.connect() as conn:
                conn.execute(text("SELECT 1"))
                times = []
                for _ in range(50):
                    t0 = time.perf_counter()
                    conn.execute(text("SELECT 1"))
                    times.append(time.perf_counter() - t0)
            return c.median(times) * 1000

        def ingest(i: int) -> float:
            t0 = time.perf_counter()
            vault.ingest(wav, order_meta(i))
            return time.perf_counter() - t0

        for i in range(warmup):
            ingest(i)
        before = proxy.round_trips
        for i in range(warmup, warmup + n):
            ingest(i)
        round_trips = (proxy.round_trips - before) / n
        times: dict[float, list[float]] = {0.0: [], delay: []}
        for j in range(2 * n):
            proxy.delay = (0.0, delay)[j % 2]
            times[proxy.delay].append(ingest(10_000 + j))
        proxy.delay = 0.0
        rtt_plain = rtt()
        proxy.delay = delay
        rtt_delayed = rtt()
        proxy.delay = 0.0
    finally:
        probe.dispose()
        vault.close()
    plain, delayed = c.median(times[0.0]) * 1000, c.median(times[delay]) * 1000
    return {
        "round_trips": round(round_trips, 2),
        "rtt_ms": round(rtt_plain, 3),
        "rtt_delayed_ms": round(rtt_delayed, 3),
        "ingest_ms": round(plain, 2),
        "ingest_delayed_ms": round(delayed, 2),
        "ratio": round(plain / delayed, 4),
    }


if __name__ == "__main__":
    raise SystemExit(main())
