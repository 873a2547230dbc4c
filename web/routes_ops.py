"""Operations: /readyz (Redis and stages), /api/system and /metrics (Prometheus text format)."""

import asyncio
import time
from typing import Annotated, Callable

import msgspec
from fastapi import APIRouter, Depends, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bus.connection import Bus
from bus.registry import Registry
from web.auth import Principal
from web.body import json_response
from web.deps import Access
from web.prometheus import analyzer_snapshots, collect_families


class _Snapshot:
    """A collector over families gathered for one scrape."""

    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):  # noqa: ANN201 - prometheus collector protocol
        return self.families


STAGES = ("ingest", "scheduler", "analyzer", "alerts")


async def stage_workers(bus: Bus) -> dict[str, list[dict]]:
    """Live workers per stage, from the heartbeats every stage process writes (with a TTL)."""
    out: dict[str, list[dict]] = {}
    async for key in bus.r.scan_iter(match=f"{bus.keys.prefix}stage:*", count=200):
        _, stage, worker = key.decode().removeprefix(bus.keys.prefix).split(":", 2)
        raw = await bus.r.get(key)
        info = msgspec.json.decode(raw) if raw else {}
        out.setdefault(stage, []).append({"worker": worker, **info})
    return out


async def queue_stats(bus: Bus) -> dict[str, dict]:
    out = {}
    for name, stream, group in (("packets", bus.keys.packets, bus.keys.ANALYZERS),
                                ("events", bus.keys.events, bus.keys.ALERTERS)):
        info = await bus.group_info(stream, group) or {}
        length = await bus.r.xlen(stream)
        out[name] = {"length": length, "pending": int(info.get("pending", 0)),
                     "consumers": int(info.get("consumers", 0)), "last_delivered": info.get("last-delivered-id")}
        last = await bus.r.xrevrange(stream, count=1)
        delivered = info.get("last-delivered-id")
        out[name]["caught_up"] = not last or delivered == last[0][0].decode()
    return out


def analyzer_summary(snap: dict) -> dict:
    """What /api/system shows of an analyzer worker: backend, model and, for cpu, the detector
    in use (and, when it is the HOG fallback, why)."""
    keys = ("worker", "backend", "model", "detector", "events", "queue_depth", "in_flight", "latency_ms", "circuit")
    return {k: snap[k] for k in keys if k in snap}


def ops_router(bus: Bus, access: Access, local_gauges: Callable[[], dict[str, float]] | None = None) -> APIRouter:
    r = APIRouter(tags=["operations"])
    Viewer = Annotated[Principal, Depends(access.viewer)]
    registry = Registry(bus)

    @r.get("/readyz")
    async def readyz(who: Viewer) -> Response:
        """Ready when Redis answers and every stage has at least one live worker."""
        try:
            await asyncio.wait_for(bus.r.ping(), 2)
        except Exception:
            return json_response({"ready": False, "redis": False, "stages": {}}, 503)
        workers = await stage_workers(bus)
        # A stage crash-looping (restarted with backoff) still beats, but is not healthy.
        stages = {s: sum(1 for w in workers.get(s, []) if w.get("healthy", True)) for s in STAGES}
        ready = all(stages.values())
        return json_response({"ready": ready, "redis": True, "stages": stages}, 200 if ready else 503)

    @r.get("/api/system")
    async def system(who: Viewer) -> Response:
        analyzers = [analyzer_summary(snap) for snap in await analyzer_snapshots(bus)]
        return json_response({"stages": await stage_workers(bus), "queues": await queue_stats(bus),
                              "analyzers": analyzers, "time": time.time()})

    @r.get("/metrics")
    async def metrics(who: Viewer) -> Response:
        """Prometheus text format, the whole fleet (read from Redis): cameras, queues, workers,
        scheduler, analyzer workers, alerts, webhooks, and this web process. docs/web.md lists them."""
        reg = CollectorRegistry()
        families = await collect_families(bus, registry, await stage_workers(bus), await queue_stats(bus),
                                          local_gauges() if local_gauges else {})
        reg.register(_Snapshot(families))
        return Response(generate_latest(reg), media_type=CONTENT_TYPE_LATEST)

    return r
