"""The Redis read model's apply script alone: Redis' own time per customer row (``INFO commandstats``), the
Redis process' CPU per row and the writer's wall time, for rows as a flush sends them (two dimensions, a story
entry and a segment move each).

Pass 1 writes N customers new; each later pass (``--passes``, 2 by default) writes them again with one dimension
moved and the same sums (what a rules change sends), back and forth between two segments. A ``redis-server`` of
its own is started on a free port (the embedded stack's binary), without an append-only file (``--aof yes``: with
one, as the embedded stack has).

    python -m bench.projection --rows 100000 --passes 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import tempfile
import time

import redis

from bench.cpu import cpu_seconds
from streams.readmodel.rows import ProjectedCustomer
from streams.readmodel.writer import CHUNK, Projection
from streams.stack.embedded import redis_binary

PREFIX = "bench"  # the read model's key prefix in the bench's own Redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rows(n: int, seq: int, value: str, state: bytes) -> list[ProjectedCustomer]:
    return [ProjectedCustomer(f"C{i:07d}", 1, seq, {"value": value, "lifecycle": "new"}, 1234, i % 8, state, (),
                              ((f"{seq}-{i}", f'{{"dimension":"value","to":"{value}"}}'),),
                              ((f"{seq}-{i}", 739_000, "value", "low", value, 1234),), 1) for i in range(n)]


def _check(client: redis.Redis, n: int, value: str) -> None:
    """What the pass left in Redis is what its rows say (a bench of a broken script measures nothing)."""
    segments = ("low", "first_timer", "new")
    members = {dim: {seg: int(client.scard(f"{PREFIX}:m:{dim}:{seg}")) for seg in segments}
               for dim in ("value", "lifecycle")}
    amounts = {seg: int(client.hget(f"{PREFIX}:amt:value", seg) or 0) for seg in segments}
    amounts = {seg: amount for seg, amount in amounts.items() if amount}
    expected = {"value": {"low": 0, "first_timer": 0, "new": 0, value: n},
                "lifecycle": {"low": 0, "first_timer": 0, "new": n}}
    if members != expected or amounts != {value: 1234 * n}:
        raise SystemExit(f"bench.projection: Redis holds members {members} and sums {amounts}, not what the rows say")


async def _passes(port: int, n: int, passes: int, pid: int) -> None:
    projection = Projection(f"redis://127.0.0.1:{port}", PREFIX)
    stats = redis.Redis(host="127.0.0.1", port=port)
    state = os.urandom(60)  # a one-purchase customer's stored record is about this size
    try:
        for seq in range(1, passes + 1):
            value = "low" if seq % 2 else "first_timer"
            what = "new customers" if seq == 1 else "one dimension moved"
            rows = _rows(n, seq, value, state)
            stats.config_resetstat()
            started, cpu = time.perf_counter(), cpu_seconds(pid)
            for start in range(0, n, CHUNK):
                await projection.write_many(rows[start : start + CHUNK])
            wall = time.perf_counter() - started
            calls = stats.info("commandstats").get("cmdstat_evalsha", {"usec": 0})
            after = cpu_seconds(pid)
            process = ("its process' CPU not read" if cpu is None or after is None
                       else f"{(after - cpu) / n * 1e6:.1f} µs/row of its process' CPU")
            print(f"pass {seq} ({what}): {n:,} rows, Redis {calls['usec'] / n:.1f} µs/row of script, {process}; "
                  f"wall {wall / n * 1e6:.1f} µs/row")
            _check(stats, n, value)
    finally:
        await projection.close()
        stats.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--passes", type=int, default=2, help="the first writes the customers new, each other "
                        "moves one dimension")
    parser.add_argument("--aof", choices=("yes", "no"), default="no", help="Redis' append-only file (the "
                        "embedded stack has it on: yes)")
    args = parser.parse_args()
    if args.passes < 1 or args.rows < 1:
        parser.error("--rows and --passes take a positive number")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="segmenter-bench-projection-") as where:
        _run(args.rows, args.passes, args.aof, port, where)


def _run(rows: int, passes: int, aof: str, port: int, where: str) -> None:
    server = subprocess.Popen(  # noqa: S603 - the embedded stack's own binary, arguments we build
        [str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1", "--dir", where, "--save", "",
         "--appendonly", aof], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"bench.projection: redis-server did not answer on port {port} within 5 s")
        client.close()
        asyncio.run(_passes(port, rows, passes, server.pid))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
