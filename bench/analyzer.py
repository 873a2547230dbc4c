"""Analyzer throughput and latency, through the real worker on a real (embedded) Redis.

    python bench/analyzer.py [--quick]

Scenarios, each against a baseline measured in the same run (figures are ratios; absolute
times depend on the machine and what else runs on it):
  cpu     the cpu backend on real vtest.avi packets: concurrency 2 vs 1
  openai  the openai backend against the in-suite OpenAI-compatible server with a fixed
          delay per request (like a server that batches concurrent requests): concurrency 8 vs 1

The minicpm backend's batching (max_batch 4 vs 1) on the official model code: bench/minicpm.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.backends.base import Backend  # noqa: E402
from analyzer.backends.cpu import CpuBackend  # noqa: E402
from analyzer.backends.openai import OpenAIBackend  # noqa: E402
from analyzer.service import AnalyzerService  # noqa: E402
from analyzer.settings import AnalyzerSettings, CpuBackendSettings, OpenAISettings  # noqa: E402
from bus import open_bus  # noqa: E402
from bus.messages import Event, Packet  # noqa: E402
from tests.analyzer_helpers import make_packet, read_frames, synthetic  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


async def measure(backend: Backend, packets: list[Packet]) -> dict:
    async with open_bus(None) as bus:
        for p in packets:
            await bus.publish(bus.keys.packets, p)
        svc = AnalyzerService(bus, AnalyzerSettings(stale_after_s=1e9, prefetch=64, newest_first=False), backend)
        stop = asyncio.Event()
        t0 = time.perf_counter()
        task = asyncio.create_task(svc.run(stop))
        while await bus.r.xlen(bus.keys.events) < len(packets):
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - t0
        stop.set()
        await task
        events = [e for _, e in await bus.range(bus.keys.events, Event)]
    lat = sorted(e.latency_ms for e in events)
    q = statistics.quantiles(lat, n=20) if len(lat) > 1 else [lat[0]] * 19
    return {"packets": len(events), "wall_s": wall, "pps": len(events) / wall, "p50": statistics.median(lat),
            "p95": q[18], "status": sorted({e.status for e in events}), "tokens": events[0].visual_tokens,
            "tokens_each": [e.visual_tokens for e in events]}


def row(name: str, r: dict, base: dict | None) -> str:
    ratio = f"{r['pps'] / base['pps']:.2f}x" if base else "1.00x (baseline)"
    return (f"| {name:<44} | {r['packets']:>3} | {r['pps']:>7.2f} | {r['p50']:>8.0f} | {r['p95']:>8.0f} | "
            f"{r['tokens']:>6} | {ratio:<16} |")


async def main(quick: bool) -> None:
    n_cpu, n_http = (6, 16) if quick else (16, 48)
    delay = 0.2
    vt = read_frames(MEDIA / "vtest.avi", list(range(0, 6 * 4 * n_cpu, 4)))
    cpu_packets = [make_packet(vt[i * 6:(i + 1) * 6], camera="campus", pid=f"campus-{i}") for i in range(n_cpu)]
    syn = synthetic(6)
    http_packets = [make_packet(syn, camera=f"cam{i % 4}", pid=f"h-{i}") for i in range(n_http)]

    print(f"| {'scenario':<44} |   n | pkt/s   | p50 ms   | p95 ms   | vis.tok| vs baseline      |")
    print(f"|{'-' * 46}|-----|---------|----------|----------|--------|------------------|")
    c1 = await measure(CpuBackend(CpuBackendSettings(), concurrency=1), cpu_packets)
    print(row("cpu, vtest.avi, concurrency 1", c1, None), flush=True)
    c2 = await measure(CpuBackend(CpuBackendSettings(), concurrency=2), cpu_packets)
    print(row("cpu, vtest.avi, concurrency 2", c2, c1), flush=True)

    with FakeOpenAI(delay_s=delay) as server:
        def oa(conc: int) -> OpenAIBackend:
            return OpenAIBackend(OpenAISettings(base_url=server.base_url, concurrency=conc))

        o1 = await measure(oa(1), http_packets)
        print(row(f"openai, {delay * 1000:.0f} ms server, concurrency 1", o1, None), flush=True)
        o8 = await measure(oa(8), http_packets)
        print(row(f"openai, {delay * 1000:.0f} ms server, concurrency 8", o8, o1), flush=True)

    print(f"\nvisual tokens per packet: openai/vLLM {o8['tokens']} (64 per frame, no packing); the in-process "
          "minicpm path packs 6 frames into 64 (bench/minicpm.py measures it)")

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer packets (a smoke run)")
    asyncio.run(main(ap.parse_args().quick))
