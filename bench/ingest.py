"""Ingest benchmark: batched HTTP and per-message WebSocket through one real server process.

    python -m bench.ingest [--seconds 10] [--connections 64] [--sockets 200] [--out FILE]

Starts ``lastmile serve --no-workers`` (one API process) against the configured or embedded
services, then drives it from this process with a minimal raw-socket HTTP/1.1 and WebSocket
client (precomputed requests, so the generator spends its CPU on I/O, not on encoding). Beside
each figure it measures, in the same run, the raw ceiling: pipelined ``XADD`` of the same
entries from this same client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import secrets
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis

from bench.harness import BenchEnv, Report, bench_env, cpu_seconds, make_tenant, server_process
from realtime.streams import StreamNames, shard_of
from schemas.codecs import PING_BATCH_ENCODER
from schemas.ids import DriverId, OrgId
from schemas.ping import Ping, PingBatch

_CONTENT_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


@dataclass
class Tally:
    """Requests answered, pings accepted and latencies of one load phase."""

    ok: int = 0
    failed: int = 0
    pings: int = 0
    latencies_s: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ping_dicts(n: int, start: datetime) -> list[dict[str, object]]:
    """``n`` plausible fixes one second apart."""
    return [
        {
            "time": (start + timedelta(seconds=i)).isoformat(),
            "lat": 52.5 + i * 1e-5,
            "lon": 13.4 + i * 1e-5,
            "speed_mps": 8.5,
            "heading_deg": 90.0,
            "accuracy_m": 4.0,
            "battery": 81.0,
            "seq": i,
        }
        for i in range(n)
    ]


def http_requests(tokens: list[str], port: int, batch: int) -> list[bytes]:
    """One precomputed ``POST /v1/pings`` per driver, each carrying ``batch`` pings."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    body = json.dumps({"pings": ping_dicts(batch, start)}).encode()
    return [
        (
            f"POST /v1/pings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for token in tokens
    ]


async def http_client(
    port: int, requests: list[bytes], offset: int, deadline: float, tally: Tally, batch: int
) -> None:
    """One keep-alive connection sending requests back to back until ``deadline``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head)
            if match:
                await reader.readexactly(int(match.group(1)))
            tally.latencies_s.append(time.perf_counter() - sent)
            if head[9:12] == b"200":
                tally.ok += 1
                tally.pings += batch
            else:
                tally.failed += 1
    finally:
        writer.close()


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame; the zero mask key makes the payload bytes go out unchanged."""
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return header + b"\x00\x00\x00\x00" + payload


async def ws_client(
    port: int, token: str, messages: list[bytes], deadline: float, tally: Tally
) -> None:
    """One driver socket: send a one-ping message, wait for its ack, repeat until ``deadline``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write(
        (
            f"GET /v1/driver/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        tally.failed += 1
        writer.close()
        return
    i = 0
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            writer.write(messages[i % len(messages)])
            i += 1
            first = await reader.readexactly(2)
            length = first[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await reader.readexactly(8))[0]
            reply = await reader.readexactly(length)
            tally.latencies_s.append(time.perf_counter() - sent)
            if first[0] & 0x0F == 0x8:  # closed by the server
                tally.failed += 1
                return
            if b'"ack"' in reply:
                tally.ok += 1
                tally.pings += 1
            else:
                tally.failed += 1
    finally:
        writer.close()


def ws_messages(count: int) -> list[bytes]:
    """Precomputed one-ping JSON messages."""
    start = datetime.now(UTC) - timedelta(minutes=20)
    return [
        ws_frame(json.dumps({"type": "ping", "id": i, **p}).encode())
        for i, p in enumerate(ping_dicts(count, start))
    ]


async def raw_xadd(
    env: BenchEnv,
    drivers: list[DriverId],
    org: OrgId,
    batch: int,
    seconds: float,
    connections: int,
    per_pipeline: int,
) -> Tally:
    """The ceiling: pipelined XADD of the same stream entries the server would write."""
    names = StreamNames(prefix=env.redis_prefix + "raw-", shards=4)
    start = datetime.now(UTC) - timedelta(minutes=30)
    pings = [
        Ping(time=start + timedelta(seconds=i), lat=52.5, lon=13.4, speed_mps=8.5, seq=i)
        for i in range(batch)
    ]
    entries = [
        (
            names.pings(shard_of(d, names.shards)),
            PING_BATCH_ENCODER.encode(
                PingBatch(org_id=org, driver_id=d, source="http", received_at=start, pings=pings)
            ),
        )
        for d in drivers
    ]
    redis = Redis.from_url(env.redis_url)
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def pump(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(per_pipeline):
                    stream, payload = entries[i % len(entries)]
                    pipe.xadd(stream, {"b": payload})
                    i += 1
                await pipe.execute()
            tally.latencies_s.append(time.perf_counter() - sent)
            tally.ok += per_pipeline
            tally.pings += per_pipeline * batch

    await asyncio.gather(*(pump(k * 7) for k in range(connections)))
    for stream in names.all_pings():
        await redis.delete(stream)
    await redis.aclose()
    return tally


async def drive_http(port: int, requests: list[bytes], args: argparse.Namespace) -> Tally:
    tally = Tally()
    deadline = time.perf_counter() + args.seconds
    await asyncio.gather(
        *(
            http_client(port, requests, k, deadline, tally, args.batch)
            for k in range(args.connections)
        )
    )
    return tally


async def drive_ws(port: int, tokens: list[str], args: argparse.Namespace) -> Tally:
    tally = Tally()
    messages = ws_messages(64)
    deadline = time.perf_counter() + args.seconds
    await asyncio.gather(
        *(
            ws_client(port, tokens[k % len(tokens)], messages, deadline, tally)
            for k in range(args.sockets)
        )
    )
    return tally


def _rate(tally: Tally, seconds: float) -> float:
    return tally.pings / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=100, help="pings per HTTP request")
    parser.add_argument("--connections", type=int, default=32, help="HTTP connections")
    parser.add_argument("--sockets", type=int, default=200, help="driver WebSockets")
    parser.add_argument("--drivers", type=int, default=200)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--only", choices=["http", "ws", "xadd"], action="append")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    wanted = set(args.only or ["http", "ws", "xadd"])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    report = Report("ingest")
    with bench_env() as env:
        tenant = make_tenant(env.database_url, args.drivers)
        tokens = [t for _, t in tenant.drivers]
        with server_process(env, args.port) as pid:
            if "http" in wanted:
                requests = http_requests(tokens, args.port, args.batch)
                asyncio.run(drive_http(args.port, requests[:8], _warmup(args)))
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                tally = asyncio.run(drive_http(args.port, requests, args))
                wall = time.perf_counter() - t0
                report.add(
                    phase="http batched ingest",
                    batch=args.batch,
                    connections=args.connections,
                    requests_per_s=tally.ok / wall,
                    pings_per_s=_rate(tally, wall),
                    failed=tally.failed,
                    p50_ms=tally.percentile_ms(0.5),
                    p99_ms=tally.percentile_ms(0.99),
                    server_cpu=(cpu_seconds(pid) - cpu0) / wall,
                )
            if "ws" in wanted:
                asyncio.run(drive_ws(args.port, tokens, _warmup(args)))
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                tally = asyncio.run(drive_ws(args.port, tokens, args))
                wall = time.perf_counter() - t0
                report.add(
                    phase="websocket ingest, one ping per message",
                    sockets=args.sockets,
                    messages_per_s=tally.ok / wall,
                    failed=tally.failed,
                    p50_ms=tally.percentile_ms(0.5),
                    p99_ms=tally.percentile_ms(0.99),
                    server_cpu=(cpu_seconds(pid) - cpu0) / wall,
                )
        if "xadd" in wanted:
            drivers = [d for d, _ in tenant.drivers]
            for label, batch, per_pipe in (
                ("raw XADD, 100-ping entries", args.batch, 100),
                ("raw XADD, 1-ping entries", 1, 100),
            ):
                t0 = time.perf_counter()
                tally = asyncio.run(
                    raw_xadd(env, drivers, tenant.org_id, batch, args.seconds, 8, per_pipe)
                )
                wall = time.perf_counter() - t0
                report.add(
                    phase=label,
                    entries_per_s=tally.ok / wall,
                    pings_per_s=_rate(tally, wall),
                    pipeline=per_pipe,
                )
    report.write(args.out)


def _warmup(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "seconds": 1.5})


if __name__ == "__main__":
    main()
