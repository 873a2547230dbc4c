"""Scale-out on one machine as a stand-in for several: separate stage processes against one
Redis. Two parts:

1. Topology: 2 ingest, 1 scheduler, 3 analyzer, 1 alerts processes (`vigil <stage> -c cfg`)
   with four file cameras paced in real time: cameras spread over the ingest workers by
   lease, packets spread over the analyzers by the consumer group.
2. Scaling: a backend that is the bottleneck (an OpenAI-compatible test server answering in
   a fixed delay, one request in flight per analyzer process) over N preloaded packets:
   throughput with 3 analyzer processes as a ratio to 1 (the baseline), same run.

    python bench/scaleout.py [--packets 60] [--delay 0.25] [--topology-s 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bus import open_bus  # noqa: E402
from bus.messages import Event, MotionSummary, Packet, PacketFrame  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def _spawn(stage: str, cfg: Path, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vigil.cli", stage, "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


async def topology(bus, tmp: Path, seconds: float) -> None:
    cams = "".join(
        f"  - id: cam{i}\n    url: {MEDIA / name}\n    pace: realtime\n    loop: true\n"
        for i, name in enumerate(["car-detection.mp4", "vtest.avi", "bikes.mp4", "car-detection.mp4"]))
    cfg = tmp / "topology.yaml"
    cfg.write_text(f"cameras:\n{cams}rules:\n  - id: moving\n    label: motion\n    severity: info\n")
    env = {**os.environ, "REDIS_URL": bus.url}
    plan = ["ingest", "ingest", "scheduler", "analyzer", "analyzer", "analyzer", "alerts"]
    procs = [_spawn(stage, cfg, env, tmp / f"{stage}{i}.log") for i, stage in enumerate(plan)]
    try:
        await asyncio.sleep(seconds)
        events = await bus.range(bus.keys.events, Event)
        by_worker: dict[str, int] = {}
        async for key in bus.r.scan_iter(match=bus.keys.ingest_lease("*")):
            owner = await bus.r.get(key)
            if owner:
                by_worker[owner.decode()] = by_worker.get(owner.decode(), 0) + 1
        info = await bus.group_info(bus.keys.packets, bus.keys.ANALYZERS) or {}
        consumers = await bus.r.xinfo_consumers(bus.keys.packets, bus.keys.ANALYZERS)
        alerts = await bus.r.xlen(bus.keys.alerts)
        print(f"topology ({seconds:.0f} s, 4 cameras): {len(events)} events, {alerts} alert changes")
        print(f"  cameras per ingest worker (leases): {sorted(by_worker.values()) or 'n/a'}")
        print(f"  analyzer consumers: {len(consumers)}, pending now {info.get('pending')}")
        print(f"  events per camera: { {c: sum(1 for _, e in events if e.camera == c) for c in sorted({e.camera for _, e in events})} }")
    finally:
        _stop(procs)


async def scaling(bus, tmp: Path, n_packets: int, delay: float, workers: int, prefix: str) -> float:
    frame = (MEDIA / "car-detection.mp4")
    import av

    from ingest.prepare import model_jpeg

    with av.open(str(frame)) as c:
        f = next(c.decode(video=0))
        jpeg, w, h = model_jpeg(f, 448, 85)
    keys_prefix = f"vigil:{prefix}:"
    async with open_bus(bus.url, prefix=keys_prefix) as b:
        with FakeOpenAI(delay_s=delay) as server:
            cfg = tmp / f"scale-{workers}.yaml"
            cfg.write_text(
                f"redis:\n  prefix: '{keys_prefix}'\n"
                f"analyzer:\n  backend: openai\n  stale_after_s: 100000\n  concurrency: 1\n  prefetch: 2\n"
                f"  openai:\n    base_url: {server.base_url}\n    concurrency: 1\n    max_retries: 0\n")
            env = {**os.environ, "REDIS_URL": bus.url, "OPENAI_API_KEY": "bench"}
            procs = [_spawn("analyzer", cfg, env, tmp / f"scale{workers}-{i}.log") for i in range(workers)]
            try:
                # Start the clock only once every worker reads the group: process start-up is not throughput.
                await b.ensure_group(b.keys.packets, b.keys.ANALYZERS)
                deadline = time.monotonic() + 120
                # (Redis 6.2 creates a group consumer only when it is served, so count the
                # workers' metrics snapshots, written once their loop runs.)
                while len([k async for k in b.r.scan_iter(match=b.keys.analyzer_metrics_pattern)]) < workers:
                    if time.monotonic() > deadline:
                        raise TimeoutError("analyzer processes did not start")
                    await asyncio.sleep(0.1)
                now = time.time()
                t0 = time.perf_counter()
                for i in range(n_packets):
                    p = Packet(id=f"cam{i % 4}-{i}", camera=f"cam{i % 4}", reason="motion", width=w, height=h,
                               frames=[PacketFrame(seq=k, ts=k * 0.2, wall=now, temporal_id=k * 2, motion=0.1,
                                                   jpeg=jpeg) for k in range(6)],
                               temporal_ids=[[0, 2, 4, 6, 8, 10]], motion=MotionSummary(area=0.1), created=now)
                    await b.publish(b.keys.packets, p)
                while await b.r.xlen(b.keys.events) < n_packets:
                    if time.perf_counter() - t0 > 600:
                        raise TimeoutError("analyzers did not finish")
                    await asyncio.sleep(0.05)
                took = time.perf_counter() - t0
            finally:
                _stop(procs)
            rate = n_packets / took
            print(f"  {workers} analyzer process(es): {n_packets} packets in {took:.1f} s = {rate:.2f} packets/s "
                  f"(server saw at most {server.max_active} requests at once)")
            return rate


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=60)
    ap.add_argument("--delay", type=float, default=0.5, help="seconds the test model server takes per request")
    ap.add_argument("--topology-s", type=float, default=40)
    args = ap.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"vigil-scaleout-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    async with open_bus(None) as bus:
        if args.topology_s > 0:
            await topology(bus, tmp, args.topology_s)
        print(f"scaling with a bottleneck backend ({args.delay:.2f} s per request, 1 in flight per process):")
        one = await scaling(bus, tmp, args.packets, args.delay, 1, "s1")
        three = await scaling(bus, tmp, args.packets, args.delay, 3, "s3")
        print(f"  ratio 3 processes / 1 process (baseline): {three / one:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
