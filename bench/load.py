"""Load: N real-time cameras through the whole pipeline (`vigil serve`, cpu backend) for a
while, measuring what an operator cares about:

- motion onset -> alert on the websocket: from the capture time of the first moving frame of
  the packet that opened the alert (its `wall` time) to the alert's arrival on /ws;
- frames dropped (per camera, from ingest status), packets stale-skipped (scheduler and
  analyzer), memory (RSS) over time, CPU per camera.

Baseline in the same run: the scheduler's own onset budget (`onset_budget_s`), the floor any
motion-gated packet has to wait; the ratio says how much the rest of the pipeline adds.

    python bench/load.py [--cameras 8] [--minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._util import free_port, pct  # noqa: E402
from bus.server import EmbeddedRedis  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
TOKEN = "load-bench-token-0123456789"
CLIPS = ["car-detection.mp4", "vtest.avi", "bikes.mp4"]
START_AREA = 0.002  # scheduler.start_area (default)


def _config(cameras: int, port: int) -> str:
    cams = "".join(f"  - id: cam{i}\n    url: {MEDIA / CLIPS[i % len(CLIPS)]}\n    pace: realtime\n    loop: true\n"
                   for i in range(cameras))
    return (f"cameras:\n{cams}"
            "rules:\n  - id: onset\n    kind: motion\n    min_area: 0.002\n    fast: true\n    severity: info\n"
            "    consolidate_s: 3\n    quiet_s: 3\n"
            f"web:\n  port: {port}\n")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    port = free_port()
    cfg = Path(os.environ.get("TMPDIR", "/tmp")) / f"vigil-load-{os.getpid()}.yaml"
    cfg.write_text(_config(args.cameras, port))
    # Redis runs apart from vigil, so vigil's own memory (flat or not) is not mixed with the
    # data Redis retains on purpose (packets for a day, events for a week).
    redis_server = EmbeddedRedis()
    redis_url = redis_server.start()
    env = {**os.environ, "VIGIL_TOKEN": TOKEN, "REDIS_URL": redis_url}
    log = open(cfg.with_suffix(".log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies: list[float] = []
    rss: list[tuple[float, float]] = []
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
        vigil = psutil.Process(proc.pid)
        t_start = time.time()
        cpu0 = vigil.cpu_times().user + vigil.cpu_times().system
        import redis as redis_sync

        redis_info = redis_sync.Redis.from_url(redis_url)
        redis_mem: list[tuple[float, float]] = []
        end = t_start + args.minutes * 60
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
            async with websockets.connect(base.replace("http", "ws") + "/ws", max_queue=None) as ws:
                await ws.send(json.dumps({"token": TOKEN}))
                next_sample = 0.0
                while time.time() < end:
                    if time.time() >= next_sample:
                        next_sample = time.time() + 10
                        rss.append((time.time() - t_start, vigil.memory_info().rss / 2**20))
                        redis_mem.append((time.time() - t_start, redis_info.info("memory")["used_memory"] / 2**20))
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    except asyncio.TimeoutError:
                        continue
                    arrived = time.time()
                    if msg.get("type") != "alert" or msg.get("state") != "open" or not msg.get("packet_ids"):
                        continue
                    pkt = (await client.get(f"/api/packets/{msg['packet_ids'][0]}")).json()
                    # The scheduler's onset: the first frame at or above start_area (pre-roll
                    # frames before it may carry a little motion that started nothing).
                    moving = [f for f in pkt.get("frames", []) if f.get("motion", 0) >= START_AREA]
                    # Only activity onsets count: an alert reopened mid-activity (after its quiet
                    # period) from a later packet measures packet spacing, not onset latency.
                    if moving and pkt.get("reason") == "onset":
                        latencies.append(arrived - moving[0]["wall"])
                        if args.verbose:
                            print(f"  {msg['camera']} {pkt['reason']} created+{pkt['created'] - moving[0]['wall']:.2f}s "
                                  f"arrived+{latencies[-1]:.2f}s frames={[(round(f['wall'] - moving[0]['wall'], 2), f['motion']) for f in pkt['frames']]}")
            cpu1 = vigil.cpu_times().user + vigil.cpu_times().system
            cams = (await client.get("/api/cameras")).json()
            system = (await client.get("/api/system")).json()
            metrics = (await client.get("/metrics")).text
        elapsed = time.time() - t_start
        decoded = sum(c["status"].get("decoded", 0) for c in cams)
        sampled = sum(c["status"].get("sampled", 0) for c in cams)
        dropped = sum(c["status"].get("dropped", 0) for c in cams)
        stale = [line for line in metrics.splitlines() if "stale" in line and not line.startswith("#")]
        print(f"load: {args.cameras} cameras, {elapsed / 60:.1f} min, cpu backend")
        print(f"  frames: decoded {decoded}, sampled {sampled}, dropped {dropped} "
              f"({100 * dropped / max(sampled, 1):.2f}% of sampled)")
        print(f"  stale-skipped counters: {'; '.join(stale) or 'none reported'}")
        print(f"  queues: {json.dumps(system.get('queues'))}")
        print(f"  CPU (vigil, all stages): {100 * (cpu1 - cpu0) / elapsed:.0f}% of one core in all, "
              f"{100 * (cpu1 - cpu0) / elapsed / args.cameras:.1f}% per camera")
        warm = [m for t, m in rss if t >= min(120, elapsed / 3)]
        print(f"  vigil RSS MiB over time: {' '.join(f'{t:.0f}s:{m:.0f}' for t, m in rss[:: max(1, len(rss) // 12)])}")
        if warm:
            half = len(warm) // 2
            print(f"  vigil RSS after warm-up: min {min(warm):.0f}, max {max(warm):.0f}; mean of 2nd half - mean of "
                  f"1st half {sum(warm[half:]) / max(len(warm) - half, 1) - sum(warm[:half]) / max(half, 1):+.1f} MiB")
        print(f"  Redis used_memory MiB (retained packets/events, by design): "
              f"{' '.join(f'{t:.0f}s:{m:.0f}' for t, m in redis_mem[:: max(1, len(redis_mem) // 6)])}")
        budget = 0.6
        if latencies:
            print(f"  onset -> alert on websocket: n={len(latencies)} p50={pct(latencies, 50):.2f}s "
                  f"p95={pct(latencies, 95):.2f}s p99={pct(latencies, 99):.2f}s")
            print(f"  baseline: the scheduler's onset budget {budget:.2f}s; ratio p95/budget "
                  f"{pct(latencies, 95) / budget:.2f}x (goal p95 <= 1.0 s)")
        else:
            print("  no alerts opened: check the log", cfg.with_suffix(".log"))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        redis_server.stop()


if __name__ == "__main__":
    asyncio.run(main())
