"""Soak: `vigil demo` (the paced, looping sample camera, the whole pipeline, the cpu backend)
for a long while, minute by minute: packets per minute, frames per packet, stale-skipped
packets, how far frames lag behind the clock, and how long `/api/system` takes. A demo that
drifts shows it within minutes: the lag grows, packets shrink to one frame and multiply.

Baseline in the same run: the first minutes after warm-up; the later minutes should match
them (steady), and the lag should stay under one sampled-frame interval (0.2 s at 5 fps).

    python bench/soak.py [--minutes 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._util import free_port  # noqa: E402
from bus import messages  # noqa: E402
from bus.messages import FrameStreamItem, Packet  # noqa: E402
from bus.names import Keys  # noqa: E402
from bus.server import EmbeddedRedis  # noqa: E402

TOKEN = "soak-bench-token-0123456789abcdef"
KEYS = Keys()


def _entry_s(entry_id: bytes) -> float:
    return int(entry_id.split(b"-")[0]) / 1000


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--warmup-min", type=float, default=1.0, help="minutes left out of the baseline")
    args = ap.parse_args()
    import redis.asyncio as aioredis

    server = EmbeddedRedis()
    url = server.start()
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"vigil-soak-{os.getpid()}.log", "w")
    env = {**os.environ, "VIGIL_TOKEN": TOKEN, "REDIS_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "demo", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    r = aioredis.Redis.from_url(url)
    rows: list[dict] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            start = time.time()
            print(f"soak: vigil demo for {args.minutes:g} min (load average {os.getloadavg()[0]:.1f}); one line a minute")
            print(f"{'min':>4} {'packets':>7} {'frames/pkt':>10} {'1-frame':>7} {'stale':>5} "
                  f"{'lag p50':>8} {'lag max':>8} {'/api/system':>11}")
            stale0 = 0
            for minute in range(1, int(args.minutes) + 1):
                await asyncio.sleep(max(0.0, start + 60 * minute - time.time()))
                lo, hi = int((start + 60 * (minute - 1)) * 1000), int((start + 60 * minute) * 1000)
                pkts = [messages.decode(f[b"m"], Packet) for _, f in await r.xrange(KEYS.packets, lo, hi)]
                sizes = [len(p.frames) for p in pkts]
                # Lag: when a frame was written (its entry id) minus its capture time (wall). A
                # paced file that drifts writes frames ever later than their wall time says.
                frames = await r.xrange(KEYS.frames("demo"), max(lo, hi - 20_000), hi)
                lags = []
                for entry_id, f in frames:
                    msg = messages.decode(f[b"m"], FrameStreamItem)
                    if hasattr(msg, "ts"):
                        lags.append(_entry_s(entry_id) - msg.wall)
                t0 = time.perf_counter()
                await client.get("/api/system")
                api_ms = (time.perf_counter() - t0) * 1000
                stale = int((await r.hget(KEYS.scheduler_stats, "stale_dropped")) or 0)
                row = {"minute": minute, "packets": len(pkts), "fpp": statistics.fmean(sizes) if sizes else 0.0,
                       "single": sizes.count(1), "stale": stale - stale0, "lag50": statistics.median(lags) if lags else 0.0,
                       "lagmax": max(lags) if lags else 0.0, "api_ms": api_ms}
                stale0 = stale
                rows.append(row)
                print(f"{minute:4d} {row['packets']:7d} {row['fpp']:10.2f} {row['single']:7d} {row['stale']:5d} "
                      f"{row['lag50'] * 1000:6.0f}ms {row['lagmax'] * 1000:6.0f}ms {api_ms:9.0f}ms", flush=True)
                if proc.poll() is not None:
                    raise SystemExit(f"vigil demo exited ({proc.returncode}); see {log.name}")
        warm = [x for x in rows if x["minute"] > args.warmup_min]
        if len(warm) >= 2:
            half = len(warm) // 2
            first, last = warm[:half], warm[half:]

            def mean(key: str, part: list[dict]) -> float:
                return statistics.fmean(x[key] for x in part)

            print(f"steady? packets/min {mean('packets', first):.1f} -> {mean('packets', last):.1f} "
                  f"(RATIO {mean('packets', last) / max(mean('packets', first), 1e-9):.2f}x), frames/packet "
                  f"{mean('fpp', first):.2f} -> {mean('fpp', last):.2f}, lag p50 {mean('lag50', first) * 1000:.0f} -> "
                  f"{mean('lag50', last) * 1000:.0f} ms (max {max(x['lagmax'] for x in warm) * 1000:.0f} ms; "
                  f"one sampled frame = 200 ms), stale-skipped {sum(x['stale'] for x in warm)}, /api/system max "
                  f"{max(x['api_ms'] for x in warm):.0f} ms")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        await r.aclose()
        server.stop()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
