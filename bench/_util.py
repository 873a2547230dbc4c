"""Small helpers shared by the benchmarks (percentiles, a private Redis, a free port)."""

from __future__ import annotations

import socket
import statistics


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(values: list[float]) -> str:
    return (f"n={len(values)} p50={pct(values, 50):.1f} p95={pct(values, 95):.1f} p99={pct(values, 99):.1f} "
            f"mean={statistics.fmean(values):.1f}" if values else "n=0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
