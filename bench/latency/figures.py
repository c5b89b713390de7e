"""From raw records to figures: latencies joined on acceptance, spreads, CPU per process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from redis.asyncio import Redis

from bench.harness import (
    Report,
    cpu_seconds,
)
from bench.latency.clients import Records, Timeline

Array = np.ndarray[Any, Any]


# --- the server and its CPU -------------------------------------------------------------------


def cpu_by_process(api_pid: int, redis_url: str) -> dict[str, float]:
    """CPU seconds so far: the API, each worker (its children), PostgreSQL, Redis, and the
    whole machine (every core's busy time, interrupts included)."""
    found = {"api": cpu_seconds(api_pid), "postgres": 0.0}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            if not stat:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == api_pid:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"worker" in argv:  # a worker run twice counts as one, both processes
                    key = f"worker {argv[argv.index(b'worker') + 1].decode()}"
                    found[key] = found.get(key, 0.0) + cpu_seconds(int(entry.name))
            elif name.startswith("postgres"):
                found["postgres"] += cpu_seconds(int(entry.name))

    async def redis_cpu() -> float:
        redis = Redis.from_url(redis_url)
        info = await redis.info("cpu")
        await redis.aclose()
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    found["redis"] = asyncio.run(redis_cpu())
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    found["whole machine"] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return found


# --- figures ----------------------------------------------------------------------------------


def joined(parts: list[Records], name: str) -> Array:
    """One column of every part, concatenated."""
    arrays = [np.asarray(p.columns[name]) for p in parts if name in p.columns]
    return np.concatenate(arrays) if arrays else np.zeros(0)


def spread_ms(latencies_s: Array | list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    values = np.asarray(latencies_s)
    if values.size == 0:
        return dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "max_ms"), math.nan)
    q = np.percentile(values, [50, 90, 99, 100]) * 1000
    return {"p50_ms": q[0], "p90_ms": q[1], "p99_ms": q[2], "max_ms": q[3]}


@dataclass
class Accepted:
    """The pings accepted while measuring: by (driver, time µs), and by (driver, second)."""

    exact: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)
    first_in_second: dict[tuple[int, int], float] = field(default_factory=dict)

    @classmethod
    def of(cls, drivers: list[Records], line: Timeline) -> Accepted:
        made = cls()
        columns = [joined(drivers, c) for c in ("driver", "time_us", "acked")]
        inside = (columns[2] >= line.measure_from) & (columns[2] < line.measure_to)
        for d, t, acked in zip(*(c[inside].tolist() for c in columns), strict=True):
            made.exact[(d, t)] = (t / 1e6, acked)
            made.first_in_second.setdefault((d, t // 1_000_000), acked)
        return made


def positions_from(accepted: Accepted, parts: list[Records], prefix: str = "") -> Array:
    """Per distinct (socket, ping) seen: [arrival − acceptance, arrival − send], seconds."""
    names = [f"{prefix}{c}" for c in ("driver", "time_us", "recv")]
    sockets = joined(parts, "socket") if not prefix else None
    drivers, times, recv = (joined(parts, n).tolist() for n in names)
    seen: dict[tuple[int, int, int], tuple[float, float]] = {}
    for n, (d, t, r) in enumerate(zip(drivers, times, recv, strict=True)):
        stamp = accepted.exact.get((d, t))
        key = (int(sockets[n]) if sockets is not None else 0, d, t)
        if stamp is not None and key not in seen:
            seen[key] = (r - stamp[1], r - stamp[0])
    return np.array(list(seen.values())).reshape(-1, 2)


def windows_from(accepted: Accepted, parts: list[Records], names: tuple[str, str, str]) -> Array:
    """Arrival − acceptance of the fix each window was computed from, seconds."""
    drivers, fixes, recv = (joined(parts, n).tolist() for n in names)
    found = [
        r - a
        for d, f, r in zip(drivers, fixes, recv, strict=True)
        if (a := accepted.first_in_second.get((d, f))) is not None
    ]
    return np.array(found)


def summarise(
    got: dict[str, list[Records]],
    line: Timeline,
    args: argparse.Namespace,
    report: Report,
    cpu: dict[str, float],
) -> None:
    accepted = Accepted.of(got["drivers"], line)
    sent_acked = np.array(list(accepted.exact.values())).reshape(-1, 2)
    report.add(
        figure="pings accepted (send → ack)",
        per_s=len(accepted.exact) / args.seconds,
        **spread_ms(sent_acked[:, 1] - sent_acked[:, 0]),
    )
    if "dispatchers" in got:
        parts = got["dispatchers"]
        seen = positions_from(accepted, parts)
        messages = sum(p.counts["positions messages"] for p in parts)
        report.add(
            figure="position → dispatcher (from ack)",
            samples=len(seen),
            **spread_ms(seen[:, 0]),
            delivered=f"{100 * len(seen) / max(1, len(accepted.exact) * args.dispatchers):.2f} %",
            drivers_per_message=joined(parts, "driver").size / max(1, messages),
        )
        report.add(figure="position → dispatcher (from send)", **spread_ms(seen[:, 1]))
        events = windows_from(accepted, parts, ("ev_driver", "ev_fix_s", "ev_recv"))
        report.add(figure="moved window → dispatcher", samples=len(events), **spread_ms(events))
    if "customers" in got:
        parts = got["customers"]
        windows = windows_from(accepted, parts, ("driver", "fix_s", "recv"))
        report.add(
            figure="ETA change → customer window",
            samples=len(windows),
            per_s=len(windows) / args.seconds,
            **spread_ms(windows),
        )
        seen = positions_from(accepted, parts, prefix="pos_")
        report.add(
            figure="position → customer (from ack)", samples=len(seen), **spread_ms(seen[:, 0])
        )
    clients = {
        f"{name} x{len(parts)}": sum(p.cpu_s for p in parts) / args.seconds
        for name, parts in got.items()
    }
    ours = {**cpu, **clients}
    whole = ours.pop("whole machine")
    ours["everything else"] = whole - sum(ours.values())  # other work on the machine, kernel
    report.add(
        figure="CPU, cores",
        machine=round(whole, 2),
        **{k: round(v, 2) + 0.0 for k, v in ours.items()},
    )
    for name, parts in got.items():
        counts = sum((p.counts for p in parts), Counter[str]())
        if counts:
            print(f"  {name}: " + "; ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
