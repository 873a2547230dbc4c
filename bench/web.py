"""Web benchmark: websocket fan-out latency to 100 clients, and REST p95 of the events
query at 100k stored events. Each figure is printed with a ratio to a named baseline
measured in the same run:
  fan-out  vs  the same clients reading Redis directly (XREAD BLOCK), no web server between;
  REST     vs  the bare XREVRANGE COUNT 50 that the unfiltered query starts from.

    python bench/web.py [--clients 100] [--events 100000] [--rest-only]
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
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._util import free_port, pct, summary  # noqa: E402
from bus import messages, open_bus  # noqa: E402
from bus.connection import FIELD  # noqa: E402
from bus.messages import Event, EventFrame, MotionSummary, utc  # noqa: E402

TOKEN = "bench-token-0123456789"


def _event(i: int, t: float, camera: str = "cam") -> Event:
    return Event(id=f"evt-{camera}-{i}", camera=camera, start=utc(t), end=utc(t), packet_id=f"{camera}-{i}",
                 reason="motion", summary=f"bench event {i} {'truck' if i % 97 == 0 else 'car'}",
                 labels=["person"] if i % 10 == 0 else ["motion"], motion=MotionSummary(area=0.1),
                 backend="cpu", model="bench", latency_ms=1.0, visual_tokens=64,
                 frames=[EventFrame(ts=0.0, temporal_id=0, url="/x")])


async def fanout(bus, base_ws: str, clients: int, rounds: int) -> tuple[list[float], list[float]]:
    """Latency from XADD to receipt, through /ws and (baseline) straight from Redis."""
    ws_lat: list[float] = []
    redis_lat: list[float] = []
    conns = []
    for _ in range(clients):
        ws = await websockets.connect(base_ws, max_queue=None)
        await ws.send(json.dumps({"token": TOKEN}))
        await ws.recv()  # hello
        conns.append(ws)
    sent: dict[str, float] = {}

    async def ws_reader(ws) -> None:
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == "event" and msg["id"] in sent:
                ws_lat.append((time.perf_counter() - sent[msg["id"]]) * 1000)

    async def redis_reader(cursor: str) -> None:
        from redis.asyncio import Redis
        r = Redis.from_url(bus.url)
        try:
            while True:
                reply = await r.xread({bus.keys.events: cursor}, block=1000, count=100)
                for _, rows in reply or []:
                    for entry, fields in rows:
                        cursor = entry
                        e = messages.decode(fields[FIELD], Event)
                        if e.id in sent:
                            redis_lat.append((time.perf_counter() - sent[e.id]) * 1000)
        finally:
            await r.aclose()

    last = await bus.r.xrevrange(bus.keys.events, count=1)
    start = last[0][0].decode() if last else "0-0"
    tasks = [asyncio.create_task(ws_reader(ws)) for ws in conns]
    tasks += [asyncio.create_task(redis_reader(start)) for _ in range(clients)]
    await asyncio.sleep(2.5)  # let the server's first status message go out
    for i in range(rounds):
        e = _event(10_000_000 + i, time.time(), "fan")
        sent[e.id] = time.perf_counter()
        await bus.publish(bus.keys.events, e)
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)
    for t in tasks:
        t.cancel()
    for ws in conns:
        await ws.close()
    return ws_lat, redis_lat


async def rest(bus, base: str, n_events: int, repeats: int) -> None:
    t0 = time.time() - n_events
    pipe = bus.r.pipeline(transaction=False)
    for i in range(n_events):
        e = _event(i, t0 + i, "cam" if i % 2 else "gate")
        pipe.xadd(bus.keys.events, {FIELD: messages.encode(e)})
        if i % 2000 == 1999:
            await pipe.execute()
    await pipe.execute()
    print(f"stored events: {await bus.r.xlen(bus.keys.events)}")
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        base_lat = []
        for _ in range(repeats):
            t = time.perf_counter()
            await bus.r.xrevrange(bus.keys.events, count=50)
            base_lat.append((time.perf_counter() - t) * 1000)
        for label, params in (("latest 50", {"limit": 50}), ("camera=gate", {"camera": "gate", "limit": 50}),
                              ("label=person", {"label": "person", "limit": 50}),
                              ("q=truck (1 in 97)", {"q": "truck", "limit": 50}),
                              ("page 2 via cursor", None)):
            lat = []
            for _ in range(repeats):
                t = time.perf_counter()
                if params is None:
                    first = (await c.get("/api/events", params={"limit": 50})).json()
                    res = await c.get("/api/events", params={"limit": 50, "cursor": first["next_cursor"]})
                else:
                    res = await c.get("/api/events", params=params)
                assert res.status_code == 200, res.text
                lat.append((time.perf_counter() - t) * 1000)
            print(f"  REST {label:<20} {summary(lat)} ms   ratio p95 to bare XREVRANGE: "
                  f"{pct(lat, 95) / max(pct(base_lat, 95), 1e-3):.1f}x")
        print(f"  baseline XREVRANGE 50  {summary(base_lat)} ms")
        # A word no event has: the whole stream is scanned, page by page (each page answers
        # within the scan budget and hands back a cursor), against a bare chunked XREVRANGE.
        full, pages, first = [], [], []
        bare = []
        for _ in range(max(3, repeats // 10)):
            t = time.perf_counter()
            hi = "+"
            while True:
                rows = await bus.r.xrevrange(bus.keys.events, max=hi, count=500)
                if len(rows) < 500:
                    break
                hi = "(" + rows[-1][0].decode()
            bare.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            cursor, n = None, 0
            while True:
                res = await c.get("/api/events", params={"q": "zebra", "limit": 50, **({"cursor": cursor} if cursor else {})})
                assert res.status_code == 200, res.text
                n += 1
                if n == 1:
                    first.append((time.perf_counter() - t) * 1000)
                cursor = res.json()["next_cursor"]
                if not cursor:
                    break
            full.append((time.perf_counter() - t) * 1000)
            pages.append(n)
        print(f"  REST q=zebra (no match) first page {summary(first)} ms; whole stream {summary(full)} ms in "
              f"{max(pages)} page(s); ratio to a bare chunked XREVRANGE of the stream ({summary(bare)} ms): "
              f"{pct(full, 50) / max(pct(bare, 50), 1e-3):.1f}x")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--rest-only", action="store_true", help="skip the websocket fan-out")
    args = ap.parse_args()
    async with open_bus(None) as bus:
        port = free_port()
        cfg = Path(os.environ.get("TMPDIR", "/tmp")) / f"vigil-bench-web-{os.getpid()}.yaml"
        cfg.write_text(f"web:\n  port: {port}\n")
        env = {**os.environ, "REDIS_URL": bus.url, "VIGIL_TOKEN": TOKEN}
        proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "web", "-c", str(cfg)], env=env,
                                cwd=Path(__file__).resolve().parent.parent)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            if not args.rest_only:
                print(f"websocket fan-out to {args.clients} clients, {args.rounds} events:")
                ws_lat, redis_lat = await fanout(bus, base.replace("http", "ws") + "/ws", args.clients, args.rounds)
                print(f"  via /ws             {summary(ws_lat)} ms (deliveries)")
                print(f"  baseline Redis XREAD {summary(redis_lat)} ms")
                print(f"  ratio p95 ws/redis: {pct(ws_lat, 95) / max(pct(redis_lat, 95), 1e-3):.1f}x; "
                      f"delivered {len(ws_lat)}/{args.clients * args.rounds}")
            print(f"REST events query at {args.events} stored events:")
            await rest(bus, base, args.events, args.repeats)
        finally:
            proc.terminate()
            proc.wait(10)
            cfg.unlink(missing_ok=True)


if __name__ == "__main__":
    asyncio.run(main())
