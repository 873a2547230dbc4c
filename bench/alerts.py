"""Alerts benchmark: an activity's start in -> signed webhook received, and delivery throughput.

    python bench/alerts.py [--n 200] [--m 1000]

Runs the real alerts stage (in this process) on an embedded Redis, with a real HTTP
receiver in a separate process on 127.0.0.1. Baselines, measured in the same run against
the same receiver: a bare httpx POST (one at a time, for latency; `concurrency` at a time,
for throughput). Prints ratios; absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from alerts.service import AlertsService  # noqa: E402
from alerts.settings import AlertsSettings, WebhookSettings  # noqa: E402
from alerts.signing import header  # noqa: E402
from bus import open_bus  # noqa: E402
from bus import messages  # noqa: E402
from bus.activities import ActivityStore  # noqa: E402
from bus.messages import ActivityNote, Alert, LabelRule, MotionSummary, WebhookEndpoint, utc  # noqa: E402
from bus.registry import Registry  # noqa: E402
from bus.webhooks import WebhookStore  # noqa: E402

SECRET = "bench-secret-" + "x" * 20


# ------------------------------------------------------------------------------ receiver
def _receiver(port_q: mp.Queue, hits: mp.Queue) -> None:
    """A plain HTTP/1.1 server: records (receipt time, event, body prefix) and answers 200."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.put((time.time(), self.headers.get("Vigil-Event", ""), raw[:200]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # the default backlog of 5 resets concurrent connections

    srv = Server(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    port_q.put(srv.server_address[1])
    srv.serve_forever()


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _start(camera: str, pid: str) -> ActivityNote:
    """The scheduler's activity start, with its onset frame, as the alerts stage reads it."""
    now = time.time()
    return ActivityNote(camera=camera, activity=pid, state="start", onset_wall=now - 0.2, onset_ts=0.0, wall=now,
                        ts=0.2, motion=MotionSummary(area=0.05, boxes=[[0.1, 0.1, 0.2, 0.4]]), packet_id=pid,
                        jpeg=b"\xff\xd8" + b"0" * 30_000, width=448, height=252, created=now)


def _alert(i: int) -> Alert:
    t = utc(time.time())
    return Alert(id=f"alr-bench-{i}", state="open", rule="bench", camera=f"cam{i % 8}", severity="warning",
                 title="Person in view", message="1 person detected; motion over 5.0% of the view",
                 event_ids=[f"evt-{i}"], first_seen=t, last_seen=t, snapshot_url=f"/api/packets/p{i}/frames/0.jpg")


async def _drain(hits: mp.Queue, n: int, timeout: float = 60) -> list[tuple]:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        try:
            out.append(await asyncio.to_thread(hits.get, True, 0.5))
        except Exception:
            continue
    return out


# ------------------------------------------------------------------------------ runs
async def baseline_latency(url: str, hits: mp.Queue, n: int) -> list[float]:
    body = messages.to_json(_alert(0))
    lat = []
    async with httpx.AsyncClient(timeout=10) as c:
        for _ in range(n):
            t = time.time()
            await c.post(url, content=body, headers={"Content-Type": "application/json", "Vigil-Signature": header(SECRET, body)})
            got = await _drain(hits, 1)
            lat.append(got[0][0] - t)
    return lat


async def baseline_throughput(url: str, hits: mp.Queue, m: int, conc: int) -> float:
    body = messages.to_json(_alert(0))
    sem = asyncio.Semaphore(conc)
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=conc * 2)) as c:
        async def one() -> None:
            async with sem:
                await c.post(url, content=body, headers={"Content-Type": "application/json",
                                                          "Vigil-Signature": header(SECRET, body)})
        t = time.perf_counter()
        drain = asyncio.create_task(_drain(hits, m))
        await asyncio.gather(*(one() for _ in range(m)))
        await drain
        return m / (time.perf_counter() - t)


async def vigil_runs(url: str, hits: mp.Queue, n: int, m: int, conc: int) -> tuple[list[float], float]:
    async with open_bus(None) as bus:
        await Registry(bus).put_rule(LabelRule(id="fast", label="person", fast=True, confirm_s=600, quiet_s=600))
        await WebhookStore(bus).put_endpoint(WebhookEndpoint(id="bench", url=url, secret=SECRET, allow_private=True,
                                                             events=["alert.open"]))
        svc = AlertsService(bus, AlertsSettings(tick_s=3600, webhooks=WebhookSettings(concurrency=conc)), consumer="bench")
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        while not await bus.group_info(bus.keys.alerts, bus.keys.WEBHOOKS):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        lat = []
        for i in range(n):
            note = _start(f"cam{i}", f"cam{i}-{i}")  # a new camera each time: every onset opens an alert
            t = time.time()
            await ActivityStore(bus).publish(note, retention_s=3600)
            got = await _drain(hits, 1)
            lat.append(got[0][0] - t)
        # Throughput: m alert changes of m different alerts written to the alerts stream.
        t = time.perf_counter()
        drain = asyncio.create_task(_drain(hits, m))
        pipe = bus.r.pipeline(transaction=False)
        for i in range(m):
            pipe.xadd(bus.keys.alerts, {b"m": messages.encode(_alert(10_000 + i))})
        await pipe.execute()
        got = await drain
        rate = len(got) / (time.perf_counter() - t)
        stop.set()
        await asyncio.wait_for(task, 20)
        return lat, rate


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="fast alerts for the latency run")
    ap.add_argument("--m", type=int, default=1000, help="deliveries for the throughput run")
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    port_q, hits = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(port_q, hits), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port_q.get(timeout=20)}/hook"
    try:
        await baseline_latency(url, hits, 20)  # warm-up
        base_lat = await baseline_latency(url, hits, a.n)
        base_rate = await baseline_throughput(url, hits, a.m, a.concurrency)
        lat, rate = await vigil_runs(url, hits, a.n, a.m, a.concurrency)
    finally:
        proc.terminate()
    ms = lambda xs, p: _pct(xs, p) * 1000  # noqa: E731
    print(f"machine: {os.cpu_count()} cpus; receiver: stdlib HTTP/1.1 server in its own process on 127.0.0.1")
    print(f"{'latency (ms)':<44}{'p50':>8}{'p95':>8}{'p99':>8}")
    print(f"{'baseline: bare httpx POST -> received':<44}{ms(base_lat, 50):8.2f}{ms(base_lat, 95):8.2f}{ms(base_lat, 99):8.2f}")
    print(f"{'vigil: activity start in -> webhook received':<44}{ms(lat, 50):8.2f}{ms(lat, 95):8.2f}{ms(lat, 99):8.2f}")
    print(f"{'ratio vigil / baseline':<44}{_pct(lat, 50) / _pct(base_lat, 50):8.1f}"
          f"{_pct(lat, 95) / _pct(base_lat, 95):8.1f}{_pct(lat, 99) / _pct(base_lat, 99):8.1f}")
    print(f"throughput (deliveries/s, concurrency {a.concurrency}): baseline httpx {base_rate:.0f}/s, "
          f"vigil {rate:.0f}/s, ratio {rate / base_rate:.2f}")
    print(f"vigil fast-alert latency, mean {statistics.mean(lat) * 1000:.1f} ms over {len(lat)} alerts")


if __name__ == "__main__":
    asyncio.run(main())
